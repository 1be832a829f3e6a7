"""How vendoring calls its installer (uv or pip) for a target: its tags, wheels only, and whose configuration.

vendor.py decides what to install and caches the result; this module only says how each tool is asked.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import sys
from pathlib import Path

from appdeb.build.wheeltags import GLIBC_MINOR
from appdeb.errors import AppdebError
from appdeb.runner import run


def python_platform(glibc_minor: int = GLIBC_MINOR) -> str:
    """The wheel platform of a node of this machine's architecture with that glibc (the target's)."""
    return f"{platform.machine()}-manylinux_2_{glibc_minor}"


def pip_platforms(glibc_minor: int = GLIBC_MINOR) -> list[str]:
    """python_platform() as pip's --platform values: pip takes tags literally, so every manylinux tag
    such a node accepts is named, newest first (pip prefers earlier ones, as uv prefers newer)."""
    arch = platform.machine()
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc_minor, 4, -1)]
    return [*tags, f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]


@functools.cache
def uv_glibc(uv: str, glibc_minor: int) -> int:
    """The newest manylinux glibc this uv can name, up to the target's: a uv older than the release (it
    knows manylinux_2_40, Debian 13 has 2.41) then picks among every wheel it can name, all of which run."""
    try:
        helptext = run([uv, "pip", "install", "--help"], timeout=60).stdout
    except (AppdebError, OSError):
        return glibc_minor
    known = {int(m) for m in re.findall(rf"{re.escape(platform.machine())}-manylinux_2_(\d+)", helptext)}
    fitting = [m for m in known if m <= glibc_minor]
    return max(fitting) if fitting else glibc_minor


def uv_argv(uv: str, python_version: str, glibc_minor: int, cache: Path) -> list[str]:
    """uv for the target: wheels only (--no-build: vendoring runs as root, and a build backend is code of the
    requirement's choosing), the machine's configuration, not the app's (uv_config)."""
    return [uv, "pip", "install", "--quiet", "--python", sys.executable, "--python-version", python_version,
            "--python-platform", python_platform(uv_glibc(uv, glibc_minor)), "--link-mode", "copy", "--no-compile",
            "--no-build", *uv_config(), "--cache-dir", str(cache)]


def uv_config() -> list[str]:
    """The machine's uv.toml, never one of the app's: uv reads a uv.toml or pyproject.toml [tool.uv] found in
    its working directory (the app's) and above, where an index or find-links could name files outside the
    app for root to read into the package. --config-file stops that search and reads only the file given:
    the user's (XDG_CONFIG_HOME), else the system's (XDG_CONFIG_DIRS, /etc); none: no file at all."""
    if os.environ.get("UV_CONFIG_FILE") or os.environ.get("UV_NO_CONFIG"):
        return []  # the operator chose already, with the same effect on discovery
    user = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    dirs = [Path(d) for d in (os.environ.get("XDG_CONFIG_DIRS") or "").split(":") if d.startswith("/")]
    for candidate in (user, *dirs, Path("/etc")):
        if (candidate / "uv" / "uv.toml").is_file():
            return ["--config-file", str(candidate / "uv" / "uv.toml")]
    return ["--no-config"]


def pip_argv(python: str, python_version: str, glibc_minor: int, cache: Path) -> list[str]:
    """pip for the target, not for this interpreter: wheels only (pip cannot build an sdist for another
    platform), the node's tags, no byte-code; the index is whatever pip's configuration says."""
    abi = "cp" + python_version.replace(".", "")
    platforms = [arg for tag in pip_platforms(glibc_minor) for arg in ("--platform", tag)]
    return [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-script-location",
            "--only-binary=:all:", *platforms, "--python-version", python_version, "--implementation", "cp",
            "--abi", abi, "--no-compile", "--cache-dir", str(cache)]
