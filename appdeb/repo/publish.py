"""The signed apt repository: aptly local repos, snapshots and atomic signed switches.

Each distribution D (by default the packages' Debian suite, dists.py) has one local repo `appdeb-D`;
every change becomes a new snapshot `D-<UTC timestamp>` that is published signed (`publish snapshot`
the first time, `publish switch` after), so nodes only ever see a complete, signed state. Setup lives
in config.py, history and ledger in store.py.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from debian.debian_support import Version

from appdeb.errors import AppdebError
from appdeb.files import sha256_of
from appdeb.repo import pool, store
from appdeb.repo.aptly import (
    PackageRef,
    aptly,
    published,
    read_state,
    remember_state,
    repo_packages,
    search,
    served_packages,
    snapshots,
    task,
)
from appdeb.repo.config import ARCH_RE, PACKAGE_RE, VERSION_RE, RepoConfig, check_name
from appdeb.repo.dists import TARGET_FIELD, check_rollback, deb_control, publish_distribution, target_of
from appdeb.repo.store import HistoryEntry, locked, record
from appdeb.repo.switching import diff, prune_snapshots, refuse_yanked, reset_repo, snapshot_name, switch

# aptly's clean-up of the public pool after a switch reads every published distribution's packages: it runs
# with every tenth publish (and every rollback, promotion, yank, and a publish after any of them), so the
# .debs retention dropped stay fetchable a few publishes longer for nodes that read an older index.
POOL_CLEANUP_EVERY = 10


@dataclass(frozen=True)
class PublishResult:
    """What a publish did; snapshot is None when there was nothing new to publish."""

    distribution: str
    snapshot: str | None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Deb:
    path: Path  # as the caller named it: for messages only
    copy: Path  # the staged copy: what is read, checked and published
    ref: PackageRef
    sha256: str
    built: tuple[str, str] | None  # (target, suite) it was built for (Appdeb-Target), None if it names none

    @property
    def suite(self) -> str:
        """Its ledger scope: the Debian release it was built for, "" if it names none."""
        return self.built[1] if self.built else ""

    def filename(self) -> str:
        """Canonical pool name: aptly keeps the file name, so `app.deb` twice would clash.

        All distributions share one pool (ROOT/public/pool/COMPONENT): a release's name is in it
        (`_all.trixie.deb`), so a debian-12 and a debian-13 build of one version do not clash there.
        """
        return pool.name(self.ref, self.suite)


def _read_deb(path: Path, copy: Path) -> _Deb:
    """Name/version/arch from the copy's control file (dpkg-deb), plus its bytes' sha256."""
    try:
        ctrl = deb_control(copy)
        ref = PackageRef(ctrl["Package"], ctrl["Version"], ctrl["Architecture"])
    except AppdebError as exc:
        raise AppdebError(str(exc).replace(str(copy), str(path))) from None
    except KeyError as exc:
        raise AppdebError(f"{path}: not a usable .deb (no {exc.args[0]} field)") from None
    # the fields name files in the pool and aptly's queries: Debian's syntax only (no '/', no '..')
    for field_name, value, rule in (("Package", ref.name, PACKAGE_RE), ("Version", ref.version, VERSION_RE),
                                    ("Architecture", ref.arch, ARCH_RE)):
        if not rule.fullmatch(value):
            raise AppdebError(f"{path}: not a usable .deb (its {field_name} field {value!r} is not Debian's syntax)")
    return _Deb(path, copy, ref, sha256_of(copy), target_of(ctrl.get(TARGET_FIELD)))


def _held(cfg: RepoConfig, dist: str, comp: str, current: str | None, served: dict[PackageRef, str]
          ) -> dict[PackageRef, str]:
    """The local repo's packages (-> sha256): `served` if local-repos.json says it is exactly the
    published snapshot `current`, else by an aptly search (the repo created if missing)."""
    if current and served and store.load_synced(cfg).get(dist) == current:
        return served
    held = repo_packages(cfg, f"appdeb-{dist}")
    if held is None:
        aptly(cfg, "repo", "create", f"-distribution={dist}", f"-component={comp}", f"appdeb-{dist}")
    return held or {}


def _immutable_split(cfg: RepoConfig, held: dict[PackageRef, str], debs: list[_Deb]
                     ) -> tuple[list[_Deb], list[str]]:
    """(debs to add, keys already present); any same-version-other-bytes is fatal, before changes.

    The ledger knows every version ever published for the release each .deb was built for, whatever
    the distribution (written before a version is added); the local repo's own packages are checked
    too, so a repository whose ledger missed one still refuses other bytes for it.
    """
    yanked, in_repo = store.load_yanked(cfg), {ref.key for ref in held}
    ledgers = {suite: store.load_ledger(cfg, suite) for suite in {d.suite for d in debs}}
    for known in ledgers.values():
        for ref, sha in held.items():
            known.setdefault(ref.key, sha)
    new: dict[str, _Deb] = {}
    present: list[str] = []
    clashes: list[str] = []
    for deb in debs:
        key = deb.ref.key
        seen = ledgers[deb.suite].get(key) or (new[key].sha256 if key in new else None)
        if key in yanked:
            clashes.append(f"{deb.path}: version {deb.ref.version} of {deb.ref.name} ({deb.ref.arch}) was yanked "
                           f"({yanked[key]}) and is never published again — bump the build number")
        elif seen is not None and seen != deb.sha256:
            clashes.append(f"{deb.path}: version {deb.ref.version} of {deb.ref.name} ({deb.ref.arch}) "
                           "already published with different contents; versions are immutable — "
                           "bump the build number")
        elif key in in_repo:
            present.append(key)
        else:
            new[key] = deb
    clashes += pool.clashes(ledgers, [(d.ref, d.suite, str(d.path)) for d in new.values()])
    if clashes:
        raise AppdebError("\n".join(clashes))
    return list(new.values()), sorted(set(present))


def _expired(refs: set[PackageRef], keep: int) -> set[PackageRef]:
    """All but the `keep` highest Debian versions of each package/arch (0 keeps all): retention."""
    if keep <= 0:
        return set()
    groups: dict[tuple[str, str], list[PackageRef]] = {}
    for ref in refs:
        groups.setdefault((ref.name, ref.arch), []).append(ref)
    full = [refs for refs in groups.values() if len(refs) > keep]  # Version() is slow: sort only these
    return {r for refs in full for r in sorted(refs, key=lambda r: Version(r.version))[:-keep]}


def _stage(staging: Path, debs: Sequence[Path]) -> list[_Deb]:
    """Each .deb copied once into `staging` (root's, mode 0700) and read from there only.

    The suite check, the ledger's sha256 and the pool all take the copy's bytes: a caller who
    rewrites its file meanwhile cannot get other bytes published than those checked.
    """
    staged = []
    for n, path in enumerate(debs):
        (staging / "in" / str(n)).mkdir(parents=True)
        copy = staging / "in" / str(n) / Path(path).name
        try:
            shutil.copyfile(path, copy)
        except OSError as exc:
            raise AppdebError(f"{path}: cannot read it ({exc.strerror})") from None
        staged.append(_read_deb(Path(path), copy))
    return staged


def _changes(staging: Path, repo: str, new: list[_Deb], old: set[PackageRef]) -> list[list[str]]:
    """aptly commands adding `new` (the staged copies, under their pool names) and removing `old`."""
    (staging / "add").mkdir()
    for deb in new:
        deb.copy.replace(staging / "add" / deb.filename())
    add = [["repo", "add", repo, str(staging / "add")]] if new else []
    return add + ([["repo", "remove", repo, *sorted(r.key for r in old)]] if old else [])


def publish(cfg: RepoConfig, debs: Sequence[Path], distribution: str | None = None, component: str | None = None,
            keep: int | None = None) -> PublishResult:
    """Add .debs, apply retention, snapshot and publish signed; a no-op if nothing changed.

    The state comes from what the last publish left (aptly.read_state), the local repo's packages
    from the published Packages index (_held); the changes (add, remove, snapshot, signed switch)
    then run in one aptly process.
    """
    with tempfile.TemporaryDirectory(prefix=".incoming-", dir=cfg.root) as tmp:
        staging = Path(tmp)
        incoming = _stage(staging, debs)
        dist = publish_distribution(cfg.distribution, {d.copy: d.built for d in incoming}, distribution)
        comp = component or cfg.component
        check_name(dist)
        check_name(comp)
        if foreign := sorted({d.ref.arch for d in incoming} - {"all", *cfg.architectures}):
            raise AppdebError(f"architecture {', '.join(foreign)} is not published by this repository "
                              f"({', '.join(cfg.architectures)}); see architectures in settings.json")
        with locked(cfg.root):
            return _publish_locked(cfg, staging, incoming, dist, comp, cfg.keep if keep is None else keep)


def _publish_locked(cfg: RepoConfig, staging: Path, incoming: list[_Deb], dist: str, comp: str, keep: int
                    ) -> PublishResult:
    state = read_state(cfg, dist)
    current = state.published.get(dist)
    if current and current[1] != comp:
        raise AppdebError(f"{dist} is published with component {current[1]}, not {comp}")
    served = served_packages(cfg, dist, comp) if current else {}
    held = _held(cfg, dist, comp, current[0] if current else None, served)
    new, present = _immutable_split(cfg, held, incoming)
    grown = set(held) | {d.ref for d in new}
    old = _expired(grown, keep)
    changes = _changes(staging, f"appdeb-{dist}", new, old)
    before, after = set(served), grown - old
    # written ahead: a version is taken with these bytes before any node can see it
    _save_ledgers(cfg, dist, held, new)
    if after == before and (current or not after):
        if changes:
            task(cfg, changes)  # the local repo catches up with what is served
            store.save_synced(cfg, dist, current[0] if current else None)
        return PublishResult(dist, None, unchanged=present)
    snap = snapshot_name(dist)
    store.save_synced(cfg, dist, snap)  # trusted only once `snap` is what is published
    names = [*state.snapshots, snap]
    unclean = dict(state.unclean or {})
    clean = state.unclean is None or unclean.get(comp, 0) + 1 >= POOL_CLEANUP_EVERY
    switch(cfg, dist, comp, snap, first=current is None, cleanup=clean,
           before=[*changes, ["snapshot", "create", snap, "from", "repo", f"appdeb-{dist}"]])
    unclean[comp] = 0 if clean else unclean.get(comp, 0) + 1
    entry = record(cfg, "publish", dist, snap, current[0] if current else None, *diff(before, after))
    now = {**state.published, dist: (snap, comp)}
    dropped = set(prune_snapshots(cfg, dist, {s for s, _ in now.values()}, names))
    remember_state(cfg, now, [n for n in [*state.every, snap] if n not in dropped], unclean)
    return PublishResult(dist, snap, entry.added, entry.removed, present)


def _save_ledgers(cfg: RepoConfig, dist: str, held: dict[PackageRef, str], new: list[_Deb]) -> None:
    """Each new version into its release's ledger; the repo's own packages into the distribution's
    release's (a release-less distribution's packages were recorded when they were published)."""
    scopes: dict[str, dict[str, str]] = {}
    if own := store.ledger_scope(dist):
        scopes[own] = {r.key: sha for r, sha in held.items()}
    for deb in new:
        scopes.setdefault(deb.suite, {})[deb.ref.key] = deb.sha256
    for scope, added in scopes.items():
        store.save_ledger(cfg, scope, added)


def rollback(cfg: RepoConfig, to: str | None = None, distribution: str | None = None) -> HistoryEntry:
    """Switch the distribution atomically to the previous (or named) snapshot.

    The local repo is then reset to that snapshot, so the next publish builds on
    exactly what nodes now see (rolled-back versions stay in the immutability ledger).
    """
    dist = distribution or cfg.distribution
    with locked(cfg.root):
        current = published(cfg).get(dist)
        if current is None:
            raise AppdebError(f"nothing is published for {dist}")
        names = snapshots(cfg, dist)
        target = to or _previous(cfg, dist, current[0], names)
        if target is None or target not in names:
            wanted = to or f"before {current[0]}"
            raise AppdebError(f"no snapshot {wanted} for {dist}; have: {', '.join(names) or 'none'}")
        if target == current[0]:
            raise AppdebError(f"{target} is already published")
        before, after = set(search(cfg, "snapshot", current[0])), set(search(cfg, "snapshot", target))
        refuse_yanked(cfg, target, after)
        targets = search(cfg, "snapshot", target, value=f'{{{{index . "{TARGET_FIELD}"}}}}')
        check_rollback({f"{r.name} {r.version}": t for r, t in targets.items()}, target, dist)
        switch(cfg, dist, current[1], target, first=False)
        reset_repo(cfg, dist, current[1], target)
        return record(cfg, "rollback", dist, target, current[0], *diff(before, after))


def _previous(cfg: RepoConfig, dist: str, current: str, names: list[str]) -> str | None:
    """What was published before `current` was published: undo the last publish (promote, yank).

    Taken from history (so after rollback-then-publish it skips the rolled-back
    snapshot); by name order only if history does not know `current`.
    """
    for entry in reversed(store.history(cfg, dist)):
        if entry.action in ("publish", "promote", "yank") and entry.snapshot == current:
            return entry.previous
    older = [n for n in names if n < current]
    return older[-1] if older else None


