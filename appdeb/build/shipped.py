"""What appdeb ships into packages: the Jinja2 templates and the node-side Python.

Both are found in the source tree or inside the installed wheel. jinja2 is imported only when
rendering, so the build's no-change path stays cheap.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from appdeb.build import formats
from appdeb.datafiles import data_path

if TYPE_CHECKING:
    import jinja2


def template_dir() -> Path:
    """templates/debian from a checkout, else appdeb/_templates/debian from the wheel."""
    return data_path("templates", "debian")


@cache
def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=_finalize,
        bytecode_cache=_compiled_templates(),
    )
    env.filters.update(formats.FILTERS)
    return env


def _compiled_templates() -> jinja2.BytecodeCache | None:
    """The templates compiled once into appdeb's cache (compiling them is a tenth of a warm build); an
    entry is used only for the template source it was compiled from. None where the cache cannot be made."""
    import jinja2

    from appdeb.build.vendor import cache_root

    where = cache_root() / "templates"
    try:
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(where))


def _finalize(value: object) -> object:
    """Defence in depth: a plain string with a line break or control character never reaches a file.

    Escaping filters return formats.Rendered (their output may span lines on purpose); anything else
    interpolated by a template must be one clean line, or rendering stops with an error.
    """
    if isinstance(value, str) and not isinstance(value, formats.Rendered):
        ch = formats.bad_char(value)
        if ch is not None:
            raise formats.FormatError(f"template: refusing to render {value[:60]!r}: it contains {ch!r} "
                                      "(values from app.yaml pass through a validator and an escaping filter)")
    return value


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
