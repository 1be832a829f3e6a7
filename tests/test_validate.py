"""The app description: every problem at once, located as file:line:col, YAML traps named."""

from __future__ import annotations

from pathlib import Path

import pytest

from appdeb.build.validate import load_spec
from appdeb.errors import SpecError

from .conftest import EXAMPLES

GOOD = """\
name: blog
version: "1.0"
description: A blog
maintainer: "Jane Doe <jane@example.org>"
platform: [python, wsgi]
wsgi:
  app: blog:app
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "app.yaml").write_text(text)
    return tmp_path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text))
    return [str(p).split("app.yaml:", 1)[1] for p in info.value.problems]


@pytest.mark.parametrize("example", ["hello", "flaskapp"])
def test_examples_are_valid(example: str) -> None:
    spec = load_spec(EXAMPLES / example)
    assert spec.web is not None and spec.web.app


def test_good_minimal(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    assert (spec.name, spec.version, spec.platform) == ("blog", "1.0", ("python", "wsgi"))
    assert spec.web is not None and spec.web.app == "blog:app"


def test_all_problems_reported_at_once_with_positions(tmp_path: Path) -> None:
    text = GOOD.replace('version: "1.0"', "version: 1.10").replace("description: A blog", "descripton: A blog")
    text += "commands:\n  install: no\nenv:\n  DEBUG: {default: on}\n"
    found = problems(tmp_path, text)
    assert "2:10: version: 1.10 is read by YAML as the number 1.1; quote it: \"1.10\"" in found
    assert any(p.startswith("3:1: descripton: unknown key; did you mean 'description'?") for p in found)
    assert any(p.startswith("1:1: description: required key is missing") for p in found)
    assert any(p.startswith("9:12: commands.install: 'no' is read by YAML as the boolean false") for p in found)
    assert any(p.startswith("11:20: env.DEBUG.default: 'on' is read by YAML as the boolean true") for p in found)
    assert len(found) == 5


def test_duplicate_keys_and_other_problems_together(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD + "name: again\nstatic: nowhere\n")
    assert "8:1: name: duplicate key (first defined on line 1)" in found
    assert any(p.startswith("9:9: static: 'nowhere' is not a directory") for p in found)


@pytest.mark.parametrize(("snippet", "expected"), [
    ("platform: [python, php]", "platform: unknown platform 'php' (allowed: python, wsgi, asgi)"),
    ("platform: [wsgi]", "platform: 'wsgi' needs 'python' in the platform list too"),
    ("name: Blog_1", "name: 'Blog_1' is not a valid app name"),
    ("maintainer: jane", "maintainer: 'jane' must look like 'Full Name <email@example.org>'"),
])
def test_field_rules(tmp_path: Path, snippet: str, expected: str) -> None:
    key = snippet.split(":")[0]
    lines = [snippet if line.startswith(key + ":") else line for line in GOOD.splitlines()]
    found = problems(tmp_path, "\n".join(lines) + "\n")
    assert any(expected in p for p in found), found


def test_wsgi_object_and_python_spec(tmp_path: Path) -> None:
    text = GOOD.replace("blog:app", "blog.app") + "require:\n  python: '3.11'\n  pip: [flask]\n  oss: x\n"
    found = problems(tmp_path, text)
    assert any("wsgi.app: 'blog.app' must be 'module:object'" in p for p in found)
    assert any("require.python: '3.11' is not a version specifier" in p for p in found)
    assert any("require.oss: unknown key; did you mean 'os'?" in p for p in found)


def test_syntax_error_is_located(tmp_path: Path) -> None:
    found = problems(tmp_path, "name: [blog\n")
    assert len(found) == 1 and "YAML syntax error" in found[0] and found[0].startswith("2:1:")


def test_an_empty_section_is_missing_its_required_keys(tmp_path: Path) -> None:
    """`wsgi:` alone is null: it once ended `check` in a TypeError."""
    found = problems(tmp_path, GOOD.replace("wsgi:\n  app: blog:app\n", "wsgi:\n"))
    assert found == ["6:6: wsgi.app: required key is missing"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path)


def test_sections_for_later_are_stored(tmp_path: Path) -> None:
    text = GOOD + "services:\n  postgres: {}\n  files: {}\ntimers:\n  t:\n    command: x\n    schedule: daily\n"
    spec = load_spec(write(tmp_path, text))
    assert [s.kind for s in spec.services] == ["postgres", "files"]
    assert spec.timers[0].schedule == "daily"


def test_reserved_command_names_are_the_launchers_verbs() -> None:
    """A command named like a launcher verb would be shadowed on the node: the two lists are one."""
    from appdeb.build.spec import LIFECYCLE_COMMANDS
    from appdeb.build.validate import reserved_command_names
    from appdeb.runtime.main import VERBS

    reserved = reserved_command_names()
    assert reserved == (set(VERBS) | {"help", "--help", "-h"}) - set(LIFECYCLE_COMMANDS)
    assert {"pin", "hook", "status", "rollback", "unpin"} <= reserved
    assert {"verify", "backup", "restore"} & reserved == set()  # the app's own, run by those verbs


def test_unknown_references_and_bad_config_files_are_located_problems(tmp_path: Path) -> None:
    import shutil

    from appdeb.build.validate import load_spec
    from appdeb.errors import SpecError

    app = tmp_path / "ledger"
    shutil.copytree(Path(__file__).parent.parent / "examples" / "ledger", app, ignore=shutil.ignore_patterns(".appdeb"))
    text = (app / "app.yaml").read_text()
    (app / "app.yaml").write_text(text.replace("${APPDEB_CONFIG_LEDGER_INI}", "${APPDEB_STATE_DIRR}/x")
                                  .replace("deploy/ledger.ini.in", "../etc/passwd"))
    (app / "deploy" / "ledger.ini.in").write_text("x = ${NOPE}\n")
    try:
        load_spec(app)
    except SpecError as exc:
        text = str(exc)
    assert "env.LEDGER_CONFIG.default: unknown variable ${APPDEB_STATE_DIRR}" in text
    assert "config_files.ledger.ini:" in text and "app.yaml:" in text


def test_a_build_step_may_make_the_static_dir(tmp_path: Path) -> None:
    """A fresh clone has no collectstatic output: with commands.build, check accepts a missing static dir."""
    text = GOOD + "static: staticfiles\ncommands:\n  build: python3 manage.py collectstatic --noinput\n"
    spec = load_spec(write(tmp_path, text))
    assert spec.static is not None and spec.static.dir == "staticfiles"
    assert spec.command("build") == "python3 manage.py collectstatic --noinput"
    (tmp_path / "plain").mkdir()
    without = problems(tmp_path / "plain", text.split("commands:")[0])
    assert any("static: 'staticfiles' is not a directory in the app" in p for p in without)


@pytest.mark.parametrize("static", ["../elsewhere", "/srv/static", "a file"])
def test_a_build_step_does_not_excuse_a_bad_static_path(tmp_path: Path, static: str) -> None:
    (tmp_path / "a file").write_text("not a directory\n")
    text = GOOD + f"static: '{static}'\ncommands:\n  build: make static\n"
    assert any(p.split(": ", 2)[1] == "static" for p in problems(tmp_path, text))


def test_requirements_the_app_chose_are_read_from_its_files(tmp_path: Path) -> None:
    """Project names (normalized) from require.pip's file and the files it includes with -r and -c."""
    (tmp_path / "reqs").mkdir()
    (tmp_path / "reqs" / "prod.txt").write_text("# compiled\nFlask==3.0.3 \\\n    --hash=sha256:ab\n-r base.txt\n"
                                                "-c ../constraints.txt\n")
    (tmp_path / "reqs" / "base.txt").write_text("Gunicorn[setproctitle]==25.3.0  # via -r prod.in\n")
    (tmp_path / "constraints.txt").write_text("gunicorn<26\nmarkupsafe==3.0.2\n")
    spec = load_spec(write(tmp_path, GOOD + "require:\n  pip: reqs/prod.txt\n"))
    assert spec.require.pip_file == "reqs/prod.txt"
    assert spec.require.included == ("reqs/base.txt", "constraints.txt")
    assert spec.require.projects == ("flask", "gunicorn") and spec.require.constrained == ("markupsafe",)


