"""The code's shape, checked like behaviour: the parts import on their own, modules stay small, nothing is
written twice, and the shipped runtime talks to other programs through its one door.
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "appdeb"
PARTS = ("appdeb.build", "appdeb.repo", "appdeb.node", "appdeb.dev", "appdeb.cli", "appdeb.deploy", "appdeb.runtime",
         "appdeb.services", "appdeb.failsafe")
MAX_LINES = 300
WINDOW = 6  # this many identical lines in two places is code written twice


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("part", PARTS)
def test_each_part_imports_on_its_own(part: str) -> None:
    module = importlib.import_module(part)
    assert module.__doc__, f"{part} says what it is in its docstring"


def test_no_module_is_over_the_size_habit() -> None:
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in _modules()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def _significant(path: Path) -> list[tuple[int, str]]:
    """(line number, stripped text) of the lines that carry code: no blanks, comments or lone brackets."""
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if text and not text.startswith("#") and text not in (")", "]", "}", "),", "],", "},", '"""'):
            out.append((number, text))
    return out


def test_no_six_identical_lines_in_two_places() -> None:
    seen: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for path in _modules():
        lines = _significant(path)
        for i in range(len(lines) - WINDOW + 1):
            window = tuple(text for _, text in lines[i:i + WINDOW])
            if all(t.startswith(("import ", "from ")) for t in window):
                continue  # import blocks repeat by nature
            seen[window].append(f"{path.relative_to(PACKAGE)}:{lines[i][0]}")
    repeated = {"\n".join(w): places for w, places in seen.items() if len(places) > 1}
    assert repeated == {}


def _calls_subprocess(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "subprocess" \
                and node.attr in ("run", "call", "check_call", "check_output", "Popen"):
            found.append(f"{path.name}:{node.lineno} subprocess.{node.attr}")
    return found


def test_the_shipped_runtime_starts_programs_only_through_its_door() -> None:
    shipped = [p for p in _modules() if p.parent.name in ("runtime", "services") and p.name != "proc.py"]
    assert [hit for p in shipped for hit in _calls_subprocess(p)] == []
