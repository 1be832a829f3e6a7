"""Shared fixtures: the repository's examples built once per session with the real pipeline."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appdeb.build.pipeline import BuildOptions, BuildResult, build
from appdeb.repo import config as repoconfig
from appdeb.repo import signing

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EPOCH = 1767225600  # 2026-01-01: fixed so builds are comparable byte for byte


# the work unit of every e2e module whose nodes share the host's network: their services bind the same
# ports of the host's loopback, so such modules run one after another on one worker
HOST_NETWORK = "e2e-host-network"
PRIVATE_NODES = "pytest.mark.private_nodes"  # what a module that boots only private nodes says


@functools.cache
def _boots_private_nodes_only(module: str) -> bool:
    return PRIVATE_NODES in (ROOT / module).read_text()


def work_unit(nodeid: str) -> str:
    """What runs on one worker, in order: a module (its module-scoped builds and nodes are made once),
    or all the e2e modules on the host's network together."""
    module = nodeid.split("::")[0]
    return HOST_NETWORK if module.startswith("tests/e2e/") and not _boots_private_nodes_only(module) else module


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`pytest -n N` (make test) hands out work units (work_unit), the largest first. The controller
    sees test ids only (no marks), so a module says `pytest.mark.private_nodes` in its own text."""
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):  # type: ignore[misc]  # untyped base
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)


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
