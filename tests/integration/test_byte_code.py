"""The package carries hash-checked byte code compiled by the target python at build time, naming
the sources by their installed paths; without that interpreter it carries none and postinst compiles."""

from __future__ import annotations

import importlib.util
import marshal
import shutil
import sys
from pathlib import Path

import pytest

from appdeb.build import stage
from appdeb.build.pipeline import BuildOptions, BuildResult, build
from appdeb.build.plan import make_plan
from appdeb.build.validate import load_spec

from ..conftest import EXAMPLES
from .test_build import data_tar

pytestmark = pytest.mark.integration
TAG = "cpython-{}{}".format(*sys.version_info[:2])  # the fixtures build for the building interpreter
CHECKED_HASH = 0b11  # PEP 552 flags: hash-based, check_source


def _contents(result: BuildResult) -> dict[str, bytes]:
    tar = data_tar(result)
    return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _cached(source: str, tag: str = TAG) -> str:
    """Where the byte code of a source (a member name, "./opt/…") is: PEP 3147's __pycache__."""
    folder, name = source.rsplit("/", 1)
    return f"{folder}/__pycache__/{name[:-3]}.{tag}.pyc"


def test_every_source_ships_checked_byte_code_of_its_own_bytes(notes_staging: BuildResult) -> None:
    files = _contents(notes_staging)
    sources = [n for n in files if n.endswith(".py")]
    assert len(sources) > 200 and any("/lib/flask/" in s for s in sources)
    for source in sources:
        pyc = files[_cached(source)]
        assert pyc[:4] == importlib.util.MAGIC_NUMBER, source
        assert int.from_bytes(pyc[4:8], "little") == CHECKED_HASH, source
        assert pyc[8:16] == importlib.util.source_hash(files[source]), source
    code = marshal.loads(files[_cached("./opt/notes-staging/app/src/notes/web.py")][16:])
    assert code.co_filename == "/opt/notes-staging/app/src/notes/web.py"  # the node's path, not the stage's
    assert files["./opt/notes-staging/appdeb/bytecode"] == f"{TAG} checked-hash\n".encode()
    assert not [n for n in files if n.endswith(".pyc") and n not in {_cached(s) for s in sources}]


def test_byte_code_is_for_the_target_python(tmp_path: Path) -> None:
    other = next((v for v in ("3.12", "3.13") if v != "{}.{}".format(*sys.version_info[:2])
                  and stage.target_python(v)), None)
    if other is None:
        pytest.skip("no second python on this build machine")
    app = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", app)
    result = build(app, BuildOptions(out_dir=tmp_path / "out", python_version=other))
    files = _contents(result)
    tag = "cpython-" + other.replace(".", "")
    assert files[f"./opt/{result.package}/appdeb/bytecode"] == f"{tag} checked-hash\n".encode()
    pycs = [n for n in files if n.endswith(".pyc")]
    assert pycs and all(n.endswith(f".{tag}.pyc") for n in pycs)


def test_without_the_target_python_nothing_is_compiled(tmp_path: Path) -> None:
    """A python the build machine lacks: no byte code, no mark (postinst compiles on the node)."""
    assert stage.target_python("3.99") is None
    plan = make_plan(load_spec(EXAMPLES / "hello"), python_version="3.99", source_date_epoch=0)
    tree = tmp_path / "pkg"
    (tree / plan.paths.app[1:]).mkdir(parents=True)
    (tree / plan.paths.runtime[1:]).mkdir(parents=True)
    (tree / plan.paths.app[1:] / "hello.py").write_text("X = 1\n")
    assert stage.compile_byte_code(plan, tree) is False
    assert not list(tree.rglob("*.pyc")) and not (tree / plan.paths.runtime[1:] / stage.BYTE_CODE_MARK).exists()


def test_links_are_not_compiled_through(tmp_path: Path) -> None:
    """A source that is a symbolic link (here to a file outside the tree) is neither read nor compiled."""
    version = "{}.{}".format(*sys.version_info[:2])
    plan = make_plan(load_spec(EXAMPLES / "hello"), python_version=version, source_date_epoch=0)
    outside = tmp_path / "outside.py"
    outside.write_text("SECRET = 1\n")
    tree = tmp_path / "pkg"
    app = tree / plan.paths.app[1:]
    app.mkdir(parents=True)
    (tree / plan.paths.runtime[1:]).mkdir(parents=True)
    (app / "real.py").write_text("X = 1\n")
    (app / "linked.py").symlink_to(outside)
    assert stage.compile_byte_code(plan, tree)
    assert sorted(p.name for p in tree.rglob("*.pyc")) == [f"real.{TAG}.pyc"]
    assert not (tmp_path / "__pycache__").exists()
