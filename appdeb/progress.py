"""Progress lines for long steps: shown on a terminal, silent in CI and pipes."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

Reporter = Callable[[str], None]


def reporter(force: bool | None = None) -> Reporter:
    """A step reporter; on a TTY it prints '… step' with elapsed time, else nothing."""
    enabled = force if force is not None else (sys.stderr.isatty() and not os.environ.get("CI"))
    start = time.monotonic()

    def report(message: str) -> None:
        if enabled:
            print(f"[{time.monotonic() - start:5.1f}s] {message}", file=sys.stderr, flush=True)

    return report


def quiet(message: str) -> None:
    """A reporter that says nothing."""
