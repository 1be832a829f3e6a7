"""Running Ansible: where its programs are, the environment it runs with, and what a play did per host.

ansible-core is an optional extra (`pip install 'appdeb[deploy]'`); its programs sit beside this
Python's own. Plays run with the JSON callback, so the outcome of every task on every host is read
as data (no scraping of Ansible's human output), and with settings that keep a down host from
holding up a rollout (a connect timeout, no retries).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appdeb.errors import AppdebError
from appdeb.runner import run

CONNECT_TIMEOUT = 10  # seconds before a host that does not answer counts as unreachable
INSTALL_HINT = "pip install 'appdeb[deploy]' (in a checkout: make setup)"
CALLBACKS = Path(__file__).resolve().parent / "callbacks"  # appdeb_json: the play's outcome as one JSON document


def tool(name: str) -> str:
    """An Ansible program: beside this interpreter (a venv), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise AppdebError(f"{name} is not installed: {INSTALL_HINT}")
    return found


def ansible_env(**extra: str) -> dict[str, str]:
    """Quiet, machine-readable and bounded: the settings every appdeb run of Ansible uses."""
    return {
        "ANSIBLE_STDOUT_CALLBACK": "appdeb_json", "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_DEPRECATION_WARNINGS": "0", "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_INTERPRETER_PYTHON": "/usr/bin/python3", "ANSIBLE_TIMEOUT": str(CONNECT_TIMEOUT),
        "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_PIPELINING": "1", **extra,
    }


@dataclass(frozen=True)
class TaskResult:
    """One task on one host: whether it failed (or the host was unreachable), its output and message."""

    task: str
    failed: bool
    unreachable: bool
    skipped: bool
    changed: bool
    stdout: str
    message: str


def run_playbook(playbook: Path, inventory: Path, hosts: tuple[str, ...], *, check: bool = False,
                 forks: int = 50, timeout: float = 3600) -> dict[str, list[TaskResult]]:
    """Run the playbook on these hosts; host → its task results in order (unreachable hosts included)."""
    argv = [tool("ansible-playbook"), "-i", str(inventory), "--limit", ",".join(hosts), "--forks", str(forks),
            str(playbook)]
    if check:
        argv.insert(1, "--check")
    with tempfile.TemporaryDirectory(prefix="appdeb-ansible-") as tmp:
        report_file = Path(tmp) / "report.json"
        proc = run(argv, env=ansible_env(APPDEB_ANSIBLE_REPORT=str(report_file)), check=False, timeout=timeout)
        try:  # read from our own file: nothing a host prints can stand in for the report
            report: dict[str, Any] = json.loads(report_file.read_text())
        except (OSError, ValueError):
            raise AppdebError(f"ansible-playbook failed (exit {proc.returncode}): "
                              f"{proc.stdout.strip()[-800:]}") from None
    results: dict[str, list[TaskResult]] = {h: [] for h in hosts}
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            name = task.get("task", {}).get("name", "")
            for host, res in task.get("hosts", {}).items():
                results.setdefault(host, []).append(_task_result(name, res))
    for host, stats in report.get("stats", {}).items():
        if stats.get("unreachable") and not any(r.unreachable for r in results.get(host, [])):
            results.setdefault(host, []).append(TaskResult("connect", True, True, False, False, "", "unreachable"))
    return results


def _task_result(name: str, res: dict[str, Any]) -> TaskResult:
    message = str(res.get("msg") or "").strip()
    stderr = str(res.get("stderr") or "").strip()
    if stderr and (res.get("failed") or res.get("rc")):
        message = f"{message}: {stderr}" if message else stderr
    return TaskResult(name, bool(res.get("failed")), bool(res.get("unreachable")), bool(res.get("skipped")),
                      bool(res.get("changed")), str(res.get("stdout") or "").strip(), message)


def env_for_display() -> dict[str, str]:
    """The settings above as a team running Ansible itself would put them in ansible.cfg."""
    return {k: v for k, v in ansible_env().items() if k not in ("ANSIBLE_STDOUT_CALLBACK", "ANSIBLE_CALLBACK_PLUGINS")}


