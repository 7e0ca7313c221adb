"""YAML text -> plain documents plus a source map that locates every node, block scalars included.

Callers: ``loading`` (policies), ``snapshots`` (FactSnapshots) and ``testing``
(test documents). Takes text, never a file handle: no I/O here. Values come
out as dict, list, str, int, float, bool and None; timestamps stay the
strings written in the file, so their parsing (and ``input.naive_time``) is
the caller's. ``locate`` maps a document path and a character offset inside a
scalar's value back to ``file:line:col`` for plain, quoted, literal and folded
scalars. This module checks YAML itself (syntax, duplicate keys, nesting,
alias bombs) and must not validate any document schema; ``schema_diagnostics``
only translates a pydantic error into located diagnostics.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.composer import MaxDepthExceededError
from ruamel.yaml.error import YAMLError, YAMLWarning
from ruamel.yaml.nodes import Node

from policy_engine.errors import Diagnostic, Severity, SourceLocation, cap

DocPath = tuple[str | int, ...]
T = TypeVar("T", int, float)
MAX_DEPTH = 100
MAX_NODES = 1_000_000
_TAG = "tag:yaml.org,2002:"
_ESCAPES = dict(
    zip('0abt\tnvfre "/\\N_LP', '\0\a\b\t\t\n\v\f\r\x1b "/\\\x85\xa0\u2028\u2029', strict=True)
)
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_CLoader: Any = getattr(pyyaml, "CBaseLoader", None)


def located(
    code: str, message: str, file: str, line: int = 0, column: int = 0, **extra: Any
) -> Diagnostic:
    """A Diagnostic at ``file:line:column`` (``extra``: hint, source_line, ...)."""
    return Diagnostic(code, cap(message), SourceLocation(file, line, column), **extra)


class YamlError(Exception):
    """A text that is not YAML we accept; ``diagnostics`` holds ``yaml.*`` problems, sorted.

    Callers wrap the diagnostics in ``PolicyErrors`` or ``InputErrors``.
    """

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(sorted(diagnostics, key=lambda d: d.sort_key))
        first = self.diagnostics[0].message if self.diagnostics else "invalid YAML"
        super().__init__(first)


@dataclass(frozen=True, slots=True)
class _Node:
    line: int  # 0-based start
    col: int
    index: int
    end_line: int
    end_col: int
    end_index: int
    key: tuple[int, int, int] | None  # the key's line, column, end column (0-based)
    style: str | None  # scalar style: "" plain, "'", '"', "|", ">"; None for collections
    value: str | None


class YamlSourceMap:
    """Where each node of one document sits in its file (satisfies ``model.policy.SourceMap``)."""

    __slots__ = ("_nodes", "_starts", "_text", "file")

    def __init__(
        self, file: str, text: str, starts: list[int], nodes: dict[DocPath, _Node]
    ) -> None:
        self.file = file
        self._text = text
        self._starts = starts
        self._nodes = nodes

    def contains(self, path: DocPath) -> bool:
        return tuple(path) in self._nodes

    def _nearest(self, path: DocPath) -> tuple[DocPath, _Node | None]:
        path = tuple(path)
        while path not in self._nodes and path:
            path = path[:-1]
        return path, self._nodes.get(path)

    def locate(self, path: DocPath, offset: int = 0) -> tuple[int, int]:
        """1-based (line, column) of ``path``'s value, ``offset`` characters into a scalar.

        A path that is not in the document resolves to its nearest ancestor.
        """
        found, node = self._nearest(path)
        if node is None:
            return 1, 1
        if found == tuple(path) and node.value and (offset > 0 or node.style):
            line, col = self._offset(node, offset)
            return line + 1, col + 1
        return node.line + 1, node.col + 1

    def location(
        self, path: DocPath, *, key: bool = False, offset: int = 0, width: int = 0
    ) -> SourceLocation:
        """A SourceLocation for ``path`` with ``end_column`` when the span is on one line."""
        found, node = self._nearest(path)
        exact = node is not None and found == tuple(path)
        if node is not None and exact and key and node.key is not None:
            line, col, last = node.key
            return SourceLocation(self.file, line + 1, col + 1, last + 1 if last > col else None)
        if node is not None and exact and width <= 0 and offset <= 0 and node.value is not None:
            one_line = node.end_line == node.line and node.end_col > node.col
            end = node.end_col + 1 if one_line else None
            return SourceLocation(self.file, node.line + 1, node.col + 1, end)
        line, col = self.locate(path, offset)
        return SourceLocation(self.file, line, col, col + width if width > 0 else None)

    def diagnostic(
        self,
        code: str,
        message: str,
        path: DocPath,
        *,
        key: bool = False,
        hint: str | None = None,
        rule: str | None = None,
        severity: Severity = Severity.ERROR,
    ) -> Diagnostic:
        """A located diagnostic at ``path`` (its key with ``key=True``), with the source line."""
        where = self.location(path, key=key)
        text = self.line_text(where.line)
        return Diagnostic(
            code, cap(message), where, hint, format_doc_path(path) or None, rule, severity, text
        )

    def line_text(self, line: int) -> str:
        """The text of 1-based ``line`` without its line break ("" when out of range)."""
        if line < 1 or line > len(self._starts):
            return ""
        start = self._starts[line - 1]
        end = self._text.find("\n", start)
        return self._text[start : end if end >= 0 else len(self._text)]

    def _offset(self, node: _Node, offset: int) -> tuple[int, int]:
        value = node.value or ""
        if node.style in ("|", ">"):
            chars = _block_chars(self._text, self._starts, node)
        else:
            chars = [(c, *self._position(i)) for c, i in _flow_chars(self._text, node)]
        text = "".join(c for c, _, _ in chars)
        if not chars or not text.startswith(value):
            return node.line, node.col + offset if node.line == node.end_line else node.col
        if offset < len(value):
            return chars[offset][1], chars[offset][2]
        _, line, col = chars[len(value) - 1]
        return line, col + 1

    def _position(self, index: int) -> tuple[int, int]:
        line = bisect_right(self._starts, index) - 1
        return line, index - self._starts[line]


def format_doc_path(path: Sequence[str | int]) -> str:
    """``('spec', 'rules', 1, 'expression')`` -> ``spec.rules[1].expression``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def decode_text(data: bytes, file: str) -> str:
    """Decodes a file's bytes as UTF-8; raises YamlError (``yaml.syntax``) at the bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", errors="replace")
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        message = f"file is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start}"
        hint = "save the file as UTF-8"
        raise YamlError([located("yaml.syntax", message, file, line, column, hint=hint)]) from exc


def normalise_text(text: str) -> str:
    """Drops a byte-order mark and turns CRLF / CR line breaks into LF."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def read_yaml_documents(text: str, file: str) -> list[tuple[Any, YamlSourceMap]]:
    """Reads every document of a YAML stream; raises YamlError with all ``yaml.*`` problems.

    Args:
        text: the file's text (line breaks are normalised; positions refer to the result).
        file: the name used in locations.

    Returns:
        ``(plain value, source map)`` per document; empty documents give ``None``.
    """
    text = normalise_text(text)
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    fast = _read_fast(text, file, starts)
    if fast is not None:
        return fast
    yaml = YAML(typ="rt", pure=True)
    yaml.max_depth = MAX_DEPTH
    yaml.composer.warn_double_anchors = False
    documents: list[tuple[Any, YamlSourceMap]] = []
    problems: list[Diagnostic] = []
    try:
        for root in yaml.compose_all(text):
            builder = _Builder(file, text, starts)
            value = builder.convert(root, (), None)
            problems += builder.problems
            documents.append((value, YamlSourceMap(file, text, starts, builder.nodes)))
    except (YAMLError, YAMLWarning) as exc:
        problems.append(_syntax_problem(exc, file, text, starts))
    if problems:
        raise YamlError(problems)
    return documents


