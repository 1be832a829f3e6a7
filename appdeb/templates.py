"""What appdeb ships into packages: the Jinja2 templates and the node-side Python.

Both are found in the source tree or inside the installed wheel. jinja2 is imported only when
rendering, so the build's no-change path stays cheap.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from . import shellquote

if TYPE_CHECKING:
    import jinja2


def template_dir() -> Path:
    """templates/debian from a checkout, else appdeb/_templates/debian from the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "templates" / "debian", here / "_templates" / "debian"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError("appdeb's templates are missing from this installation")


@cache
def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["sh"] = shellquote.quote
    return env


def shipped_sources() -> dict[str, bytes]:
    """Node-side Python shipped beside app.json: the entry run.py, the runtime and the service plug-ins."""
    out: dict[str, bytes] = {}
    for package, target in (("appdeb.runtime", "appdeb_runtime"), ("appdeb.services", "appdeb_services")):
        for entry in sorted(resources.files(package).iterdir(), key=lambda p: p.name):
            if entry.name == "run.py":
                out["run.py"] = entry.read_bytes()
            elif entry.name.endswith(".py"):
                out[f"{target}/{entry.name}"] = entry.read_bytes()
    return out
