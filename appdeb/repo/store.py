"""The repository's own records beside aptly's: the writers' lock, the history and the version ledger.

History (history.jsonl) is append-only JSON lines, cheap and crash-tolerant; the ledger
(ledger.json) remembers the bytes of every version ever published (per Debian release), so a version
stays immutable even after retention removed it; yanked.json remembers the versions withdrawn by `repo yank`, which
never come back. All live in the repository root, written atomically or appended.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _string  # what json.dumps writes a str as
from pathlib import Path
from typing import TYPE_CHECKING

from appdeb import files
from appdeb.files import write_atomic
from appdeb.repo import signing
from appdeb.repo.dists import suite_of

if TYPE_CHECKING:
    from appdeb.repo.config import RepoConfig


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Serialise writers: two publishes must not interleave snapshot and switch.

    Every writer signs (or reads the key) under this lock, and gpg starts a gpg-agent daemon for
    the repository's gnupg home that would otherwise outlive the command, one per root. It is
    stopped here, while the lock is still held, so no other writer is signing through it.
    """
    with files.locked(root / ".lock"):
        try:
            yield
        finally:
            signing.stop_agent(root / "gnupg")


@dataclass(frozen=True)
class HistoryEntry:
    """One line of ROOT/history.jsonl: a publish, rollback, promote or yank of one distribution."""

    time: str
    action: str
    distribution: str
    snapshot: str
    previous: str | None
    added: list[str]
    removed: list[str]


def record(cfg: RepoConfig, action: str, dist: str, snap: str, prev: str | None,
           added: list[str], removed: list[str]) -> HistoryEntry:
    """Append to ROOT/history.jsonl (append-only JSON lines: cheap and crash-tolerant)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    entry = HistoryEntry(now, action, dist, snap, prev, added, removed)
    with (cfg.root / "history.jsonl").open("a") as fh:
        fh.write(json.dumps(asdict(entry)) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return entry


def load_ledger(cfg: RepoConfig, scope: str) -> dict[str, str]:
    """Every name_version_arch ever published in `scope` -> sha256; survives retention and db cleanup.

    A scope is the Debian release a package was built for (its Appdeb-Target; "" for a package that
    names none), whatever distribution it goes to: a debian-12 and a debian-13 build of one version
    are different bytes under one name, and each release's nodes only ever see their own, while one
    release's build of a version has one content in every distribution (`bookworm`, `prod`). Entries
    of a ledger written before scopes (a flat mapping) bind every scope, as they did then.
    """
    scopes = _ledger(cfg)
    return {**scopes.get(_ANY, {}), **scopes.get(scope, {})}


_ANY = "*"  # the scope of entries from before scopes: they bind every release


def _ledger(cfg: RepoConfig) -> dict[str, dict[str, str]]:
    path = cfg.root / "ledger.json"
    data = json.loads(path.read_text()) if path.exists() else {"scopes": {}}
    if "scopes" not in data:  # a flat ledger: a package key always holds `_`, `scopes` does not
        return {_ANY: dict(data)}
    return {scope: dict(keys) for scope, keys in data["scopes"].items()}


def save_ledger(cfg: RepoConfig, scope: str, added: dict[str, str]) -> None:
    """Remember published versions' bytes in `scope`, so versions stay immutable forever (never overwritten)."""
    scopes = _ledger(cfg)
    known = {**scopes.get(_ANY, {}), **scopes.get(scope, {})}
    if added.keys() - known.keys():
        scopes[scope] = {**added, **scopes.get(scope, {})}
        write_atomic(cfg.root / "ledger.json", dumps_lines({"scopes": scopes}))


def dumps_lines(value: object) -> str:
    """`json.dumps(value, indent=0)` (one key per line) for dicts of strings, by the C encoder.

    The ledger grows with every version ever published and is rewritten by every publish that adds
    one: the pure-Python encoder json takes for `indent=` cost a publish 20 ms at 1,000 versions.
    """
    if isinstance(value, dict) and value:
        return "{\n" + ",\n".join(f"{_string(k)}: {dumps_lines(v)}" for k, v in value.items()) + "\n}"
    return _string(value) if isinstance(value, str) else json.dumps(value)


def ledger_scope(dist: str) -> str:
    """The scope of the packages a distribution of a release holds (the channels of one release,
    `bookworm` and `bookworm-staging`, share it); "" for a distribution of no release (`prod`), whose
    packages each carry their own release (load_ledger)."""
    return suite_of(dist) or ""


def load_synced(cfg: RepoConfig) -> dict[str, str]:
    """distribution -> the snapshot its local repo `appdeb-D` is known to hold exactly (local-repos.json).

    Lets a publish take the local repo's packages from the published index instead of an aptly
    search. Written before a publish changes the repo (naming the snapshot it is about to make
    and switch to: until that is published, the entry names no published snapshot and is not
    trusted) and after a rollback, promotion or yank reset the repo (removed before).
    """
    path = cfg.root / "local-repos.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def save_synced(cfg: RepoConfig, dist: str, snap: str | None) -> None:
    """Record (or with None forget) which snapshot `appdeb-D` equals; see load_synced."""
    synced = load_synced(cfg)
    if snap is None:
        synced.pop(dist, None)
    else:
        synced[dist] = snap
    write_atomic(cfg.root / "local-repos.json", json.dumps(synced, indent=0))


def load_yanked(cfg: RepoConfig) -> dict[str, str]:
    """name_version_arch -> where and when it was yanked ("DIST at TIME"); such versions never return."""
    path = cfg.root / "yanked.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def save_yanked(cfg: RepoConfig, keys: list[str], dist: str) -> None:
    """Remember withdrawn versions, so no publish, promote or rollback serves them again."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    write_atomic(cfg.root / "yanked.json",
                 json.dumps({**load_yanked(cfg), **{k: f"{dist} at {now}" for k in keys}}, indent=0))


def history(cfg: RepoConfig, distribution: str | None = None) -> list[HistoryEntry]:
    """Publishes, rollbacks, promotions and yanks, oldest first; all distributions unless one is named."""
    path = cfg.root / "history.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    entries = [HistoryEntry(**json.loads(line)) for line in lines if line.strip()]
    return [e for e in entries if distribution in (None, e.distribution)]


def removed_since(cfg: RepoConfig, distribution: str, since: str, tail: int = 1 << 18) -> bool:
    """Whether an entry of `distribution` at or after `since` (ISO time) removed packages.

    Only then can dropping a snapshot from that time on leave packages that nothing holds any
    more, i.e. work for `aptly db cleanup`. Reads the end of history.jsonl only (it grows with
    every publish) and answers True when that does not reach back to `since`.
    """
    try:
        with (cfg.root / "history.jsonl").open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - tail))
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return True
    for line in reversed(lines[1:] if size > tail else lines):
        if not line.strip():
            continue
        entry = json.loads(line)
        if entry["time"] < since:
            return False
        if entry["distribution"] == distribution and entry["removed"]:
            return True
    return size > tail
