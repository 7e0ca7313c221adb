"""Static analysis of an expression against the declared facts: reads and undeclared names.

Callers: ``cel.environment`` (load-time checks), ``compiling`` (reads per
rule for provenance and fail-closed fact errors). Works on ``cel.parsing``
nodes only; never evaluates and never imports a CEL implementation.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from policy_engine.cel.parsing import Node, comprehension_variable
from policy_engine.model import schema
from policy_engine.model.paths import FactPath

TYPE_NAMES = frozenset(
    {
        "int",
        "uint",
        "double",
        "bool",
        "string",
        "bytes",
        "list",
        "map",
        "null_type",
        "type",
        "timestamp",
        "duration",
        "dyn",
    }
)


@dataclass(frozen=True, slots=True)
class Problem:
    """A located problem in an expression: ``[start, end)`` offsets into its source."""

    code: str
    message: str
    start: int
    end: int
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    """What an expression may refer to besides the schema's fact roots.

    ``variables`` maps a declared variable to the fact type of its expression
    when that is a plain select chain (else None) and to the paths it reads.
    """

    params: frozenset[str] = frozenset()
    metrics: frozenset[str] | None = None
    variables: Mapping[str, tuple[schema.FactType | None, frozenset[FactPath]]] = field(
        default_factory=dict
    )
    roots: frozenset[str] = frozenset(schema.ALL_ROOTS)
    extra_roots: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Analysis:
    reads: frozenset[FactPath]
    reads_now: bool
    problems: tuple[Problem, ...]
    chain_type: schema.FactType | None = None
    #: roots read only inside ``has()`` or through a key (``root.key``), never as a whole:
    #: binding them as ``{}`` when unavailable keeps has() false and every read an error
    empty_safe: frozenset[str] = frozenset()


def analyse(node: Node, scope: Scope) -> Analysis:
    """Reads, whether ``now`` is read, and undeclared-fact problems of ``node``."""
    walker = _Walker(scope)
    walker.visit(node, frozenset())
    chain = _chain(node)
    chain_type = walker.chain_type(chain) if chain is not None else None
    empty_safe = frozenset(walker.keyed_roots - walker.whole_roots)
    return Analysis(
        frozenset(walker.reads), walker.reads_now, tuple(walker.problems), chain_type, empty_safe
    )


def _chain(node: Node) -> tuple[Node, list[tuple[str | int, Node]]] | None:
    """``a.b['c'][0]`` → (ident a, [('b', n), ('c', n), (0, n)]); None when not static."""
    steps: list[tuple[str | int, Node]] = []
    current = node
    while True:
        if current.kind == "select":
            steps.append((current.name, current))
            current = current.children[0]
        elif (
            current.kind == "index"
            and current.children[1].kind == "literal"
            and isinstance(current.children[1].value, str | int)
            and not isinstance(current.children[1].value, bool)
        ):
            steps.append((current.children[1].value, current))
            current = current.children[0]
        elif current.kind == "ident":
            steps.reverse()
            return current, steps
        else:
            return None


class _Walker:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.reads: set[FactPath] = set()
        self.reads_now = False
        self.problems: list[Problem] = []
        self.keyed_roots: set[str] = set()
        self.whole_roots: set[str] = set()

    def visit(self, node: Node, bound: frozenset[str]) -> None:
        if node.kind == "call" and node.name == "since":
            self.reads_now = True
        if node.kind in ("select", "index", "ident"):
            chain = _chain(node)
            if chain is not None:
                self.visit_chain(node, chain, bound)
                return
        if node.kind == "call" and node.name == "has" and node.children:
            self.visit_has(node.children[0], bound)
            return
        if node.is_macro:
            variable = comprehension_variable(node)
            self.visit(node.children[0], bound)
            inner = bound | {variable} if variable else bound
            for child in node.children[2:]:
                self.visit(child, inner)
            return
        for child in node.children:
            self.visit(child, bound)

    def visit_has(self, operand: Node, bound: frozenset[str]) -> None:
        chain = _chain(operand)
        if chain is None or not chain[1]:
            self.visit(operand, bound)
            return
        # has(a.b.c) reads a.b and only tests c: check the parent chain fully
        ident, steps = chain
        self.visit_chain(operand, (ident, steps[:-1]), bound, tested=steps[-1])

    def visit_chain(
        self,
        node: Node,
        chain: tuple[Node, list[tuple[str | int, Node]]],
        bound: frozenset[str],
        tested: tuple[str | int, Node] | None = None,
    ) -> None:
        ident, steps = chain
        name = ident.name
        if name in bound or name in TYPE_NAMES:
            return
        if name == "now":
            self.reads_now = True
            self.reads.add(("now",))
            return
        if name not in self.scope.roots and name not in self.scope.extra_roots:
            self.unknown_root(ident)
            return
        if name in self.scope.extra_roots:
            return
        keyed = tested is not None or bool(steps)
        (self.keyed_roots if keyed else self.whole_roots).add(name)
        self.reads.add(self.path_of(name, steps))
        self.check_steps(name, steps, tested)
        for _, step_node in steps:
            if step_node.kind == "index":
                self.visit(step_node.children[1], bound)
        del node

    def path_of(self, root: str, steps: list[tuple[str | int, Node]]) -> FactPath:
        if root == "variables" and steps and isinstance(steps[0][0], str):
            declared = self.scope.variables.get(steps[0][0])
            if declared is not None:
                self.reads.update(declared[1])
            return ("variables", steps[0][0])
        if root == "params":
            return ("params",) if not steps else ("params", steps[0][0])
        return (root, *(key for key, _ in steps))

    def check_steps(
        self, root: str, steps: list[tuple[str | int, Node]], tested: tuple[str | int, Node] | None
    ) -> None:
        current = self.start_type(root, steps)
        if current is None:
            return
        offset = 1 if root in ("variables",) else 0
        for key, step in [*steps[offset:], *([tested] if tested else [])]:
            current = self.step(current, key, step)
            if current is None:
                return

    def start_type(self, root: str, steps: list[tuple[str | int, Node]]) -> schema.FactType | None:
        if root == "params":
            self.check_member(steps, self.scope.params, "param", "params")
            return None
        if root == "metrics" and self.scope.metrics is not None:
            self.check_member(steps, self.scope.metrics, "metric", "facts.metrics")
            return None
        if root == "variables":
            if not steps:
                return None
            key, _step = steps[0]
            declared = self.scope.variables.get(str(key))
            if declared is None:
                self.check_member(
                    steps, frozenset(self.scope.variables), "variable", "earlier variables"
                )
                return None
            return declared[0]
        return schema.root_type(root)

    def check_member(
        self, steps: list[tuple[str | int, Node]], known: Iterable[str], what: str, where: str
    ) -> None:
        if not steps:
            return
        key, step = steps[0]
        if str(key) in known:
            return
        names = sorted(known)
        self.problems.append(
            Problem(
                "cel.undeclared_fact",
                f"undeclared {what} {str(key)!r}"
                + (
                    f" (declared in {where}: {', '.join(names)})"
                    if names
                    else f" (none declared in {where})"
                ),
                *_member_span(step),
                _did_you_mean(str(key), names),
            )
        )

    def step(self, current: schema.FactType, key: str | int, node: Node) -> schema.FactType | None:
        if isinstance(current, schema.Record):
            if isinstance(key, str) and key in current.fields:
                return current.fields[key]
            self.problems.append(
                Problem(
                    "cel.undeclared_fact",
                    f"no field {key!r} on {current.name}",
                    *_member_span(node),
                    _did_you_mean(str(key), list(current.fields)),
                )
            )
            return None
        if isinstance(current, schema.ListOf | schema.MapOf):
            return schema.element_type(current)
        return None

    def unknown_root(self, ident: Node) -> None:
        roots = sorted(self.scope.roots | self.scope.extra_roots)
        self.problems.append(
            Problem(
                "cel.undeclared_fact",
                f"undeclared reference {ident.name!r} (fact roots: {', '.join(roots)})",
                ident.start,
                ident.end,
                _did_you_mean(ident.name, roots),
            )
        )

    def chain_type(
        self, chain: tuple[Node, list[tuple[str | int, Node]]]
    ) -> schema.FactType | None:
        ident, steps = chain
        current = schema.root_type(ident.name)
        if ident.name == "variables" and steps:
            declared = self.scope.variables.get(str(steps[0][0]))
            current, steps = (declared[0] if declared else None), steps[1:]
        for key, _ in steps:
            if current is None:
                return None
            if isinstance(current, schema.Record):
                current = current.fields.get(str(key))
            else:
                current = schema.element_type(current)
        return current


def _member_span(node: Node) -> tuple[int, int]:
    """The span of the field name of a select (``.healthySnice``) or the index."""
    if node.kind == "select":
        return node.end - len(node.name), node.end
    if node.kind == "index":
        return node.children[1].start, node.children[1].end
    return node.start, node.end


def _did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None
