"""A hostile app.yaml (or app directory) never injects into a rendered file: it gets a located error.

Each case here is an attack that once worked: a value that added a control field, an nginx
directive or a timer setting; a YAML document that crashed or exhausted the build; a file that
hung it; a build whose bytes depended on the umask.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appdeb.build import formats
from appdeb.build.plan import make_plan
from appdeb.build.render import render
from appdeb.build.validate import load_spec
from appdeb.build.vendor import cache_key, cache_root
from appdeb.runner import which

from .conftest import EPOCH, EXAMPLES
from .hostile import appdeb, appdeb_process, assert_refused, make_app

FIELD_ATTACKS: list[tuple[str, dict[str, Any], str, str]] = [
    ("control field via maintainer", {"maintainer": "Evil\nConflicts: curl\nX: y <a@b.c>"}, "maintainer",
     "line break"),
    ("escape in description", {"description": "Hello \x1b[31mred"}, "description", "control character"),
    ("newline after name", {"name": "hello\n"}, "name", "not a valid app name"),
    ("newline after version", {"version": "1.0.0\n"}, "version", "not a version"),
    ("newline after wsgi object", {"wsgi.app": "hello:application\n"}, "wsgi.app", "module:object"),
    ("Depends injection", {"require.deb": ["libfoo (>= 1\nConflicts: curl)"]}, "require.deb", "relation"),
    ("nginx directive via server_name", {"instances.prod.server_name": "x.org; include /etc/passwd"},
     "instances.prod.server_name", "host names"),
    ("nginx block via server_name", {"instances.prod.server_name": "x.org;\n location / { root /; }"},
     "instances.prod.server_name", "host names"),
    ("nginx block via static.url", {"static": {"dir": "static", "url": "/s/ { }\nlocation /x/"}}, "static.url",
     "URL path"),
    ("nginx variable via static.url", {"static": {"dir": "static", "url": "/$host/"}}, "static.url", "URL path"),
    ("static dir climbing out", {"static": "../../../../../../etc"}, "static", "'..'"),
    ("static dir on the build host", {"static": "/etc"}, "static", "absolute"),
    ("timer starting another unit", {"timers": {"t": {"command": "true", "schedule": "daily\nUnit=x.service"}}},
     "timers.t.schedule", "calendar spec"),
    ("NUL in a command", {"commands.evil": "echo a\x00b"}, "commands.evil", "control character"),
    ("escape in a timer command", {"timers": {"t": {"command": "a\x1bb", "schedule": "daily"}}},
     "timers.t.command", "control character"),
    ("second setting via default", {"env.GREETING.default": "Hello\nEVIL=1"}, "env.GREETING.default",
     "line break"),
    ("second setting via description", {"env.GREETING.description": "x\nEVIL=1"}, "env.GREETING.description",
     "line break"),
    ("newline in a setting name", {"env": {"BAD\n": "x"}}, "env.BAD\\n", "letters, digits"),
    ("newline in a command name", {"commands": {"greet\n": "true"}}, "commands.greet\\n", "names are"),
    ("newline in an instance name", {"instances": {"prod\n": {}}}, "instances.prod\\n", "instance names"),
    ("requirements file on the build host", {"require.pip": "/etc/passwd"}, "require.pip", "absolute"),
    ("requirements file climbing out", {"require.pip": "../../x.txt"}, "require.pip", "'..'"),
    ("requirement smuggling a line", {"require.pip": ["gunicorn\n-r /etc/passwd"]}, "require.pip", "line break"),
    ("local requirement outside", {"require.pip": ["/etc"]}, "require.pip", "outside the app"),
    ("file URL outside", {"require.pip": ["x @ file:///etc/passwd"]}, "require.pip", "outside the app"),
    ("editable outside", {"require.pip": ["-e /tmp"]}, "require.pip", "would be built from source"),
    ("index on the disk", {"require.pip": ["--find-links=/var/cache"]}, "require.pip", "outside the app"),
    ("env expansion in a requirement", {"require.pip": ["-r ${HOME}/x.txt"]}, "require.pip", "environment"),
    ("excluding every file", {"exclude": ["*"]}, "exclude", "every file"),
]


@pytest.mark.parametrize(("fields", "key", "fragment"), [a[1:] for a in FIELD_ATTACKS],
                         ids=[a[0] for a in FIELD_ATTACKS])
def test_hostile_field_is_a_located_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            fields: dict[str, Any], key: str, fragment: str) -> None:
    app = make_app(tmp_path, fields)
    code, _, err = appdeb(capsys, "check", app)
    assert_refused(code, err, key, fragment)
    code, _, err = appdeb(capsys, "build", app, "--out", tmp_path / "dist")
    assert_refused(code, err, key, fragment)
    assert not (tmp_path / "dist").exists()


def test_legitimate_values_pass(tmp_path: Path) -> None:
    """The allow-lists are not a wall: what real apps write still passes, normalised where documented."""
    app = make_app(tmp_path, {
        "instances.prod.server_name": "example.org *.example.org _", "static": {"dir": "static/", "url": "/assets"},
        "require.deb": ["libpq5 (>= 15)", "python3:any", "zlib1g (>> 1:1.2~rc1+x)"],
        "require.pip": ["flask>=3 ; python_version >= '3.11'", "pkg @ https://example.org/pkg-1.0-py3-none-any.whl",
                        "./wheels/pkg-1.0-py3-none-any.whl", "--find-links ./wheels", "--index-url https://x.org/s"],
        "timers": {"t": {"command": "python3 -m x\nprintf '%s' \"$HOME\"\t`id`", "schedule": "Mon..Fri *-*-* 09:00"}},
        "env.GREETING": {"default": " 'quoted' $HOME %n ", "description": "the greeting; 100% \\ `sh`"},
        "maintainer": "José Ñandú-O'Brien <jose@example.org>", "version": "2.0.0rc1+local.7",
        "description": "Summary: with a colon\n\nConflicts: nothing, it is a continuation line\n   indented",
    })
    (app / "wheels").mkdir()
    spec = load_spec(app)
    assert spec.static is not None and (spec.static.dir, spec.static.url) == ("static", "/assets/")
    assert spec.timers[0].schedule == "Mon..Fri *-*-* 09:00"


def test_requirements_file_lines_are_checked_with_their_line(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app(tmp_path, {"require.pip": "requirements.txt"})
    wheel = "./w/pkg-1.0-py3-none-any.whl"
    (app / "requirements.txt").write_text(f"# pinned\ngunicorn\n-r /etc/passwd\n{wheel} \\\n  ; python_version > '3'\n")
    code, _, err = appdeb(capsys, "check", app)
    assert_refused(code, err, "require.pip", "requirements.txt:3: local requirement '/etc/passwd' leads outside")
    assert err.count("require.pip") == 1  # the wheel (line 4, continued on 5) is inside the app
    (app / "w").mkdir()
    (app / "requirements.txt").write_text(f"gunicorn\n{wheel} \\\n  ; python_version > '3'\n--find-links w\n")
    assert appdeb(capsys, "check", app)[0] == 0


@pytest.mark.parametrize("line", ["./pkg", "-e ./pkg", "--editable=.", "-e.", "git+https://example.org/a/b.git#egg=b",
                                  "pkg @ file:./pkg", "pkg @ https://example.org/pkg-1.0.tar.gz", "./pkg-1.0.zip",
                                  "hg+https://example.org/r#egg=r", "./pkg ; python_version > '3'",
                                  "--no-binary :all:", "--no-binary=pkg", "--only-binary=:none:", "--find-l pkg",
                                  "--requirem pkg/r.txt", "-r https://example.org/r.txt", "-c http://127.0.0.1/c.txt"])
def test_a_requirement_that_would_be_built_from_source_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  line: str) -> None:
    """Vendoring runs as root and outside commands.build's confinement: a local directory, an sdist, a VCS URL
    or an editable install would run a build backend of the app's choosing there. Refused, in require.pip's
    lines and at any depth of the files it includes (and the installer itself builds nothing: --no-build)."""
    app = make_app(tmp_path, {"require.pip": [line]})
    (app / "pkg").mkdir()
    assert_refused(*appdeb(capsys, "check", app)[::2], "require.pip",
                   "would be built from source" if not line.startswith("-") or line.startswith(("-e", "--edit")) else
                   ("cannot be checked" if "://" in line else "may only give the options"))


def test_every_included_requirements_file_is_checked_line_by_line(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The installer reads every file -r/-c includes, at any depth: each line is held to require.pip's rules
    (a nested `--find-links` out of the app, or `-r` of a secret, would feed root's files to the build)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("token\n")
    app = make_app(tmp_path, {"require.pip": "reqs/top.txt"})
    (app / "reqs").mkdir()
    (app / "reqs" / "top.txt").write_text("gunicorn\n-r sub/mid.txt\n")
    (app / "reqs" / "sub").mkdir()
    mid = f"-c ../pins.txt\n--find-links {outside}\n-r {outside / 'secret.txt'}\n"
    (app / "reqs" / "sub" / "mid.txt").write_text(mid)
    (app / "reqs" / "pins.txt").write_text("flask==3.0.0\n--extra-index-url FILE:///etc/\n-e .\n")
    code, _, err = appdeb(capsys, "check", app)
    assert code == 1 and "Traceback" not in err and "token" not in err, err
    for where, fragment in (("reqs/sub/mid.txt:2", "leads outside"), ("reqs/sub/mid.txt:3", "leads outside"),
                            ("reqs/pins.txt:2", "'/etc/' leads outside"), ("reqs/pins.txt:3", "built from source")):
        assert f"require.pip: {where}: " in err and fragment in err.split(f"{where}: ")[1].splitlines()[0], (where, err)


def test_requirements_file_must_be_a_small_regular_file_inside(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app(tmp_path, {"require.pip": "requirements.txt"})
    (app / "requirements.txt").write_text("# padding\n" * 120_000)
    assert_refused(*appdeb(capsys, "check", app)[::2], "require.pip", "larger than 1 MiB")
    (app / "requirements.txt").unlink()
    os.mkfifo(app / "requirements.txt")
    assert_refused(*appdeb(capsys, "check", app)[::2], "require.pip", "not a regular file")
    (app / "requirements.txt").unlink()
    (app / "requirements.txt").symlink_to("/etc/passwd")
    assert_refused(*appdeb(capsys, "check", app)[::2], "require.pip", "leads outside the app directory")


def test_static_dir_through_a_symlink_to_the_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app(tmp_path, {"static": "assets"})
    (app / "assets").symlink_to("/etc")
    assert_refused(*appdeb(capsys, "check", app)[::2], "static", "leads outside the app directory")


@pytest.mark.skipif(which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_schedule_is_checked_by_systemd_analyze(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app(tmp_path, {"timers": {"t": {"command": "true", "schedule": "every other tuesday"}}})
    assert_refused(*appdeb(capsys, "check", app)[::2], "timers.t.schedule", "Failed to parse")


def test_control_characters_in_keys_cannot_fake_problem_lines(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app(tmp_path, {"x\x1b[2J\napp/app:1:1: name": 1})
    code, _, err = appdeb(capsys, "check", app)
    assert_refused(code, err, "x\\x1b[2J\\napp/app:1:1: name", "unknown key")
    assert "\x1b" not in err


YAML_ATTACKS: list[tuple[str, bytes, str]] = [
    ("too large", b"name: x\n" + b"#" * (1 << 20), "app.yaml:1:1: (top): is larger than 1024 KiB"),
    ("deep nesting", b"name: " + b"[" * 500 + b"]" * 500 + b"\n", "nested deeper than 64 levels"),
    ("python object", b"name: !!python/object:os.system {}\n", "name: the tag !!python/object:os.system"),
    ("bad int", b"web: {workers: !!int abc}\nname: x\n", "web.workers: cannot read this !!int value"),
    ("bad binary", b"name: !!binary 'a'\n", "name: cannot read this !!binary value"),
    ("bad timestamp", b"name: !!timestamp junk\n", "name: cannot read this !!timestamp value"),
    ("unknown tag", b"name: !shell rm\n", "name: cannot read this !shell value"),
    ("NUL byte", b"name: x\nversion: 1\x00\n", "app.yaml:2:11: (top): the character '\\x00' is not allowed"),
    ("byte-order mark", b"\xef\xbb\xbfname: x\n", "app.yaml:1:1: (top): starts with a byte-order mark"),
    ("not UTF-8", b"name: x\nversion: caf\xe9\n", "app.yaml:2:13: (top): not UTF-8 text"),
    ("recursive alias", b"name: &a [*a]\n", "alias may not refer to a node that contains it"),
    ("two documents", b"name: x\n---\nname: y\n", "expected a single document"),
]


@pytest.mark.parametrize(("data", "expected"), [a[1:] for a in YAML_ATTACKS], ids=[a[0] for a in YAML_ATTACKS])
def test_hostile_yaml_is_a_located_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes,
                                           expected: str) -> None:
    app = make_app(tmp_path)
    (app / "app.yaml").write_bytes(data)
    start = time.monotonic()
    code, _, err = appdeb(capsys, "check", app)
    assert time.monotonic() - start < 2
    assert_refused(code, err)
    assert expected in err, err


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    """A "billion laughs" document used to run for a minute into a MemoryError."""
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    app = make_app(tmp_path, text="\n".join(levels) + "\n")
    start = time.monotonic()
    r = appdeb_process("check", app, timeout=20)
    assert time.monotonic() - start < 10
    assert_refused(r.returncode, r.stderr)
    assert "app.yaml:5:" in r.stderr and "more than 50000 values" in r.stderr


def test_fifo_in_the_app_is_an_error_not_a_hang(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    os.mkfifo(app / "pipe")
    r = appdeb_process("build", app, "--out", tmp_path / "dist", timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"appdeb: error: {app / 'pipe'} is a FIFO" in r.stderr
    make_app(tmp_path / "excluded", {"exclude": ["pipe"]})
    os.mkfifo(tmp_path / "excluded" / "app" / "pipe")  # excluded: never read, the build goes on
    assert appdeb_process("check", tmp_path / "excluded" / "app").returncode == 0


def test_instance_option_with_a_newline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = appdeb(capsys, "build", EXAMPLES / "hello", "--instance", "prod\n", "--out", tmp_path)
    assert code == 1 and "appdeb: error: instance name 'prod" in err and "must be lower-case" in err


def _restricted_cache_copy(dest: Path) -> Path:
    """A separate vendor cache holding hello's library tree as a umask-077 run would have made it."""
    plan = make_plan(load_spec(EXAMPLES / "hello"), python_version="{}.{}".format(*sys.version_info[:2]),
                     source_date_epoch=EPOCH)
    key = cache_key(plan.requirements, plan.python_version, EXAMPLES / "hello")
    tree = dest / "vendor" / key
    shutil.copytree(cache_root() / "vendor" / key, tree)
    for dirpath, _, filenames in os.walk(tree):
        os.chmod(dirpath, 0o700)
        for name in filenames:
            path = os.path.join(dirpath, name)
            os.chmod(path, 0o700 if os.stat(path).st_mode & 0o100 else 0o600)
    return dest


