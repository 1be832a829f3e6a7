"""The harness's state directory and its files are the harness's own: planted state is refused, not used."""

from __future__ import annotations

from pathlib import Path

import pytest

from appdeb.errors import AppdebError
from appdeb.node import network
from appdeb.node.state import nodes_dir


def test_a_state_directory_others_can_write_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "nodes"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("APPDEB_NODE_DIR", str(shared))
    with pytest.raises(AppdebError, match="only it can write"):
        nodes_dir()
    made = tmp_path / "fresh"
    monkeypatch.setenv("APPDEB_NODE_DIR", str(made))
    assert nodes_dir() == made and made.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("text", ["10.213.47.99\n[appdeb_nodes:vars]\nansible_ssh_executable=/tmp/x",
                                  "8.8.8.8", "not an address", ""])
def test_only_an_address_on_the_node_network_counts(tmp_path: Path, text: str) -> None:
    (tmp_path / network.ADDRESS_FILE).write_text(text)
    assert network.address_of(tmp_path) is None
    inside = str(network.subnet().network_address + 20)
    (tmp_path / network.ADDRESS_FILE).write_text(inside + "\n")
    assert network.address_of(tmp_path) == inside
