"""As root, the app's own code at build time (commands.build, the web app's import) cannot reach past its box.

Real builds of examples/hello as root whose app attacks (tests/confine_attack.py): the build's temporary
files (found through the directory that holds them, /proc of the builder, its cwd's parents, its
environment), a directory anyone may write, /etc, /root, appdeb's cache, the build process (a signal,
ptrace), a process left behind, links planted in its output for root to follow when it takes the copy
back. Each asserts nothing crossed: the files' bytes, the .deb's bytes, no process left, and the build
failing clearly or shipping only the step's own output.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appdeb.build import confine, interface, sealed
from appdeb.build.pipeline import BuildOptions, build
from appdeb.errors import AppdebError

from .conftest import EPOCH, EXAMPLES
from .test_build_step import payload, snapshot
from .test_build_step_cache import private_cache

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sealed.can_seal(), reason="as root with namespaces (CI runs as root)")]
ATTACKER = Path(__file__).with_name("confine_attack.py")
MARK = bytes.fromhex("4150504445422d434f4e46494e452d504f49534f4e")


@pytest.fixture
def scene(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """hello with the attacker beside it, a private cache, canaries in /etc and /root, the build's
    temporary files under tmp_path; afterwards the canaries and anything the attacker left are removed."""
    tag = f"appdeb-attack-{secrets.token_hex(6)}"
    canaries = [Path("/etc") / tag, Path("/root") / tag]
    for canary in canaries:
        canary.write_bytes(b"canary\n")
        canary.chmod(0o644)
    shared = Path("/var/lib") / tag  # like a node image's /var/tmp: anyone may write it
    shared.mkdir(mode=0o1777)
    shared.chmod(0o1777)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "hello", app, ignore=shutil.ignore_patterns(".appdeb"))
    shutil.copy(ATTACKER, app / "attack.py")
    entry = private_cache(app, tmp_path, monkeypatch)
    cache = [str(entry / "lib" / "gunicorn" / "__init__.py"), str(entry / "lib")]
    (app / "app.yaml").write_text((app / "app.yaml").read_text() + "exclude: [targets.json]\n")
    (app / "targets.json").write_text(__import__("json").dumps({
        "tag": tag, "open": str(shared), "etc": str(canaries[0]), "root": str(canaries[1]), "temp": str(temp),
        "cache": cache, "builder": os.getpid()}))
    yield {"app": app, "tag": tag, "canaries": canaries, "shared": shared, "entry": entry, "cache": snapshot(entry),
           "out": tmp_path / "out"}
    for path in (*canaries, Path("/etc/attack-pwned"), Path("/root/attack-pwned")):
        path.unlink(missing_ok=True)
    shutil.rmtree(shared)
    for pid in _tagged(tag):
        os.kill(pid, 9)


def _tagged(tag: str) -> list[int]:
    """Processes whose command line carries tag."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and tag.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            pass
    return found


def _nothing_crossed(scene: dict[str, Any], deb: Path | None) -> None:
    for canary in scene["canaries"]:
        assert canary.read_bytes() == b"canary\n" and canary.stat().st_uid == 0
    assert not Path("/etc/attack-pwned").exists() and not Path("/root/attack-pwned").exists()
    assert not list(scene["shared"].iterdir())
    assert snapshot(scene["entry"]) == scene["cache"]
    assert not _tagged(scene["tag"]), "a process it started outlived the build"
    if deb is not None:
        fsys = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
        ctrl = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True, check=True).stdout
        assert MARK not in fsys and MARK not in ctrl


