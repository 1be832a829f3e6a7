"""dists: which repository distribution a package goes into and a node reads, from its Debian release.

A package built for debian-13 runs on trixie only, so it is published into `trixie` (or, for a
repository whose distributions are channels of one release, `bookworm-staging`, into `trixie-staging`)
and a node's client configuration names its own suite. The release names come from the build targets
(appdeb/build/targets.py); nothing here decides a release of its own.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from appdeb.build.targets import TARGETS
from appdeb.errors import AppdebError
from appdeb.runner import run

FIELD_NAME_RE = re.compile(r"[!-9;-~]+")  # Debian Policy 5.1: printable ASCII but ':' and space

TARGET_FIELD = "Appdeb-Target"  # written by appdeb build in DEBIAN/control


def suite_of(distribution: str) -> str | None:
    """The Debian suite a distribution name is of (`trixie`, `trixie-staging` -> trixie), if any."""
    head = distribution.split("-", 1)[0]
    return head if any(t.suite == head for t in TARGETS.values()) else None


def for_suite(distribution: str, suite: str) -> str:
    """`distribution` moved to `suite`: the same channel of another release (`bookworm-x` -> `trixie-x`)."""
    own = suite_of(distribution)
    return suite + distribution[len(own):] if own else distribution


def deb_control(path: Path) -> dict[str, str]:
    """A .deb's control fields, as dpkg-deb reads them (any member compression dpkg knows).

    A fork of dpkg-deb costs a publish less than importing a Python .deb reader does. Only its standard
    output is read, split at line feeds only (str.splitlines also splits at U+2028 and U+0085, which a
    crafted Description could hold to show other fields than dpkg and aptly see); a line that is neither
    a continuation nor `Name: value`, or a field named twice, makes the .deb unusable.
    """
    proc = run(["dpkg-deb", "--field", str(path)], check=False, stdout_only=True)
    if proc.returncode != 0:
        reason = " ".join((proc.stdout + proc.stderr).split()) or f"dpkg-deb exited {proc.returncode}"
        raise AppdebError(f"{path}: not a usable .deb ({reason})")
    fields: dict[str, str] = {}
    name = ""
    for line in proc.stdout.rstrip("\n").split("\n"):
        if line[:1] in (" ", "\t") and name:
            fields[name] += "\n" + line
            continue
        name, colon, value = line.partition(":")
        if not colon or not FIELD_NAME_RE.fullmatch(name) or name in fields:
            raise AppdebError(f"{path}: not a usable .deb (its control file has the line {line[:80]!r})")
        fields[name] = value.strip()
    return fields


def target_of(name: str | None) -> tuple[str, str] | None:
    """(target, suite) of a control file's Appdeb-Target value (None: built before targets, or unknown)."""
    target = TARGETS.get(name or "")
    return (target.name, target.suite) if target else None


def deb_suite(path: Path) -> tuple[str, str] | None:
    """(target, suite) a .deb was built for, from its control file (None: built before targets)."""
    return target_of(deb_control(path).get(TARGET_FIELD))


def publish_distribution(default: str, debs: Sequence[Path] | dict[Path, tuple[str, str] | None],
                         explicit: str | None) -> str:
    """Where `publish` puts these .debs: --distribution, else the configured one moved to their suite.

    `debs`: paths, or each path's (target, suite) already read. A .deb is never published into another
    release's distribution: a node of that release would be offered a package its python cannot run.
    """
    known = debs if isinstance(debs, dict) else {p: deb_suite(p) for p in debs}
    built = {p: s for p, s in known.items() if s is not None}
    suites = {suite for _, suite in built.values()}
    if explicit:
        dist = explicit
    elif suite_of(default) and len(suites) > 1:
        raise AppdebError("these packages were built for different Debian releases "
                          f"({', '.join(sorted(suites))}): publish each release's packages on its own")
    else:
        dist = for_suite(default, suites.pop()) if suites else default
    wanted = suite_of(dist)
    for path, (target, suite) in built.items():
        if wanted and suite != wanted:
            raise AppdebError(f"{path.name} was built for {target} ({suite}), not for distribution {dist}: "
                              f"publish it into {for_suite(dist, suite)}, or rebuild with --target for {wanted}")
    return dist


def node_suite(root: Path) -> str | None:
    """The suite of the Debian below root (VERSION_CODENAME of its os-release), if it is a target's."""
    for rel in ("etc/os-release", "usr/lib/os-release"):
        text = _small_file(root / rel)
        if text is None:
            continue
        fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        codename = fields.get("VERSION_CODENAME", "").strip().strip('"')
        return codename if suite_of(codename) == codename else None
    return None


def _small_file(path: Path) -> str | None:
    """A regular file's first 64 KiB as text, never through a link (root may be a node's file system,
    where a planted link could point at a host device or FIFO); None for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # missing, or a link (Debian's /etc/os-release is one: usr/lib's is read next)
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read(65536).decode("utf-8", "replace")


def deploy_distribution(default: str, package: str, published: Callable[[str], list[str]]) -> str:
    """The distribution a deploy of PACKAGE follows when none is named: the configured distribution of
    the release the package was published for (published(dist) -> the package names served there)."""
    if suite_of(default) is None:
        return default
    found = [d for d in dict.fromkeys(for_suite(default, t.suite) for t in TARGETS.values()) if package in published(d)]
    if len(found) > 1:
        raise AppdebError(f"{package} is published for several Debian releases ({', '.join(found)}): "
                          "name the hosts' one with --distribution")
    return found[0] if found else default


def _built_elsewhere(targets: dict[str, str], dist: str) -> tuple[str, str, str] | None:
    """The first package (`name version`, target, suite) of `targets` built for another release than dist's.

    targets: package (`name version`) -> its Appdeb-Target ("" for one built before targets).
    """
    wanted = suite_of(dist)
    for package, name in sorted(targets.items()):
        target = TARGETS.get(name)
        if wanted and target is not None and target.suite != wanted:
            return package, target.name, target.suite
    return None


def check_promotion(targets: dict[str, str], source: str, to: str) -> None:
    """Refuse to serve in `to` a package built for another Debian release than to's (as publish does)."""
    if found := _built_elsewhere(targets, to):
        package, target, suite = found
        raise AppdebError(f"{package} in {source} was built for {target} ({suite}), not for "
                          f"distribution {to}: promote it into {for_suite(to, suite)}; nothing was changed")


def check_rollback(targets: dict[str, str], snap: str, dist: str) -> None:
    """Refuse to switch `dist` back to a snapshot holding a package built for another Debian release:
    its nodes would be offered a package their python cannot run (as publish and promote refuse)."""
    if found := _built_elsewhere(targets, dist):
        package, target, suite = found
        raise AppdebError(f"{package} in {snap} was built for {target} ({suite}), not for distribution "
                          f"{dist}: refusing to roll {dist} back to it; nothing was changed")
