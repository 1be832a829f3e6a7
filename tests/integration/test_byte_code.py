"""Byte code at build time (appdeb/build/bytecode.py): shipped only when the builder runs the target's
Debian release and has its /usr/bin/pythonX.Y; hash-checked, naming the node's paths, and taken as it
is by the node's python (nothing recompiled). Elsewhere the package ships none and postinst compiles."""

from __future__ import annotations

import importlib.util
import json
import marshal
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from appdeb.build import bytecode, payload
from appdeb.build.pipeline import BuildOptions, BuildResult, build
from appdeb.build.targets import get_target

from ..conftest import EPOCH, EXAMPLES
from .test_build import data_tar

pytestmark = pytest.mark.integration
BOOKWORM = get_target("debian-12")
CHECKED_HASH = 0b11  # PEP 552 flags: hash-based, check_source
needs_rule = pytest.mark.skipif(bytecode.compiler(BOOKWORM) is None,
                                reason="the builder is not Debian 12 with /usr/bin/python3.11")


def _contents(result: BuildResult) -> dict[str, bytes]:
    tar = data_tar(result)
    return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _cached(source: str, tag: str = "cpython-311") -> str:
    return "." + bytecode.cached_name(source[1:], tag)


@needs_rule
def test_every_source_ships_checked_byte_code_of_its_own_bytes(notes_staging: BuildResult) -> None:
    files = _contents(notes_staging)
    comp = bytecode.compiler(BOOKWORM)
    assert comp is not None
    sources = [n for n in files if n.endswith(".py")]
    assert len(sources) > 200 and any("/lib/flask/" in s for s in sources)
    for source in sources:
        if bytecode.in_test_suite(source[2:], "/opt/notes-staging/lib"):
            assert _cached(source) not in files, source
            continue
        pyc = files[_cached(source)]
        assert pyc[:4].hex() == comp.magic, source
        assert int.from_bytes(pyc[4:8], "little") == CHECKED_HASH, source
        assert pyc[8:16] == importlib.util.source_hash(files[source]), source
    code = marshal.loads(files[_cached("./opt/notes-staging/app/src/notes/web.py")][16:])
    assert code.co_filename == "/opt/notes-staging/app/src/notes/web.py"  # the node's path, not the build's
    assert files["./opt/notes-staging/appdeb/bytecode"] == \
        f"cpython-311 {comp.magic} checked-hash /usr/bin/python3.11 {comp.version}\n".encode()
    assert not [n for n in files if n.endswith(".pyc") and n not in {_cached(s) for s in sources}]


ACCEPTS = """\
import importlib._bootstrap_external as be, sys
compiled = []
original = be.SourceLoader.source_to_code
def spy(self, data, path, *args, **kwargs):
    compiled.append(path)
    return original(self, data, path, *args, **kwargs)
be.SourceLoader.source_to_code = spy
sys.dont_write_bytecode = True
sys.path[:0] = sys.argv[1:]
import flask, markupsafe, werkzeug.serving, jinja2.ext
print(len(sys.modules), [p for p in compiled if p.startswith(tuple(sys.argv[1:]))])
"""


@needs_rule
def test_the_nodes_python_takes_the_byte_code_as_it_is(notes_staging: BuildResult, tmp_path: Path) -> None:
    """Debian's python3.11 (the node's program) imports the libraries from the shipped byte code:
    it compiles none of their sources (a mismatch in format, hash or flags would make it)."""
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(notes_staging.deb), str(root)], check=True)
    lib = str(root / "opt/notes-staging/lib")
    out = subprocess.run(["/usr/bin/python3.11", "-I", "-c", ACCEPTS, lib], capture_output=True, text=True,
                         check=True).stdout.split(" ", 1)
    assert int(out[0]) > 100 and out[1].strip() == "[]"
    changed = root / "opt/notes-staging/lib/flask/app.py"
    changed.write_bytes(changed.read_bytes() + b"# changed without its byte code\n")
    out = subprocess.run(["/usr/bin/python3.11", "-I", "-c", ACCEPTS, lib], capture_output=True, text=True,
                         check=True).stdout.split(" ", 1)
    assert out[1].strip() == repr([str(changed)])  # checked-hash: that source is noticed, only that one


def _hello(tmp_path: Path) -> Path:
    app = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", app)
    return app


