"""Fixtures for end-to-end tests on real systemd-nspawn nodes (root required, no mocks)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appdeb.errors import AppdebError
from appdeb.node import harness as nodes

NodeFactory = Callable[[], nodes.Node]


def _progress(message: str) -> None:
    # Bypass pytest's capture: a first build takes about a minute and should say so.
    print(f"[node image] {message}", file=sys.__stderr__, flush=True)


@pytest.fixture(scope="session")
def node_image() -> Path:
    """The golden image; building it must work, so any error fails the tests (never a skip)."""
    if os.geteuid() != 0:
        pytest.fail("e2e node tests need root (mount, systemd-nspawn, cgroups)")
    return nodes.ensure_image(progress=_progress)


@pytest.fixture
def node_factory(node_image: Path) -> Iterator[NodeFactory]:
    """Boot as many nodes as a test wants; every one is torn down afterwards, even on failure."""
    names: list[str] = []

    def make() -> nodes.Node:
        name = f"t{os.getpid()}-{uuid.uuid4().hex[:8]}"
        names.append(name)
        return nodes.up(name)

    yield make
    errors = []
    for name in names:
        if any(info.name == name for info in nodes.list_nodes()):
            try:
                nodes.down(name)
            except AppdebError as exc:
                errors.append(f"{name}: {exc}")
    if errors:
        pytest.fail("node teardown failed:\n" + "\n".join(errors))


@pytest.fixture
def node(node_factory: NodeFactory) -> nodes.Node:
    """A freshly booted node with a unique name."""
    return node_factory()
