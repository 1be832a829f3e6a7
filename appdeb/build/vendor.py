"""vendor: install the app's Python requirements for the target Python into a content-keyed cache.

The cache key covers everything that decides the result, so a warm build copies a finished
tree instead of resolving again; the installer keeps its own wheel cache under the same root.
uv is the installer when it is there; otherwise pip (Debian's python3-pip, for the packaged
appdeb) makes the same tree from wheels, asked for the same target as uv's --python-platform.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import json
import os
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from appdeb.build.installers import pip_argv, python_platform, uv_argv
from appdeb.build.requirements import absolute, included_files, normalize, pins
from appdeb.build.wheeltags import GLIBC_MINOR, glibc_needed  # GLIBC_MINOR: development trees' default
from appdeb.errors import AppdebError, CommandError
from appdeb.files import sha256_of, walk
from appdeb.runner import run, which

RECIPE = "vendor-5"  # bump when the way trees are made changes
TOOLS = ("uv", "pip")
TOOL_ENV = "APPDEB_VENDOR_TOOL"  # uv | pip; unset: uv when installed, else pip
INSTALL_ENV = {"UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never", "PIP_NO_INPUT": "1"}


@dataclass(frozen=True)
class VendorResult:
    """A finished library tree in the cache and what it contains."""

    lib: Path
    key: str
    dists: tuple[str, ...]  # name==version
    binary_dists: tuple[str, ...]  # those whose wheels are not pure Python
    glibc: str = ""  # the oldest glibc every binary wheel runs on (e.g. "2.17"); "" for pure Python
    tree: str = ""  # the finished tree's content digest: what the packaged segment made from it is keyed on


def cache_root() -> Path:
    base = os.environ.get("APPDEB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "appdeb")
    return Path(base)


def installer() -> tuple[str, str]:
    """(tool, program): uv when installed (or forced with APPDEB_VENDOR_TOOL=uv), else pip."""
    forced = os.environ.get(TOOL_ENV, "")
    if forced and forced not in TOOLS:
        raise AppdebError(f"{TOOL_ENV}={forced!r}: allowed values are {', '.join(TOOLS)}")
    uv = which("uv") or str(Path(sys.executable).with_name("uv"))
    if forced != "pip" and Path(uv).exists():
        return "uv", uv
    if forced == "uv":
        raise AppdebError(f"{TOOL_ENV}=uv, but uv is not installed (pip install uv)")
    if importlib.util.find_spec("pip") is None:
        raise AppdebError("uv or pip is needed to vendor Python requirements "
                          "(pip install uv, or apt-get install python3-pip)")
    return "pip", sys.executable


def cache_key(requirements: tuple[str, ...], python_version: str, app_dir: Path, tool: str = "uv",
              glibc_minor: int = GLIBC_MINOR) -> str:
    h = hashlib.sha256()
    for part in (RECIPE, tool, python_version, python_platform(glibc_minor), *requirements):
        h.update(part.encode() + b"\0")
    for req in requirements:  # a local path requirement changes with its content
        if req.startswith((".", "/")) and (app_dir / req).exists():
            h.update(_tree_digest(app_dir / req).encode())
    for inc in included_files(app_dir, requirements):  # and so does a file pulled in by -r/-c
        if (app_dir / inc.path).is_file():
            h.update(inc.path.encode() + b"\0" + (app_dir / inc.path).read_bytes())
    return h.hexdigest()[:32]


def _tree_digest(path: Path) -> str:
    """A local requirement's content: a file's name and bytes, or a directory's tree (content_digest)."""
    return f"{path.name}:{sha256_of(path)}" if path.is_file() else content_digest(path)


