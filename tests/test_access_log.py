"""web.access_log: off by default, an opt-in that travels app.yaml → spec → app.json → gunicorn's flags."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from appdeb.build.plan import make_plan
from appdeb.build.render import runtime_config
from appdeb.build.validate import load_spec
from appdeb.errors import SpecError
from appdeb.runtime.commands import gunicorn_argv
from appdeb.runtime.contract import Contract

from .conftest import EPOCH, EXAMPLES


def hello(tmp_path: Path, web: str = "") -> Path:
    """examples/hello with a `web:` section appended."""
    dest = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", dest, ignore=shutil.ignore_patterns(".appdeb"))
    if web:
        with (dest / "app.yaml").open("a") as f:
            f.write(web)
    return dest


def contract_of(app_dir: Path) -> Contract:
    plan = make_plan(load_spec(app_dir), instance=None, python_version="3.11", source_date_epoch=EPOCH)
    return Contract.from_json(runtime_config(plan).to_json())  # as the node reads it back


def argv(contract: Contract) -> list[str]:
    assert contract.web is not None and contract.wsgi is not None
    return gunicorn_argv(contract.package, contract.web, contract.wsgi, "/opt/hello/app", [])


def test_by_default_gunicorn_logs_no_request_and_keeps_its_fail_safe_settings(tmp_path: Path) -> None:
    contract = contract_of(hello(tmp_path))
    assert contract.web is not None and contract.web.access_log is False
    assert '"access_log": false' in contract.to_json()  # written out in app.json, not left implicit
    flags = argv(contract)
    assert "--access-logfile" not in flags
    assert flags[flags.index("--workers") + 1] == "6" and flags[flags.index("--timeout") + 1] == "10"
    assert flags[flags.index("--max-requests") + 1] == "10000"
    assert flags[flags.index("--max-requests-jitter") + 1] == "1000"
    assert flags[flags.index("--config") + 1] == "python:appdeb_runtime.gunicorn_conf"  # memory recycling
    assert flags[-1] == "hello:application"


def test_access_log_true_logs_every_request_to_stdout_that_is_the_journal(tmp_path: Path) -> None:
    contract = contract_of(hello(tmp_path, "web:\n  access_log: true\n"))
    assert contract.web is not None and contract.web.access_log is True
    flags = argv(contract)
    assert flags[flags.index("--access-logfile") + 1] == "-"
    assert flags[-1] == "hello:application"


@pytest.mark.parametrize(("value", "line"), [("yes", 'access_log: yes'), ("'true'", "access_log: 'true'"),
                                             ("1", "access_log: 1")])
def test_access_log_must_be_a_real_boolean(tmp_path: Path, value: str, line: str) -> None:
    app = hello(tmp_path, f"web:\n  access_log: {value}\n")
    with pytest.raises(SpecError) as info:
        load_spec(app)
    found = [str(p) for p in info.value.problems]
    assert len(found) == 1 and "web.access_log" in found[0], found
    row = (app / "app.yaml").read_text().splitlines().index("  " + line) + 1
    assert f"app.yaml:{row}:" in found[0]
