"""A small hostile app.yaml stays a small, located answer: no file read through a link, no flood of
problems, no pattern list that stalls the build, no number that cannot be printed, no unit lost to
another of the same name, no invisible character in what an admin reads.

Each case is an attack that once worked (see the commit that added it).
"""

from __future__ import annotations

import fnmatch
import time
import unicodedata
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from appdeb.build.plan import make_plan, with_vendor
from appdeb.build.render import render
from appdeb.build.stage import app_files, excluder
from appdeb.build.validate import load_spec
from appdeb.errors import SpecError

from .conftest import EPOCH
from .hostile import appdeb, appdeb_process, assert_refused, make_app


def test_app_yaml_linked_out_of_the_checkout_is_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Root checking someone's checkout once parsed the link's target and quoted it back."""
    secret = tmp_path / "secret.yaml"
    secret.write_text("TOPSECRET_KEY: TOPSECRET_VALUE\n")
    app = make_app(tmp_path)
    (app / "app.yaml").unlink()
    (app / "app.yaml").symlink_to(secret)
    for args in (("check", app), ("build", app, "--out", tmp_path / "dist")):
        code, out, err = appdeb(capsys, *args)
        assert_refused(code, err, "(top)", "is a symbolic link")
        assert "TOPSECRET" not in out + err
    (app / "app.yaml").unlink()
    (app / "app.yaml").symlink_to("hello.py")  # inside the app, still a link: the same answer
    assert_refused(*appdeb(capsys, "check", app)[::2], "(top)", "is a symbolic link")


def test_a_long_key_over_many_duplicates_is_a_short_answer(tmp_path: Path) -> None:
    """A 128 KB file (one 100 000-character key, 4 000 duplicate keys below it) once took 67 s,
    1.6 GB of memory and printed 400 MB: every problem carried the whole key path."""
    app = make_app(tmp_path, text="? " + "k" * 100_000 + "\n:\n" + "  a: 1\n" * 4001)
    start = time.monotonic()
    r = appdeb_process("check", app, timeout=60)
    assert time.monotonic() - start < 10
    assert_refused(r.returncode, r.stderr)
    assert len(r.stderr) < 100_000
    lines = r.stderr.splitlines()
    assert len(lines) == 101 and all(len(line) < 1500 for line in lines)
    assert lines[-1] == "appdeb: 4006 problem(s) in the app description (the first 100 shown)"
    assert "…" in lines[10] and "duplicate key (first defined on line 3)" in lines[10]


def test_problems_are_counted_past_the_first_hundred() -> None:
    from appdeb.errors import Problem

    error = SpecError([Problem("app.yaml", n, 1, "x" * 500, "bad") for n in range(250, 0, -1)])
    assert [p.line for p in error.problems] == list(range(1, 101)) and error.total == 250
    assert str(error).endswith("\n… and 150 more problems")
    assert all(len(p.key) == 200 and p.key.startswith("x") for p in error.problems)


@pytest.mark.parametrize(("patterns", "at", "fragment"), [
    ([f"p{i}" for i in range(257)], (257, 3, "exclude[256]"), "more than 256 patterns (257)"),
    (["ok", "x" * 257], (2, 3, "exclude[1]"), "at most 256 characters"),
    ("x" * 300, (0, 10, "exclude"), "at most 256 characters"),
])
def test_exclude_is_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str], patterns: object,
                            at: tuple[int, int, str], fragment: str) -> None:
    """40 000 patterns over 53 files once took 7 s to check and minutes to build."""
    app = make_app(tmp_path, {"exclude": patterns})
    code, _, err = appdeb(capsys, "check", app)
    rows, col, key = at
    assert_refused(code, err, key, fragment)
    line = (app / "app.yaml").read_text().splitlines().index(next(
        text for text in (app / "app.yaml").read_text().splitlines() if text.startswith("exclude:"))) + 1
    assert f"app.yaml:{line + rows}:{col}: {key}: " in err


def test_the_most_patterns_over_many_files_check_and_build(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    patterns = [f"*x{i:03d}*{'?' * 40}*.skip" for i in range(255)] + ["data/f1*"]
    app = make_app(tmp_path, {"exclude": patterns})
    (app / "data").mkdir()
    for i in range(400):
        (app / "data" / f"f{i:03d}.txt").write_text("x")
    start = time.monotonic()
    assert appdeb(capsys, "check", app)[0] == 0
    code, _, err = appdeb(capsys, "build", app, "--out", tmp_path / "dist")
    assert code == 0, err
    assert time.monotonic() - start < 60
    shipped = {rel.as_posix() for rel in app_files(app, tuple(patterns))}
    assert "data/f099.txt" in shipped and "data/f100.txt" not in shipped


def _fnmatch_excluded(rel: PurePosixPath, patterns: list[str]) -> bool:
    """The rule as it was written before the patterns were compiled together."""
    return any(fnmatch.fnmatch(rel.name, p) or fnmatch.fnmatch(rel.as_posix(), p.rstrip("/")) for p in patterns)


PATTERN_TEXT = st.text(st.sampled_from("ab/.*?[]!-"), max_size=8)


@given(st.lists(PATTERN_TEXT, max_size=6), st.lists(st.text(st.sampled_from("ab.-*?[]!"), min_size=1, max_size=5),
                                                    min_size=1, max_size=4))
@settings(max_examples=300, database=None, deadline=None)
def test_compiled_excludes_match_as_fnmatch_does(patterns: list[str], parts: list[str]) -> None:
    rel = PurePosixPath(*parts)
    assert excluder(tuple(patterns))(Path(rel)) == _fnmatch_excluded(rel, patterns)


BASE60 = "1" + ":0" * 5000


@pytest.mark.parametrize(("fields", "key"), [
    ({"web": {"port": "@INT@"}}, "web.port"),
    ({"services": {"files": {"x": "@INT@"}}}, "services.files.x"),
    ({"instances": {"prod": {"port": "@INT@"}}}, "instances.prod.port"),
    ({"env": {"GREETING": {"default": "@INT@"}}}, "env.GREETING.default"),
])
@pytest.mark.parametrize("number", [BASE60, "0x" + "f" * 40, "1_" * 20 + "1"])
def test_huge_integers_are_refused_before_they_are_read(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        fields: dict[str, object], key: str, number: str) -> None:
    """YAML 1.1's base-60 integers escaped Python's digit limit while read, then crashed `check`
    (printing a port out of range) or the build (json of a service option)."""
    app = make_app(tmp_path, fields)
    (app / "app.yaml").write_text((app / "app.yaml").read_text().replace("'@INT@'", number))
    code, _, err = appdeb(capsys, "check", app)
    assert_refused(code, err, key, "is longer than 32 characters (quote it if it is text)")
    assert len(err) < 5000
    code, _, err = appdeb(capsys, "build", app, "--out", tmp_path / "dist")
    assert_refused(code, err, key, "is longer than 32 characters")


def test_a_megabyte_integer_is_refused_quickly(tmp_path: Path) -> None:
    app = make_app(tmp_path, text="name: 1" + ":0" * 500_000 + "\n")
    start = time.monotonic()
    r = appdeb_process("check", app, timeout=60)
    assert time.monotonic() - start < 5
    assert_refused(r.returncode, r.stderr, "name", "is longer than 32 characters")


def test_out_of_range_numbers_are_shown_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app(tmp_path, {"web": {"port": "@INT@"}})
    (app / "app.yaml").write_text((app / "app.yaml").read_text().replace("'@INT@'", "0x10"))
    assert_refused(*appdeb(capsys, "check", app)[::2], "web.port", "0x10 is out of range (allowed: 1024..65535)")


@pytest.mark.parametrize(("fields", "key", "other"), [
    ({"processes": {"sweep": "true"}, "timers": {"sweep": {"command": "true", "schedule": "daily"}}},
     "timers.sweep", "hello-sweep.service (hello process sweep)"),
    ({"processes": {"nginx": "true"}, "static": "static"}, "processes.nginx", "hello-nginx.socket"),
    ({"timers": {"nginx": {"command": "true", "schedule": "daily"}}, "static": "static"}, "timers.nginx",
     "hello-nginx.socket"),
])
def test_units_of_the_same_name_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            fields: dict[str, object], key: str, other: str) -> None:
    """A process and a timer of one name both were PKG-NAME.service: the build kept one, silently."""
    app = make_app(tmp_path, fields)
    code, _, err = appdeb(capsys, "check", app)
    assert_refused(code, err, key, f"clashes with {other}")
    section, name = key.split(".")
    lines = (app / "app.yaml").read_text().splitlines()
    start = lines.index(f"{section}:")
    row = next(n for n in range(start + 1, len(lines)) if lines[n].startswith(f"  {name}:"))
    assert f"app.yaml:{row + 1}:3: {key}:" in err


def test_a_process_and_a_timer_of_different_names_still_pass(tmp_path: Path) -> None:
    app = make_app(tmp_path, {"processes": {"worker": "true"}, "static": "static",
                              "timers": {"sweep": {"command": "true", "schedule": "daily"}}})
    assert [p.name for p in load_spec(app).processes] == ["worker"]


INVISIBLE = ("\u202e", "\u202c", "\ufeff", "\u200b", "\ue000", "\U000e0001", "\u0378")
TEXT_FIELDS = ("description", "env.GREETING.description", "env.GREETING.default")


@pytest.mark.parametrize("char", INVISIBLE, ids=[f"U+{ord(c):04X}" for c in INVISIBLE])
@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_invisible_characters_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str,
                                          char: str) -> None:
    """A right-to-left override reached the control file's Description and the settings comments."""
    app = make_app(tmp_path, {field: f"safe {char}txt.exe"})
    assert_refused(*appdeb(capsys, "check", app)[::2], field, f"invisible or control character U+{ord(char):04X}")


