"""vendor.tidy: what the vendored tree keeps. gettext sources beside their compiled catalogs go (the node
reads only the .mo; every file costs dpkg on every install); everything else a library ships stays."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from appdeb.build import vendor


def _library(lib: Path, files: dict[str, bytes]) -> Path:
    """A library installed into lib: its files and a dist-info whose RECORD lists them all."""
    info = lib / "lib_a-1.0.dist-info"
    info.mkdir(parents=True)
    for rel, data in files.items():
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        (lib / rel).write_bytes(data)
    (info / "INSTALLER").write_text("uv\n")
    rows = [[rel, "sha256=x", str(len(data))] for rel, data in files.items()]
    rows += [["lib_a-1.0.dist-info/INSTALLER", "", ""], ["lib_a-1.0.dist-info/RECORD", "", ""]]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    (info / "RECORD").write_text(out.getvalue())
    return info / "RECORD"


def test_a_catalogs_source_goes_when_its_compiled_catalog_ships(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    record = _library(lib, {
        "lib_a/locale/de/LC_MESSAGES/django.po": b"msgid",
        "lib_a/locale/de/LC_MESSAGES/django.mo": b"\xde\x12\x04\x95",
        "lib_a/locale/fr/LC_MESSAGES/django.po": b"msgid",  # not compiled: the only catalog there is
        "lib_a/data/table.po": b"not a gettext catalog's place",
        "lib_a/__init__.py": b"",
    })
    vendor.tidy(lib)
    kept = sorted(p.relative_to(lib).as_posix() for p in lib.rglob("*") if p.is_file())
    assert kept == ["lib_a-1.0.dist-info/INSTALLER", "lib_a-1.0.dist-info/RECORD", "lib_a/__init__.py",
                    "lib_a/data/table.po", "lib_a/locale/de/LC_MESSAGES/django.mo",
                    "lib_a/locale/fr/LC_MESSAGES/django.po"]
    listed = [row[0] for row in csv.reader(io.StringIO(record.read_text()))]
    assert "lib_a/locale/de/LC_MESSAGES/django.po" not in listed  # RECORD lists exactly what ships
    assert "lib_a/locale/de/LC_MESSAGES/django.mo" in listed and "lib_a/locale/fr/LC_MESSAGES/django.po" in listed


def test_a_link_named_like_a_catalog_is_neither_followed_nor_removed(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    _library(lib, {"lib_a/locale/de/LC_MESSAGES/django.mo": b"\xde\x12\x04\x95"})
    outside = tmp_path / "outside.po"
    outside.write_bytes(b"keep")
    (lib / "lib_a/locale/de/LC_MESSAGES/django.po").symlink_to(outside)
    vendor.tidy(lib)
    assert (lib / "lib_a/locale/de/LC_MESSAGES/django.po").is_symlink() and outside.read_bytes() == b"keep"
