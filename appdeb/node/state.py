"""Where the harness keeps each node's state on the host, and the checks that keep that place the harness's own."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

from appdeb.errors import AppdebError

NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,30}")


def nodes_dir() -> Path:
    """Where node state lives: on disk (not the repo), so a leftover node is findable after a crash.

    It sits in a world-writable parent (/var/tmp), so it must be ours: a directory another user made
    first could plant node state (addresses, pid files) that root then acts on.
    """
    path = Path(os.environ.get("APPDEB_NODE_DIR", "/var/tmp/appdeb-nodes"))
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise AppdebError(f"{path} is not a directory of this user's that only it can write; "
                          "remove it (or set APPDEB_NODE_DIR) and try again")
    return path


def state_dir(name: str) -> Path:
    """Validate the name (it ends up in paths, cgroups and --machine) and map it to its dir."""
    if not NAME_RE.fullmatch(name):
        raise AppdebError(f"invalid node name {name!r}: use [a-z0-9][a-z0-9-]{{0,30}}")
    return nodes_dir() / name
