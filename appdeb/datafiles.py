"""The data files appdeb reads at run time: templates/debian/ and repo/ (aptly.conf.j2), in one lookup.

In a checkout they are the top-level folders of the design; an installed wheel carries the same
folders as appdeb/_templates and appdeb/_repo (setup.cfg maps them), so a lookup tries both.
"""

from __future__ import annotations

from pathlib import Path

from appdeb.errors import AppdebError

FOLDERS = {"templates": "_templates", "repo": "_repo"}  # top-level folder → its name inside the wheel


def data_path(folder: str, *parts: str) -> Path:
    """templates/debian, repo/aptly.conf.j2 …: from the checkout, else from the installed wheel."""
    package = Path(__file__).resolve().parent
    for base in (package.parent / folder, package / FOLDERS[folder]):
        candidate = base.joinpath(*parts)
        if candidate.exists():
            return candidate
    raise AppdebError(f"{'/'.join((folder, *parts))} is missing from this installation "
                      f"(neither in the checkout nor as appdeb/{FOLDERS[folder]} in the wheel)")
