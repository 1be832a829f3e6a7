"""Shell quoting for maintainer scripts: kept as a name for old imports; the one home is appdeb.formats."""

from __future__ import annotations

from .formats import shell as quote

__all__ = ["quote"]