def _read_fast(text: str, file: str, starts: list[int]) -> list[tuple[Any, YamlSourceMap]] | None:
    """libyaml's composer (PyYAML's C loader) for well-formed plain documents.

    Returns None, so the caller uses ruamel's composer and its precise
    diagnostics, for anything unusual: a syntax error, anchors, merge keys,
    explicit tags, or a problem found while converting.
    """
    if _CLoader is None or any(mark in text for mark in ("&", "<<", "!")):
        return None
    try:
        roots = list(pyyaml.compose_all(text, Loader=_CLoader))
    except pyyaml.YAMLError:
        return None
    documents: list[tuple[Any, YamlSourceMap]] = []
    for root in roots:
        builder = _Builder(file, text, starts)
        value = builder.convert(root, (), None) if root is not None else None
        if builder.problems:
            return None
        documents.append((value, YamlSourceMap(file, text, starts, builder.nodes)))
    return documents or None


_CORE_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_CORE_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_CORE_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_CORE_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


def _core_tag(text: str) -> str:
    """The YAML 1.2 core-schema tag of a plain scalar (what ruamel's resolver gives)."""
    for pattern, kind in (
        (_CORE_NULL, "null"),
        (_CORE_BOOL, "bool"),
        (_CORE_INT, "int"),
        (_CORE_FLOAT, "float"),
    ):
        if pattern.match(text):
            return _TAG + kind
    return _TAG + "str"