def test_no_byte_code_where_the_rule_does_not_hold(tmp_path: Path) -> None:
    """debian-13 on a builder without Debian 13 (or a builder of another release): none shipped, no marker."""
    app = _hello(tmp_path)
    release = tmp_path / "os-release"
    release.write_text('ID=debian\nVERSION_ID="11"\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bytecode, "OS_RELEASE", release)
        assert bytecode.compiler(BOOKWORM) is None and bytecode.stamp(BOOKWORM) == ""
        result = build(app, BuildOptions(out_dir=tmp_path / "out", source_date_epoch=EPOCH))
    names = [m.name for m in data_tar(result).getmembers()]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert f"./opt/{result.package}/appdeb/bytecode" not in names
    if bytecode.builder_release() == ("debian", "12"):
        other = build(app, BuildOptions(out_dir=tmp_path / "trixie", target="debian-13", source_date_epoch=EPOCH))
        assert not [n for n in (m.name for m in data_tar(other).getmembers()) if n.endswith(".pyc")]


@needs_rule
def test_the_interpreter_rule_is_a_build_input(tmp_path: Path) -> None:
    """The same app on the same builder: with the rule holding the package ships byte code; a builder
    state where it does not is another input (never the earlier .deb reused)."""
    app = _hello(tmp_path)
    first = build(app, BuildOptions(out_dir=tmp_path / "out", source_date_epoch=EPOCH))
    assert f"./opt/{first.package}/app/__pycache__/hello.cpython-311.pyc" in _contents(first)
    release = tmp_path / "os-release"
    release.write_text("ID=debian\nVERSION_ID=11\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bytecode, "OS_RELEASE", release)
        second = build(app, BuildOptions(out_dir=tmp_path / "out", source_date_epoch=EPOCH))
    assert not second.reused and second.sha256 != first.sha256
    assert not [n for n in _contents(second) if n.endswith(".pyc")]


def test_a_librarys_test_suite_ships_without_byte_code() -> None:
    lib = "/opt/a/lib"
    assert bytecode.in_test_suite("opt/a/lib/pandas/tests/frame/test_api.py", lib)
    assert bytecode.in_test_suite("opt/a/lib/tests/conftest.py", lib)
    assert not bytecode.in_test_suite("opt/a/lib/pandas/core/frame.py", lib)
    assert not bytecode.in_test_suite("opt/a/lib/tests.py", lib)  # a module named tests is not a suite
    assert not bytecode.in_test_suite("opt/a/lib/django/test/utils.py", lib)  # an app's test helpers import it


def test_the_segment_key_names_the_interpreter() -> None:
    """The libraries' cached segment (and its byte code) belongs to one tree, path and interpreter."""
    comp = bytecode.Compiler("/usr/bin/python3.11", "cpython-311", "a70d0d0a", "3.11.2", "/usr/bin/python3.11:1:2")
    keys = {payload.segment_key("tree", "opt/a/lib"), payload.segment_key("tree", "opt/a/lib", comp),
            payload.segment_key("tree", "opt/a/lib", replace(comp, version="3.11.4")),
            payload.segment_key("tree", "opt/a/lib", replace(comp, stamp="/usr/bin/python3.11:1:3")),
            payload.segment_key("tree", "opt/b/lib", comp), payload.segment_key("other", "opt/a/lib", comp)}
    assert len(keys) == 6


@needs_rule
def test_the_libraries_are_compiled_once_and_their_cache_only_read(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPDEB_CACHE", str(tmp_path / "cache"))
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "flaskapp", app)
    first = build(app, BuildOptions(out_dir=tmp_path / "one", source_date_epoch=EPOCH))
    [compiled] = (tmp_path / "cache" / "payload").glob("*.pyc")
    before = {p: p.stat().st_mtime_ns for p in compiled.rglob("*")}
    compiled_runs: list[list[str]] = []
    real_run = bytecode.run

    def counting(argv: list[str], **kw: Any) -> Any:
        if bytecode.COMPILE in argv:
            compiled_runs.append([dfile for _, _, dfile in json.loads(kw["input"])])
        return real_run(argv, **kw)
    monkeypatch.setattr(bytecode, "run", counting)
    (app / "src" / "notes" / "web.py").write_text((app / "src" / "notes" / "web.py").read_text() + "# changed\n")
    second = build(app, BuildOptions(out_dir=tmp_path / "two", source_date_epoch=EPOCH, build_number=2))
    # one interpreter compiled the app's sources; the libraries' byte code and appdeb's runtime's came
    # from the cache (neither changed)
    assert len(compiled_runs) == 1 and all(f.startswith("/opt/notes/app/") for f in compiled_runs[0])
    assert "/opt/notes/app/src/notes/web.py" in compiled_runs[0]
    third = build(app, BuildOptions(out_dir=tmp_path / "three", source_date_epoch=EPOCH, build_number=3))
    pycs = {n: v for n, v in _contents(second).items() if n.endswith(".pyc")}
    assert len(compiled_runs) == 1  # nothing changed: every run's byte code was kept
    assert {n: v for n, v in _contents(third).items() if n.endswith(".pyc")} == pycs
    assert {p: p.stat().st_mtime_ns for p in compiled.rglob("*")} == before
    libs = [n for n in _contents(second) if "/lib/flask/__pycache__/" in n]
    assert libs and {n: _contents(first)[n] for n in libs} == {n: _contents(second)[n] for n in libs}


@needs_rule
def test_the_builders_python_settings_do_not_change_the_byte_code(tmp_path: Path) -> None:
    """PYTHONNODEBUGRANGES drops the column table from code objects: a builder that sets it (or
    PYTHONINTMAXSTRDIGITS, …) still builds the same bytes."""
    app = _hello(tmp_path)
    plain = build(app, BuildOptions(out_dir=tmp_path / "plain", source_date_epoch=EPOCH))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONNODEBUGRANGES", "1")
        mp.setenv("PYTHONINTMAXSTRDIGITS", "640")
        other = build(app, BuildOptions(out_dir=tmp_path / "other", source_date_epoch=EPOCH))
    assert f"./opt/{plain.package}/app/__pycache__/hello.cpython-311.pyc" in _contents(plain)
    assert other.sha256 == plain.sha256