def content_digest(root: Path) -> str:
    """What a tree holds (paths, executable bits, link targets, bytes), computed once when it is made:
    the requirement lines name a tree, but a tree made again from the same lines may differ (a new
    release of an unpinned library), and a package segment cached from the old one must not be reused."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue  # a FIFO or socket has no content (and reading a FIFO would never end)
            h.update(os.path.relpath(path, root).encode(errors="surrogateescape") + b"\0")
            if stat.S_ISLNK(st.st_mode):
                h.update(b"l" + os.readlink(path).encode(errors="surrogateescape") + b"\0")
            else:
                h.update((b"x" if st.st_mode & 0o111 else b"f") + bytes.fromhex(sha256_of(Path(path))))
    return h.hexdigest()[:32]


def vendor(requirements: tuple[str, ...], python_version: str, app_dir: Path,
           glibc_minor: int = GLIBC_MINOR) -> VendorResult:
    """Return the cached tree for these requirements, building it first if needed.

    The tree is for the target's python and glibc, not this interpreter's: a Debian 12 machine builds
    for Debian 13 by fetching cp313 / manylinux_2_41 wheels, and nothing is byte-compiled here.
    """
    tool, program = installer() if requirements else ("uv", "")
    key = cache_key(requirements, python_version, app_dir, tool, glibc_minor)
    dest = cache_root() / "vendor" / key
    meta = dest / "meta.json"
    if meta.is_file():
        data = json.loads(meta.read_text())
        return VendorResult(dest / "lib", key, tuple(data["dists"]), tuple(data["binary"]), data["glibc"],
                            data["tree"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=dest.parent))
    try:
        lib = tmp / "lib"
        lib.mkdir()
        if requirements:
            _install(requirements, (python_version, glibc_minor), app_dir, lib, tmp, (tool, program))
        dists, binary = _inspect(lib)
        meta_data = {"dists": dists, "binary": binary, "glibc": glibc_needed(lib), "tree": content_digest(lib)}
        (tmp / "meta.json").write_text(json.dumps(meta_data, indent=1))
        try:
            tmp.rename(dest)
        except OSError:  # another build finished the same key first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return vendor(requirements, python_version, app_dir, glibc_minor)


def _install(requirements: tuple[str, ...], where: tuple[str, int], app_dir: Path, lib: Path, tmp: Path,
             tool: tuple[str, str]) -> None:
    """where: (python version, glibc minor) of the target."""
    reqfile = tmp / "requirements.txt"
    reqfile.write_text("\n".join(absolute(requirements, app_dir)) + "\n")
    argv = (uv_argv(tool[1], *where, cache_root() / "uv") if tool[0] == "uv"
            else pip_argv(tool[1], *where, cache_root() / "pip"))
    argv += ["--target", str(lib), "-r", str(reqfile)]
    try:
        if not _installed_offline(argv, tool[0], requirements, app_dir, lib):
            run(argv, cwd=app_dir, env=INSTALL_ENV)
    except CommandError as exc:
        hint = (f"\n(appdeb installs wheels only, for {python_platform(where[1])}: it builds nothing from source as "
                "root; a requirement without such a wheel needs one built in CI and named in the app)")
        raise AppdebError(f"could not install the Python requirements:\n{exc.output.strip()}{hint}") from None
    tidy(lib)


def _installed_offline(argv: list[str], tool: str, requirements: tuple[str, ...], app_dir: Path,
                       lib: Path) -> bool:
    """Install from uv's cache alone when every requirement is an exact pin: a warm build never waits
    for the index (a stalled one would stall it). Kept only when every installed distribution is one
    the requirements pin, so the tree is the one the index would give; otherwise (a wheel not cached,
    a dependency left open) lib is emptied again and the caller asks the index, ~0.2 s later."""
    wanted = pins(app_dir, requirements) if tool == "uv" else None
    if not wanted:
        return False
    if run([*argv, "--offline"], cwd=app_dir, env=INSTALL_ENV, check=False).returncode == 0:
        got = {normalize(name): version for name, _, version in (d.partition("==") for d in _inspect(lib)[0])}
        if all(wanted.get(name) == version for name, version in got.items()):
            return True
    shutil.rmtree(lib)
    lib.mkdir()
    return False


def tidy(lib: Path) -> None:
    """Leave only what the node uses, the same whichever installer ran (uv's and pip's trees differ
    only in bookkeeping): console scripts carry the build interpreter's path (the runtime starts
    everything via python3 -m), direct_url.json records build-machine paths, REQUESTED and uv's
    .lock describe the build, INSTALLER names the tool; each RECORD then lists exactly what ships."""
    shutil.rmtree(lib / "bin", ignore_errors=True)
    (lib / ".lock").unlink(missing_ok=True)
    for source in compiled_catalog_sources(lib):
        source.unlink()
    for info in sorted(lib.glob("*.dist-info")):
        for name in ("direct_url.json", "REQUESTED"):
            (info / name).unlink(missing_ok=True)
        (info / "INSTALLER").write_text("appdeb\n")
        if (info / "RECORD").is_file():
            _rewrite_record(lib, info / "RECORD")


def compiled_catalog_sources(lib: Path) -> list[Path]:
    """gettext catalogs' sources (LC_MESSAGES/NAME.po) beside their compiled catalog (NAME.mo): gettext
    reads only the .mo, so the .po is a file every node unpacks for nothing (Django: 1,200 of them,
    an eighth of a big app's files; dpkg's cost is per file). A .po without its .mo stays."""
    found = []
    for dirpath, dirnames, filenames in walk(lib):
        dirnames.sort()
        if os.path.basename(dirpath) != "LC_MESSAGES":
            continue
        for name in sorted(filenames):
            path = Path(dirpath) / name
            mo = path.with_suffix(".mo")
            if name.endswith(".po") and not path.is_symlink() and path.is_file() and mo.is_file() \
                    and not mo.is_symlink():
                found.append(path)
    return found


def _rewrite_record(lib: Path, record: Path) -> None:
    """RECORD rows for the files that are still there (rehashed where tidy changed them), sorted."""
    rows = {}
    for row in csv.reader(io.StringIO(record.read_text(encoding="utf-8"))):
        if not row:
            continue
        path = os.path.normpath(row[0])
        if path.startswith("..") or path == os.path.relpath(record, lib) or not (lib / path).is_file():
            continue
        rows[path] = row[1:3] if len(row) >= 3 else ["", ""]
    for path in rows:
        if path.endswith(".dist-info/INSTALLER"):
            data = (lib / path).read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows[path] = [f"sha256={digest}", str(len(data))]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows([path, *rows[path]] for path in sorted(rows))
    writer.writerow([os.path.relpath(record, lib), "", ""])
    record.write_text(out.getvalue(), encoding="utf-8")


def _inspect(lib: Path) -> tuple[list[str], list[str]]:
    dists, binary = [], []
    for info in sorted(lib.glob("*.dist-info")):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        dists.append(f"{name}=={version}")
        wheel = info / "WHEEL"
        if wheel.is_file() and "Root-Is-Purelib: false" in wheel.read_text():
            binary.append(f"{name}=={version}")
    return dists, binary
