"""Load YAML into nodes that remember where they came from, so every error can name file:line:col.

PyYAML's constructor throws marks away and silently lets a duplicate key win, and app.yaml is
untrusted: we build our own small tree, iteratively, from the parser's events (libyaml's when
present), reporting duplicates as problems and refusing a document larger than 1 MiB, nested deeper
than 64 levels, or holding more than 50 000 values counting what aliases repeat ("billion laughs"),
at the line:col where the limit was crossed. PyYAML's recursive composer would end in a
RecursionError, and its pure-Python parser needs seconds for a large document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from appdeb.build.infile import read_text
from appdeb.errors import MAX_KEY, Problem, SpecError, shorten

MAX_BYTES = 1 << 20  # an app description is a page or two; a 1 MiB one is an accident or an attack
MAX_DEPTH = 64
MAX_VALUES = 50_000  # values in the document, each repetition by an alias counted again (far beyond any real one)
STR_TAG = "tag:yaml.org,2002:str"
INT_TAG = "tag:yaml.org,2002:int"
# Longer integers are refused before PyYAML converts them: YAML 1.1's base-60 form (1:0:0:…) escapes
# Python's digit limit while read, in quadratic time, then fails when printed (a message, app.json).
MAX_INT_TEXT = 32
PLAIN_TAGS = (None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

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


class _Refused(Exception):
    """The document crossed a limit (or a rule no validator could repair) at a position."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.line: int = mark.line + 1 if mark is not None else 1
        self.col: int = mark.column + 1 if mark is not None else 1


@dataclass
class _Open:
    """A mapping or sequence being filled; a mapping alternates between waiting for a key and a value."""

    node: YNode
    path: str
    anchor: str | None
    key: str | None = None  # the key whose value comes next
    skip: bool = False  # the next value belongs to a key that was refused


def _pos(mark: Any) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


