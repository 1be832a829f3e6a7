"""Shared fixtures: the repository's examples built once per session with the real pipeline."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from appdeb.build.pipeline import BuildOptions, BuildResult, build
from appdeb.repo import config as repoconfig
from appdeb.repo import signing

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EPOCH = 1767225600  # 2026-01-01: fixed so builds are comparable byte for byte


# the xdist group of every e2e module whose nodes share the host's network: their services bind the same
# ports of the host's loopback, so such modules run one after another on one worker
HOST_NETWORK = "e2e-host-network"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for `pytest -n N --dist loadgroup` (make test): a module's tests stay on one worker (its
    module-scoped builds and nodes are made once), and the e2e modules on the host's network share one
    group. Without -n the marks change nothing."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        host = item.get_closest_marker("e2e") is not None and item.get_closest_marker("private_nodes") is None
        item.add_marker(pytest.mark.xdist_group(HOST_NETWORK if host else item.nodeid.split("::")[0]))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden from the current output")


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dist")


def build_example(name: str, out: Path, **kwargs: object) -> BuildResult:
    opts = BuildOptions(out_dir=out, source_date_epoch=EPOCH, **kwargs)  # type: ignore[arg-type]
    return build(EXAMPLES / name, opts)


@pytest.fixture(scope="session")
def hello_deb(dist: Path) -> BuildResult:
    return build_example("hello", dist)


@pytest.fixture(scope="session")
def notes_staging(dist: Path) -> BuildResult:
    return build_example("flaskapp", dist, instance="staging")


@pytest.fixture(scope="session")
def notes_prod(dist: Path) -> BuildResult:
    return build_example("flaskapp", dist, instance="prod")


@pytest.fixture(autouse=True, scope="session")
def _plain_output() -> None:
    os.environ.setdefault("CI", "1")


@pytest.fixture
def cfg(tmp_path: Path) -> Iterator[repoconfig.RepoConfig]:
    """A fresh signed repository (amd64 + all) in a temporary root; its gpg-agent stopped afterwards."""
    config = repoconfig.init_repo(tmp_path / "repo", architectures=["amd64"])
    yield config
    signing.stop_agent(config.gnupg_home)
