"""A rolling deploy: the canary alone, then batches; the first failure stops it, failed hosts go back.

Each batch is one `ansible-playbook` run limited to its hosts (the play is in playbook.py); the
outcome of each host is read from Ansible's JSON report. A host that cannot be reached is reported
as down and does not stop or hold up the rollout (Ansible gives up on it after a connect timeout);
a host whose install or health gate fails has already been put back by the play, and no further
batch starts. Wall-clock times per host make the canary-first order visible in the report.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appdeb.errors import AppdebError

from . import playbook
from .ansible import TaskResult, env_for_display, run_playbook
from .inventory import Fleet

Progress = Callable[[str], None]


@dataclass(frozen=True)
class HostOutcome:
    """What happened on one host: ok, failed (and put back), down, not started, or (under --check) the plan."""

    host: str
    status: str
    before: str = ""
    after: str = ""
    error: str = ""
    started: float = 0.0
    finished: float = 0.0


@dataclass
class Rollout:
    package: str
    version: str
    outcomes: list[HostOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.status in ("ok", "unchanged", "would install") for o in self.outcomes)


def _version(results: list[TaskResult], task: str) -> str:
    found = next((r for r in results if r.task == task and not r.skipped), None)
    words = found.stdout.split() if found else []
    return words[1] if len(words) == 2 and words[0] != "not-installed" else ""


def outcome(host: str, results: list[TaskResult], version: str, started: float, finished: float) -> HostOutcome:
    before = _version(results, playbook.BEFORE)
    if not results:  # Ansible said nothing of this host: never count silence as success
        return HostOutcome(host, "failed", error="no result from Ansible for this host", started=started,
                           finished=finished)
    if any(r.unreachable for r in results):
        return HostOutcome(host, "down", error="unreachable (ssh did not answer)", started=started, finished=finished)
    failure = next((r for r in results if r.failed and r.task != playbook.FAILED), None)
    if failure is not None:
        back = next((r for r in results if r.task in (playbook.ROLLBACK, playbook.REMOVE) and not r.skipped), None)
        after = before if back is not None and not back.failed else "unknown"
        if not any(r.task == playbook.INSTALL for r in results):  # failed before the install: package untouched
            after = before
        elif not before:
            after = "removed"
        error = f"{failure.task}: {failure.message or failure.stdout}".strip()[:400]
        undone = [r for r in results if r.failed and r.task in (*playbook.GOING_BACK, playbook.ROLLBACK,
                                                                 playbook.REMOVE)]
        if undone:
            error += f"; going back failed too: {undone[0].task}: {undone[0].message}"[:200]
        return HostOutcome(host, "failed", before, after, error, started, finished)
    held = next((r for r in results if r.task == playbook.HOLD and not r.skipped and not r.failed), None)
    if held is None:
        return HostOutcome(host, "failed", before, error="the version was not installed and held", started=started,
                           finished=finished)
    return HostOutcome(host, "ok", before, version, started=started, finished=finished)


def deploy(fleet: Fleet, inventory: Path, package: str, version: str, files: dict[str, str], *,
           batch: str = "1", progress: Progress = print) -> Rollout:
    """Roll PACKAGE=VERSION out over the fleet, batch by batch; stop at the first failed host."""
    play = playbook.deploy_play(package, version, files)
    rollout = Rollout(package, version)
    batches = fleet.batches(batch)
    with tempfile.TemporaryDirectory(prefix="appdeb-deploy-") as tmp:
        path = playbook.write_play(play, Path(tmp) / "deploy.yml", files)
        for number, hosts in enumerate(batches, 1):
            label = "canary" if hosts == fleet.canary else f"batch {number}/{len(batches)}"
            progress(f"{label}: {', '.join(hosts)}")
            started = time.time()
            results = run_playbook(path, inventory, hosts)
            finished = time.time()
            done = [outcome(h, results.get(h, []), version, started, finished) for h in hosts]
            rollout.outcomes += done
            for o in done:
                progress(f"  {o.host}: {o.status}{' (' + o.error + ')' if o.error else ''}")
            if any(o.status == "failed" for o in done):
                left = [h for later in batches[number:] for h in later]
                rollout.outcomes += [HostOutcome(h, "not started", error="the rollout stopped") for h in left]
                break
    return rollout


def check(fleet: Fleet, inventory: Path, package: str, version: str, files: dict[str, str]) -> Rollout:
    """What a deploy would change, per host, changing nothing (Ansible's check mode)."""
    rollout = Rollout(package, version)
    with tempfile.TemporaryDirectory(prefix="appdeb-deploy-") as tmp:
        path = playbook.write_play(playbook.deploy_play(package, version, files), Path(tmp) / "deploy.yml", files)
        results = run_playbook(path, inventory, fleet.hosts, check=True)
    for host in fleet.hosts:
        got = results.get(host, [])
        if any(r.unreachable for r in got):
            rollout.outcomes.append(HostOutcome(host, "down", error="unreachable (ssh did not answer)"))
            continue
        before = _version(got, playbook.BEFORE)
        refused = next((r for r in got if r.failed and r.task == playbook.WRONG_RELEASE), None)
        if refused is not None:
            rollout.outcomes.append(HostOutcome(host, "failed", before, before, f"{refused.task}: {refused.message}"))
            continue
        changed = [r.task.removeprefix("repository file ") for r in got if r.changed and r.task.startswith("repo")]
        note = f"would write {', '.join(changed)}" if changed else ""
        status = "unchanged" if before == version else "would install"
        rollout.outcomes.append(HostOutcome(host, status, before, version, note))
    return rollout


def emit(directory: Path, inventory: Path, package: str, version: str, files: dict[str, str]) -> list[Path]:
    """The playbook, the inventory and an ansible.cfg, for teams that run Ansible themselves."""
    directory.mkdir(parents=True, exist_ok=True)
    play = playbook.write_play(playbook.deploy_play(package, version, files), directory / "deploy.yml", files)
    inv = directory / ("inventory" + inventory.suffix)
    if inventory.resolve() != inv.resolve():
        shutil.copyfile(inventory, inv)
    cfg = directory / "ansible.cfg"
    settings = env_for_display()
    cfg.write_text("[defaults]\n"
                   f"interpreter_python = {settings['ANSIBLE_INTERPRETER_PYTHON']}\n"
                   f"timeout = {settings['ANSIBLE_TIMEOUT']}\nretry_files_enabled = False\n"
                   "forks = 50\n\n[ssh_connection]\npipelining = True\n")
    return [play, inv, cfg]


def table(rollout: Rollout) -> str:
    """Per host: status, version before → after, seconds from the start of the rollout, error."""
    origin = min((o.started for o in rollout.outcomes if o.started), default=0.0)
    rows = [("host", "status", "before", "after", "at s", "error")]
    for o in rollout.outcomes:
        at = f"{o.started - origin:.1f}-{o.finished - origin:.1f}" if o.started else "-"
        rows.append((o.host, o.status, o.before or "-", o.after or "-", at, o.error or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5]
                     for r in rows).rstrip()


def require_ok(rollout: Rollout) -> None:
    bad = [o for o in rollout.outcomes if o.status in ("failed", "down")]
    if bad:
        raise AppdebError("deploy of {}={} failed on: {}".format(
            rollout.package, rollout.version, "; ".join(f"{o.host} ({o.status}: {o.error})" for o in bad)))
