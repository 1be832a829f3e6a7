"""Where the Jinja2 templates live: the source tree's templates/ or the copy inside the installed wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

from . import shellquote


def template_dir() -> Path:
    """templates/debian from a checkout, else appdeb/_templates/debian from the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "templates" / "debian", here / "_templates" / "debian"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError("appdeb's templates are missing from this installation")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["sh"] = shellquote.quote
    return env
