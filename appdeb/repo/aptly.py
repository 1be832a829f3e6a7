"""What the repository holds, as aptly tells it: packages, snapshots, what each distribution serves.

The read side of the repository (publish.py changes it), and the door to aptly: every aptly call
goes through `aptly()` (or `task()`, several commands in one process) with the repository's own
config and keyring, so aptly never falls back to ~/.aptly.conf. Also the published Release files'
mtimes, which HTTP servers turn into Last-Modified.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from debian.debian_support import Version

from appdeb.errors import AppdebError, CommandError
from appdeb.files import write_atomic
from appdeb.repo import signing
from appdeb.repo.config import RepoConfig
from appdeb.runner import run

KEY_FORMAT = "{{.Package}}|{{.Version}}|{{.Architecture}}"  # a PackageRef; then one more field
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


# aptly lives for one command: at Go's default (a collection per 100% heap growth) it spends about a fifth
# of a switch collecting a heap freed at exit anyway; 400% costs some MB. An operator's GOGC/GOMEMLIMIT wins.
GO_ENV = {"GOGC": "400"}


def aptly_env(cfg: RepoConfig) -> dict[str, str]:
    """The environment of every aptly call: the repo keyring, and Go's collector tuned unless set."""
    tuned = {} if {"GOGC", "GOMEMLIMIT"} & set(os.environ) else GO_ENV
    return {**tuned, **signing.gnupg_env(cfg.gnupg_home)}


def aptly(cfg: RepoConfig, *args: str, check: bool = True) -> str:
    """Every aptly call: explicit -config (else aptly writes ~/.aptly.conf) and the repo keyring."""
    argv = ["aptly", f"-config={cfg.conf}", *args]
    proc = run(argv, env=aptly_env(cfg), check=check)
    return proc.stdout


def task(cfg: RepoConfig, commands: Sequence[Sequence[str]]) -> str:
    """Several aptly commands in one process (`aptly task run`): one start and one database open.

    A publish is a handful of commands, each of which costs an aptly start and a read of the
    package database on its own. aptly runs them in order and stops at the first that fails
    (exit 1, the rest skipped), as separate calls would. A trailing comma on an argument ends a
    command, so no argument may end with one (names are checked, paths are ours).
    """
    if len(commands) == 1:
        return aptly(cfg, *commands[0])
    argv: list[str] = []
    for command in commands:
        if not command or any(arg.endswith(",") for arg in command):
            raise AppdebError(f"cannot pass {list(command)} to aptly task run")
        argv += [*command[:-1], command[-1] + ","]
    argv[-1] = argv[-1][:-1]
    return aptly(cfg, "task", "run", *argv)


class State(NamedTuple):
    """What a publish starts from: what is published, the distribution's snapshots, all snapshots, and
    per component the publishes since the last that let aptly clean its public pool (None: unknown)."""

    published: dict[str, tuple[str, str]]
    snapshots: list[str]
    every: list[str]
    unclean: dict[str, int] | None = None


_FIELD = re.compile(r"^(Package|Version|Architecture|SHA256):(.*)$", re.M)
_SECTION = re.compile(r"Begin command output: -+\n(.*?)\nEnd command output: -+", re.S)
STATE_FILE = "aptly-state.json"


def read_state(cfg: RepoConfig, dist: str) -> State:
    """`publish list` and `snapshot list`: as the last publish left them (remember_state) while aptly's
    database is byte for byte what that publish left, else from one aptly process (`task run`)."""
    known = _remembered(cfg)
    if known is None:
        out = aptly(cfg, "task", "run", "publish", "list", "-json,", "snapshot", "list", "-raw")
        sections = _SECTION.findall(out)
        if len(sections) != 2:
            raise AppdebError(f"aptly task run printed no outputs to read:\n{out}")
        known = _published(sections[0]), sections[1].split(), None
    return State(known[0], _of_distribution(" ".join(known[1]), dist), known[1], known[2])


