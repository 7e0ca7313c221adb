"""Evaluation: compiled policies × facts → one Verdict per candidate (POLICY-FORMATS.md §5).

Callers: the CLI (``eval``), ``testing``, ``replaying``, the controller. The
one ``evaluate()`` all of them share. Pure: never reads the clock, never
raises for rule or fact errors (they are ``error`` results folded by
``onError``), never lets an error allow a release.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from policy_engine.cel.backend import CelBackend
from policy_engine.compiling import CompiledPolicy, CompiledRule
from policy_engine.errors import EvalError
from policy_engine.evaluation.attaching import attached_policies, disabled_builtins
from policy_engine.evaluation.binding import (
    CandidateContext,
    PolicyBindings,
    bind_facts,
    candidate_context,
)
from policy_engine.evaluation.rules import (
    NOT_APPLICABLE,
    Presentation,
    RawResult,
    RuleRunner,
    evaluates_presentation,
)
from policy_engine.evaluation.sharing import Raws
from policy_engine.evaluation.timeline import Member, SharedEdges, Timeline
from policy_engine.model.facts import FactSet
from policy_engine.model.policy import Effect, Origin
from policy_engine.model.verdict import (
    Evaluation,
    Outcome,
    PolicyRef,
    RuleResult,
    Verdict,
    fold,
)

DEFAULT_HORIZON = timedelta(days=90)
DISABLED_BY_ROLLOUT = "DisabledByRollout"


@dataclass(frozen=True, slots=True)
class Options:
    """Per-run settings: horizon, param overrides by policy ref, explicit candidates."""

    horizon: timedelta = DEFAULT_HORIZON
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    candidates: Sequence[Mapping[str, Any]] | None = None
    hypothetical: frozenset[str] = frozenset()
    check_attachment: bool = True
    budget_seconds: float = 1.0


def evaluate(
    policies: Sequence[CompiledPolicy],
    facts: FactSet,
    backend: CelBackend,
    options: Options | None = None,
) -> Evaluation:
    """Evaluates every attached policy for every candidate."""
    options = options or Options()
    attached = (
        attached_policies(policies, facts.values) if options.check_attachment else list(policies)
    )
    disabled, diagnostics = disabled_builtins(facts.values, attached)
    deadline = time.perf_counter_ns() + int(options.budget_seconds * 1e9)
    candidates = options.candidates
    if candidates is None:
        recorded = facts.values.get("candidates")
        candidates = recorded if isinstance(recorded, list) else []
    run = _Run(
        Raws(RuleRunner(backend, facts), len(candidates)),
        facts,
        bind_facts(backend, facts.values, facts.now, candidates),
        disabled,
        options,
        deadline,
    )
    verdicts = tuple(_verdict(run, attached, c, i) for i, c in enumerate(candidates))
    return Evaluation(
        now=facts.now,
        now_source=facts.now_source,
        verdicts=verdicts,
        policies=tuple(
            PolicyRef(p.ref, p.policy.origin is Origin.BUILTIN, p.digest, p.policy.file)
            for p in attached
        ),
        backend=f"{backend.name} {backend.version}",
        facts_digest=facts.digest,
        diagnostics=tuple(diagnostics),
    )


@dataclass(slots=True)
class _Run:
    """One evaluation's inputs, and what it works out once for every candidate.

    ``results`` and ``gates`` memoise rules and matchConditions that do not read
    ``release`` (``per_candidate`` False), whose results are the same for all;
    ``raws``, ``bindings`` and ``edges`` are shared by every candidate's timeline.
    """

    raws: Raws
    facts: FactSet
    base: Any
    disabled: frozenset[str]
    options: Options
    deadline: int
    results: dict[tuple[int, str], tuple[RuleResult, bool]] = field(default_factory=dict)
    gates: dict[int, RawResult | None] = field(default_factory=dict)
    bindings: PolicyBindings = field(default_factory=dict)
    edges: SharedEdges = field(default_factory=dict)

    @property
    def runner(self) -> RuleRunner:
        return self.raws.runner


def _verdict(
    run: _Run, policies: Sequence[CompiledPolicy], candidate: Mapping[str, Any], index: int
) -> Verdict:
    facts, options = run.facts, run.options
    context = candidate_context(
        run.runner.backend, run.base, facts.now, candidate, options.params, run.bindings
    )
    horizon = facts.now + options.horizon
    timeline = Timeline(run.raws, index, context, facts.values, horizon, run.edges)
    results: list[RuleResult] = []
    members: list[Member] = []
    for policy in policies:
        gate = _gate(run, policy, context)
        for rule in policy.rules:
            result, dynamic = _rule_result(run, timeline, policy, rule, gate, context, index)
            results.append(result)
            members.append(Member(policy, rule, result.outcome, dynamic))
    decision = fold(tuple(results))
    next_change = timeline.decision_change(members, decision)
    warnings = tuple(
        r.rule_id
        for r in results
        if r.effect is Effect.WARN and r.outcome not in (Outcome.PASS, Outcome.SKIP)
    )
    return Verdict(
        candidate=candidate,
        decision=decision,
        results=tuple(results),
        now=facts.now,
        next_change=next_change,
        hypothetical=str(candidate.get("tag")) in options.hypothetical,
        warnings=warnings,
    )


def _rule_result(
    run: _Run,
    timeline: Timeline,
    policy: CompiledPolicy,
    rule: CompiledRule,
    gate: RawResult | None,
    context: CandidateContext,
    index: int,
) -> tuple[RuleResult, bool]:
    """A rule's result for this candidate; taken from ``run`` when another candidate's holds."""
    started = time.perf_counter_ns()
    if policy.policy.origin is Origin.BUILTIN and rule.name in run.disabled:
        raw = RawResult(Outcome.SKIP, reason=DISABLED_BY_ROLLOUT)
    elif started > run.deadline:
        raw = RawResult(
            Outcome.ERROR,
            error=EvalError(
                "eval.limit",
                f"the {run.options.budget_seconds:g} s evaluation budget of this "
                "Rollout was spent before this rule ran",
            ),
        )
    else:
        key = (id(policy), rule.name)
        found = run.results.get(key)
        if found is not None:
            return found
        raw = gate or run.raws.raw(policy, rule, context, index)
        made = _result(run.runner, timeline, policy, rule, raw, context, started)
        if not rule.per_candidate:
            run.results[key] = made
        return made
    return _result(run.runner, timeline, policy, rule, raw, context, started)


def _gate(run: _Run, policy: CompiledPolicy, context: CandidateContext) -> RawResult | None:
    """``_match`` memoised for the whole run when no matchCondition reads ``release``."""
    if not policy.match_conditions:
        return None
    if policy.matches_per_candidate:
        return _match(run.runner, policy, context)
    key = id(policy)
    if key not in run.gates:
        run.gates[key] = _match(run.runner, policy, context)
    return run.gates[key]


def _match(
    runner: RuleRunner, policy: CompiledPolicy, context: CandidateContext
) -> RawResult | None:
    """None when all matchConditions hold; else the result every rule gets."""
    binding = context.for_policy(policy)
    for name, expr in policy.match_conditions:
        value = runner.boolean(expr, binding)
        if isinstance(value, EvalError):
            return RawResult(
                Outcome.ERROR,
                error=EvalError(value.code, f"matchCondition {name}: {value.message}"),
            )
        if not value:
            return RawResult(Outcome.SKIP, reason=NOT_APPLICABLE)
    return None


def _result(
    runner: RuleRunner,
    timeline: Timeline,
    policy: CompiledPolicy,
    rule: CompiledRule,
    raw: RawResult,
    context: CandidateContext,
    started: int,
) -> tuple[RuleResult, bool]:
    outcome, next_change, opaque = raw.outcome, None, False
    dynamic = rule.reads_now and raw.outcome is not Outcome.SKIP and raw.reason is None
    if dynamic:
        outcome, next_change, opaque = timeline.rule_change(policy, rule, raw)
    if evaluates_presentation(rule, outcome):
        shown = runner.present(rule, context.for_policy(policy), outcome)
    else:
        shown = Presentation(rule.message)
    return RuleResult(
        policy=policy.ref,
        rule=rule.name,
        rule_id=rule.rule_id,
        kind=rule.kind,
        outcome=outcome,
        effect=rule.effect,
        on_error=rule.on_error,
        reason=raw.reason or rule.reason,
        message=shown.message if outcome is not Outcome.PASS else "",
        error=raw.error,
        next_change=next_change,
        outputs=shown.outputs,
        output_errors=shown.output_errors,
        message_error=shown.message_error,
        checks=raw.checks,
        reads=rule.reads,
        location=rule.location,
        time_dependent=dynamic,
        opaque_time=opaque,
        duration_ns=time.perf_counter_ns() - started,
    ), dynamic


def missing_roots(policies: Sequence[CompiledPolicy], facts: FactSet) -> list[str]:
    """Fact roots the policies read that the facts neither hold nor record as failed.

    Callers treat these as bad input (``input.missing_fact``), not as rule errors.
    """
    read = {str(path[0]) for p in policies for r in p.rules for path in r.reads}
    failed = {str(e.path[0]) for e in facts.errors if len(e.path) == 1}
    derived = {"now", "release", "params", "variables"}
    return sorted(read - set(facts.values) - failed - derived)


__all__ = ["DEFAULT_HORIZON", "Options", "evaluate", "missing_roots"]
