"""Wheel platform tags: which glibc a vendored tree's binary wheels need (the package's libc6 floor).

Apart from vendoring because it reads a finished tree and decides a Debian relation, nothing more.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path

from appdeb.errors import AppdebError

GLIBC_MINOR = 36  # Debian 12's glibc: development trees' default (builds pass their target's), and the
# fallback for a linux_* wheel built where libc_ver() says nothing


def wheel_tags(lib: Path) -> dict[str, list[str]]:
    """The platform tags of each binary wheel in lib (its *.dist-info/WHEEL `Tag:` lines), by dist-info."""
    tags: dict[str, list[str]] = {}
    for wheel in sorted(lib.glob("*.dist-info/WHEEL")):
        text = wheel.read_text(encoding="utf-8", errors="replace")
        if "Root-Is-Purelib: false" in text:
            tags[wheel.parent.name] = [line.split(":", 1)[1].strip().rsplit("-", 1)[-1]
                                       for line in text.splitlines() if line.startswith("Tag:")]
    return tags


def glibc_needed(lib: Path) -> str:
    """The glibc version the vendored binaries need, for the package's `libc6 (>= X)`.

    A wheel's manylinux tags each promise it runs on that glibc and newer, so a wheel needs the
    oldest glibc among its tags and the package the newest of those. A wheel built on this machine
    (linux_*) needs this machine's glibc. Wheels for musl libc never run on Debian: refused.
    """
    needed = ""
    for dist, platforms in wheel_tags(lib).items():
        versions = [v for v in (glibc_of_tag(p) for p in platforms for p in p.split(".")) if v]
        if not versions:
            if any(p.startswith("musllinux") for p in platforms):
                raise AppdebError(f"{dist}: a wheel for musl libc ({', '.join(platforms)}); Debian's libc is "
                                  "glibc: use a manylinux wheel or build this one from source")
            continue
        wheel_needs = min(versions, key=_version_key)
        needed = max((needed, wheel_needs), key=_version_key) if needed else wheel_needs
    return needed


MANYLINUX_RE = re.compile(r"manylinux_([0-9]{1,3})_([0-9]{1,3})_", re.ASCII)
LEGACY_MANYLINUX = {"manylinux1": "2.5", "manylinux2010": "2.12", "manylinux2014": "2.17"}


def glibc_of_tag(platform_tag: str) -> str:
    """The glibc a wheel platform tag promises to run on: manylinux_2_17_x86_64 → 2.17; "" if none."""
    if platform_tag.startswith("manylinux_"):  # a malformed tag (manylinux_x) promises nothing
        found = MANYLINUX_RE.match(platform_tag)
        return f"{int(found[1])}.{int(found[2])}" if found else ""
    if platform_tag.startswith("linux_"):
        return platform.libc_ver()[1] or f"2.{GLIBC_MINOR}"
    return LEGACY_MANYLINUX.get(platform_tag.split("_", 1)[0], "")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))
