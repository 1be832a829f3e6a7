"""The launcher's argument parsing, the settings parser and the day-2 verbs, without root or systemd.

Every verb is driven through the launcher's entry (`main`) against an instance in a temporary
directory (tests/noderoot.py), with a runner that fails the test if any program is started: `--help`
and a misuse must start nothing and write nothing. The same checks run through the real launcher on a
booted node in tests/e2e/test_day2.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appdeb.build import formats
from appdeb.runtime import daytwo, proc, terminal, verify
from appdeb.runtime import settings as settings_file
from appdeb.runtime.app import LauncherError
from appdeb.runtime.main import VERBS, main
from appdeb.runtime.verbargs import Usage, parse

from .noderoot import FakeRunner, done, install_root

MISUSE = {  # one wrong use of each verb; a new verb must say how it is misused
    "run": [], "env": ["x"], "web": ["--workers", "3"], "process": [], "timer": ["a", "b"],
    "status": ["--json"], "verify": ["now"], "backup": ["--bogus"], "backups": ["prune"], "restore": [],
    "hook": ["bogus"], "pin": ["1.0-1", "--previous"], "unpin": ["x"], "rollback": ["1", "2"], "pull": ["x"],
    "logs": ["-n", "many"], "restart": ["now"], "version": ["--long"],
}


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts}


def test_every_verb_prints_help_and_refuses_misuse_without_starting_or_writing_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = install_root(tmp_path)
    assert set(MISUSE) == set(VERBS)
    before = _snapshot(tmp_path)
    fake = FakeRunner()  # any program started fails the test
    with proc.use(fake):
        for verb, wrong in MISUSE.items():
            assert main([app.root, verb, "--help"]) == 0, verb
            out = capsys.readouterr()
            assert out.out.startswith(f"usage: hello-nr1 {verb} ") and out.err == "", verb
            assert main([app.root, verb, *wrong]) == 2, verb
            err = capsys.readouterr().err
            assert f"hello-nr1 {verb}: error: " in err and err.startswith("usage: "), verb
    assert fake.calls == []
    assert _snapshot(tmp_path) == before  # no backup, no lock, no state


def test_backups_prune_and_keep_are_refused_not_a_listing(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    app = install_root(tmp_path)
    for wrong in (["prune"], ["--keep", "1"]):
        assert main([app.root, "backups", *wrong]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and "unrecognized arguments" in captured.err


def test_help_names_every_verb_and_help_verb_is_that_verbs_help(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    app = install_root(tmp_path)
    assert main([app.root, "help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {verb}" in out for verb in VERBS)
    assert main([app.root, "help", "logs"]) == 0
    assert "-f, --follow" in capsys.readouterr().out
    assert main([app.root, "nosuchverb"]) == 2
    assert "unknown verb 'nosuchverb'" in capsys.readouterr().err


def test_process_and_timer_names_are_the_descriptions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = install_root(tmp_path, processes={"worker": "sleep 1"})
    with proc.use(FakeRunner()):
        assert main([app.root, "process", "wroker"]) == 2
        assert "invalid choice: 'wroker' (choose from 'worker')" in capsys.readouterr().err
        assert main([app.root, "timer", "nightly"]) == 2  # the app has no timers


def test_arguments_after_a_command_are_its_own_and_options_take_both_spellings() -> None:
    ns = parse("p", "run", "", ["manage", "--help", "-x"])
    assert (ns.command, ns.args) == ("manage", ["--help", "-x"])
    assert parse("p", "run", "", ["--", "ls", "-l"]).args == ["-l"]
    assert parse("p", "backup", "", ["--reason=upgrade"]).reason == "upgrade"
    assert parse("p", "hook", "", ["update", "--from-version=1.0-1"]).from_version == "1.0-1"
    assert parse("p", "logs", "", ["-fn3"]).lines == 3
    assert parse("p", "pin", "", ["--previous", "--allow-old-layout"]).previous


@given(st.sampled_from(sorted(VERBS)), st.lists(st.text(max_size=12), max_size=5))
@settings(max_examples=300, database=None)
def test_any_arguments_parse_or_are_a_usage_answer(verb: str, args: list[str]) -> None:
    """argparse never lets an exception other than its exit through, and exits only with 0 or 2."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            parse("p", verb, "", args)
        except Usage as exc:
            assert exc.code in (0, 2)
            assert exc.code == 2 or any(a.startswith("-") and "h" in a for a in args)  # -h, --help, -fh


