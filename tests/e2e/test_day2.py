"""Day-2 operations through the real launcher (/usr/bin/PKG) on one booted node: every verb's --help and
misuse start and write nothing, logs/status/restart/version say what an admin needs, a settings change
is applied by `PKG restart`, and a line of settings.env that is not a setting is named with its line
number at start-up and by `PKG verify`. Instance names start with `dt`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from appdeb.node import harness as nodes
from appdeb.runtime.main import VERBS

from .apps import build_app, http_get, lifecycle_app, port_of, sh

pytestmark = pytest.mark.e2e

PKG = "hello-dt1"
SETTINGS = f"/etc/{PKG}/settings.env"
WORKER = f"{PKG}-worker.service"
APP_SAYS = "hello.py imported: ready to serve"
# the worker says it is up (to the journal), writes the app's own log file, then waits
WORKER_CMD = ("python3 -u -c \"import os, time; print('worker up, greeting', os.environ['GREETING']); "
              "open(os.environ['APPDEB_LOG_DIR'] + '/worker.log', 'a').write('worker log file line\\n'); "
              "time.sleep(100000)\"")
MISUSE = {  # (arguments, what must not happen) for each verb; every verb must be here
    "run": [], "env": ["x"], "web": ["--workers", "3"], "process": ["worker", "--help-me"], "timer": [],
    "status": ["--json"], "verify": ["now"], "backup": ["--bogus"], "backups": ["prune"], "restore": [],
    "hook": ["bogus"], "pin": ["1.0.0-1", "--previous"], "unpin": ["x"], "rollback": ["1", "2"],
    "pull": ["x"], "logs": ["-n", "many"], "restart": ["now"], "version": ["--long"],
}
EXTRA_MISUSE = [["backups", "--keep", "1"], ["backup", "--reason"], ["process"], ["process", "wroker"]]


def day2_app(dest: Path) -> Path:
    app = lifecycle_app(dest)
    spec = yaml.safe_load((app / "app.yaml").read_text())
    spec["processes"] = {"worker": WORKER_CMD}
    (app / "app.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    source = (app / "hello.py").read_text()
    (app / "hello.py").write_text(source + f"\nimport sys\nprint({APP_SAYS!r}, file=sys.stderr, flush=True)\n")
    return app


def run(node: nodes.Node, *argv: str, timeout: float = 120) -> tuple[int, str]:
    result = nodes.run_in(node, list(argv), timeout=timeout)
    return result.returncode, result.stdout


def footprint(node: nodes.Node) -> tuple[str, str]:
    """Every file of the instance's state, settings and backups (name, size, mtime), and the app's processes."""
    files = sh(node, f"find /var/backups/{PKG} /var/lib/appdeb/{PKG} /etc/{PKG} /var/lib/{PKG} "
                     "-printf '%p %s %T@\\n' | sort")
    procs = sh(node, f"for p in /proc/[0-9]*; do [ \"$(stat -c %U $p 2>/dev/null)\" = {PKG} ] && "
                     "tr '\\0' ' ' < $p/cmdline && echo; done | sort; true")
    return files, procs


def main_pid(node: nodes.Node, unit: str) -> str:
    return sh(node, f"systemctl show -p MainPID --value {unit}").strip()


def test_day2_verbs_through_the_real_launcher(node: nodes.Node, tmp_path: Path) -> None:
    deb = build_app(day2_app(tmp_path / "app"), tmp_path / "deb", "dt1")
    nodes.install(node, [deb.deb])
    port = port_of(PKG)
    assert "Hello from hello" in http_get(port)
    _help_and_misuse_start_and_write_nothing(node)
    _status_version_and_logs(node)
    _restart_applies_settings(node, port)
    _a_broken_settings_line_is_named(node, port)


def _help_and_misuse_start_and_write_nothing(node: nodes.Node) -> None:
    assert set(MISUSE) == set(VERBS)
    worker_pid = main_pid(node, WORKER)
    before = footprint(node)
    for verb, wrong in MISUSE.items():
        code, out = run(node, PKG, verb, "--help", timeout=30)  # `process worker --help` used to start a worker
        assert code == 0 and out.startswith(f"usage: {PKG} {verb}"), (verb, out)
        code, out = run(node, PKG, verb, *wrong, timeout=30)
        assert code == 2 and f"{PKG} {verb}: error: " in out, (verb, wrong, out)
    for wrong in EXTRA_MISUSE:
        code, out = run(node, PKG, *wrong, timeout=30)
        assert code == 2 and "error: " in out, (wrong, out)
    code, out = run(node, PKG, "process", "worker", "--help", timeout=30)
    assert code == 0 and "one of the description's processes" in out
    assert footprint(node) == before  # no backup, no lock or state file, no second worker
    assert main_pid(node, WORKER) == worker_pid


def _status_version_and_logs(node: nodes.Node) -> None:
    code, out = run(node, PKG, "version")
    assert (code, out) == (0, "1.0.0-1\n")
    code, out = run(node, PKG, "status")
    assert code == 0, out
    lines = out.splitlines()
    assert f"package: {PKG} 1.0.0-1" in lines and "health: ok" in lines
    assert {f"unit: {PKG}.socket active", f"unit: {PKG}.service active", f"unit: {WORKER} active"} <= set(lines)
    assert f"settings: {SETTINGS}" in lines and "pin: none" in lines
    code, out = run(node, PKG, "logs", "-n", "300")
    assert code == 0, out
    assert APP_SAYS in out  # the web unit's journal
    assert "worker up, greeting Hello" in out  # the worker's journal
    assert f"==> /var/log/{PKG}/worker.log <==" in out and "worker log file line" in out  # the app's own file
    code, out = run(node, "timeout", "-s", "INT", "4", PKG, "logs", "-f", "-n", "5")
    assert code == 124 and "worker log file line" in out  # followed until interrupted
    time.sleep(0.5)
    assert sh(node, "for p in /proc/[0-9]*; do cat $p/comm; done | grep -cx 'journalctl\\|tail'; true").strip() \
        == "0"  # and nothing of it is left running


def _restart_applies_settings(node: nodes.Node, port: int) -> None:
    web_pid, worker_pid = main_pid(node, f"{PKG}.service"), main_pid(node, WORKER)
    sh(node, f"echo GREETING=Howdy >> {SETTINGS}")
    code, out = run(node, "systemctl", "reload", f"{PKG}.service")
    assert code != 0 and "not applicable" in out  # not offered: a HUP would not apply the settings
    code, out = run(node, PKG, "restart")
    assert code == 0 and f"restarted {PKG}.service, {WORKER}" in out, out
    assert main_pid(node, f"{PKG}.service") != web_pid and main_pid(node, WORKER) != worker_pid
    assert http_get(port).startswith("Howdy from hello")
    time.sleep(1)
    assert "worker up, greeting Howdy" in sh(node, f"journalctl -u {WORKER} -n 20 --no-pager")


def _a_broken_settings_line_is_named(node: nodes.Node, port: int) -> None:
    sh(node, f"printf '# comment\\nBROKEN LINE\\n' >> {SETTINGS}")
    number = int(sh(node, f"grep -n '^BROKEN LINE$' {SETTINGS}").split(":")[0])
    where = f"{SETTINGS}:{number}: not a setting: 'BROKEN LINE'"
    web_pid = main_pid(node, f"{PKG}.service")
    code, out = run(node, PKG, "verify", timeout=180)
    assert code == 1 and where in out, out
    code, out = run(node, PKG, "restart")
    assert code == 1 and where in out and "nothing was restarted" in out, out
    assert main_pid(node, f"{PKG}.service") == web_pid  # the running app keeps its settings
    code, out = run(node, "systemctl", "restart", f"{PKG}.service", timeout=60)
    assert code != 0  # the unit's start refuses the file
    journal = sh(node, f"journalctl -u {PKG}.service -n 50 --no-pager")
    assert where in journal
    sh(node, f"for i in $(seq 150); do [ $(systemctl is-active {PKG}.service) = failed ] && exit 0; sleep 0.2; "
             "done; exit 1")  # the start limit ends the retries: failed, not a restart loop
    code, out = run(node, PKG, "status")
    assert code == 1 and f"settings: {where}" in out and f"unit: {PKG}.service failed" in out, out
    sh(node, f"sed -i '/^BROKEN LINE$/d' {SETTINGS}")
    code, out = run(node, PKG, "restart")  # at once, although the unit hit its start limit
    assert code == 0, out
    assert http_get(port).startswith("Howdy from hello")
    assert sh(node, f"systemctl is-active {PKG}.socket {PKG}.service {WORKER}").split() == ["active"] * 3