def test_umask_does_not_change_the_package(tmp_path: Path) -> None:
    """Under umask 077 the package root once shipped as 0700; shared or separate caches, same bytes."""
    runs: list[tuple[str, int, dict[str, str]]] = [("shared022", 0o022, {}), ("shared077", 0o077, {})]
    digests = []
    for name, mask, env in runs:
        out = tmp_path / name
        r = appdeb_process("build", EXAMPLES / "hello", "--out", out, timeout=300, umask=mask,
                           env={"SOURCE_DATE_EPOCH": str(EPOCH), **env})
        assert r.returncode == 0, r.stderr
        digests.append(hashlib.sha256(next(out.glob("*.deb")).read_bytes()).hexdigest())
        if name == "shared022":  # the shared cache now holds hello's tree: copy it, as 077 would make it
            cache = str(_restricted_cache_copy(tmp_path / "cache077"))
            runs.append(("separate077", 0o077, {"APPDEB_CACHE": cache}))
    assert len(digests) == 3 and len(set(digests)) == 1


def _plan(app_dir: Path, **spec_changes: Any) -> Any:
    spec = dataclasses.replace(load_spec(app_dir), **spec_changes)
    return make_plan(spec, python_version="3.11", source_date_epoch=EPOCH)


def test_commands_travel_only_in_app_json(tmp_path: Path) -> None:
    marker = "echo MARK-$(id)-`x`;\nrm -rf \"$HOME\" # 100% \\"
    app = make_app(tmp_path, {"commands.x": marker, "processes": {"w": marker},
                              "timers": {"t": {"command": marker, "schedule": "*:0/5"}}})
    files = render(_plan(app))
    carriers = sorted(path for path, f in files.items() if b"MARK-" in f.content)
    assert carriers == ["opt/hello/appdeb/app.json"]


