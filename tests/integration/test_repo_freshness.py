"""`repo refresh` signs what is published again, dated now, for nodes set up with --valid-for (which refuse
a signed state older than that span: tests/e2e/test_repo_node.py). Real aptly and gpg."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from appdeb.errors import AppdebError
from appdeb.repo import config as repoconfig
from appdeb.repo import publish as repo
from appdeb.repo import serve as reposerve
from appdeb.repo.aptly import published_snapshot, search
from appdeb.repo.switching import refresh

from .test_repo import make_deb

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(any(shutil.which(t) is None for t in ("aptly", "gpg", "dpkg-deb", "apt-get")),
                       reason="needs aptly, gpg, dpkg-deb and apt-get"),
]

INRELEASE = "dists/bookworm/InRelease"


def _date(cfg: repoconfig.RepoConfig) -> str:
    return next(ln for ln in (cfg.public_dir / INRELEASE).read_text().splitlines() if ln.startswith("Date: "))


def test_a_refresh_signs_the_same_state_again_dated_now(cfg: repoconfig.RepoConfig, tmp_path: Path) -> None:
    """What a node refuses and takes is shown on a node (tests/e2e/test_repo_node.py): this machine's own apt
    configuration turns the check off for its mirror. Here: the node's source says the span, and a refresh
    changes the Date and the signature, nothing else."""
    repo.publish(cfg, [make_deb(tmp_path, "hello", "1.0-1")])
    snap = published_snapshot(cfg)
    served_before = search(cfg, "snapshot", snap or "")
    files = reposerve.client_config(cfg, "http://127.0.0.1:8080/", "appdeb-t", valid_for=7 * 86400)
    assert files["/etc/apt/sources.list.d/appdeb-t.sources"].endswith(
        "Check-Valid-Until: yes\nValid-Until-Max: 604800\n")
    assert "Valid-Until" not in reposerve.client_config(cfg, "http://127.0.0.1:8080/", "appdeb-t")[
        "/etc/apt/sources.list.d/appdeb-t.sources"]
    before, signed = _date(cfg), (cfg.public_dir / INRELEASE).read_text()
    time.sleep(1.1)  # Date has a second's resolution
    assert refresh(cfg) == {"bookworm": snap}
    assert _date(cfg) != before and (cfg.public_dir / INRELEASE).read_text() != signed
    assert "BEGIN PGP SIGNATURE" in (cfg.public_dir / INRELEASE).read_text()
    assert published_snapshot(cfg) == snap and search(cfg, "snapshot", snap or "") == served_before
    packages = (cfg.public_dir / "dists/bookworm/main/binary-amd64/Packages").read_text()
    assert "Version: 1.0-1" in packages


def test_refresh_names_what_it_cannot_sign(cfg: repoconfig.RepoConfig) -> None:
    assert refresh(cfg) == {}  # nothing published: nothing to sign
    with pytest.raises(AppdebError, match="nothing is published for prod"):
        refresh(cfg, "prod")


def test_a_valid_for_span_is_a_plain_time_span() -> None:
    assert reposerve.span_seconds("7d", "--valid-for") == 7 * 86400
    for bad in ("5s", "7 days", "1d\nX-Evil: 1", "-1h"):
        with pytest.raises(AppdebError):
            reposerve.span_seconds(bad, "--valid-for")