def _syntax_problem(exc: Exception, file: str, text: str, starts: list[int]) -> Diagnostic:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        line, col = int(mark.line), int(mark.column)
    else:
        index = min(int(getattr(exc, "position", 0) or 0), max(len(text) - 1, 0))
        line = bisect_right(starts, index) - 1
        col = index - starts[line]
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if isinstance(exc, MaxDepthExceededError):
        message = f"nesting deeper than {MAX_DEPTH} levels"
    elif problem:
        message = f"{context}: {problem}" if context else str(problem)
    else:
        message = str(exc).split("\n  in ", 1)[0]
    extra = {
        "hint": "check indentation, quoting and that every ':' is followed by a space",
        "source_line": YamlSourceMap(file, text, starts, {}).line_text(line + 1),
    }
    return located("yaml.syntax", f"invalid YAML: {message}", file, line + 1, col + 1, **extra)


class _Builder:
    """Converts one node tree to plain values, recording positions and YAML problems."""

    def __init__(self, file: str, text: str, starts: list[int]) -> None:
        self.source = YamlSourceMap(file, text, starts, {})
        self.nodes: dict[DocPath, _Node] = {}
        self.problems: list[Diagnostic] = []
        self.count = 0
        self._memo: dict[int, tuple[Any, int]] = {}
        self._active: set[int] = set()

    def problem(self, code: str, message: str, node: Any) -> None:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        text = self.source.line_text(line)
        self.problems.append(located(code, message, self.source.file, line, col, source_line=text))

    def record(self, node: Any, path: DocPath, key: Any) -> None:
        start, end = node.start_mark, node.end_mark or node.start_mark
        key_span = None
        if key is not None:
            first, last = key.start_mark, key.end_mark
            key_span = (first.line, first.column, last.column if last.line == first.line else -1)
        scalar = node if node.id == "scalar" else None
        style = (scalar.style or "") if scalar else None
        value = str(scalar.value).replace("\a", "") if scalar else None  # ruamel marks folds
        marks = (start.line, start.column, start.index, end.line, end.column, end.index)
        self.nodes[path] = _Node(*marks, key_span, style, value)

    def convert(self, node: Any, path: DocPath, key: Any) -> Any:
        self.record(node, path, key)
        if self.count > MAX_NODES:
            return None
        if len(path) > MAX_DEPTH:
            self.problem("yaml.syntax", f"nesting deeper than {MAX_DEPTH} levels", node)
            self.count = MAX_NODES + 1
            return None
        ident = id(node)
        if ident in self._active:
            self.problem("yaml.syntax", "recursive alias: a node contains itself", node)
            return None
        if ident in self._memo:
            value, size = self._memo[ident]
            self._grow(size, node)
            return value
        before = self.count
        self._active.add(ident)
        value = self._convert(node, path)
        self._active.discard(ident)
        if getattr(node, "anchor", None) is not None:
            self._memo[ident] = (value, self.count - before)
        return value

    def _grow(self, size: int, node: Any) -> None:
        self.count += size
        if self.count > MAX_NODES:
            self.problem("yaml.syntax", f"document expands to over {MAX_NODES} nodes", node)

    def _convert(self, node: Any, path: DocPath) -> Any:
        self._grow(1, node)
        if node.id == "mapping":
            return self._mapping(node, path)
        if node.id == "sequence":
            return [self.convert(item, (*path, i), None) for i, item in enumerate(node.value)]
        return self._scalar(node) if node.id == "scalar" else None

    def _mapping(self, node: Any, path: DocPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: dict[str, Node] = {}
        merged: list[Any] = []
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                merged.append(self.convert(value_node, (*path, "<<"), key_node))
                continue
            if key_node.id != "scalar":
                self.problem("yaml.syntax", "mapping keys must be plain scalars", key_node)
                continue
            key = str(key_node.value)
            first = seen[key].start_mark.line + 1 if key in seen else 0
            if key in seen:
                where = format_doc_path(path) or "the document"
                message = f"duplicate key {key!r} in {where} (first on line {first})"
                self.problem("yaml.duplicate_key", message, key_node)
            seen[key] = key_node
            out[key] = self.convert(value_node, (*path, key), key_node)
        for source in merged:
            for item in source if isinstance(source, list) else [source]:
                if isinstance(item, dict):
                    for key, value in item.items():
                        out.setdefault(key, value)
        return out

    def _scalar(self, node: Any) -> Any:
        tag, text = node.tag or "", str(node.value)
        if tag == _TAG + "str" and not node.style:
            tag = _core_tag(text)
        if node.style == ">":
            text = text.replace("\a", "")  # ruamel marks folds with BEL
        try:
            if tag == _TAG + "null":
                return None
            if tag == _TAG + "bool":
                return _parse_bool(text)
            if tag == _TAG + "int":
                return _parse_int(text)
            if tag == _TAG + "float":
                return _parse_float(text)
        except ValueError:
            self.problem("yaml.syntax", f"invalid {tag.removeprefix(_TAG)} {text!r:.60}", node)
            return None
        return text


def _parse_bool(text: str) -> bool:
    truth = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
    if text.lower() not in truth:
        raise ValueError(text)
    return truth[text.lower()]


def _parse_int(text: str) -> int:
    raw = text.replace("_", "")
    sign = -1 if raw.startswith("-") else 1
    digits = raw.lstrip("+-")
    if digits[:2].lower() in ("0x", "0o", "0b"):
        return sign * int(digits, 0)
    if ":" in digits:  # YAML 1.1 sexagesimal
        return sign * _base60(digits.split(":"), int)
    if len(digits) > 1 and digits.startswith("0") and digits.isdigit():
        return sign * int(digits, 8)  # YAML 1.1 octal
    return sign * int(digits, 10)


def _parse_float(text: str) -> float:
    low = text.replace("_", "").lower()
    if low in (".inf", "+.inf", "-.inf"):
        return -math.inf if low.startswith("-") else math.inf
    if low == ".nan":
        return math.nan
    if ":" in low:  # YAML 1.1 sexagesimal
        sign = -1.0 if low.startswith("-") else 1.0
        return sign * _base60(low.lstrip("+-").split(":"), float)
    return float(low)


def _base60(parts: list[str], kind: Callable[[str], T]) -> T:
    value = kind("0")
    for part in parts:
        value = value * 60 + kind(part)
    return value


def _flow_chars(text: str, node: _Node) -> list[tuple[str, int]]:
    """(value character, source index) of a plain or quoted scalar, folding as YAML does."""
    quoted = node.style in ("'", '"')
    lo, hi = (node.index + 1, node.end_index - 1) if quoted else (node.index, node.end_index)
    lines: list[tuple[int, int]] = []
    pos = lo
    while (nl := text.find("\n", pos, hi)) >= 0:
        lines.append((pos, nl))
        pos = nl + 1
    lines.append((pos, hi))
    out: list[tuple[str, int]] = []
    empties: list[int] = []
    prev_end, joined = lo, False
    for i, (line_start, line_stop) in enumerate(lines):
        start, stop = line_start, line_stop
        while i > 0 and start < stop and text[start] in " \t":
            start += 1
        while i < len(lines) - 1 and stop > start and text[stop - 1] in " \t":
            stop -= 1
        if start == stop and 0 < i < len(lines) - 1:
            empties.append(start)
            continue
        if i > 0 and not joined:
            out += [("\n", e) for e in empties] if empties else [(" ", prev_end)]
        empties, joined = [], False
        j = start
        while j < stop:
            char = text[j]
            if node.style == "'" and char == "'" and text[j + 1 : j + 2] == "'":
                out.append(("'", j))
                j += 2
            elif node.style == '"' and char == "\\":
                if j + 1 >= stop:
                    joined, j = True, j + 1
                    continue
                decoded, width = _escape(text, j)
                out.append((decoded, j))
                j += width
            else:
                out.append((char, j))
                j += 1
        prev_end = stop
    return out


def _escape(text: str, at: int) -> tuple[str, int]:
    code = text[at + 1]
    if code in _HEX_ESCAPES:
        size = _HEX_ESCAPES[code]
        try:
            return chr(int(text[at + 2 : at + 2 + size], 16)), 2 + size
        except ValueError:
            return code, 2
    return _ESCAPES.get(code, code), 2


def _block_chars(text: str, starts: list[int], node: _Node) -> list[tuple[str, int, int]]:
    """(value character, line, column) of a literal or folded block scalar."""
    first = node.line + 1
    last = min(node.end_line, len(starts) - 1)
    raw = [_line(text, starts, n) for n in range(first, last + 1)]
    lead = next((len(r) - len(r.lstrip(" ")) for r in raw if r.strip(" ")), 0)
    rest = (node.value or "").lstrip("\n")
    text_line = next((r for r in raw if r.strip(" ")), "")
    indent = next((k for k in range(lead, -1, -1) if rest.startswith(text_line[k:])), lead)
    contents: list[tuple[int, str]] = []
    for n, line in enumerate(raw, start=first):
        if line.strip(" ") and len(line) - len(line.lstrip(" ")) < indent:
            break
        contents.append((n, line[indent:]))
    out: list[tuple[str, int, int]] = []
    empties: list[int] = []
    prev: tuple[int, int] | None = None
    prev_spaced = False
    for n, content in contents:
        if not content:
            empties.append(n)
            continue
        spaced = content[0] in " \t"
        if prev is None or node.style == "|":
            if prev is not None:
                out.append(("\n", *prev))
            out += [("\n", e, 0) for e in empties]
        elif empties or spaced or prev_spaced:
            out += [("\n", *prev)] if spaced or prev_spaced else []
            out += [("\n", e, 0) for e in empties]
        else:
            out.append((" ", *prev))
        out += [(c, n, indent + j) for j, c in enumerate(content)]
        prev, prev_spaced, empties = (n, indent + len(content)), spaced, []
    if prev is not None:
        out.append(("\n", *prev))
    return out + [("\n", e, 0) for e in empties]


def _line(text: str, starts: list[int], line: int) -> str:
    end = text.find("\n", starts[line])
    return text[starts[line] : end if end >= 0 else len(text)]


__all__ = [
    "DocPath",
    "YamlError",
    "YamlSourceMap",
    "decode_text",
    "format_doc_path",
    "located",
    "normalise_text",
    "read_yaml_documents",
]