def test_problems_show_invisible_characters_as_escapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A key with a right-to-left override reordered the problem line on the terminal."""
    app = make_app(tmp_path, {"x\u202eeman": 1})
    code, _, err = appdeb(capsys, "check", app)
    assert_refused(code, err, "x\\u202eeman", "unknown key")
    assert "\u202e" not in err


def _shown_as_is(text: str) -> bool:
    return not any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cn", "Cs") and ch != "\n" for ch in text)


# visible text (random code points are often unassigned), half the time with one other character put in:
# an invisible one, a control character, a line separator, or any code point at all
VISIBLE = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp")),
                  max_size=12)
ODD = st.sampled_from((*INVISIBLE, "\t", "\r", "\x1b", "\u2028")) | st.characters(codec="utf-8")
TRICKY = VISIBLE | st.tuples(VISIBLE, ODD, VISIBLE).map("".join)


@given(st.sampled_from(TEXT_FIELDS), TRICKY)
@settings(max_examples=100, database=None, deadline=None, suppress_health_check=list(HealthCheck))
def test_what_passes_reaches_the_admin_as_it_is(tmp_path_factory: pytest.TempPathFactory, field: str,
                                                text: str) -> None:
    """Whatever `check` accepts in these fields, the control file and settings file show no invisible,
    format or control character (but line ends)."""
    value = f"Hello {text}\nbody {text}" if field == "description" else text
    app = make_app(tmp_path_factory.mktemp("app"), {field: value})
    try:
        spec = load_spec(app)
    except SpecError:
        event("refused")
        return
    event("accepted")
    files = render(with_vendor(make_plan(spec, python_version="3.11", source_date_epoch=EPOCH),
                               binary_dists=(), vendored=()))
    for path in ("DEBIAN/control", "opt/hello/appdeb/settings.env"):
        assert _shown_as_is(files[path].content.decode()), path