def _with_step(app: Path, step: str) -> None:
    text = (app / "app.yaml").read_text()
    (app / "app.yaml").write_text(text.replace("commands:\n", f"commands:\n  build: {step}\n"))


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_a_hostile_build_step_reaches_nothing_but_its_copy(scene: dict[str, Any], umask: int) -> None:
    """(Under root's usual umask and a strict one: what the step must read is readable to it either way.)"""
    _with_step(scene["app"], "python3 attack.py step")
    old = os.umask(umask)
    try:
        result = build(scene["app"], BuildOptions(out_dir=scene["out"], source_date_epoch=EPOCH))
    finally:
        os.umask(old)
    files = payload(result.deb)
    report = files["./opt/hello/app/attack-report.txt"].decode().splitlines()  # its own output ships
    assert len(report) == 11 and all(line.endswith(": refused") for line in report), report
    _nothing_crossed(scene, result.deb)
    assert all(Path(dirpath).stat().st_uid == 0 for dirpath, _, _ in os.walk(scene["out"]))


def test_a_hostile_import_at_build_time_reaches_nothing(scene: dict[str, Any]) -> None:
    """The import runs beside the writing of the .deb, for three seconds attacking again and again."""
    with (scene["app"] / "hello.py").open("a") as f:
        f.write("\nimport attack\nattack.main('import')\n")
    result = build(scene["app"], BuildOptions(out_dir=scene["out"], source_date_epoch=EPOCH))
    assert not [w for w in result.warnings if "could not" in w], result.warnings  # it ran through: no CROSSED
    _nothing_crossed(scene, result.deb)


def test_links_planted_in_the_output_are_not_followed_when_root_takes_it_back(scene: dict[str, Any]) -> None:
    shadow = Path("/etc/shadow")
    before = (shadow.read_bytes(), shadow.stat().st_uid, shadow.stat().st_gid, shadow.stat().st_mode)
    root = Path("/root").stat()
    _with_step(scene["app"], "python3 attack.py links")
    with pytest.raises(AppdebError, match=r"link: a symbolic link to '/(etc/shadow|root)[^']*', outside the app"):
        build(scene["app"], BuildOptions(out_dir=scene["out"], source_date_epoch=EPOCH))
    assert (shadow.read_bytes(), shadow.stat().st_uid, shadow.stat().st_gid, shadow.stat().st_mode) == before
    assert (Path("/root").stat().st_uid, Path("/root").stat().st_mode) == (root.st_uid, root.st_mode)
    _nothing_crossed(scene, None)
    assert not list(scene["out"].glob("*.deb")) if scene["out"].exists() else True


def test_the_build_step_has_no_terminal_of_the_builders_and_its_output_is_shown_escaped(
        scene: dict[str, Any]) -> None:
    """Run on a terminal (a pty, as a person's root shell): the step cannot open it (no TIOCSTI into
    root's shell, no reading of its keys), and its escape sequences reach the error escaped."""
    _with_step(scene["app"], "python3 attack.py tty")
    cli = shlex.join([sys.executable, "-m", "appdeb.cli", "build", str(scene["app"]), "--out", str(scene["out"])])
    env = {**os.environ, "APPDEB_CACHE": os.environ.get("APPDEB_CACHE", ""), "TMPDIR": tempfile.gettempdir()}
    shown = subprocess.run(["script", "-qec", cli, "/dev/null"], capture_output=True, env=env, timeout=600)
    out = shown.stdout.decode(errors="replace")
    assert shown.returncode != 0 and "commands.build failed (exit 3)" in out, out
    assert "\\x1b]52;c;b3duZWQ=\\x07escape in the output" in out and "\x1b]52" not in out
    assert "ATTACK tty: refused" in out
    _nothing_crossed(scene, None)


