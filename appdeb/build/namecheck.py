"""Is a package name also in the build host's apt sources (most likely Debian's archive)?

An app named like an archive package (the example `hello` is GNU hello) is replaced by
the archive's version on a node's `apt-get upgrade` whenever that version is higher,
unless the node has the repository's pin (`appdeb repo client-config`). Saying so at
build time is cheap; renaming after nodes run the app is not.
"""

from __future__ import annotations

from appdeb.errors import AppdebError
from appdeb.runner import run, which

# apt-cache loads the whole package cache; where no pkgcache.bin is kept (Docker images)
# that takes about a second. Beyond a few seconds something is wrong: give up quietly.
_TIMEOUT = 10.0


def in_apt_sources(name: str) -> bool:
    """True if this machine's apt cache has a real package `name`.

    A missing apt-cache (not a Debian host), a failure or a timeout mean "don't know",
    which is no reason to fail or to warn: the check is advice, not a gate.
    """
    if which("apt-cache") is None:
        return False
    try:
        proc = run(["apt-cache", "show", "--no-all-versions", name], check=False, timeout=_TIMEOUT)
    except AppdebError:
        return False
    return proc.returncode == 0 and f"Package: {name}" in proc.stdout.splitlines()


def name_warnings(package: str) -> list[str]:
    """Warnings about the package name, for `appdeb build` to print (empty if none apply)."""
    if not in_apt_sources(package):
        return []
    return [
        f"{package!r} is also a package in this machine's apt sources (Debian's archive?): nodes will "
        "prefer this repository's version only with the client configuration's pin "
        "(appdeb repo client-config); consider another name or an --instance"
    ]
