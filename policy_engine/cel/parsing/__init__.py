"""CEL source structure: celpy's parser turned into a small, position-aware node tree.

Callers: ``cel.environment`` (static checks: reads, undeclared facts,
literals, limits), ``compiling`` (time edges), ``explaining`` (splitting at
``&&``/``||``/``!``/``?:``). Only this module and ``cel.backends.celpy`` touch
celpy; it never evaluates anything.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from celpy import celparser
from lark import Token, Tree

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_RELATIONS = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
}
_ARITH = {
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
}


class CelSyntaxError(ValueError):
    """A CEL syntax error at a 0-based character ``offset`` of the expression."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Node:
    """One construct of an expression with its ``[start, end)`` span in the source.

    ``kind``: cond, or, and, not, neg, rel, arith, call, member_call, select,
    index, ident, literal, list, map, object. ``name`` is the operator,
    function, field or identifier; ``value`` the literal's Python value.
    """

    kind: str
    start: int
    end: int
    children: tuple[Node, ...] = ()
    name: str = ""
    value: Any = None
    source: str = field(default="", repr=False, compare=False)

    @property
    def text(self) -> str:
        return self.source[self.start : self.end]

    def walk(self) -> Iterator[Node]:
        """This node and all descendants, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    @property
    def is_macro(self) -> bool:
        return self.kind == "member_call" and self.name in MACROS


_PARSER: list[Any] = []


def _parser() -> Any:
    # celpy keeps one Lark parser per process in a class attribute; building it
    # is the only side effect and it is idempotent.
    if not _PARSER:
        _PARSER.append(celparser.CELParser())
    return _PARSER[0]


def parse(source: str) -> Node:
    """Parses ``source``; raises CelSyntaxError with the offset of the problem."""
    try:
        tree = _parser().parse(source)
    except celparser.CELParseError as exc:
        raise CelSyntaxError(
            _first_line(str(exc.args[0]) if exc.args else str(exc)),
            _offset(source, exc.line, exc.column),
        ) from exc
    except Exception as exc:  # lark raises several unrelated classes for bad input
        raise CelSyntaxError(f"cannot parse expression: {exc}", 0) from exc
    return _Builder(source).build(tree)


def _first_line(message: str) -> str:
    lines = [line for line in message.splitlines() if line.strip()]
    return "syntax error near " + lines[0].strip() if lines else "syntax error"


def _offset(source: str, line: int | None, column: int | None) -> int:
    if not line or not column:
        return 0
    lines = source.split("\n")
    return sum(len(text) + 1 for text in lines[: line - 1]) + column - 1


class _Builder:
    def __init__(self, source: str) -> None:
        self.source = source

    def node(
        self,
        kind: str,
        tree: Tree[Any] | Token,
        children: tuple[Node, ...] = (),
        name: str = "",
        value: Any = None,
    ) -> Node:
        start, end = _span(tree)
        return Node(kind, start, end, children, name, value, self.source)

    def build(self, tree: Tree[Any] | Token) -> Node:
        if isinstance(tree, Token):
            return self.token(tree)
        rule = str(tree.data)
        kids = tree.children
        if rule == "expr":
            if len(kids) == 1:
                return self.build(kids[0])
            return self.node("cond", tree, tuple(self.build(k) for k in kids))
        if rule in ("conditionalor", "conditionaland"):
            if len(kids) == 1:
                return self.build(kids[0])
            kind = "or" if rule == "conditionalor" else "and"
            return self.node(kind, tree, (self.build(kids[0]), self.build(kids[1])))
        if rule in ("relation", "addition", "multiplication"):
            if len(kids) == 1:
                return self.build(kids[0])
            op_tree, right = kids
            assert isinstance(op_tree, Tree)
            table = _RELATIONS if rule == "relation" else _ARITH
            kind = "rel" if rule == "relation" else "arith"
            left = self.build(op_tree.children[0])
            return self.node(kind, tree, (left, self.build(right)), table[str(op_tree.data)])
        if rule == "unary":
            if len(kids) == 1:
                return self.build(kids[0])
            op = kids[0]
            assert isinstance(op, Tree)
            kind = "not" if str(op.data) == "unary_not" else "neg"
            return self.node(kind, tree, (self.build(kids[1]),))
        return self.member_or_primary(rule, tree)

    def member_or_primary(self, rule: str, tree: Tree[Any]) -> Node:
        kids = tree.children
        if rule in ("member", "primary", "paren_expr"):
            return self.build(kids[0])
        if rule == "member_dot":
            return self.node("select", tree, (self.build(kids[0]),), str(kids[1]))
        if rule == "member_dot_arg":
            args = self.exprlist(kids[2]) if len(kids) > 2 else ()
            return self.node("member_call", tree, (self.build(kids[0]), *args), str(kids[1]))
        if rule == "member_index":
            return self.node("index", tree, (self.build(kids[0]), self.build(kids[1])))
        if rule in ("ident_arg", "dot_ident_arg"):
            args = self.exprlist(kids[1]) if len(kids) > 1 else ()
            return self.node("call", tree, args, str(kids[0]))
        if rule in ("ident", "dot_ident"):
            return self.node("ident", tree, name=str(kids[0]))
        if rule == "literal":
            return self.token(kids[0])
        if rule == "list_lit":
            items = self.exprlist(kids[0]) if kids else ()
            return self.node("list", tree, items)
        if rule in ("map_lit", "member_object"):
            return self.node(
                "map" if rule == "map_lit" else "object",
                tree,
                tuple(self.build(k) for k in _flatten(kids)),
            )
        return self.node(rule, tree, tuple(self.build(k) for k in kids if isinstance(k, Tree)))

    def exprlist(self, tree: Tree[Any] | Token) -> tuple[Node, ...]:
        assert isinstance(tree, Tree)
        return tuple(self.build(k) for k in tree.children)

    def token(self, token: Tree[Any] | Token) -> Node:
        assert isinstance(token, Token)
        return self.node("literal", token, value=literal_value(token.type, str(token)))


def _flatten(kids: list[Any]) -> list[Any]:
    out: list[Any] = []
    for kid in kids:
        if isinstance(kid, Tree) and str(kid.data) in ("mapinits", "fieldinits"):
            out.extend(c for c in kid.children if isinstance(c, Tree))
        elif isinstance(kid, Tree):
            out.append(kid)
    return out


def _span(tree: Tree[Any] | Token) -> tuple[int, int]:
    if isinstance(tree, Token):
        start = int(tree.start_pos or 0)
        end = tree.end_pos
        return start, int(end) if end is not None else start + len(str(tree))
    meta = tree.meta
    if not getattr(meta, "empty", True) and meta.start_pos is not None and meta.end_pos is not None:
        return int(meta.start_pos), int(meta.end_pos)
    spans = [_span(child) for child in tree.children if isinstance(child, Tree | Token)]
    if not spans:
        return 0, 0
    return min(s for s, _ in spans), max(e for _, e in spans)


def literal_value(kind: str, text: str) -> Any:
    """The Python value of a CEL literal token."""
    if kind == "BOOL_LIT":
        return text == "true"
    if kind == "NULL_LIT":
        return None
    if kind in ("INT_LIT", "UINT_LIT"):
        return int(text.rstrip("uU"), 0)
    if kind == "FLOAT_LIT":
        return float(text)
    if kind in ("STRING_LIT", "MLSTRING_LIT"):
        return _string(text)
    if kind == "BYTES_LIT":
        return _string(text[1:]).encode("utf-8", "surrogatepass")
    return text


def _string(text: str) -> str:
    raw = text[0] in "rR"
    body = text[1:] if raw else text
    quote = 3 if body[:3] in ('"""', "'''") else 1
    inner = body[quote:-quote]
    if raw:
        return inner
    try:
        return (
            codecs.decode(inner.encode("utf-8", "surrogatepass"), "unicode_escape")
            .encode("latin-1")
            .decode("utf-8")
        )
    except (UnicodeError, ValueError):
        return inner


def comprehension_variable(node: Node) -> str | None:
    """The bound variable of a macro call (``xs.all(x, …)`` → ``x``)."""
    if node.is_macro and len(node.children) >= 3 and node.children[1].kind == "ident":
        return node.children[1].name
    return None


def max_macro_depth(node: Node, depth: int = 0) -> int:
    """Deepest nesting of comprehension macros under ``node``."""
    here = depth + 1 if node.is_macro else depth
    return max([here, *(max_macro_depth(c, here) for c in node.children)])
