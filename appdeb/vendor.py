"""vendor: install the app's Python requirements for the target Python into a content-keyed cache.

The cache key covers everything that decides the result, so a warm build copies a finished
tree instead of resolving again; uv keeps its own wheel cache under the same root.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import AppdebError, CommandError
from .runner import run, which

RECIPE = "vendor-1"  # bump when the way trees are made changes


@dataclass(frozen=True)
class VendorResult:
    """A finished library tree in the cache and what it contains."""

    lib: Path
    key: str
    dists: tuple[str, ...]  # name==version
    binary_dists: tuple[str, ...]  # those whose wheels are not pure Python


def cache_root() -> Path:
    base = os.environ.get("APPDEB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "appdeb")
    return Path(base)


def python_platform() -> str:
    """The wheel platform of a Debian 12 node of this machine's architecture (glibc 2.36)."""
    return f"{platform.machine()}-manylinux_2_36"


def cache_key(requirements: tuple[str, ...], python_version: str, app_dir: Path) -> str:
    h = hashlib.sha256()
    for part in (RECIPE, python_version, python_platform(), *requirements):
        h.update(part.encode() + b"\0")
    for req in requirements:  # a local path requirement changes with its content
        if req.startswith((".", "/")) and (app_dir / req).exists():
            h.update(_tree_digest(app_dir / req).encode())
    return h.hexdigest()[:32]


def _tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path.parent)).encode() + f.read_bytes())
    return h.hexdigest()


def vendor(requirements: tuple[str, ...], python_version: str, app_dir: Path) -> VendorResult:
    """Return the cached tree for these requirements, building it first if needed."""
    key = cache_key(requirements, python_version, app_dir)
    dest = cache_root() / "vendor" / key
    meta = dest / "meta.json"
    if meta.is_file():
        data = json.loads(meta.read_text())
        return VendorResult(dest / "lib", key, tuple(data["dists"]), tuple(data["binary"]))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=dest.parent))
    try:
        lib = tmp / "lib"
        lib.mkdir()
        if requirements:
            _install(requirements, python_version, app_dir, lib, tmp)
        dists, binary = _inspect(lib)
        (tmp / "meta.json").write_text(json.dumps({"dists": dists, "binary": binary}, indent=1))
        try:
            tmp.rename(dest)
        except OSError:  # another build finished the same key first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return vendor(requirements, python_version, app_dir)


def _install(requirements: tuple[str, ...], python_version: str, app_dir: Path, lib: Path, tmp: Path) -> None:
    reqfile = tmp / "requirements.txt"
    reqfile.write_text("\n".join(requirements) + "\n")
    uv = which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(uv).exists():
        raise AppdebError("uv is needed to vendor Python requirements (pip install uv)")
    argv = [uv, "pip", "install", "--quiet", "--target", str(lib), "--python", sys.executable,
            "--python-version", python_version, "--python-platform", python_platform(),
            "--link-mode", "copy", "--no-compile", "--cache-dir", str(cache_root() / "uv"), "-r", str(reqfile)]
    try:
        run(argv, cwd=app_dir, env={"UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never"})
    except CommandError as exc:
        raise AppdebError(f"could not install the Python requirements:\n{exc.output.strip()}") from None
    # Console scripts carry the build interpreter's path; the runtime starts everything via python3 -m.
    shutil.rmtree(lib / "bin", ignore_errors=True)
    for direct_url in lib.glob("*.dist-info/direct_url.json"):
        direct_url.unlink()  # records build-machine paths, meaningless on the node


def _inspect(lib: Path) -> tuple[list[str], list[str]]:
    dists, binary = [], []
    for info in sorted(lib.glob("*.dist-info")):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        dists.append(f"{name}=={version}")
        wheel = info / "WHEEL"
        if wheel.is_file() and "Root-Is-Purelib: false" in wheel.read_text():
            binary.append(f"{name}=={version}")
    return dists, binary
