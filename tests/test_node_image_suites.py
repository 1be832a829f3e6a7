"""Node images per Debian suite: mirror from apt's config, one cache entry per suite, bookworm's key kept."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from appdeb.errors import AppdebError
from appdeb.node import image

SOURCES = """\
Types: deb
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://security.invalid/debian-security
Suites: bookworm-security
Components: main
"""


def _etc(tmp_path: Path, text: str = SOURCES) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/debian.sources").write_text(text)
    (tmp_path / "sources.list.d/other.list").write_text("deb http://other.invalid/apt nodistro main\n")
    return tmp_path


def test_a_bookworm_hosts_debian_mirror_serves_the_trixie_image(tmp_path: Path) -> None:
    etc = _etc(tmp_path)
    expected = ("http://mirror.invalid/debian", "http://security.invalid/debian-security")
    assert image.host_mirrors(etc, "trixie") == expected  # not the third-party source
    assert image.host_mirrors(etc, "bookworm") == expected


def test_each_suite_has_its_own_cache_key_and_bookworms_is_unchanged() -> None:
    mirror, security = "http://mirror.invalid/debian", "http://security.invalid/debian-security"
    # the key the bookworm image had before suites were a parameter (same digest): no needless rebuild
    before = ["bookworm", image.INCLUDE, image.PREDOWNLOAD, image.MASKED_UNITS, image.RECIPE_REVISION, mirror, security]
    assert image.recipe_version(mirror, security) == "bookworm-" + hashlib.sha256(
        json.dumps(before).encode()).hexdigest()[:12]
    assert image.recipe_version(mirror, security, "trixie").startswith("trixie-")
    with pytest.raises(AppdebError, match="unknown node suite 'sid'"):
        image.check_suite("sid")


def test_building_one_suite_never_prunes_the_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPDEB_NODE_CACHE", str(tmp_path))
    for name in ("bookworm-old", "bookworm-new", "trixie-new"):
        (tmp_path / name / "root").mkdir(parents=True)
    image._prune_old_images(tmp_path / "bookworm-new", "bookworm")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bookworm-new", "trixie-new"]


def test_a_third_party_suite_naming_a_release_is_not_taken_for_debian(tmp_path: Path) -> None:
    """A trixie image on a host whose first entry is a third-party 'bookworm-pgdg' source uses Debian's mirror."""
    pgdg = "Types: deb\nURIs: http://pgdg.invalid/apt\nSuites: bookworm-pgdg\nComponents: main\n\n"
    etc = _etc(tmp_path, pgdg + SOURCES)
    assert image.host_mirrors(etc, "trixie")[0] == "http://mirror.invalid/debian"
    assert image.host_mirrors(etc, "bookworm")[0] == "http://mirror.invalid/debian"
