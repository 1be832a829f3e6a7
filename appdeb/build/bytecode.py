"""bytecode: byte code compiled at build time, only by an interpreter that gives the node's bytes.

The rule: a build ships byte code only when the build machine runs the target's Debian release and
has its interpreter, /usr/bin/pythonX.Y (X.Y the target's python). That is the program the node runs,
so the bytes are the ones it would compile itself, and every appdeb on that builder (a development
venv on another python, the packaged appdeb on Debian's) compiles with the same interpreter: the
.deb stays byte-identical whichever appdeb built it. Anywhere else (a debian-13 target on a bookworm
builder, a builder that is not Debian) the package ships none and postinst compiles on the node, as
before. The package names the interpreter that compiled it (/opt/PKG/appdeb/bytecode: cache tag,
magic number, mode, program and version), so the output is explained and can be built again.

Byte code is hash-checked (PEP 552): Python compares it with its source's hash on import, so it never
runs for another release's source of the same size and mtime, and it holds no timestamp. Each file is
compiled with PYTHONHASHSEED=0 (constant sets in a fixed order), optimize 0 and the node's path as its
file name, in chunks of a fixed size: the same inputs give the same bytes on any machine of that
release. Symbolic links are never compiled through; a file that does not compile ships without.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from appdeb.build.targets import Target
from appdeb.errors import AppdebError
from appdeb.files import walk
from appdeb.runner import run

MARK = "bytecode"  # in the runtime directory: the package ships byte code, and whose
MODE = "checked-hash"
CHUNK = 250  # source files per compiling process (fixed: the chunks do not depend on the machine)
OS_RELEASE = Path("/etc/os-release")
PROBE = "import importlib.util, sys; print(sys.implementation.cache_tag, importlib.util.MAGIC_NUMBER.hex(), " \
        "sys.version.split()[0])"
COMPILE = """\
import json, py_compile, sys
mode = py_compile.PycInvalidationMode.CHECKED_HASH
for source, cfile, dfile in json.load(sys.stdin):
    try:
        py_compile.compile(source, cfile=cfile, dfile=dfile, doraise=True, optimize=0, invalidation_mode=mode)
    except py_compile.PyCompileError:
        pass  # it ships without byte code, as compileall on the node leaves it
"""
# the compiling interpreter sees none of the builder's PYTHON* settings that could change its output
# (PYTHONNODEBUGRANGES, PYTHONINTMAXSTRDIGITS, …: python reads an empty value as unset); a fixed seed
FIXED = {"PYTHONHASHSEED": "0", "PYTHONPATH": "", "PYTHONOPTIMIZE": "", "PYTHONSTARTUP": "", "PYTHONHOME": ""}


def compile_env() -> dict[str, str]:
    return {**{key: "" for key in os.environ if key.startswith("PYTHON")}, **FIXED}


@dataclass(frozen=True)
class Compiler:
    """The interpreter that compiles a package's byte code."""

    program: str  # /usr/bin/python3.11
    tag: str  # cpython-311: __pycache__/NAME.TAG.pyc
    magic: str  # the byte code format, hex (what postinst compares with the node's python)
    version: str  # 3.11.2
    stamp: str  # the program's file identity, part of every cache key

    def mark(self) -> bytes:
        """The marker file's line: what postinst reads (fields 1-3) and what explains the bytes."""
        return f"{self.tag} {self.magic} {MODE} {self.program} {self.version}\n".encode()


def builder_release() -> tuple[str, str]:
    """The build machine's (ID, VERSION_ID) from os-release ("", "" when unreadable)."""
    try:
        lines = OS_RELEASE.read_text(errors="replace").splitlines()
    except OSError:
        return "", ""
    fields = dict(line.split("=", 1) for line in lines if "=" in line)
    return tuple(fields.get(k, "").strip().strip('"') for k in ("ID", "VERSION_ID"))  # type: ignore[return-value]


def stamp(target: Target) -> str:
    """Cheap (no program runs): the target's Debian interpreter's identity if the rule holds, else ""."""
    if builder_release() != ("debian", target.release):
        return ""
    program = f"/usr/bin/python{target.python}"
    try:
        st = os.stat(program)
    except OSError:
        return ""
    return f"{os.path.realpath(program)}:{st.st_size}:{st.st_mtime_ns}" if st.st_mode & 0o111 else ""


def compiler(target: Target) -> Compiler | None:
    """The interpreter that may compile this target's byte code (None: postinst compiles on the node)."""
    return _probe(f"/usr/bin/python{target.python}", target.python, stamp(target)) if stamp(target) else None


@cache
def _probe(program: str, python: str, identity: str) -> Compiler | None:
    done = run([program, "-s", "-S", "-c", PROBE], env=compile_env(), check=False, cwd=Path("/"))
    parts = done.stdout.split()
    if done.returncode != 0 or len(parts) != 3 or parts[0] != "cpython-" + python.replace(".", ""):
        return None
    return Compiler(program, parts[0], parts[1], parts[2], identity)


def cached_name(package_path: str, tag: str) -> str:
    """Where a source's byte code goes (PEP 3147): dir/__pycache__/NAME.TAG.pyc."""
    folder, _, name = package_path.rpartition("/")
    return f"{folder}/__pycache__/{name[:-3]}.{tag}.pyc"


