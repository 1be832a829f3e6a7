"""Typed accessors over YNode trees that record problems instead of raising, so all are reported at once."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from appdeb.build.yamlload import BOOL_TRAPS, YNode
from appdeb.errors import Problem

KIND_NAMES = {"map": "a mapping", "seq": "a list", "str": "a string", "int": "an integer",
              "float": "a number", "bool": "true or false", "null": "empty"}


class Checker:
    """Collects Problems for one file while the validator walks its tree."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, node: YNode | None, key: str, message: str, at: tuple[int, int] | None = None) -> None:
        line, col = at if at else ((node.line, node.col) if node else (1, 1))
        self.problems.append(Problem(self.file, line, col, key, message))

    def check(self, node: YNode | None, key: str, problem: str | None) -> None:
        """Record a rule's verdict (a message, or None for a value that passes)."""
        if problem is not None:
            self.add(node, key, problem)

    def keys(self, node: YNode, path: str, allowed: Iterable[str], required: Iterable[str] = ()) -> None:
        """Unknown keys are errors (with a did-you-mean); missing required keys too."""
        allowed = list(allowed)
        for key, at in node.keys_at.items():
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else f" (allowed: {', '.join(allowed)})"
                self.add(node, _join(path, key), f"unknown key{hint}", at)
        for key in required:
            if key not in node.keys_at:  # an empty section (`wsgi:` alone) is null: it has no keys either
                self.add(node, _join(path, key), "required key is missing")

    def mapping(self, node: YNode | None, path: str) -> dict[str, YNode] | None:
        if node is None or node.kind == "null":
            return {}
        if node.kind != "map":
            self.add(node, path, f"must be a mapping, not {KIND_NAMES[node.kind]}")
            return None
        return dict(node.value)

    def string(self, node: YNode | None, path: str, *, allow_number: bool = False) -> str | None:
        """A string; catches YAML's traps (1.10 read as a float, no/on read as booleans)."""
        if node is None:
            return None
        if node.kind == "str":
            return str(node.value)
        if node.kind == "bool" and node.raw in BOOL_TRAPS:
            self.add(node, path, f"'{node.raw}' is read by YAML as the boolean {str(node.value).lower()}; "
                     f"quote it: \"{node.raw}\"")
        elif node.kind == "float":
            self.add(node, path, f"{node.raw} is read by YAML as the number {node.value!r}; quote it: \"{node.raw}\"")
        elif node.kind == "int" and allow_number:
            return node.raw
        elif node.kind == "int":
            self.add(node, path, f"{node.raw} is read by YAML as a number; quote it: \"{node.raw}\"")
        else:
            self.add(node, path, f"must be a string, not {KIND_NAMES[node.kind]}")
        return None

    def integer(self, node: YNode | None, path: str, lo: int, hi: int) -> int | None:
        if node is None:
            return None
        if node.kind != "int":
            self.add(node, path, f"must be an integer between {lo} and {hi}")
            return None
        value = int(node.value)
        if not lo <= value <= hi:
            self.add(node, path, f"{node.raw} is out of range (allowed: {lo}..{hi})")
            return None
        return value

    def boolean(self, node: YNode | None, path: str) -> bool | None:
        if node is None:
            return None
        if node.kind != "bool" or node.raw in BOOL_TRAPS:
            self.add(node, path, "must be true or false")
            return None
        return bool(node.value)

    def string_list(self, node: YNode | None, path: str, *, split_commas: bool = False) -> list[str]:
        """A list of strings; a single string is accepted as a one-item list."""
        if node is None or node.kind == "null":
            return []
        if node.kind != "seq":
            text = self.string(node, path)
            if text is None:
                return []
            return [p.strip() for p in text.split(",") if p.strip()] if split_commas else [text]
        out = []
        for i, item in enumerate(node.value):
            text = self.string(item, f"{path}[{i}]")
            if text is not None:
                out.append(text)
        return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def plain(node: YNode) -> Any:
    """The tree as plain Python values (for storing sections later issues interpret)."""
    if node.kind == "map":
        return {k: plain(v) for k, v in node.value.items()}
    if node.kind == "seq":
        return [plain(v) for v in node.value]
    return node.value