class _Composer:
    """Events → YNode tree, with the limits of the module docstring; problems collected, not raised."""

    def __init__(self, loader: Any, file: str) -> None:
        self.loader, self.file = loader, file
        self.problems: list[Problem] = []
        self.anchors: dict[str, YNode] = {}
        self.open_anchors: set[str] = set()
        self.sizes: dict[int, int] = {}
        self.values = 0
        self.stack: list[_Open] = []
        self.root: YNode | None = None

    def compose(self) -> YNode | None:
        get = self.loader.get_event
        get()  # StreamStart
        if isinstance(get(), yaml.StreamEndEvent):
            return None
        while True:
            event = get()
            self._event(event)
            if self.root is not None and not self.stack:
                break
        get()  # DocumentEnd
        extra = get()
        if not isinstance(extra, yaml.StreamEndEvent):
            raise _Refused(extra.start_mark, "YAML syntax error: expected a single document, found another one")
        return self.root

    def _event(self, event: Any) -> None:
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            self._open(event)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            done = self.stack.pop()
            self.sizes[id(done.node)] = 1 + sum(self.sizes[id(c)] for c in _children(done.node))
            self._remember(done.anchor, done.node)
            self._attach(done.node, event.start_mark)
        elif isinstance(event, yaml.AliasEvent):
            self._attach(self._alias(event), event.start_mark)
        elif isinstance(event, yaml.ScalarEvent):
            node = self._scalar(event)
            self.sizes[id(node)] = 1
            self._remember(event.anchor, node)
            self._attach(node, event.start_mark)

    def _count(self, n: int, mark: Any) -> None:
        self.values += n
        if self.values > MAX_VALUES:
            raise _Refused(mark, f"more than {MAX_VALUES} values (counting what aliases repeat); "
                           "an app description needs far fewer")

    def _open(self, event: Any) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise _Refused(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
        self._count(1, event.start_mark)
        path = self._child_path()
        line, col = _pos(event.start_mark)
        is_map = isinstance(event, yaml.MappingStartEvent)
        node = YNode({} if is_map else [], line, col, "map" if is_map else "seq")
        if event.tag not in PLAIN_TAGS:
            self._problem(line, col, path, f"the tag {_tag(event.tag)} is not supported here")
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        self.stack.append(_Open(node, path, event.anchor))

    def _alias(self, event: Any) -> YNode:
        if event.anchor in self.open_anchors:
            raise _Refused(event.start_mark, "an alias may not refer to a node that contains it")
        target = self.anchors.get(event.anchor)
        if target is None:
            raise _Refused(event.start_mark, f"YAML syntax error: found undefined alias '{event.anchor}'")
        self._count(self.sizes[id(target)], event.start_mark)
        return target

    def _remember(self, anchor: str | None, node: YNode) -> None:
        if anchor is not None:
            self.open_anchors.discard(anchor)
            self.anchors[anchor] = node

    def _child_path(self) -> str:
        if not self.stack:
            return ""
        top = self.stack[-1]
        if top.node.kind == "seq":
            return f"{top.path}[{len(top.node.value)}]"
        if top.key is None:
            return top.path
        return _join(top.path, top.key)

    def _attach(self, node: YNode, mark: Any) -> None:
        """Put a finished node into its parent (as an item, a key or a value), or make it the root."""
        if not self.stack:
            self.root = node
            return
        top = self.stack[-1]
        if top.node.kind == "seq":
            top.node.value.append(node)
        elif top.skip:
            top.skip = False
        elif top.key is None:
            self._key(top, node, mark)
        else:
            top.node.value[top.key] = node
            top.key = None

    def _key(self, top: _Open, node: YNode, mark: Any) -> None:
        line, col = _pos(mark)
        if node.kind in ("map", "seq"):
            self._problem(line, col, top.path, "keys must be plain words, not lists or mappings")
            top.skip = True
            return
        key = node.raw
        if key in top.node.value:
            first = top.node.keys_at[key][0]
            self._problem(line, col, _join(top.path, key), f"duplicate key (first defined on line {first})")
            top.skip = True
            return
        top.node.keys_at[key] = (line, col)
        top.key = key

    def _scalar(self, event: Any) -> YNode:
        """A scalar with its YAML type, as PyYAML's SafeLoader would construct it."""
        self._count(1, event.start_mark)
        line, col = _pos(event.start_mark)
        quoted = event.style in ("'", '"', "|", ">")
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == STR_TAG:
            return YNode(event.value, line, col, "str", raw=event.value, quoted=quoted)
        if tag == INT_TAG and len(event.value) > MAX_INT_TEXT:
            self._problem(line, col, self._value_path(), f"the integer {shorten(event.value, 60)} is longer than "
                          f"{MAX_INT_TEXT} characters (quote it if it is text)")
            return YNode(None, line, col, "null", raw=event.value, quoted=quoted)
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        try:
            value = self.loader.construct_object(node, deep=True)
        except Exception as exc:  # !!int abc, !!timestamp junk, !foo: PyYAML's constructors raise anything
            reason = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else str(exc)
            self._problem(line, col, self._value_path(), f"cannot read this {_tag(tag)} value: {reason}"[:300])
            return YNode(None, line, col, "null", raw=event.value, quoted=quoted)
        typed, kind = _typed(value, event.value)
        return YNode(typed, line, col, kind, raw=event.value, quoted=quoted)

    def _value_path(self) -> str:
        """The path a problem with the scalar being read names (a key's problem names its mapping)."""
        waiting_key = bool(self.stack) and self.stack[-1].node.kind == "map" and self.stack[-1].key is None
        return self.stack[-1].path if waiting_key else self._child_path()

    def _problem(self, line: int, col: int, key: str, message: str) -> None:
        self.problems.append(Problem(self.file, line, col, key, message))


def _typed(value: Any, text: str) -> tuple[Any, str]:
    if isinstance(value, bool):
        return value, "bool"
    if isinstance(value, int):
        return value, "int"
    if isinstance(value, float):
        return value, "float"
    if value is None:
        return None, "null"
    if isinstance(value, str):
        return value, "str"
    return text, "str"  # dates and other tags: keep the text, the validator decides


def _join(path: str, key: str) -> str:
    """A key's path as problems show it, cut short: each open node keeps one, so no copy of a huge
    key is made per value below it."""
    key = shorten(key, MAX_KEY)
    return shorten(f"{path}.{key}", MAX_KEY) if path else key


def _children(node: YNode) -> list[YNode]:
    return list(node.value.values()) if node.kind == "map" else list(node.value)


def load(path: Path, display_name: str | None = None) -> tuple[YNode, list[Problem]]:
    """Parse one YAML document: syntax errors raise SpecError, duplicate keys come back as problems."""
    name = display_name or path.name
    return loads(read_text(path, name, MAX_BYTES), name)


def loads(text: str, name: str = "app.yaml") -> tuple[YNode, list[Problem]]:
    """Parse YAML text (see load): bounded in size, depth and values; every failure a SpecError."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise SpecError([Problem(name, 1, 1, "", f"is larger than {MAX_BYTES // 1024} KiB")])
    if text.startswith("\ufeff"):
        raise SpecError([Problem(name, 1, 1, "", "starts with a byte-order mark; save it as UTF-8 without one")])
    loader = None
    try:
        loader = _Loader(text)  # the pure-Python reader refuses control characters right here
        composer = _Composer(loader, name)
        root = composer.compose()
    except _Refused as exc:
        raise SpecError([Problem(name, exc.line, exc.col, "", str(exc))]) from None
    except yaml.reader.ReaderError as exc:
        raise SpecError([_reader_problem(text, name, exc)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = _pos(mark) if mark else (1, 1)
        raise SpecError([Problem(name, line, col, "", f"YAML syntax error: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(name, 1, 1, "", f"YAML error: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        return YNode({}, 1, 1, "map"), []
    return root, composer.problems


def _reader_problem(text: str, name: str, exc: yaml.reader.ReaderError) -> Problem:
    """YAML refuses control characters (a NUL byte, an escape) anywhere in the file: say where."""
    pos = max(0, min(exc.position, len(text)))
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    ch = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)
    return Problem(name, line, col, "", f"the character {ch!r} is not allowed in YAML text "
                   "(write it as an escape in a double-quoted string)")