def test_an_import_that_leaves_its_session_and_hangs_is_ended_at_the_time_limit(
        scene: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The import runs as the namespace's first process: it can leave the session the builder kills, so
    the time limit also ends every process of its uid (and the namespace with them)."""
    monkeypatch.setattr(interface, "TIMEOUT", 3)
    with (scene["app"] / "hello.py").open("a") as f:
        f.write("\nimport attack\nattack.main('hang')\n")
    started = time.monotonic()
    result = build(scene["app"], BuildOptions(out_dir=scene["out"], source_date_epoch=EPOCH))
    assert time.monotonic() - started < 60
    assert any("its import took more than 3 s" in w for w in result.warnings), result.warnings
    _nothing_crossed(scene, result.deb)


@pytest.fixture
def n() -> Iterator[int]:
    """A uid drawn as a build draws it, held for the test."""
    with confine.uid() as n:
        yield n


def test_reclaim_takes_back_a_tree_of_any_depth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    top = tmp_path / "copy"
    deep = top.joinpath(*["d"] * 1100)
    monkeypatch.chdir(tmp_path)  # (1100 levels: pathlib's and os's own helpers recurse; mkdir -p and rm -rf do not)
    subprocess.run(["mkdir", "-p", str(deep.relative_to(tmp_path))], check=True)
    subprocess.run(["sh", "-c", f"echo x > {deep.relative_to(tmp_path)}/f"], check=True)
    subprocess.run(["chown", "-R", "-P", f"{n}:{n}", "copy"], check=True)
    try:
        confine.reclaim(n, top)
        owners = subprocess.run(["find", "copy", "-printf", "%U\\n"], capture_output=True, text=True, check=True)
        assert set(owners.stdout.split()) == {"0"} and len(owners.stdout.split()) == 1102
    finally:
        subprocess.run(["rm", "-rf", "copy"], check=True)


def test_reclaim_refuses_a_file_the_uid_did_not_make(tmp_path: Path, n: int) -> None:
    """A hard link to another's file (where the kernel allows one) is refused, and nothing is changed."""
    tree = tmp_path / "copy"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "made.txt").write_text("x")
    foreign = tree / "sub" / "foreign"
    foreign.write_text("someone else's")
    os.chown(foreign, 1, 1)
    os.symlink("/etc/shadow", tree / "shadow-link")
    confine.hand_over(n, tmp_path, tree)
    os.chown(foreign, 1, 1)  # (hand_over gave it to n too)
    with pytest.raises(AppdebError, match="sub/foreign in its output, a file it does not own"):
        confine.reclaim(n, tree)
    assert foreign.stat().st_uid == 1 and (tree / "sub" / "made.txt").stat().st_uid == n
    foreign.unlink()
    confine.reclaim(n, tree)
    assert {p.lstat().st_uid for p in [tree, *tree.rglob("*")]} == {0}
    assert Path("/etc/shadow").stat().st_uid == 0 and os.readlink(tree / "shadow-link") == "/etc/shadow"


def test_reclaim_refuses_a_copy_replaced_by_a_link(tmp_path: Path, n: int) -> None:
    (tmp_path / "copy").symlink_to("/root")
    with pytest.raises(AppdebError, match="replaced its directory"):
        confine.reclaim(n, tmp_path / "copy")
    assert Path("/root").stat().st_uid == 0


def test_the_uid_is_free_and_chosen_per_build() -> None:
    import grp
    import pwd

    with contextlib.ExitStack() as held:
        uids = {held.enter_context(confine.uid()) for _ in range(5)}
    assert len(uids) > 1 and all(confine.UID_RANGE[0] <= n < confine.UID_RANGE[1] for n in uids)
    for n in uids:
        with pytest.raises(KeyError):
            pwd.getpwuid(n)
        with pytest.raises(KeyError):
            grp.getgrgid(n)
        assert confine.processes_of(n) == []


def test_a_uid_held_by_one_build_is_not_drawn_by_another(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two builds that draw the same number: the second skips it while the first holds its lock, in a
    directory only root writes; once the first ends (however it ends) the number is free again."""
    first, other = 300001, 300002
    draws = iter([first, first, other, first, first])
    monkeypatch.setattr(confine.random, "randrange", lambda *a: next(draws))
    with confine.uid() as a, confine.uid() as b:
        assert (a, b) == (first, other)
        st = os.lstat(confine.UID_LOCKS)
        assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700
        parent = os.lstat(os.path.dirname(confine.UID_LOCKS))
        assert parent.st_uid == 0 and not parent.st_mode & 0o022
    with pytest.raises(RuntimeError), confine.uid() as c:
        assert c == first
        raise RuntimeError("the build failed")
    with confine.uid() as d:
        assert d == first
    assert not {str(first), str(other)} & set(os.listdir(confine.UID_LOCKS))