def in_test_suite(package_path: str, lib: str) -> bool:
    """A library's test suite (a source under a directory named tests): it ships without byte code.
    A running app does not import it, and it is half of numpy's and pandas' byte code (files to
    write at every build and to unpack on every node); imported anyway, it compiles in memory."""
    return "tests" in package_path[len(lib.strip("/")) + 1:].split("/")[:-1]


def is_source(path: Path) -> bool:
    """A regular .py file (never a link: nothing outside the package is read through one)."""
    return path.name.endswith(".py") and len(path.name) > 3 and not path.is_symlink() and path.is_file()


def compile_sources(comp: Compiler, sources: Iterable[tuple[str, Path]], out: Path, strip: str = "",
                    keep: bool = False) -> None:
    """Compile each (package path, file) to out/<its byte code's package path, less `strip`>, 0644.

    The list is ordered by package path and cut into CHUNK-sized runs, compiled side by side. A run's
    output depends only on the interpreter and its sources' paths and bytes (the compiling process is
    the same for the same run), so with keep a run compiled once is kept in appdeb's cache and copied
    after (the libraries' byte code is kept with their segment instead)."""
    jobs = [(str(src), str(out / cached_name(path, comp.tag)[len(strip):]), "/" + path)
            for path, src in sorted(sources, key=lambda s: s[0].split("/"))]
    chunks = [jobs[i:i + CHUNK] for i in range(0, len(jobs), CHUNK)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(lambda chunk: _compile_run(comp, chunk, keep), chunks))
    for _, cfile, _ in jobs:
        if os.path.isfile(cfile):
            os.chmod(cfile, 0o644)


def _compile_run(comp: Compiler, chunk: list[tuple[str, str, str]], keep: bool) -> None:
    if keep:
        _kept_run(comp, chunk)
        return
    _compile(comp, chunk)


def _compile(comp: Compiler, jobs: list[tuple[str, str, str]]) -> None:
    argv = [comp.program, "-s", "-S", "-W", "ignore", "-c", COMPILE]
    done = run(argv, env=compile_env(), input=json.dumps(jobs), check=False, cwd=Path("/"))
    if done.returncode != 0:
        raise AppdebError(f"{comp.program} could not byte-compile: {done.stdout.strip()[-500:]}")


def _kept_run(comp: Compiler, chunk: list[tuple[str, str, str]]) -> None:
    """The run's byte code from appdeb's cache, compiled there first if need be, then copied out.

    Each source is read once: its bytes are what the key names and what is compiled, from a copy inside
    the cache. Nothing is ever copied from the build's temporary files into the cache: the web app's
    import at build time runs beside this (as root without capabilities, the cache read-only to it) and
    could rewrite those; what it rewrites there stays in this build, never in later ones."""
    from appdeb.build.vendor import cache_root

    sources = [Path(source).read_bytes() for source, _, _ in chunk]
    h = hashlib.sha256(f"{comp.program}\0{comp.stamp}\0{comp.tag}\0{comp.magic}\0{comp.version}\0{COMPILE}".encode())
    for (_, _, dfile), data in zip(chunk, sources, strict=True):
        h.update(f"\0{dfile}\0".encode() + hashlib.sha256(data).digest())
    kept = cache_root() / "bytecode" / h.hexdigest()
    if not kept.is_dir():
        kept.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{kept.name}.", dir=kept.parent))
        for i, data in enumerate(sources):
            (tmp / f"{i}.py").write_bytes(data)
        _compile(comp, [(str(tmp / f"{i}.py"), str(tmp / f"{i}.pyc"), dfile) for i, (_, _, dfile) in enumerate(chunk)])
        for i in range(len(sources)):
            (tmp / f"{i}.py").unlink()
        try:
            os.rename(tmp, kept)
        except OSError:  # another build kept the same run meanwhile: the same bytes
            shutil.rmtree(tmp, ignore_errors=True)
    for i, (_, cfile, _) in enumerate(chunk):
        if (kept / f"{i}.pyc").is_file():
            os.makedirs(os.path.dirname(cfile), exist_ok=True)
            shutil.copyfile(kept / f"{i}.pyc", cfile)


def compile_staged(comp: Compiler, tree: Path, root: str, lib: str, app: str) -> None:
    """The staged tree's byte code beside its sources, in the direct writer's three runs (the libraries,
    the app, the rest of /opt/PKG), so both writers give the same bytes."""
    libraries: list[tuple[str, Path]] = []
    rest: list[tuple[str, Path]] = []
    for dirpath, _, filenames in walk(tree / root.lstrip("/")):
        for name in filenames:
            full = Path(dirpath, name)
            if is_source(full):
                path = full.relative_to(tree).as_posix()
                if not path.startswith(lib.lstrip("/") + "/"):
                    rest.append((path, full))
                elif not in_test_suite(path, lib):
                    libraries.append((path, full))
    compile_sources(comp, libraries, tree)
    for part in split_app(rest, app):
        compile_sources(comp, part, tree, keep=True)


def split_app(sources: list[tuple[str, Path]], app: str) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """The app's own sources, and the rest (appdeb's runtime: the same in every build of the package),
    compiled apart so a change to the app leaves the other run's kept byte code in use."""
    inside = app.strip("/") + "/"
    return [s for s in sources if s[0].startswith(inside)], [s for s in sources if not s[0].startswith(inside)]
