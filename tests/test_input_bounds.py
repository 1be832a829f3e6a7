"""A small hostile app.yaml stays a small, located answer: no file read through a link, no flood of
problems, no pattern list that stalls the build, no number that cannot be printed, no unit lost to
another of the same name, no invisible character in what an admin reads.

Each case is an attack that once worked (see the commit that added it).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from appdeb.errors import SpecError

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
