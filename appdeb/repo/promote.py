"""Release channels inside one repository: promote a snapshot to another distribution, yank one version.

Both derive a new snapshot of the target distribution from one aptly already holds (promote: a copy of
the source snapshot, so the very same pool files; yank: the served snapshot without one version),
publish it signed and atomically like publish.py does, reset the distribution's local repo to it (so
a later publish builds on what nodes see) and record it in history. No new bytes enter the pool, so
the ledger is untouched; a yank is also written to yanked.json, and that version never comes back.
"""

from __future__ import annotations

from collections.abc import Callable

from appdeb.errors import AppdebError
from appdeb.repo.aptly import aptly, published, search
from appdeb.repo.config import PACKAGE_RE, VERSION_RE, RepoConfig, check_name
from appdeb.repo.dists import TARGET_FIELD, check_promotion
from appdeb.repo.store import HistoryEntry, locked, record, save_yanked
from appdeb.repo.switching import diff, prune_snapshots, refuse_yanked, reset_repo, snapshot_name, switch

# Debian package names and versions (policy 5.6.1, 5.6.12): what `yank PKG=VERSION` accepts


def _derive(cfg: RepoConfig, action: str, dist: str, comp: str, current: str | None,
            make: Callable[[str], list[str]]) -> HistoryEntry:
    """Create the snapshot (`make(name)`: the `aptly snapshot …` arguments), publish it, reset, record, prune."""
    snap = snapshot_name(dist)
    aptly(cfg, "snapshot", *make(snap))
    before = set(search(cfg, "snapshot", current)) if current else set()
    after = set(search(cfg, "snapshot", snap))
    switch(cfg, dist, comp, snap, first=current is None)
    reset_repo(cfg, dist, comp, snap)
    entry = record(cfg, action, dist, snap, current, *diff(before, after))
    prune_snapshots(cfg, dist)
    return entry


def _source(cfg: RepoConfig, snapshot: str | None, from_dist: str | None) -> tuple[str, str]:
    """(snapshot, component) to promote: the named snapshot, or what --from serves now."""
    served = published(cfg)
    if from_dist is not None:
        check_name(from_dist)
        if from_dist not in served:
            raise AppdebError(f"nothing is published for {from_dist}; nothing to promote")
        return served[from_dist]
    if snapshot is None:
        raise AppdebError("name a SNAPSHOT or --from DISTRIBUTION to promote")
    if snapshot not in aptly(cfg, "snapshot", "list", "-raw").split():
        raise AppdebError(f"no snapshot {snapshot} in this repository ('appdeb repo snapshots --distribution D')")
    served_as = [comp for snap, comp in served.values() if snap == snapshot]
    return snapshot, served_as[0] if served_as else cfg.component


def promote(cfg: RepoConfig, to: str, snapshot: str | None = None, from_dist: str | None = None
            ) -> HistoryEntry | None:
    """Serve in `to` exactly the packages (the same bytes) of a snapshot or of what `from_dist` serves.

    None when `to` already serves exactly those packages (nothing is published then).
    """
    check_name(to)
    if from_dist == to:
        raise AppdebError(f"cannot promote {to} to itself: name another distribution")
    with locked(cfg.root):
        source, comp = _source(cfg, snapshot, from_dist)
        if source.startswith(f"{to}-") and from_dist is None and snapshot is not None:
            raise AppdebError(f"{source} is a snapshot of {to} already: use 'appdeb repo rollback --to {source}'")
        refs = set(search(cfg, "snapshot", source))
        refuse_yanked(cfg, source, refs)
        targets = search(cfg, "snapshot", source, value=f'{{{{index . "{TARGET_FIELD}"}}}}')
        check_promotion({f"{r.name} {r.version}": t for r, t in targets.items()}, from_dist or source, to)
        current = published(cfg).get(to)
        if current and set(search(cfg, "snapshot", current[0])) == refs:
            return None
        comp = current[1] if current else comp
        # a merge of one snapshot is an exact copy: the same package references, so the same pool files
        return _derive(cfg, "promote", to, comp, current[0] if current else None,
                       lambda snap: ["merge", "-no-remove", snap, source])


def parse_pin(spec: str) -> tuple[str, str]:
    """PKG=VERSION, both checked against Debian's rules (they become part of an aptly query)."""
    name, sep, version = spec.partition("=")
    if not sep or not PACKAGE_RE.fullmatch(name) or not VERSION_RE.fullmatch(version):
        raise AppdebError(f"{spec!r} is not PACKAGE=VERSION (e.g. hello-prod=1.0.0-7)")
    return name, version


def yank(cfg: RepoConfig, spec: str, distribution: str | None = None) -> HistoryEntry:
    """Withdraw one version (every architecture of it) from what `distribution` serves, for good.

    The version stays in the ledger and is added to yanked.json: publishing it again, with any
    bytes, is refused, and no rollback or promotion serves it again. Everything else stays.
    """
    name, version = parse_pin(spec)
    dist = distribution or cfg.distribution
    check_name(dist)
    with locked(cfg.root):
        current = published(cfg).get(dist)
        if current is None:
            raise AppdebError(f"nothing is published for {dist}")
        refs = search(cfg, "snapshot", current[0])
        hit = sorted(r.key for r in refs if (r.name, r.version) == (name, version))
        if not hit:
            have = sorted(r.version for r in refs if r.name == name)
            raise AppdebError(f"{name} {version} is not published in {dist} "
                              f"(published versions of {name}: {', '.join(have) or 'none'})")
        query = f"!(Name (= {name}), $Version (= {version}))"
        entry = _derive(cfg, "yank", dist, current[1], current[0], lambda snap: ["filter", current[0], snap, query])
        save_yanked(cfg, hit, dist)
    return entry

