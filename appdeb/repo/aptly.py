"""What the repository holds, as aptly tells it: packages, snapshots, what each distribution serves.

The read side of the repository (publish.py changes it): every aptly call goes through `aptly()`
with the repository's own config and keyring, so aptly never falls back to ~/.aptly.conf.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from debian.debian_support import Version

from appdeb.errors import CommandError
from appdeb.repo import signing
from appdeb.repo.config import RepoConfig
from appdeb.runner import run

FORMAT = "{{.Package}}|{{.Version}}|{{.Architecture}}|{{.SHA256}}"
STAMP_RE = r"\d{8}T\d{6}\.\d{6}Z"


class PackageRef(NamedTuple):
    """One binary package in the repository: what apt and aptly key packages by."""

    name: str
    version: str
    arch: str

    @property
    def key(self) -> str:
        """aptly's package reference, `name_version_arch`, also used in history."""
        return f"{self.name}_{self.version}_{self.arch}"


def aptly(cfg: RepoConfig, *args: str, check: bool = True) -> str:
    """Every aptly call: explicit -config (else aptly writes ~/.aptly.conf) and the repo keyring."""
    argv = ["aptly", f"-config={cfg.conf}", *args]
    proc = run(argv, env=signing.gnupg_env(cfg.gnupg_home), check=check)
    return proc.stdout


def search(cfg: RepoConfig, kind: str, *args: str) -> dict[PackageRef, str]:
    """Packages (-> sha256) of `aptly {repo|snapshot|package} search`; aptly exits 1 on none."""
    argv = ["aptly", f"-config={cfg.conf}", kind, "search", f"-format={FORMAT}", *args]
    proc = run(argv, env=signing.gnupg_env(cfg.gnupg_home), check=False)
    if proc.returncode != 0:
        if "no results" in proc.stdout:
            return {}
        raise CommandError(list(proc.args), proc.returncode, proc.stdout)
    found: dict[PackageRef, str] = {}
    for line in proc.stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 4:
            found[PackageRef(*parts[:3])] = parts[3]
    return found


def published(cfg: RepoConfig) -> dict[str, tuple[str, str]]:
    """distribution -> (snapshot, component) for what ROOT/public currently serves."""
    out: list[dict[str, Any]] = json.loads(aptly(cfg, "publish", "list", "-json") or "[]")
    return {
        p["Distribution"]: (p["Sources"][0]["Name"], p["Sources"][0]["Component"])
        for p in out
        if p.get("Prefix") == "." and p.get("Sources")
    }


def snapshots(cfg: RepoConfig, distribution: str | None = None) -> list[str]:
    """appdeb's snapshots of one distribution, oldest first (the names sort by time)."""
    dist = re.escape(distribution or cfg.distribution)
    names = aptly(cfg, "snapshot", "list", "-raw").split()
    return sorted(n for n in names if re.fullmatch(f"{dist}-{STAMP_RE}", n))


def published_snapshot(cfg: RepoConfig, distribution: str | None = None) -> str | None:
    """The snapshot nodes currently get for the distribution, if it is published."""
    current = published(cfg).get(distribution or cfg.distribution)
    return current[0] if current else None


def list_packages(cfg: RepoConfig, distribution: str | None = None) -> list[PackageRef]:
    """What nodes see: the packages of the published snapshot, by name, arch, version."""
    snap = published_snapshot(cfg, distribution)
    refs = search(cfg, "snapshot", snap) if snap else {}
    return sorted(refs, key=lambda r: (r.name, r.arch, Version(r.version)))