@pytest.mark.parametrize(("pip", "expected"), [
    ("[flask]", ("flask", "gunicorn>=23,<28")),
    ("[Gunicorn==25.3.0]", ("Gunicorn==25.3.0",)),
    ("['gunicorn[setproctitle] @ https://example.invalid/g.whl']", ("gunicorn[setproctitle] @ https://example.invalid/g.whl",)),
    ("[-c constraints.txt]", ("-c constraints.txt", "gunicorn")),
])
def test_the_apps_own_gunicorn_replaces_the_platforms(tmp_path: Path, pip: str, expected: tuple[str, ...]) -> None:
    """The app server's version is the app's: a requirement wins, a constraint alone decides."""
    from appdeb.build.plan import make_plan
    from appdeb.build.platforms import GUNICORN_REQUIREMENT

    (tmp_path / "constraints.txt").write_text("gunicorn==28.0.0\n")
    spec = load_spec(write(tmp_path, GOOD + f"require:\n  pip: {pip}\n"))
    assert make_plan(spec, python_version="3.11", source_date_epoch=0).requirements == expected
    assert GUNICORN_REQUIREMENT == "gunicorn>=23,<28"


def test_a_process_says_how_it_is_known_to_have_started(tmp_path: Path) -> None:
    """`ready: notify` (Type=notify, the process sends READY=1) or `settle` (the default: it stays up)."""
    text = GOOD + "processes:\n  a: run-a\n  b: {command: run-b, ready: notify}\n  c: {command: run-c, ready: settle}\n"
    spec = load_spec(write(tmp_path, text))
    assert [(p.name, p.command, p.ready) for p in spec.processes] == [
        ("a", "run-a", "settle"), ("b", "run-b", "notify"), ("c", "run-c", "settle")]
    bad = GOOD + "processes:\n  b: {command: run-b, ready: \"notify\\nType=oneshot\"}\n"
    bad += "  d: {command: x, redy: notify}\n"
    found = problems(tmp_path, bad)
    assert found[0].startswith("9:30: processes.b.ready: ") and found[0].endswith("is not one of: settle, notify")
    assert found[1].startswith("10:19: processes.d.redy: unknown key; did you mean 'ready'?")
    assert len(found) == 2
