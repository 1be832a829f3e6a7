"""Is a package name also in the build host's apt sources (most likely Debian's archive)?

An app named like an archive package (the example `hello` is GNU hello) is replaced by
the archive's version on a node's `apt-get upgrade` whenever that version is higher,
unless the node has the repository's pin (`appdeb repo client-config`). Saying so at
build time is cheap; renaming after nodes run the app is not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from appdeb.errors import AppdebError
from appdeb.runner import run, which

# apt-cache loads the whole package cache; where no pkgcache.bin is kept (Docker images)
# that takes about a second. Beyond a few seconds something is wrong: give up quietly.
_TIMEOUT = 10.0
# What apt-cache's answer depends on: `apt-get update` renames files into the lists directory, and
# an admin's source changes touch these (a directory's mtime moves when an entry is added or renamed).
APT_STATE = ("/var/lib/apt/lists", "/etc/apt/sources.list", "/etc/apt/sources.list.d")


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


def apt_state() -> str:
    """The mtimes and sizes of APT_STATE: when they are unchanged, so is apt-cache's answer."""
    parts = []
    for path in APT_STATE:
        try:
            st = os.stat(path)
            parts.append(f"{path}:{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            parts.append(f"{path}:-")
    return "\n".join(parts)


def remembered(name: str, cache: Path) -> bool:
    """in_apt_sources, answered from cache/namecheck.json while the apt state it was asked in holds
    (apt-cache takes about a second where no pkgcache.bin is kept: most of a warm build of a small app)."""
    state, file = apt_state(), cache / "namecheck.json"
    try:
        data = json.loads(file.read_text())
        answers: dict[str, bool] = data["answers"] if data["state"] == state else {}
    except (OSError, ValueError, KeyError, TypeError):
        answers = {}
    if name in answers:
        return bool(answers[name])
    answers[name] = in_apt_sources(name)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".namecheck.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"state": state, "answers": answers}))
        os.replace(tmp, file)
    except OSError:
        pass
    return answers[name]


def name_warnings(package: str, cache: Path | None = None) -> list[str]:
    """Warnings about the package name, for `appdeb build` to print (empty if none apply)."""
    if not (remembered(package, cache) if cache is not None else in_apt_sources(package)):
        return []
    return [
        f"{package!r} is also a package in this machine's apt sources (Debian's archive?): nodes will "
        "prefer this repository's version only with the client configuration's pin "
        "(appdeb repo client-config); consider another name or an --instance"
    ]