def test_description_lines_never_start_a_field(tmp_path: Path) -> None:
    app = make_app(tmp_path, {"description": "Summary\nConflicts: curl\n   \n  indented\n."})
    control = render(_plan(app))["DEBIAN/control"].content.decode()
    description = control.split("Description: ", 1)[1]
    assert description.startswith("Summary\n Conflicts: curl\n .\n   indented\n .\n .\n Built by appdeb")
    assert all(line.startswith(" ") for line in description.splitlines()[1:])


@pytest.mark.parametrize("changes", [{"maintainer": "A <a@b.c>\nConflicts: curl"}, {"version": "1.0\n"},
                                     {"description": "Summary\rX"}])
def test_templates_refuse_a_value_the_validator_missed(tmp_path: Path, changes: dict[str, str]) -> None:
    """Defence in depth: a spec that skipped validation still cannot put a line break into a file."""
    plan = _plan(make_app(tmp_path))
    plan = dataclasses.replace(plan, spec=dataclasses.replace(plan.spec, **changes))
    with pytest.raises(formats.FormatError):
        render(plan)


@pytest.mark.parametrize(("plant", "fragment"), [
    (lambda app: (app / "keys").symlink_to("/root/.ssh"), "a symbolic link to '/root/.ssh', outside the app"),
    (lambda app: (app / "up").symlink_to("../../etc"), "a symbolic link to '../../etc', outside the app"),
    (lambda app: (app / "static" / "x").symlink_to("../../x"), "outside the app"),
    (lambda app: [(app / "same").symlink_to("."), (app / "esc").symlink_to("same/.."),
                  (app / "conf").symlink_to("esc/etc")], "a symbolic link to 'esc/etc', outside the app"),
    (lambda app: (app / "bad\nname.txt").write_text("x"), "contains a line break"),
    (lambda app: Path(os.fsdecode(bytes(app / "caf") + b"\xe9.txt")).write_text("x"), "is not UTF-8"),
])
def test_a_file_a_node_cannot_take_safely_is_refused_before_a_deb_exists(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], plant: Any, fragment: str) -> None:
    """A link out of the app would let a later release's files land wherever it points (dpkg keeps an
    existing link where a directory arrives); odd names would split md5sums lines."""
    app = make_app(tmp_path)
    plant(app)
    code, _, err = appdeb(capsys, "build", app, "--out", tmp_path / "dist")
    assert code == 1 and fragment in err and "Traceback" not in err, err
    assert not list((tmp_path / "dist").glob("*.deb")) if (tmp_path / "dist").exists() else True


