"""Console scripts of the vendored libraries (alembic, flask, django-admin …) as the node will run them.

uv and pip write scripts that name the build machine's interpreter, so vendoring drops them; the
package ships its own instead, for the node's python3, in /opt/PKG/bin, which is on PATH in every
process of the app (`PKG run alembic upgrade head`, commands, units). `appdeb serve`/`run` make the
same scripts for the development interpreter, with the node's PATH, so dev and prod agree.
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass
from pathlib import Path

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REF_RE = re.compile(r"([A-Za-z_][\w.]*)\s*:\s*([A-Za-z_][\w.]*)")


@dataclass(frozen=True)
class Script:
    """One console script: `name = module:attr` from a dist's entry_points.txt."""

    name: str
    module: str
    attr: str

    def text(self, interpreter: str) -> str:
        """The script, like pip's: import the callable, exit with its result."""
        head, _, _ = self.attr.partition(".")
        return (f"#!{interpreter}\n# {self.name}: console script of a vendored library, written by appdeb\n"
                f"import sys\nfrom {self.module} import {head}\n\n"
                f"if __name__ == \"__main__\":\n    sys.argv[0] = {self.name!r}\n    sys.exit({self.attr}())\n")


def console_scripts(lib: Path) -> tuple[Script, ...]:
    """Every well-formed console script of the dists in lib, sorted by name (the first dist wins a name)."""
    found: dict[str, Script] = {}
    for entry_points in sorted(lib.glob("*.dist-info/entry_points.txt")):
        parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # names are case-sensitive
        try:
            parser.read_string(entry_points.read_text(encoding="utf-8"))
        except (configparser.Error, UnicodeDecodeError):
            continue
        if not parser.has_section("console_scripts"):
            continue
        for name, ref in parser.items("console_scripts"):
            match = REF_RE.fullmatch(ref.split("[")[0].strip())
            if NAME_RE.fullmatch(name) and match and name not in found:
                found[name] = Script(name, match.group(1), match.group(2))
    return tuple(found[n] for n in sorted(found))
