"""Properties: any app.yaml ends in a package or in located problems; escaping reads back or refuses.

Generated documents start from examples/hello and put hostile text (line breaks, control
characters, quotes, $(…), backticks, '../', '%', ';', braces, huge strings, deep structures) into its
fields, or are random YAML text altogether. `check` runs through the real entry point; documents
it accepts are rendered and their maintainer scripts must pass `sh -n` and shellcheck, and a few
are built into a .deb whose control fields read back exactly.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from debian.deb822 import Deb822
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from appdeb.build import formats
from appdeb.build.plan import make_plan, with_vendor
from appdeb.build.render import render, synopsis
from appdeb.build.validate import load_spec
from appdeb.repo.store import dumps_lines
from appdeb.runtime.app import parse_settings

from .conftest import EPOCH
from .hostile import HELLO, PROBLEM_LINE, appdeb, make_app

PAYLOADS = ["\n", "\r", "\x00", "\x1b[31m", "\t", "$(id)", "`id`", "../", "..", "%n", "%", ";", "{", "}", "'",
            '"', "\\", "\u2028", "\x85", "#", "${HOME}", "\nConflicts: curl", "\nUnit=x.service", " ", "*", "~",
            "&&", "|", "<x>", "@", "/etc/passwd", "a@b.c", "-", ".", "/", ":", "=", "\ufeff", "é"]
WORDS = st.lists(st.sampled_from(PAYLOADS) | st.text(max_size=6), max_size=8).map("".join)
HOSTILE_TEXT = WORDS | st.text(max_size=30) | st.integers(1000, 200_000).map(lambda n: "x" * n)
SCALARS = HOSTILE_TEXT | st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(WORDS, inner, max_size=3),
                      max_leaves=8) | st.integers(65, 120).map(lambda n: _deep(n))
FIELDS = ["name", "version", "description", "maintainer", "wsgi.app", "commands.verify", "env.GREETING.default",
          "env.GREETING.description", "require.deb", "require.pip", "require.python", "static", "static.url",
          "instances.prod.server_name", "timers.t.schedule", "timers.t.command", "python.paths", "exclude",
          "platform", "web.workers", "services", "processes", "commands", "env", "instances"]
SOFT_PAYLOADS = [p for p in PAYLOADS if formats.bad_char(p) is None] + ["SETTINGS_EOF", "EOF", "'\"'\"'", "%%"]
SOFT_TEXT = st.lists(st.sampled_from(SOFT_PAYLOADS) | st.text(max_size=4), min_size=1, max_size=8).map("".join)
SOFT_FIELDS = ["description", "env.GREETING.default", "env.GREETING.description", "commands.verify",
               "commands.greet", "processes.w", "instances.prod.server_name", "maintainer"]
MUTATION = (st.tuples(st.sampled_from(FIELDS) | WORDS, VALUES | HOSTILE_TEXT.map(lambda t: [t]))
            | st.tuples(st.sampled_from(SOFT_FIELDS), SOFT_TEXT | st.lists(SOFT_TEXT, max_size=4).map("\n".join)))
PRINTABLE = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"))
TRICKY_OK = st.text(PRINTABLE, max_size=40)
# what app.yaml's free text may hold: also no format, private-use or unassigned character (rules.visible)
VISIBLE_OK = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp", "Cf", "Co", "Cn")),
                     max_size=40)
NAME_OK = st.text(st.characters(codec="utf-8", exclude_characters="<>",
                                exclude_categories=("Cc", "Cs", "Zl", "Zp", "Zs", "Cf", "Co", "Cn")),
                  min_size=1, max_size=20)
SETTINGS = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))
SCRIPTS = ("preinst", "postinst", "prerm", "postrm")


def _deep(n: int) -> Any:
    value: Any = "x"
    for _ in range(n):
        value = [value]
    return value


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _run(*args: object) -> tuple[int, str, str, float]:
    start = time.monotonic()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code, _, _ = appdeb(_NoCapture(), *args)
    return code, out.getvalue(), err.getvalue(), time.monotonic() - start


class _NoCapture:
    """appdeb() wants a capsys; here output goes to the redirected streams instead."""

    def readouterr(self) -> tuple[str, str]:
        return "", ""


def _assert_clean_failure(code: int, err: str) -> None:
    assert code in (0, 1), err
    assert "Traceback" not in err
    if code == 1:
        lines = err.splitlines()
        if lines[0].startswith("appdeb: error:"):
            return
        assert all(PROBLEM_LINE.match(line) for line in lines[:-1]), err
        assert lines[-1].startswith("appdeb: ") and "problem(s)" in lines[-1], err


def _check_scripts(app: Path, work: Path) -> None:
    """Render the accepted app and hold its maintainer scripts to sh -n and shellcheck."""
    plan = make_plan(load_spec(app), python_version="3.11", source_date_epoch=EPOCH)
    files = render(with_vendor(plan, binary_dists=(), vendored=()))
    paths = []
    for name in SCRIPTS:
        path = work / name
        path.write_bytes(files[f"DEBIAN/{name}"].content)
        assert subprocess.run(["sh", "-n", str(path)], capture_output=True).returncode == 0
        paths.append(str(path))
    out = subprocess.run(["shellcheck", "-s", "sh", "-S", "warning", *paths], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
    control = Deb822(files["DEBIAN/control"].content.decode())
    assert set(control) == {"Package", "Version", "Architecture", "Maintainer", "Section", "Priority",
                            "Pre-Depends", "Depends", "Appdeb-Layout", "Appdeb-Target", "Description"}


@pytest.mark.parametrize("mode", ["fields", "text"])
@SETTINGS
@given(data=st.data())
def test_any_app_yaml_is_accepted_or_refused_with_located_problems(mode: str, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if mode == "fields":
            mutations = data.draw(st.lists(MUTATION, min_size=1, max_size=3))
            app = make_app(root, {path: value for path, value in mutations})
        else:
            base = yaml.safe_dump(HELLO, sort_keys=False)
            cut = data.draw(st.integers(0, len(base)))
            text = data.draw(st.sampled_from([base[:cut] + data.draw(WORDS) + base[cut:], data.draw(st.text())]))
            app = make_app(root, text=text)
        before = _tree(root)
        code, _, err, took = _run("check", app)
        assert took < 10
        _assert_clean_failure(code, err)
        assert _tree(root) == before
        event("accepted" if code == 0 else "refused")
        if code == 0:
            _check_scripts(app, root)


@settings(deadline=None, database=None, max_examples=6, suppress_health_check=list(HealthCheck))
@given(summary=VISIBLE_OK.filter(str.strip), body=VISIBLE_OK, default=VISIBLE_OK, command=st.text(max_size=40),
       name=NAME_OK)
def test_tricky_but_allowed_values_build_and_read_back(summary: str, body: str, default: str, command: str,
                                                       name: str) -> None:
    assume(formats.bad_char(command, "\n\t") is None and command.strip())
    maintainer = f"{name} <a@b.c>"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        app = make_app(root, {"description": f"{summary}\n{body}", "env.GREETING.default": default,
                              "commands.x": command, "maintainer": maintainer})
        before = _tree(root)
        code, _, err, took = _run("build", app, "--out", root / "out")
        assert code == 0, err
        assert took < 30
        assert {p for p in _tree(root) - before if not p.startswith("out")} == set()
        deb = next((root / "out").glob("*.deb"))
        fields = subprocess.run(["dpkg-deb", "--field", str(deb)], capture_output=True, text=True, check=True)
        control = Deb822(fields.stdout)
        assert control["Maintainer"] == maintainer
        # the synopsis as Debian writes it: without a leading package name or article (render.synopsis)
        assert control["Description"].split("\n")[0] == synopsis(summary, (control["Package"],))


ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=60)


@given(ANY_TEXT)
@settings(max_examples=300, database=None)
def test_env_value_reads_back_exactly_or_is_refused(text: str) -> None:
    if formats.bad_char(text) is not None:
        with pytest.raises(formats.FormatError):
            formats.env_value(text)
        return
    assert parse_settings(f"KEY={formats.env_value(text)}\n") == {"KEY": text}


@given(ANY_TEXT)
@settings(max_examples=300, database=None)
def test_shell_quoting_reads_back_exactly(text: str) -> None:
    assume("\x00" not in text)
    import shlex

    assert shlex.split(formats.shell(text)) == [text]


@given(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30))
@settings(max_examples=40, database=None, deadline=None)
def test_shell_quoting_survives_a_real_shell(text: str) -> None:
    out = subprocess.run(["sh", "-c", f"printf %s {formats.shell(text)}"], capture_output=True)
    assert out.stdout == text.encode()


@given(ANY_TEXT)
@settings(max_examples=300, database=None)
def test_control_fields_read_back_or_are_refused(text: str) -> None:
    try:
        value = formats.control(text)
    except formats.FormatError:
        assert formats.bad_char(text) is not None or not text.strip() or text != text.strip()
        return
    assert dict(Deb822(f"Package: x\nField: {value}\nOther: y\n")) == {"Package": "x", "Field": text, "Other": "y"}


@given(TRICKY_OK.map(str.strip).filter(bool), st.lists(ANY_TEXT, max_size=5))
@settings(max_examples=200, database=None)
def test_description_lines_stay_continuation_lines(summary: str, body: list[str]) -> None:
    try:
        text = formats.control_description(summary, body)
    except formats.FormatError:
        assert any(formats.bad_char(line) is not None for line in body)
        return
    parsed = Deb822(f"Description: {text}\nOther: y\n")
    assert set(parsed) == {"Description", "Other"}
    assert parsed["Description"].split("\n")[0] == summary
    assert len(parsed["Description"].split("\n")) == 1 + len(body)


@given(ANY_TEXT, st.booleans())
@settings(max_examples=300, database=None)
def test_unit_values_stay_on_their_line(text: str, word: bool) -> None:
    try:
        value = formats.unit(text, word=word)
    except formats.FormatError:
        return
    assert formats.bad_char(value) is None and value == value.strip()
    assert value.replace("%%", "%") == text
    if word:
        assert not any(c.isspace() or c in "\"'\\;$" for c in value)


@given(ANY_TEXT)
@settings(max_examples=300, database=None)
def test_nginx_values_are_one_safe_token(text: str) -> None:
    try:
        value = formats.nginx(text)
    except formats.FormatError:
        return
    assert value == text and not any(c in value for c in " \t\n;{}$\"'#\\") and not value.startswith(("~", "="))


_LEDGERS = st.recursive(st.text(), lambda inner: st.dictionaries(st.text(), inner, max_size=4), max_leaves=12)


@given(_LEDGERS)
def test_the_ledgers_fast_writer_writes_what_json_writes_with_indent_0(value: object) -> None:
    assert dumps_lines(value) == json.dumps(value, indent=0)
    assert json.loads(dumps_lines(value)) == value
