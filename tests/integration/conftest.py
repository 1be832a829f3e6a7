"""Fixtures the integration tests share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def debs(tmp_path: Path) -> Path:
    """An empty directory for the .debs a test makes."""
    d = tmp_path / "debs"
    d.mkdir()
    return d
