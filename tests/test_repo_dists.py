"""Repository distributions per Debian release: publish into the package's suite, a node reads its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appdeb.build.pipeline import BuildOptions, build
from appdeb.errors import AppdebError
from appdeb.repo.dists import (
    check_promotion,
    deb_suite,
    deploy_distribution,
    for_suite,
    node_suite,
    publish_distribution,
    suite_of,
)

from .conftest import EXAMPLES


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dists")
    return {t: build(EXAMPLES / "hello", BuildOptions(out_dir=out / t, target=t, source_date_epoch=0)).deb
            for t in ("debian-12", "debian-13")}


def test_names() -> None:
    assert [suite_of(d) for d in ("trixie", "trixie-staging", "bookworm", "stable", "trixies")] == [
        "trixie", "trixie", "bookworm", None, None]
    assert for_suite("bookworm-staging", "trixie") == "trixie-staging"
    assert for_suite("stable", "trixie") == "stable"  # not a release's distribution: left alone


def test_publish_goes_to_the_packages_suite_and_never_to_another_release(debs: dict[str, Path]) -> None:
    assert deb_suite(debs["debian-13"]) == ("debian-13", "trixie")
    assert publish_distribution("bookworm", [debs["debian-13"]], None) == "trixie"
    assert publish_distribution("bookworm-staging", [debs["debian-13"]], None) == "trixie-staging"
    assert publish_distribution("bookworm", [debs["debian-12"]], None) == "bookworm"
    assert publish_distribution("stable", [debs["debian-13"]], None) == "stable"
    with pytest.raises(AppdebError, match=r"built for debian-13 \(trixie\), not for distribution bookworm"):
        publish_distribution("bookworm", [debs["debian-13"]], "bookworm")
    with pytest.raises(AppdebError, match="different Debian releases"):
        publish_distribution("bookworm", list(debs.values()), None)


def test_a_node_follows_its_own_suite(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_CODENAME=trixie\n')
    assert node_suite(tmp_path) == "trixie"
    (tmp_path / "etc/os-release").write_text("VERSION_CODENAME=sid\n")
    assert node_suite(tmp_path) is None


def test_a_nodes_os_release_is_read_as_debian_lays_it_out_and_never_through_a_planted_link(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/os-release").write_text("VERSION_CODENAME=bookworm\n")
    (tmp_path / "etc/os-release").symlink_to("../usr/lib/os-release")  # as on Debian
    assert node_suite(tmp_path) == "bookworm"
    (tmp_path / "usr/lib/os-release").unlink()
    (tmp_path / "usr/lib/os-release").symlink_to("/dev/zero")  # would never end
    assert node_suite(tmp_path) is None
    (tmp_path / "usr/lib/os-release").unlink()
    os.mkfifo(tmp_path / "usr/lib/os-release")  # would hang
    assert node_suite(tmp_path) is None
    (tmp_path / "usr/lib/os-release").unlink()
    (tmp_path / "usr/lib/os-release").write_bytes(b"VERSION_CODENAME=trixie\n\xff\xfe\n")
    assert node_suite(tmp_path) == "trixie"


def test_client_config_names_the_nodes_suite(cfg: object) -> None:
    from appdeb.repo.serve import client_config

    files = client_config(cfg, "http://127.0.0.1:1/", "appdeb", suite="trixie")  # type: ignore[arg-type]
    assert "Suites: trixie\n" in files["/etc/apt/sources.list.d/appdeb.sources"]
    files = client_config(cfg, "http://127.0.0.1:1/", "appdeb")  # type: ignore[arg-type]
    assert "Suites: bookworm\n" in files["/etc/apt/sources.list.d/appdeb.sources"]


def test_a_deploy_follows_the_release_the_package_is_published_for() -> None:
    served = {"trixie": ["notes"], "bookworm": ["hello"]}
    assert deploy_distribution("bookworm", "notes", lambda d: served.get(d, [])) == "trixie"
    assert deploy_distribution("bookworm", "hello", lambda d: served.get(d, [])) == "bookworm"
    with pytest.raises(AppdebError, match="several Debian releases"):
        deploy_distribution("bookworm", "x", lambda d: ["x"])


def test_a_promotion_into_another_releases_distribution_is_refused() -> None:
    built = {"notes 2.0-1": "debian-13", "old 1.0-1": ""}  # "": built before targets, as publish lets it through
    with pytest.raises(AppdebError, match=r"notes 2\.0-1 in trixie-staging was built for debian-13 \(trixie\), "
                                          r"not for distribution bookworm: promote it into trixie"):
        check_promotion(built, "trixie-staging", "bookworm")
    check_promotion(built, "trixie-staging", "trixie-prod")
    check_promotion(built, "trixie-staging", "prod")  # a distribution of no release: as publish, no check
