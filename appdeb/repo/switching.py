"""The signed, atomic switch of a distribution to a snapshot, and what keeps snapshots in bounds.

Shared by publish, rollback, promote and yank (publish.py, promote.py): every change nodes see is a
new (or earlier) snapshot published signed with `publish snapshot` the first time and `publish
switch` after, never an unsigned or half-written state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from appdeb.errors import AppdebError
from appdeb.repo import store
from appdeb.repo.aptly import (
    PackageRef,
    advance_release_mtime,
    aptly,
    prepare_switch,
    published,
    snapshots,
    task,
)
from appdeb.repo.config import RepoConfig


def switch(cfg: RepoConfig, dist: str, comp: str, snap: str, *, first: bool,
           before: Sequence[Sequence[str]] = (), cleanup: bool = True) -> None:
    """Publish `snap` signed; an existing distribution is switched atomically, never unsigned.

    `before`: aptly commands to run first in the same aptly process (add, remove, snapshot create).
    `cleanup`: let aptly delete the files of ROOT/public/pool/COMP that no published distribution names
    any more (it reads all of them: a sixth of a switch); files left now go with the next that does.
    InRelease's mtime then moves to a later second than the one nodes may hold."""
    dist_dir = cfg.public_dir / "dists" / dist
    previous = prepare_switch(cfg.public_dir, dist)
    sign = [f"-gpg-key={cfg.key}", "-batch"]
    if first:
        command = ["publish", "snapshot", *sign, f"-distribution={dist}", f"-component={comp}",
                   f"-origin={cfg.origin}", f"-label={cfg.label}", "-acquire-by-hash", snap, "."]
    else:
        command = ["publish", "switch", *sign, *([] if cleanup else ["-skip-cleanup"]), f"-component={comp}",
                   dist, ".", snap]
    task(cfg, [*before, command])
    advance_release_mtime(dist_dir, previous)


def refresh(cfg: RepoConfig, distribution: str | None = None) -> dict[str, str]:
    """Sign what each distribution (or the one named) serves again, unchanged, with a new Date.

    Nodes whose source sets Valid-Until-Max (client-config --valid-for) take a Release as current for
    that long after its Date and then refuse it, so a mirror or a man in the middle who keeps serving
    an old signed state (before a yank, before a fix) is noticed: apt-get update and `PKG pull` fail
    with "expired". An idle repository stays current by this, run more often than that span (a timer).
    Returns {distribution: snapshot served}."""
    with store.locked(cfg.root):
        served = published(cfg)
        if distribution is not None and distribution not in served:
            raise AppdebError(f"nothing is published for {distribution}")
        chosen = {d: v for d, v in served.items() if distribution in (None, d)}
        for dist, (snap, comp) in sorted(chosen.items()):
            switch(cfg, dist, comp, snap, first=False, cleanup=False)
    return {dist: snap for dist, (snap, _comp) in chosen.items()}


def snapshot_name(dist: str) -> str:
    """`D-<UTC timestamp>`: a distribution's snapshots sort by time and are found by name (aptly.snapshots)."""
    return f"{dist}-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}"


def refuse_yanked(cfg: RepoConfig, snap: str, refs: set[PackageRef]) -> None:
    """A yanked version never comes back: not by a rollback, not by a promotion of a snapshot holding it."""
    yanked = store.load_yanked(cfg)
    if back := sorted(r.key for r in refs if r.key in yanked):
        raise AppdebError(f"{snap} holds yanked {', '.join(back)}; it would serve again what was withdrawn "
                          f"({', '.join(yanked[k] for k in back)})")


def diff(before: set[PackageRef], after: set[PackageRef]) -> tuple[list[str], list[str]]:
    """(added, removed) package keys between two package sets, for history."""
    return sorted(r.key for r in after - before), sorted(r.key for r in before - after)


def prune_snapshots(cfg: RepoConfig, dist: str, live: set[str] | None = None, names: list[str] | None = None
                    ) -> list[str]:
    """Keep the newest keep_snapshots (rollback targets), drop the rest (never a published one).

    Dropped in batches of a fifth of keep_snapshots (at least 1): most publishes drop none, and
    `aptly db cleanup` runs once a batch, only if a history entry since the oldest dropped one
    removed packages (else all they held is still held). `live`, `names`: if the caller knows.
    Returns the dropped snapshots' names.
    """
    if cfg.keep_snapshots <= 0:
        return []
    names = snapshots(cfg, dist) if names is None else names
    if len(names) < cfg.keep_snapshots + max(1, cfg.keep_snapshots // 5):
        return []
    live = {snap for snap, _ in published(cfg).values()} if live is None else live
    stale = [n for n in names[: -cfg.keep_snapshots] if n not in live]
    if not stale:
        return []
    drops = [["snapshot", "drop", name] for name in stale]
    stamp = datetime.strptime(stale[0][len(dist) + 1:], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    cleanup = [["db", "cleanup"]] if store.removed_since(cfg, dist, stamp.isoformat(timespec="seconds")) else []
    task(cfg, drops + cleanup)
    return stale


def reset_repo(cfg: RepoConfig, dist: str, comp: str, snap: str) -> None:
    """Rebuild `appdeb-D` from a snapshot: create aside, then drop and rename (aptly has no reset)."""
    repo, tmp = f"appdeb-{dist}", f"appdeb-{dist}.reset"
    store.save_synced(cfg, dist, None)
    aptly(cfg, "repo", "drop", "-force", tmp, check=False)
    aptly(cfg, "repo", "create", f"-distribution={dist}", f"-component={comp}", tmp, "from", "snapshot",
           snap)
    aptly(cfg, "repo", "drop", "-force", repo, check=False)  # a promotion's target may have none yet
    aptly(cfg, "repo", "rename", tmp, repo)
    store.save_synced(cfg, dist, snap)
