"""The .deb written from the manifest (no staged tree) against dpkg-deb itself, and the cache left alone.

dpkg-deb --build over the staged tree is the oracle: for the same inputs the direct writer must give the
same control archive byte for byte and the same data members (names, types, modes, owners, timestamps,
contents, link targets), in one zstd frame dpkg reads whole and whose checksum holds; a build from the
cached, compressed libraries gives the same bytes as the build that made them. A build only ever reads
the vendor cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from appdeb.build import payload
from appdeb.build.pipeline import BuildOptions, build

from ..conftest import EPOCH, EXAMPLES

pytestmark = pytest.mark.skipif(shutil.which("zstd") is None or shutil.which("dpkg-deb") is None,
                                reason="needs zstd and dpkg-deb")


def awkward_app(tmp_path: Path) -> Path:
    """flaskapp (a binary wheel, static files, a requirements file) with an executable script,
    symbolic links, and a path and a link target longer than a tar header holds (GNU long names)."""
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "flaskapp", app)
    deep = app / "src" / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    (deep / ("f" * 40 + ".txt")).write_text("long\n")
    (app / "tool.sh").write_text("#!/bin/sh\necho hi\n")
    (app / "tool.sh").chmod(0o755)
    (app / "tool-link").symlink_to("tool.sh")
    (app / "libbundled.so.1").write_bytes(b"\x7fELF")
    (app / "libbundled.so.1").chmod(0o755)  # as some wheels bundle them: packaged 0644 by both writers
    (app / ("long-link-" + "g" * 100)).symlink_to(f"src/{'d' * 60}/{'e' * 60}/{'f' * 40}.txt")
    return app


def built(app: Path, out: Path, **kw: object) -> bytes:
    result = build(app, BuildOptions(out_dir=out, source_date_epoch=EPOCH, **kw))  # type: ignore[arg-type]
    assert not result.reused
    return result.deb.read_bytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            st = path.lstat()
            data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes() if path.is_file() else b""
            out[str(path.relative_to(root))] = (data, st.st_mode, st.st_mtime_ns)
    return out


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("APPDEB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def dpkg_deb(*args: str | Path) -> bytes:
    return subprocess.run(["dpkg-deb", *map(str, args)], capture_output=True, check=True).stdout


def members(deb: Path) -> dict[str, tuple[object, ...]]:
    """Every data member as dpkg reads it: type, mode, owner, mtime, size, content digest, link target."""
    fsys = dpkg_deb("--fsys-tarfile", deb)
    assert len(fsys) % 10240 == 0
    out = {}
    with tarfile.open(fileobj=io.BytesIO(fsys)) as tar:
        for m in tar.getmembers():
            data = tar.extractfile(m).read() if m.isfile() else b""  # type: ignore[union-attr]
            out[m.name] = (m.type, m.mode, m.uname, m.gname, m.mtime, m.size, sha(data), m.linkname)
    return out


def test_direct_deb_is_dpkg_debs_package(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from appdeb.build.manifest import LIB_MTIME

    app = awkward_app(tmp_path)
    direct = built(app, tmp_path / "direct", instance="x")  # makes the library segment
    again = built(app, tmp_path / "again", instance="x", build_number=1)  # from the cached segment
    assert sha(direct) == sha(again)
    monkeypatch.setattr(payload, "available", lambda: False)
    built(app, tmp_path / "staged", instance="x")
    deb, staged = next((tmp_path / "direct").glob("*.deb")), next((tmp_path / "staged").glob("*.deb"))
    assert dpkg_deb("--ctrl-tarfile", deb) == dpkg_deb("--ctrl-tarfile", staged)
    ours, theirs = members(deb), members(staged)
    assert ours == theirs
    assert {v[4] for k, v in ours.items() if k.startswith("./opt/notes-x/lib/")} == {LIB_MTIME}
    assert {v[4] for k, v in ours.items() if k.startswith("./opt/notes-x/app/")} == {EPOCH}
    ar = subprocess.run(["ar", "x", str(deb)], cwd=tmp_path, check=True)
    assert ar.returncode == 0
    subprocess.run(["zstd", "-t", "-q", str(tmp_path / "data.tar.zst")], check=True)  # the checksum holds
    info = subprocess.run(["zstd", "-lv", str(tmp_path / "data.tar.zst")], capture_output=True, text=True).stdout
    assert "Zstandard Frames: 1" in info and "Check: XXH64" in info
    assert "./opt/notes-x/lib/markupsafe" in ours and ours["./opt/notes-x/app/tool-link"][7] == "tool.sh"
    assert f"./opt/notes-x/app/src/{'d' * 60}/{'e' * 60}/{'f' * 40}.txt" in ours
    assert ours["./opt/notes-x/app/libbundled.so.1"][1] == 0o644 and ours["./opt/notes-x/app/tool.sh"][1] == 0o755
    assert all(v[1] == 0o644 for k, v in ours.items() if k.endswith(".so") or ".so." in k.rpartition("/")[2])


def test_a_new_epoch_leaves_the_libraries_dated_as_before(tmp_path: Path, cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """An app change moves SOURCE_DATE_EPOCH: the app's files follow it, the cached libraries keep LIB_MTIME
    (so their compressed bytes are reused), in both writers alike."""
    app = awkward_app(tmp_path)
    built(app, tmp_path / "first")
    later = build(app, BuildOptions(out_dir=tmp_path / "later", source_date_epoch=EPOCH - 86400 * 100))
    monkeypatch.setattr(payload, "available", lambda: False)
    staged = build(app, BuildOptions(out_dir=tmp_path / "staged", source_date_epoch=EPOCH - 86400 * 100))
    assert members(later.deb) == members(staged.deb)
    assert members(later.deb)["./opt/notes/app/app.yaml"][4] == EPOCH - 86400 * 100


@pytest.mark.parametrize("compression", ["zstd", "xz"])
def test_a_build_never_changes_the_cache(tmp_path: Path, cache: Path, compression: str) -> None:
    app = awkward_app(tmp_path)
    built(app, tmp_path / "first", compression=compression)
    vendor = cache / "vendor"
    (next(vendor.iterdir()) / "lib" / ".lock").write_bytes(b"")  # as uv leaves it in older caches
    before = snapshot(vendor)
    built(app, tmp_path / "second", instance="y", compression=compression)
    assert snapshot(vendor) == before
    deb = next((tmp_path / "second").glob("*.deb"))
    listing = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "/lib/.lock" not in listing
    # byte code only as the build compiled it: one per shipped source, none of the cache's own
    names = {line.split()[-1] for line in listing.splitlines()}
    pycs = {n for n in names if n.endswith(".pyc")}
    assert all(p.replace("/__pycache__/", "/").rsplit(".", 2)[0] + ".py" in names for p in pycs)


def test_a_build_path_in_the_cached_libraries_is_refused(tmp_path: Path, cache: Path) -> None:
    """The libraries are scanned for build paths once per path, from the cache."""
    from appdeb.errors import AppdebError

    app = awkward_app(tmp_path)
    built(app, tmp_path / "first")
    lib = next((cache / "vendor").iterdir()) / "lib"
    (lib / "markupsafe" / "leak.txt").write_text(f"made in {tmp_path / 'elsewhere'}\n")
    shutil.rmtree(cache / "payload")
    with pytest.raises(AppdebError, match=r"markupsafe/leak.txt:1"):
        build(app, BuildOptions(out_dir=tmp_path / "elsewhere", source_date_epoch=EPOCH, build_number=2))


def test_a_tree_made_again_never_ships_the_old_trees_segment(tmp_path: Path, cache: Path) -> None:
    """The same requirement lines can make another tree (an unpinned library's new release after the
    vendor cache was dropped): the packaged segment follows the tree's content, not the lines."""
    from appdeb.build.vendor import content_digest

    app = awkward_app(tmp_path)
    built(app, tmp_path / "first")
    tree = next((cache / "vendor").iterdir())
    (tree / "lib" / "markupsafe" / "__init__.py").write_text("# the newer release\n")
    meta = json.loads((tree / "meta.json").read_text())
    (tree / "meta.json").write_text(json.dumps({**meta, "tree": content_digest(tree / "lib")}))
    deb = built(app, tmp_path / "second", build_number=1)
    (tmp_path / "second.deb").write_bytes(deb)
    out = tmp_path / "x"
    subprocess.run(["dpkg-deb", "-x", str(tmp_path / "second.deb"), str(out)], check=True)
    assert next(out.glob("opt/*/lib/markupsafe/__init__.py")).read_text() == "# the newer release\n"


def test_the_cached_blocks_copy_across_file_systems(tmp_path: Path, cache: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """copy_file_range refuses another file system on older kernels (EXDEV): the bytes are copied anyway."""
    import errno

    app = awkward_app(tmp_path)
    first = built(app, tmp_path / "first")

    def exdev(*args: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")
    monkeypatch.setattr(os, "copy_file_range", exdev)
    assert built(app, tmp_path / "second") == first
