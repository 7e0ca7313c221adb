"""Where an expression depends on ``now``: the time sites that yield nextChange edges.

Callers: ``compiling`` records the sites of each rule; ``evaluation`` turns
them into candidate instants (POLICY-FORMATS.md §5.4). A site is one of:
a window call (``inWindow``/``nextTransition``), a relation whose one side
moves with ``now`` at rate 1 (``now``, ``since(x)``, ``now ± d``), or a zoned
accessor on ``now``. Any other use of ``now`` makes the expression opaque.
Static analysis only; never evaluates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from policy_engine.cel.backend import Program
from policy_engine.cel.parsing import Node

WINDOW_FUNCTIONS = frozenset({"inWindow", "nextTransition"})
RELATIONS = frozenset({"<", "<=", ">", ">=", "==", "!="})
ACCESSORS = frozenset(
    {
        "getFullYear",
        "getMonth",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
    }
)


@dataclass(frozen=True, slots=True)
class TimeSite:
    """One place where ``now`` enters a rule.

    kind ``window``: ``window_name`` (literal) or ``window_arg`` (a compiled
    argument; None = every window of the facts and the policy).
    kind ``relation``: ``moving`` (the side that moves with now) and ``fixed``.
    kind ``accessor``: ``unit`` and ``zone`` (None = UTC).
    kind ``opaque``: ``text`` names the use that cannot be solved.
    """

    kind: str
    text: str
    window_name: str | None = None
    window_arg: Program | None = None
    moving: Program | None = None
    fixed: Program | None = None
    unit: str | None = None
    zone: str | None = None
    #: the site's text names ``release`` (its edges may then differ between candidates)
    reads_release: bool = True


Compile = Callable[[str], Program | None]


def find_sites(node: Node, compile_part: Compile) -> tuple[TimeSite, ...]:
    """All time sites of an expression; an unsolvable use of now becomes an opaque site."""
    sites: list[TimeSite] = []
    _visit(node, compile_part, sites, frozenset())
    return tuple(sites)


def reads_now(node: Node) -> bool:
    return any(
        (n.kind == "ident" and n.name == "now") or (n.kind == "call" and n.name == "since")
        for n in node.walk()
    )


def _visit(node: Node, compile_part: Compile, sites: list[TimeSite], bound: frozenset[str]) -> None:
    if not reads_now(node):
        return
    site = _site(node, compile_part, bound)
    if site is not None:
        release = any(n.kind == "ident" and n.name == "release" for n in node.walk())
        sites.append(replace(site, reads_release=release))
        return
    if (node.kind == "ident" and node.name == "now") or (
        node.kind == "call" and node.name == "since"
    ):
        sites.append(TimeSite("opaque", node.text))
        return
    inner = bound
    if node.is_macro and len(node.children) >= 2 and node.children[1].kind == "ident":
        inner = bound | {node.children[1].name}
    for child in node.children:
        _visit(child, compile_part, sites, inner)


def _site(node: Node, compile_part: Compile, bound: frozenset[str]) -> TimeSite | None:
    if node.kind == "call" and node.name in WINDOW_FUNCTIONS and len(node.children) == 2:
        return _window_site(node, compile_part, bound)
    if node.kind == "rel" and node.name in RELATIONS:
        return _relation_site(node, compile_part, bound)
    if node.kind == "member_call" and node.name in ACCESSORS:
        receiver = node.children[0]
        if receiver.kind == "ident" and receiver.name == "now":
            zone_node = node.children[1] if len(node.children) > 1 else None
            if zone_node is None or (
                zone_node.kind == "literal" and isinstance(zone_node.value, str)
            ):
                zone = zone_node.value if zone_node is not None else None
                return TimeSite("accessor", node.text, unit=node.name, zone=zone)
    return None


def _window_site(node: Node, compile_part: Compile, bound: frozenset[str]) -> TimeSite | None:
    instant, window = node.children
    if not (instant.kind == "ident" and instant.name == "now"):
        return None if reads_now(instant) else TimeSite("window", node.text)
    if window.kind == "literal" and isinstance(window.value, str):
        return TimeSite("window", node.text, window_name=window.value)
    uses_bound = any(n.kind == "ident" and n.name in bound for n in window.walk())
    program = None if uses_bound or reads_now(window) else compile_part(window.text)
    return TimeSite("window", node.text, window_arg=program)


def _relation_site(node: Node, compile_part: Compile, bound: frozenset[str]) -> TimeSite | None:
    left, right = node.children
    left_moves, right_moves = reads_now(left), reads_now(right)
    if left_moves == right_moves:
        return None
    moving, fixed = (left, right) if left_moves else (right, left)
    if not _moves_at_rate_one(moving):
        return None
    if any(n.kind == "ident" and n.name in bound for n in node.walk()):
        return None
    moving_program = compile_part(moving.text)
    fixed_program = compile_part(fixed.text)
    if moving_program is None or fixed_program is None:
        return None
    return TimeSite("relation", node.text, moving=moving_program, fixed=fixed_program)


def _moves_at_rate_one(node: Node) -> bool:
    """True for ``now``, ``since(x)``, ``m + d``, ``d + m``, ``m - d`` with m moving."""
    if node.kind == "ident" and node.name == "now":
        return True
    if node.kind == "call" and node.name == "since" and len(node.children) == 1:
        return not reads_now(node.children[0])
    if node.kind == "arith" and node.name in ("+", "-"):
        left, right = node.children
        if node.name == "+" and reads_now(right) and not reads_now(left):
            return _moves_at_rate_one(right)
        return reads_now(left) and not reads_now(right) and _moves_at_rate_one(left)
    return False
