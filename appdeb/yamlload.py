"""Load YAML into nodes that remember where they came from, so every error can name file:line:col.

PyYAML's composer keeps marks but its constructor throws them away and silently lets a
duplicate key win; we build our own small tree instead and report duplicates as problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem, SpecError

# YAML 1.1 spellings that PyYAML turns into booleans but people mean as words.
BOOL_TRAPS = {"yes", "no", "on", "off", "y", "n", "Yes", "No", "On", "Off", "YES", "NO", "ON", "OFF"}


@dataclass
class YNode:
    """A YAML value with its position (1-based) and the scalar text as written."""

    value: Any
    line: int
    col: int
    kind: str  # map | seq | str | int | float | bool | null
    raw: str = ""
    quoted: bool = False
    keys_at: dict[str, tuple[int, int]] = field(default_factory=dict)


def _scalar(node: yaml.ScalarNode, loader: yaml.SafeLoader) -> YNode:
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    quoted = node.style in ("'", '"', "|", ">")
    value = loader.construct_object(node, deep=True)
    if isinstance(value, bool):
        kind = "bool"
    elif isinstance(value, int):
        kind = "int"
    elif isinstance(value, float):
        kind = "float"
    elif value is None:
        kind = "null"
    elif isinstance(value, str):
        kind = "str"
    else:  # dates and other tags: keep the text, the validator decides
        value, kind = node.value, "str"
    return YNode(value, line, col, kind, raw=node.value, quoted=quoted)


def _convert(node: yaml.Node, loader: yaml.SafeLoader, file: str, problems: list[Problem], path: str) -> YNode:
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, YNode] = {}
        result = YNode(out, line, col, "map")
        for key_node, value_node in node.value:
            key = str(key_node.value)
            kpath = f"{path}.{key}" if path else key
            kl, kc = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key in out:
                first = result.keys_at[key][0]
                problems.append(Problem(file, kl, kc, kpath, f"duplicate key (first defined on line {first})"))
                continue
            result.keys_at[key] = (kl, kc)
            out[key] = _convert(value_node, loader, file, problems, kpath)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = [_convert(n, loader, file, problems, f"{path}[{i}]") for i, n in enumerate(node.value)]
        return YNode(items, line, col, "seq")
    assert isinstance(node, yaml.ScalarNode)
    return _scalar(node, loader)


def load(path: Path, display_name: str | None = None) -> tuple[YNode, list[Problem]]:
    """Parse one YAML document: syntax errors raise SpecError, duplicate keys come back as problems."""
    name = display_name or path.name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem(name, 1, 1, "", f"no such file: {path}")]) from None
    except UnicodeDecodeError as exc:
        raise SpecError([Problem(name, 1, 1, "", f"not UTF-8 text ({exc.reason})")]) from None
    return loads(text, name)


def loads(text: str, name: str = "app.yaml") -> tuple[YNode, list[Problem]]:
    """Parse YAML text (see load)."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SpecError([Problem(name, line, col, "", f"YAML syntax error: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(name, 1, 1, "", f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()
    if root is None:
        return YNode({}, 1, 1, "map"), []
    problems: list[Problem] = []
    tree = _convert(root, loader, name, problems, "")
    return tree, problems