def test_a_link_inside_the_app_still_ships(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app(tmp_path)
    (app / "static" / "inside.css").symlink_to("site.css")
    (app / "up.css").symlink_to("static/../static/site.css")
    code, _, err = appdeb(capsys, "build", app, "--out", tmp_path / "dist")
    assert code == 0, err
    listing = subprocess.run(["dpkg-deb", "--contents", *map(str, (tmp_path / "dist").glob("*.deb"))],
                             capture_output=True, text=True, check=True).stdout
    assert "static/inside.css -> site.css" in listing and "up.css -> static/../static/site.css" in listing


def _nest(top: Path, depth: int) -> None:
    """`depth` directories one in the other below top (by descriptor: os.makedirs would recurse), a file last."""
    fd = os.open(top, os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        fd, old = os.open("d", os.O_DIRECTORY, dir_fd=fd), fd
        os.close(old)
    os.close(os.open("x.txt", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    os.close(fd)


def _unnest(top: Path) -> None:
    """Remove what _nest made (pytest's own clean-up of its temporary directories recurses too)."""
    fds = [os.open(top, os.O_DIRECTORY)]
    while True:
        try:
            fds.append(os.open("d", os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fds[-1]))
        except FileNotFoundError:
            break
    os.unlink("x.txt", dir_fd=fds[-1])
    while len(fds) > 1:
        os.close(fds.pop())
        os.rmdir("d", dir_fd=fds[-1])
    os.close(fds[0])


@pytest.fixture
def nested(tmp_path: Path) -> Iterator[Callable[[Path, int], None]]:
    made: list[Path] = []

    def nest(top: Path, depth: int) -> None:
        _nest(top, depth)
        made.append(top)

    yield nest
    for top in made:
        _unnest(top)


def test_a_checkout_nested_a_thousand_deep_is_refused_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], nested: Callable[[Path, int], None]) -> None:
    app = make_app(tmp_path)
    nested(app, 1100)
    code, _, err = appdeb(capsys, "build", app, "--out", tmp_path / "dist")
    assert code == 1 and "nest more than 100 deep" in err and "Traceback" not in err, err[-2000:]
    assert not (tmp_path / "dist").exists() or not list((tmp_path / "dist").iterdir())


def test_the_walk_is_os_walk_without_recursion(tmp_path: Path, nested: Callable[[Path, int], None]) -> None:
    from appdeb.files import walk

    tree = EXAMPLES.parent / "appdeb"
    for topdown in (True, False):
        assert list(walk(tree, topdown)) == list(os.walk(tree, topdown=topdown))
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "link").symlink_to("a")  # listed among the directories, not entered
    assert [(Path(d).name, sorted(ds)) for d, ds, _ in walk(tmp_path)] == [(tmp_path.name, ["a", "link"]), ("a", ["b"]),
                                                                          ("b", [])]
    kept = []
    for dirpath, dirnames, _ in walk(tmp_path):
        dirnames[:] = [d for d in dirnames if d != "a"]
        kept.append(dirpath)
    assert kept == [str(tmp_path)]
    nested(tmp_path / "a", 1500)
    assert sum(1 for _ in walk(tmp_path)) == 1503 and sum(1 for _ in walk(tmp_path, topdown=False)) == 1503
