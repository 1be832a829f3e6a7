"""The hosts of an Ansible inventory, in the inventory's own order, as Ansible itself reads them.

Any inventory Ansible understands (INI, YAML, a directory, a cloud's dynamic inventory plugin) is
read by `ansible-inventory --list`, so appdeb never parses inventory formats itself; the order of
the hosts decides which one is the canary and how batches are cut.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appdeb.errors import AppdebError
from appdeb.runner import run

from .ansible import ansible_env, tool

HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
BATCH_RE = re.compile(r"([1-9][0-9]{0,5})(%?)")


@dataclass(frozen=True)
class Fleet:
    """The hosts to deploy to, in order; the first `canary` of them go first, alone."""

    hosts: tuple[str, ...]
    canary: tuple[str, ...]

    def batches(self, size: str) -> list[tuple[str, ...]]:
        """The canary batch, then the rest cut into batches of N hosts or N % of the fleet (at least 1)."""
        rest = [h for h in self.hosts if h not in self.canary]
        match = BATCH_RE.fullmatch(size)
        if match is None:
            raise AppdebError(f"--batch {size!r}: give a number of hosts (3) or a share of the fleet (25%)")
        number, percent = int(match.group(1)), bool(match.group(2))
        if percent and number > 100:
            raise AppdebError(f"--batch {size}: a share is at most 100%")
        step = max(1, len(self.hosts) * number // 100) if percent else number
        cut = [tuple(rest[i:i + step]) for i in range(0, len(rest), step)]
        return [self.canary, *cut] if self.canary else cut


def read_inventory(inventory: Path, limit: str | None = None) -> list[str]:
    """Host names of the inventory (optionally --limit'ed), first-seen order over its groups."""
    argv = [tool("ansible-inventory"), "-i", str(inventory), "--list"]
    if limit:
        argv += ["--limit", limit]
    proc = run(argv, env=ansible_env(), check=False)
    if proc.returncode != 0:
        raise AppdebError(f"ansible-inventory cannot read {inventory}: {proc.stdout.strip()[-500:]}")
    data: dict[str, Any] = json.loads(proc.stdout[proc.stdout.index("{"):])
    hosts: list[str] = []

    def walk(group: str) -> None:
        entry = data.get(group, {})
        for host in entry.get("hosts", []):
            if host not in hosts:
                hosts.append(host)
        for child in entry.get("children", []):
            walk(child)

    walk("all")
    odd = [h for h in hosts if not HOST_RE.fullmatch(h)]
    if odd:  # names go into --limit (comma-separated patterns) and into the report
        raise AppdebError(f"host names must be letters, digits, '.', '_' or '-': {', '.join(map(repr, odd))}")
    if not hosts:
        raise AppdebError(f"no hosts in {inventory}{' matching ' + limit if limit else ''}")
    return hosts


def fleet(inventory: Path, *, canary: str | None = None, limit: str | None = None) -> Fleet:
    hosts = read_inventory(inventory, limit)
    if canary is not None and canary not in hosts:
        raise AppdebError(f"--canary {canary}: not a host of {inventory} (hosts: {', '.join(hosts)})")
    return Fleet(tuple(hosts), (canary or hosts[0],) if len(hosts) > 1 else ())
