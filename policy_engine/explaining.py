"""Explanations as data: why a rule did not pass, part by part, with fact provenance.

Callers: the CLI (``eval --explain``), ``testing`` (failing cases),
``rendering``. Splits expression bodies at ``&&``, ``||``, ``!`` and ``?:``
(comprehensions stay whole), evaluates each part and the operands of
relations and ``in`` on the same backend, and lists the facts read with
their provenance. Must not alter verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from policy_engine import windows
from policy_engine.cel import environment, parsing
from policy_engine.cel.backend import CelBackend, CelCompileError, Program
from policy_engine.cel.parsing import reads as variables
from policy_engine.compiling import CompiledExpr, CompiledPolicy, CompiledRule
from policy_engine.errors import EvalError
from policy_engine.evaluation import Options
from policy_engine.evaluation.binding import PolicyBinding, bind_facts, candidate_context
from policy_engine.model.facts import FactSet, Provenance
from policy_engine.model.paths import FactPath, format_path
from policy_engine.model.verdict import Outcome, RuleResult, Verdict

SPLIT = frozenset({"and", "or", "not", "cond"})
WITNESSED = frozenset({"exists", "exists_one", "all"})
OPERANDS = frozenset({"rel"})
MODES = ("none", "fails", "all")


@dataclass(frozen=True, slots=True)
class FactRead:
    path: str
    status: str  # ok | unavailable | stale | invalid
    provenance: Provenance | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Operand:
    text: str
    value: Any
    facts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExplainNode:
    """A part of an expression: its text, value (or EvalError) and sub-parts."""

    text: str
    op: str
    value: Any
    start: int
    end: int
    children: tuple[ExplainNode, ...] = ()
    operands: tuple[Operand, ...] = ()
    #: for exists/exists_one the first element making it true, for all the first making
    #: it false (§6); None when there is none or it cannot be computed
    witness: Any = None

    @property
    def ok(self) -> bool:
        return self.value is True


@dataclass(frozen=True, slots=True)
class WindowEntryState:
    name: str
    kind: str
    description: str
    active: bool
    because: str


@dataclass(frozen=True, slots=True)
class WindowExplanation:
    name: str
    timezone: str
    local_time: str
    open: bool
    entries: tuple[WindowEntryState, ...]
    next_change: datetime | None


@dataclass(frozen=True, slots=True)
class RuleExplanation:
    result: RuleResult
    root: ExplainNode | None
    checks: tuple[tuple[str, ExplainNode], ...]
    facts: tuple[FactRead, ...]
    windows: tuple[WindowExplanation, ...] = ()
    when: ExplainNode | None = None
    pending_when: ExplainNode | None = None


class Explainer:
    """Explains verdicts of one evaluation; caches compiled parts per policy."""

    def __init__(
        self,
        policies: Sequence[CompiledPolicy],
        facts: FactSet,
        backend: CelBackend,
        options: Options | None = None,
    ) -> None:
        self.policies = {p.ref + "/" + p.name: p for p in policies}
        self.by_rule = {r.rule_id: (p, r) for p in policies for r in p.rules}
        self.facts = facts
        self.backend = backend
        self.options = options or Options()
        self.base = bind_facts(backend, facts.values, facts.now)
        self._programs: dict[tuple[int, str], Program | None] = {}

    def explain(self, verdict: Verdict, mode: str = "fails") -> tuple[RuleExplanation, ...]:
        if mode == "none":
            return ()
        context = candidate_context(
            self.backend, self.base, self.facts.now, verdict.candidate, self.options.params
        )
        out: list[RuleExplanation] = []
        for result in verdict.results:
            if mode == "fails" and result.outcome in (Outcome.PASS, Outcome.SKIP):
                continue
            found = self.by_rule.get(result.rule_id)
            if found is None:
                continue
            policy, rule = found
            out.append(self.explain_rule(policy, rule, result, context.for_policy(policy), mode))
        return tuple(out)

    def explain_rule(
        self,
        policy: CompiledPolicy,
        rule: CompiledRule,
        result: RuleResult,
        binding: PolicyBinding,
        mode: str = "fails",
    ) -> RuleExplanation:
        root = self.tree(policy, rule.body, binding) if rule.body is not None else None
        checks = tuple((n, self.tree(policy, e, binding)) for n, e in rule.checks)
        shown = self.windows_of(policy, rule, mode)
        return RuleExplanation(
            result,
            root,
            checks,
            self.fact_reads(rule.reads),
            shown,
            self.tree(policy, rule.when, binding) if rule.when else None,
            self.tree(policy, rule.pending_when, binding) if rule.pending_when else None,
        )

    def tree(
        self, policy: CompiledPolicy, expr: CompiledExpr, binding: PolicyBinding
    ) -> ExplainNode:
        return self.node(policy, expr.checked.node, binding, expr.checked.program)

    def node(
        self,
        policy: CompiledPolicy,
        node: parsing.Node,
        binding: PolicyBinding,
        program: Program | None = None,
    ) -> ExplainNode:
        value = self.value(policy, node.text, binding, program)
        children: tuple[ExplainNode, ...] = ()
        operands: tuple[Operand, ...] = ()
        if node.kind in SPLIT:
            children = tuple(self.node(policy, c, binding) for c in node.children)
        elif node.kind in OPERANDS:
            operands = tuple(
                Operand(c.text, self.value(policy, c.text, binding), self.operand_facts(policy, c))
                for c in node.children
            )
        return ExplainNode(
            node.text,
            node.kind if not node.name else node.name,
            value,
            node.start,
            node.end,
            children,
            operands,
            self.witness(policy, node, binding, value),
        )

    def witness(
        self, policy: CompiledPolicy, node: parsing.Node, binding: PolicyBinding, value: Any
    ) -> Any:
        """The element that decided an ``exists``/``exists_one``/``all`` comprehension."""
        if not (node.is_macro and node.name in WITNESSED and len(node.children) == 3):
            return None
        if (node.name == "all") == (value is True) or isinstance(value, EvalError):
            return None
        target, variable, predicate = node.children
        condition = predicate.text if node.name != "all" else f"!({predicate.text})"
        text = f"({target.text}).filter({variable.text}, {condition})"
        found = self.value(policy, text, binding)
        if isinstance(found, list) and found:
            return found[0]
        return None

    def value(
        self,
        policy: CompiledPolicy,
        text: str,
        binding: PolicyBinding,
        program: Program | None = None,
    ) -> Any:
        if program is None:
            program = self.program(policy, text)
        if program is None:
            return EvalError("eval.type_error", "part cannot be evaluated on its own")
        return self.backend.evaluate(program, binding.bound)

    def program(self, policy: CompiledPolicy, text: str) -> Program | None:
        key = (id(policy), text)
        if key not in self._programs:
            try:
                node = parsing.parse(text)
                rewritten, _ = environment.rewrite(node, policy.env.functions)
                self._programs[key] = self.backend.compile(rewritten, policy.env)
            except (parsing.CelSyntaxError, CelCompileError):
                self._programs[key] = None
        return self._programs[key]

    def operand_facts(self, policy: CompiledPolicy, node: parsing.Node) -> tuple[str, ...]:
        """Fact paths an operand reads (through variables too), with their provenance."""
        scope = variables.Scope(
            variables={
                name: (expr.checked.analysis.chain_type, expr.checked.analysis.reads)
                for name, expr in policy.variables
            }
        )
        shown: list[str] = []
        for path in sorted(variables.analyse(node, scope).reads, key=format_path):
            if path[:1] in (("params",), ("variables",), ("now",)):
                continue
            provenance = self.facts.provenance_of(path)
            where = f": {provenance.describe()}" if provenance else ""
            shown.append(format_path(path) + where)
        return tuple(shown)

    def fact_reads(self, reads: frozenset[FactPath]) -> tuple[FactRead, ...]:
        out: list[FactRead] = []
        for path in sorted(reads, key=format_path):
            if path[:1] in (("params",), ("variables",)):
                continue
            error = self.facts.error_for((path,))
            status = "ok" if error is None else error.code.split(".", 1)[1]
            out.append(
                FactRead(
                    format_path(path),
                    status,
                    self.facts.provenance_of(path),
                    error.message if error else None,
                )
            )
        return tuple(out)

    def windows_of(
        self, policy: CompiledPolicy, rule: CompiledRule, mode: str
    ) -> tuple[WindowExplanation, ...]:
        """The windows a rule reads: by name, or every recorded schedule window."""
        named: list[tuple[str, windows.Window]] = []
        for site in rule.time_sites:
            if site.kind != "window":
                continue
            if site.window_name is not None and site.window_name in policy.windows:
                named.append((site.window_name, policy.windows[site.window_name]))
            elif site.window_name is None:
                named += self.recorded_windows()
        unique = dict(named)
        now = self.facts.now
        shown = [(n, w) for n, w in unique.items() if mode == "all" or not windows.is_open(w, now)]
        return tuple(self.window(name, window) for name, window in shown)

    def recorded_windows(self) -> list[tuple[str, windows.Window]]:
        recorded = self.facts.values.get("windows")
        out: list[tuple[str, windows.Window]] = []
        for key, value in (recorded or {}).items() if isinstance(recorded, dict) else ():
            try:
                out.append((str(key), windows.parse_window(value)))
            except windows.WindowSyntaxError:
                continue
        return out

    def window(self, name: str, window: windows.Window) -> WindowExplanation:
        now = self.facts.now
        states = windows.explain_at(window, now)
        local = now.astimezone(ZoneInfo(window.timezone))
        return WindowExplanation(
            name,
            window.timezone,
            local.strftime("%a %Y-%m-%d %H:%M:%S %z"),
            windows.is_open(window, now),
            tuple(
                WindowEntryState(
                    s.entry.name, s.kind, windows.describe_entry(s.entry), s.active, s.because
                )
                for s in states
            ),
            windows.next_transition(window, now, now + self.options.horizon),
        )
