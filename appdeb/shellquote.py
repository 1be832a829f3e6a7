"""Shell quoting for every value a template puts into a maintainer script."""

from __future__ import annotations

import shlex


def quote(value: object) -> str:
    """Always single-quote, even safe words, so templates read uniformly."""
    text = str(value)
    if text and shlex.quote(text) == text:
        return f"'{text}'"
    return shlex.quote(text)
