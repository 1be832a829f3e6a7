"""Helpers for the hostile-input tests: an app directory from examples/hello with chosen fields, and the CLI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from appdeb.cli.main import run_cli

from .conftest import EXAMPLES

# Every line a failed `check`/`build` prints: a located problem, or the one-line summary/error.
PROBLEM_LINE = re.compile(r"^\S*app\.yaml:\d+:\d+: ")
HELLO: dict[str, Any] = yaml.safe_load((EXAMPLES / "hello" / "app.yaml").read_text())


def set_path(doc: dict[str, Any], dotted: str, value: Any) -> None:
    """doc["a"]["b"] = value for "a.b", creating the mappings on the way."""
    *parents, last = dotted.split(".")
    for key in parents:
        if not isinstance(doc.get(key), dict):
            doc[key] = {}
        doc = doc[key]
    doc[last] = value


def make_app(where: Path, fields: dict[str, Any] | None = None, *, text: str | None = None) -> Path:
    """A copy of examples/hello (plus a static/ directory) whose app.yaml has these fields set."""
    app = where / "app"
    shutil.copytree(EXAMPLES / "hello", app, ignore=shutil.ignore_patterns(".appdeb", "__pycache__"))
    (app / "static").mkdir()
    (app / "static" / "site.css").write_text("body {}\n")
    if text is None:
        doc = yaml.safe_load(yaml.safe_dump(HELLO))
        for dotted, value in (fields or {}).items():
            set_path(doc, dotted, value)
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    (app / "app.yaml").write_text(text, encoding="utf-8")
    return app


def appdeb(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """The real entry point (run_cli, with its error boundary) in this process: (exit code, stdout, stderr)."""
    with mock.patch.object(sys, "argv", ["appdeb", *map(str, args)]):
        try:
            run_cli()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def appdeb_process(*args: object, timeout: float = 30, umask: int | None = None,
                   env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command in a child process (for attacks that used to hang or exhaust memory)."""
    def preexec() -> None:
        if umask is not None:
            os.umask(umask)
    return subprocess.run([sys.executable, "-m", "appdeb.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec, env={**os.environ, **(env or {})})


def assert_refused(code: int, err: str, key: str | None = None, fragment: str = "") -> None:
    """Exit 1, no traceback, every problem on its own located line, and one naming key (and fragment)."""
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines and lines[-1].startswith("appdeb: "), err
    problems = lines[:-1]
    assert all(PROBLEM_LINE.match(line) for line in problems), err
    if key is not None:
        assert any(f": {key}: " in line and fragment in line for line in problems), err