def test_version_prints_the_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = install_root(tmp_path)
    assert main([app.root, "version"]) == 0
    assert capsys.readouterr().out == "2.0.0-1\n"


def test_logs_reads_every_unit_and_the_apps_files_as_the_app_user(tmp_path: Path) -> None:
    app = install_root(tmp_path)
    logs = Path(app.paths.logs)
    logs.mkdir()
    (logs / "app.log").write_text("hello\n")
    (logs / "shadow").symlink_to("/etc/shadow")  # the app's directory: a link is not followed by root
    (logs / "\x1b]0;owned\x07.log").write_text("")  # nor is a name put on root's terminal
    fake = FakeRunner()
    with proc.use(fake):
        assert main([app.root, "logs", "-n", "7"]) == 0
    journal, files = fake.calls
    assert journal[:6] == ("journalctl", "--no-pager", "-o", "short-iso", "-n", "7")
    assert {a for a in journal if a.startswith("--unit=")} == {f"--unit={u.name}" for u in app.contract.units}
    user = ("runuser", "-u", "nobody", "--") if os.geteuid() == 0 else ()
    assert files == (*user, "tail", "-n", "7", "--", str(logs / "app.log"))
    assert "-F" in daytwo.logs_argvs(app, 1, follow=True)[1] and "-f" in daytwo.logs_argvs(app, 1, True)[0]


def test_logs_shows_the_sites_nginx_logs_when_there_is_a_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nginx = tmp_path / "nginx"
    nginx.mkdir()
    for name in ("hello-nr1.access.log", "hello-nr1.error.log", "other.access.log"):
        (nginx / name).write_text("")
    monkeypatch.setattr(daytwo, "NGINX_LOGS", str(nginx))
    assert daytwo.nginx_logs(install_root(tmp_path / "plain")) == []  # no site, no nginx logs
    app = install_root(tmp_path / "site", nginx=True)
    argvs = daytwo.logs_argvs(app, 9, follow=False)
    assert argvs[1] == ["tail", "-n", "9", "--", str(nginx / "hello-nr1.access.log"),
                        str(nginx / "hello-nr1.error.log")]


BROKEN = "# the admin's settings\nGREETING=hi\nBROKEN LINE\nexport X=1\n"


def test_a_line_that_is_not_a_setting_is_named_by_file_and_line(tmp_path: Path) -> None:
    app = install_root(tmp_path, settings=BROKEN)
    path = app.paths.settings
    assert app.settings_problems() == [
        f"{path}:3: not a setting: 'BROKEN LINE' (expected KEY=value, or '#' for a comment)",
        f"{path}:4: 'export' is not needed here: write X=… (the file is read as data, not by a shell)"]
    with pytest.raises(LauncherError, match=f"{path}:3: not a setting"):
        app.check_settings()  # what the web, process and timer verbs do before they start the app
    with proc.use(FakeRunner(systemd=False)):
        assert verify.verify_problems(app)[:2] == app.settings_problems()
    assert app.settings()["GREETING"] == "hi"


@pytest.mark.skipif(os.geteuid() != 0, reason="restart is root's")
def test_restart_refuses_a_broken_settings_file_and_restarts_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = install_root(tmp_path, settings=BROKEN)
    fake = FakeRunner()
    with proc.use(fake):
        assert main([app.root, "restart"]) == 1
    assert fake.calls == []
    err = capsys.readouterr().err
    assert f"{app.paths.settings}:3:" in err and "nothing was restarted" in err
    Path(app.paths.settings).write_text("GREETING=hi\n")
    show = done("ActiveState=active\nSubState=running\nActiveEnterTimestampMonotonic=0\n")
    fake = FakeRunner({("systemctl", "restart"): done(), ("systemctl", "reset-failed"): done(),
                       ("systemctl", "start"): done(), ("systemctl", "show"): show})
    with proc.use(fake):
        assert main([app.root, "restart"]) == 0
    web = next(u.name for u in app.contract.units if u.kind == "web")
    assert fake.ran("systemctl", "restart") == [("systemctl", "restart", web)]


NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
VALUES = st.text(st.characters(codec="utf-8"), max_size=30).filter(lambda v: formats.bad_char(v) is None)
JUNK = st.sampled_from(["", "   ", "# comment", "  # KEY=not a setting"])


@given(st.dictionaries(NAMES, VALUES, max_size=6), st.lists(JUNK, max_size=6), st.randoms())
@settings(max_examples=200, database=None)
def test_rendered_settings_read_back_exactly_between_blanks_and_comments(
        values: dict[str, str], junk: list[str], rnd: object) -> None:
    lines = [f"{k}={formats.env_value(v)}" for k, v in values.items()] + junk
    rnd.shuffle(lines)  # type: ignore[attr-defined]
    parsed = settings_file.parse("\n".join(lines) + "\n")
    assert parsed.values == values and parsed.problems == ()


@given(st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=200))
@settings(max_examples=300, database=None)
def test_every_line_is_a_setting_a_comment_a_blank_or_a_located_problem(text: str) -> None:
    parsed = settings_file.parse(text)
    lines = text.split("\n")
    content = {n for n, line in enumerate(lines, 1) if line.strip() and not line.strip().startswith("#")}
    located = [n for n, _ in parsed.problems]
    assert set(located) <= content and len(located) == len(set(located))
    settings_lines = content - set(located)
    keys = {lines[n - 1].partition("=")[0].strip() for n in settings_lines}
    assert keys == set(parsed.values)
    assert all(settings_file.NAME.match(k) for k in parsed.values)


def test_database_url_is_postgresql_and_a_setting_can_name_the_driver(tmp_path: Path) -> None:
    """What docs/services.md tells an app that ships psycopg2 under SQLAlchemy 2.1 (whose `postgresql://`
    means psycopg 3): the services' variables build a URL with the driver named."""
    from appdeb.runtime.contract import RequestedService, Setting

    url = "postgresql+psycopg2://${CONFIG_PG_USER}@/${CONFIG_PG_DBNAME}?host=${CONFIG_PG_HOST}"
    app = install_root(tmp_path, services=[RequestedService("postgres", {})],
                       env=[Setting("SQLALCHEMY_URL", url, False)])
    env = app.environ({})
    assert env["DATABASE_URL"] == "postgresql://nobody@/hello-nr1?host=/var/run/postgresql"  # the user: nobody
    assert env["SQLALCHEMY_URL"] == "postgresql+psycopg2://nobody@/hello-nr1?host=/var/run/postgresql"


def test_logs_of_a_package_without_units_is_not_the_whole_journal(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    app = install_root(tmp_path, units=[], web=None)
    fake = FakeRunner()
    with proc.use(fake):
        assert main([app.root, "logs"]) == 0
    assert fake.calls == [] and "nothing logs yet" in capsys.readouterr().out


@given(st.binary(max_size=200))
def test_shown_lines_carry_no_control_characters(data: bytes) -> None:
    shown = terminal.printable(data)
    assert not any((ord(c) < 0x20 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F for c in shown)


def test_logs_reach_roots_terminal_as_printable_text(capsys: pytest.CaptureFixture[str]) -> None:
    """What the app user wrote into a log file cannot retitle, clear or rewrite root's terminal."""
    hostile = r"printf 'GET / \033]0;owned\007\033[2J\rfake prompt# \n'"
    assert proc.Runner().show([["sh", "-c", hostile]]) == 0
    out = capsys.readouterr().out
    assert out == "GET / \\x1b]0;owned\\x07\\x1b[2J\\x0dfake prompt# \n"