def db_stamp(cfg: RepoConfig) -> list[list[str | int]]:
    """Name, size, mtime (ns) and inode of every file of aptly's database (LevelDB, which appends a
    journal and writes new tables on any change): whether any aptly process changed it since."""
    with os.scandir(cfg.root / "db") as entries:
        return sorted([e.name, st.st_size, st.st_mtime_ns, st.st_ino]
                      for e in entries for st in [e.stat(follow_symlinks=False)])


def remember_state(cfg: RepoConfig, state: dict[str, tuple[str, str]], every: list[str],
                   unclean: dict[str, int]) -> None:
    """After a publish (under the writers' lock): what aptly now publishes, with the database's stamp.

    Saves the next publish an aptly start and a database read (about a fifth of a publish)."""
    text = json.dumps({"db": db_stamp(cfg), "published": state, "snapshots": every, "unclean": unclean})
    write_atomic(cfg.root / STATE_FILE, text)


def _remembered(cfg: RepoConfig) -> tuple[dict[str, tuple[str, str]], list[str], dict[str, int] | None] | None:
    try:
        saved = json.loads((cfg.root / STATE_FILE).read_text())
        if saved["db"] != db_stamp(cfg):
            return None
        published = {d: (s, c) for d, (s, c) in saved["published"].items()}
        return published, list(saved["snapshots"]), {str(c): int(n) for c, n in saved["unclean"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def repo_packages(cfg: RepoConfig, repo: str) -> dict[PackageRef, str] | None:
    """The local repo's packages (-> sha256); None if there is no such repo."""
    try:
        return search(cfg, "repo", repo)
    except CommandError as exc:
        if f"local repo with name {repo} not found" in exc.output:
            return None
        raise


def served_packages(cfg: RepoConfig, dist: str, comp: str) -> dict[PackageRef, str]:
    """What nodes get now (-> sha256), read from the published Packages indexes of `dist`.

    The same as `aptly snapshot search` of the published snapshot gives (arch-all packages are
    listed under every architecture), at the cost of reading a file instead of an aptly run.
    """
    refs: dict[PackageRef, str] = {}
    for index in (cfg.public_dir / "dists" / dist / comp).glob("binary-*/Packages"):
        stanzas = [dict(fields) for fields in _stanzas(_FIELD.findall(index.read_text()))]
        refs.update({PackageRef(f["Package"], f["Version"], f["Architecture"]): f["SHA256"] for f in stanzas})
    return refs


def _stanzas(fields: list[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    """Group (field, value) pairs into stanzas: each starts with its Package field."""
    stanza: list[tuple[str, str]] = []
    for key, value in fields:
        if key == "Package" and stanza:
            yield stanza
            stanza = []
        stanza.append((key, value.strip()))
    if stanza:
        yield stanza


def search(cfg: RepoConfig, kind: str, *args: str, value: str = "{{.SHA256}}") -> dict[PackageRef, str]:
    """Packages (-> sha256, or the control field `value` names) of `aptly {repo|snapshot|package} search`;
    aptly exits 1 on none."""
    argv = ["aptly", f"-config={cfg.conf}", kind, "search", f"-format={KEY_FORMAT}|{value}", *args]
    proc = run(argv, env=aptly_env(cfg), check=False)
    if proc.returncode != 0:
        if "no results" in proc.stdout:
            return {}
        raise CommandError(list(proc.args), proc.returncode, proc.stdout)
    return _found(proc.stdout)


def _found(text: str) -> dict[PackageRef, str]:
    found: dict[PackageRef, str] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) == 4:
            found[PackageRef(*parts[:3])] = parts[3]
    return found


def published(cfg: RepoConfig) -> dict[str, tuple[str, str]]:
    """distribution -> (snapshot, component) for what ROOT/public currently serves."""
    return _published(aptly(cfg, "publish", "list", "-json"))


def _published(text: str) -> dict[str, tuple[str, str]]:
    out: list[dict[str, Any]] = json.loads(text.strip() or "[]")
    return {
        p["Distribution"]: (p["Sources"][0]["Name"], p["Sources"][0]["Component"])
        for p in out
        if p.get("Prefix") == "." and p.get("Sources")
    }


def snapshots(cfg: RepoConfig, distribution: str | None = None) -> list[str]:
    """appdeb's snapshots of one distribution, oldest first (the names sort by time)."""
    return _of_distribution(aptly(cfg, "snapshot", "list", "-raw"), distribution or cfg.distribution)


def _of_distribution(names: str, dist: str) -> list[str]:
    return sorted(n for n in names.split() if re.fullmatch(f"{re.escape(dist)}-{STAMP_RE}", n))


def published_snapshot(cfg: RepoConfig, distribution: str | None = None) -> str | None:
    """The snapshot nodes currently get for the distribution, if it is published."""
    current = published(cfg).get(distribution or cfg.distribution)
    return current[0] if current else None


def list_packages(cfg: RepoConfig, distribution: str | None = None) -> list[PackageRef]:
    """What nodes see: the packages of the published snapshot, by name, arch, version."""
    snap = published_snapshot(cfg, distribution)
    refs = search(cfg, "snapshot", snap) if snap else {}
    return sorted(refs, key=lambda r: (r.name, r.arch, Version(r.version)))


def prepare_switch(public: Path, dist: str) -> float | None:
    """Before a switch: by-hash links rebased and kept (keep_by_hash); InRelease's mtime (None if none yet).

    The mtime is what advance_release_mtime moves the new InRelease past.
    """
    rebase_by_hash_links(public, dist)
    keep_by_hash(public, dist)
    try:
        return (public / "dists" / dist / "InRelease").stat().st_mtime
    except FileNotFoundError:
        return None


def advance_release_mtime(dist_dir: Path, previous: float | None) -> None:
    """Give the new InRelease (and Release, Release.gpg) a later whole second than the previous InRelease.

    HTTP If-Modified-Since has 1 s resolution: a static server (nginx, Apache) would answer 304
    to a node that fetched the previous InRelease in the same second, and the node would keep
    the old indexes. Instead of waiting for the clock (at most one publish a second), the new
    files' mtime is set one second past the previous one when the clock has not got there yet:
    Last-Modified then grows with every publish, ahead of the clock by at most the publishes
    of a burst beyond one a second, which the clock catches up with afterwards.
    """
    if previous is None:
        return
    floor = int(previous) + 1
    for name in ("InRelease", "Release", "Release.gpg"):
        path = dist_dir / name
        stat = path.stat()
        if stat.st_mtime < floor:
            os.utime(path, (stat.st_atime, floor))


def rebase_by_hash_links(public: Path, dist: str) -> None:
    """Point the distribution's by-hash links back into this root's `public` tree.

    aptly links `by-hash/ALGO/Packages` (and `.old`) to the hash-named file by absolute path,
    and on the next publish deletes the `.old` target. In a copied or moved root those paths
    still name the root it came from, whose published files a publish here would delete.
    """
    for link in (public / "dists" / dist).glob("*/*/by-hash/*/*"):
        if link.is_symlink():
            target = Path(os.readlink(link))
            if target.is_absolute() and not target.is_relative_to(public):
                link.unlink()
                link.symlink_to(link.parent / target.name)


BY_HASH_KEPT = 20  # index files per by-hash directory: Packages and Packages.gz of the last ten publishes


def keep_by_hash(public: Path, dist: str) -> None:
    """Keep earlier publishes' by-hash index files for nodes whose update is still fetching them.

    aptly keeps those of the current and the previous publish only: each publish deletes the file
    the `.old` link names, and a node that read InRelease two publishes ago would get 404 for its
    indexes (its update fails). Without `.old` links aptly deletes nothing; the files beyond the
    newest BY_HASH_KEPT of a directory are removed here instead, never one a link names.
    """
    for directory in (public / "dists" / dist).glob("*/*/by-hash/*"):
        named: set[str] = set()
        files: list[tuple[float, Path]] = []
        for path in directory.iterdir():
            if path.is_symlink():
                named.add(Path(os.readlink(path)).name)
                if path.name.endswith(".old"):
                    path.unlink()
            else:
                files.append((path.stat().st_mtime, path))
        for _, path in sorted(files, reverse=True)[BY_HASH_KEPT:]:
            if path.name not in named:
                path.unlink()
