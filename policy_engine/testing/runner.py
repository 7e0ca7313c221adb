"""Running PolicyTest cases: compose facts, evaluate, compare, for rows, matrices and sweeps.

Callers: ``tidegate test`` (via ``testing.suite``) and the pytest plugin.
Produces ``CaseResult`` values; never prints. A failing rule is a result;
bad test input raises ``InputErrors`` before the file's cases run.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from policy_engine import evaluation
from policy_engine.cel import environment
from policy_engine.cel.backend import CelBackend
from policy_engine.cel.parsing import reads
from policy_engine.compiling import CompiledPolicy, coerce_param
from policy_engine.errors import Diagnostic, EvalError, InputErrors, SourceLocation
from policy_engine.evaluation.attaching import attaches
from policy_engine.evaluation.sweeping import SweepTooLong, sweep
from policy_engine.explaining import Explainer, RuleExplanation
from policy_engine.model.facts import FactSet
from policy_engine.model.policy import Origin
from policy_engine.model.times import TimeSyntaxError, parse_duration, to_utc
from policy_engine.model.verdict import Evaluation, Verdict
from policy_engine.testing import composing, expectations
from policy_engine.testing.documents import (
    CaseSpec,
    CheckCaseSpec,
    Expect,
    FactsSpec,
    PolicyTestDocument,
)

MAX_MATRIX_ROWS = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The outcome of one case (or matrix row): passed, failed, skipped or todo."""

    id: str
    file: str
    line: int
    name: str
    status: str
    mismatches: tuple[expectations.Mismatch, ...] = ()
    evaluation: Evaluation | None = None
    verdict: Verdict | None = None
    facts: FactSet | None = None
    explanations: tuple[RuleExplanation, ...] = ()
    duration_ms: float = 0.0
    now: datetime | None = None
    now_source: str | None = None
    note: str = ""
    tags: tuple[str, ...] = ()


@dataclass(slots=True)
class FileContext:
    """A PolicyTest file with its compiled policies and fixtures."""

    document: PolicyTestDocument
    file: str
    display: str
    policies: Sequence[CompiledPolicy]
    backend: CelBackend
    index: expectations.RuleIndex
    fixtures: composing.FixtureLookup
    case_lines: Mapping[str, int] = field(default_factory=dict)
    load_snapshot: composing.SnapshotLoader = field(default_factory=composing.caching_loader)

    @property
    def base(self) -> Path:
        return Path(self.file).parent


def validate_references(context: FileContext) -> None:
    """Every rule, param and fixture named by the file must exist (input.unknown_reference)."""
    problems: list[Diagnostic] = []
    document = context.document
    params = {name for p in context.policies for name in p.param_types}
    for case in document.cases:
        where = SourceLocation(context.file, context.case_lines.get(case.name, 0), 1)
        for expect in (document.defaults.expect, case.expect):
            if expect is None:
                continue
            refs = [
                *expect.rules,
                *(expect.warnings or ()),
                *(t.rule for t in expect.transitions or () if t.rule),
            ]
            for message in expectations.unresolved(refs, context.index):
                problems.append(Diagnostic("input.unknown_reference", message, where))
            for ref, wanted in expect.rules.items():
                problem = expectations.rule_expect_problem(wanted)
                if problem:
                    problems.append(
                        Diagnostic("input.schema", f"expect.rules.{ref}: {problem}", where)
                    )
        for message in expectations.unresolved(case.rules, context.index):
            problems.append(Diagnostic("input.unknown_reference", message, where))
        for name in [*case.params, *document.defaults.params]:
            if name not in params:
                problems.append(
                    Diagnostic(
                        "input.unknown_reference",
                        f"no attached policy declares param {name!r}",
                        where,
                        hint="params: " + (", ".join(sorted(params)) or "none"),
                    )
                )
    if problems:
        raise InputErrors(problems)


def run_case(context: FileContext, case: CaseSpec) -> list[CaseResult]:
    """One CaseResult per matrix row (or one for a plain, sweep, skipped or todo case)."""
    return [run_row(context, row, case_id) for case_id, row in case_rows(context, case)]


def case_rows(context: FileContext, case: CaseSpec) -> list[tuple[str, CaseSpec]]:
    """(case ID, case) per matrix row; a case without a matrix is its own row."""
    base_id = f"{context.display}::{case.name}"
    if case.todo or case.skip:
        return [(base_id, case)]
    rows = list(matrix_rows(case))
    if len(rows) > MAX_MATRIX_ROWS:
        line = context.case_lines.get(case.name, 0)
        raise InputErrors(
            [
                Diagnostic(
                    "input.schema",
                    f"matrix has {len(rows)} rows (limit {MAX_MATRIX_ROWS})",
                    SourceLocation(context.file, line, 1),
                )
            ]
        )
    return [(base_id + suffix, row) for suffix, row in rows]


def not_run_result(
    case: CaseSpec | CheckCaseSpec, case_id: str, file: str, line: int
) -> CaseResult | None:
    """The result of a ``todo`` or ``skip`` case (never counted as passed), else None."""
    if case.todo:
        return CaseResult(case_id, file, line, case.name, "todo", tags=case.tags)
    if case.skip:
        return CaseResult(
            case_id, file, line, case.name, "skipped", note=case.skip_reason or "", tags=case.tags
        )
    return None


def run_row(context: FileContext, case: CaseSpec, case_id: str) -> CaseResult:
    """Runs one row of a case (``case_rows``), timed; skip and todo are reported as such."""
    line = context.case_lines.get(case.name, 0)
    not_run = not_run_result(case, case_id, context.file, line)
    if not_run is not None:
        return not_run
    started = time.perf_counter()
    result = _run_row(context, case, case_id, line)
    return replace(result, duration_ms=(time.perf_counter() - started) * 1000)


def matrix_rows(case: CaseSpec) -> Iterator[tuple[str, CaseSpec]]:
    if not case.matrix:
        yield "", case
        return
    keys = list(case.matrix)
    for values in itertools.product(*(case.matrix[k] for k in keys)):
        row = case
        for key, value in zip(keys, values, strict=True):
            row = _apply_matrix(row, key, value)
        label = ",".join(f"{k}={_label(v)}" for k, v in zip(keys, values, strict=True))
        yield f"[{label}]", row


def _apply_matrix(case: CaseSpec, key: str, value: Any) -> CaseSpec:
    if key == "now":
        return case.model_copy(update={"now": value})
    if key == "release":
        return case.model_copy(update={"release": str(value)})
    if key.startswith("params."):
        return case.model_copy(update={"params": {**case.params, key[7:]: value}})
    if key.startswith("facts.set."):
        facts = case.facts or FactsSpec()
        updated = facts.model_copy(update={"set": {**(facts.set or {}), key[10:]: value}})
        return case.model_copy(update={"facts": updated})
    raise InputErrors(
        [
            Diagnostic(
                "input.schema",
                f"matrix key {key!r} is not one of now, release, params.<p>, facts.set.<path>",
            )
        ]
    )


def _label(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _run_row(context: FileContext, case: CaseSpec, case_id: str, line: int) -> CaseResult:
    defaults = context.document.defaults
    where = SourceLocation(context.file, line, 1)
    composed = composing.compose(
        case.facts, defaults.facts, context.base, context.fixtures, where, context.load_snapshot
    )
    params = _params(context, {**defaults.params, **case.params}, where)
    now, now_source = composing.resolve_now(
        case.now if case.now is not None else defaults.now,
        composed,
        where,
        lambda text, values: _now_expr(context, text, values, params),
    )
    facts = composing.fact_set(composed, now, now_source, where)
    _check_missing(context, facts, where)
    recorded = composed.snapshot.decision if composed.snapshot else None
    release = case.release or defaults.release
    if release == "recorded":
        release = expectations.recorded_release(recorded)
    options = _options(facts, release, params)
    strict = _strict(context, case)
    expect = _merged_expect(defaults.expect, case.expect)
    if case.sweep is not None:
        return _run_sweep(context, case, case_id, line, facts, options, release, expect, where)
    result = evaluation.evaluate(context.policies, facts, context.backend, options)
    verdict = _verdict(result, release)
    mismatches = expectations.compare(
        expect, result, verdict, context.index, strict=strict, recorded=recorded
    )
    explained: tuple[RuleExplanation, ...] = ()
    if mismatches and verdict is not None:
        explained = Explainer(context.policies, facts, context.backend, options).explain(verdict)
    return CaseResult(
        case_id,
        context.file,
        line,
        case.name,
        "failed" if mismatches else "passed",
        tuple(mismatches),
        result,
        verdict,
        facts,
        explained,
        now=now,
        now_source=now_source,
        tags=case.tags,
    )


def _merged_expect(defaults: Expect | None, case: Expect | None) -> Expect:
    if defaults is None:
        return case or Expect()
    if case is None:
        return defaults
    merged = defaults.model_dump(by_alias=True, exclude_unset=True)
    merged.update(case.model_dump(by_alias=True, exclude_unset=True))
    return Expect.model_validate(merged)


def _strict(context: FileContext, case: CaseSpec) -> bool:
    for value in (case.strict, context.document.defaults.strict):
        if value is not None:
            return value
    return context.document.strict


def _verdict(result: Evaluation, release: str | None) -> Verdict | None:
    if release is not None:
        return result.verdict_for(release)
    return result.verdicts[0] if result.verdicts else None


def _options(
    facts: FactSet, release: str | None, params: Mapping[str, Mapping[str, Any]]
) -> evaluation.Options:
    recorded = facts.values.get("candidates") or []
    if release is not None and not any(c.get("tag") == release for c in recorded):
        hypothetical = {
            "tag": release,
            "version": None,
            "digest": None,
            "revision": None,
            "created": None,
        }
        return evaluation.Options(
            params=params, candidates=[hypothetical, *recorded], hypothetical=frozenset({release})
        )
    return evaluation.Options(params=params)


def _params(
    context: FileContext, raw: Mapping[str, Any], where: SourceLocation
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, value in raw.items():
        for policy in context.policies:
            kind = policy.param_types.get(name)
            if kind is None:
                continue
            try:
                out.setdefault(policy.ref, {})[name] = coerce_param(kind, value)
            except (TimeSyntaxError, ValueError, TypeError) as exc:
                raise InputErrors(
                    [Diagnostic("input.schema", f"param {name}: {exc}", where)]
                ) from exc
    return out


def _now_expr(
    context: FileContext,
    text: str,
    values: Mapping[str, Any],
    params: Mapping[str, Mapping[str, Any]],
) -> Any:
    backend = context.backend
    env = environment.make_env(extra_roots=("facts",))
    declared = frozenset(name for policy in context.policies for name in policy.param_types)
    scope = reads.Scope(params=declared, extra_roots=frozenset({"facts"}))
    try:
        checked = environment.compile_checked(backend, text, env, scope)
    except environment.CompileProblems as exc:
        raise InputErrors([Diagnostic("input.schema", f"now.expr: {exc}")]) from exc
    merged_params: dict[str, Any] = {}
    for policy in context.policies:
        merged_params.update(policy.params)
        merged_params.update(params.get(policy.ref, {}))
    normalised = composing.fact_set(
        composing.Composed(dict(values)), _EPOCH, "test", SourceLocation(context.file)
    ).values
    bound = backend.bind({"facts": dict(normalised), "params": merged_params})
    value = backend.evaluate(checked.program, bound)
    if isinstance(value, EvalError):
        raise InputErrors([Diagnostic("input.schema", f"now.expr failed: {value}")])
    return value


def _check_missing(context: FileContext, facts: FactSet, where: SourceLocation) -> None:
    problems: list[Diagnostic] = []
    missing = evaluation.missing_roots(context.policies, facts)
    if missing:
        problems.append(
            Diagnostic(
                "input.missing_fact",
                f"the policies read {', '.join(missing)} but the case's facts do not provide it",
                where,
                hint="add it under facts (from/use/patch/set) or record its error",
            )
        )
    rollout = facts.values.get("rollout")
    for policy in context.policies:
        if (
            policy.policy.origin is not Origin.BUILTIN
            and isinstance(rollout, dict)
            and not attaches(policy, rollout)
        ):
            problems.append(
                Diagnostic(
                    "input.not_attached",
                    f"policy {policy.ref!r} does not attach to Rollout "
                    f"{rollout.get('namespace')}/{rollout.get('name')}",
                    where,
                    hint="check the policy's targets against the Rollout's namespace and labels",
                )
            )
    if problems:
        raise InputErrors(problems)


def _run_sweep(
    context: FileContext,
    case: CaseSpec,
    case_id: str,
    line: int,
    facts: FactSet,
    options: evaluation.Options,
    release: str | None,
    expect: Expect,
    where: SourceLocation,
) -> CaseResult:
    assert case.sweep is not None
    try:
        start = to_utc(case.sweep.from_)
        end = to_utc(case.sweep.to)
        step = parse_duration(case.sweep.step)
    except TimeSyntaxError as exc:
        raise InputErrors([Diagnostic(exc.code, f"sweep: {exc}", where)]) from exc
    tracked = [context.index.resolve(r) for r in case.rules]

    def state_at(instant: datetime) -> tuple[str, ...]:
        result = evaluation.evaluate(
            context.policies, facts.with_now(instant), context.backend, options
        )
        verdict = _verdict(result, release)
        if verdict is None:
            return ("none", *("none" for _ in tracked))
        by_id = {r.rule_id: r.outcome.value for r in verdict.results}
        return (verdict.decision.value, *(by_id.get(t, "none") for t in tracked))

    try:
        initial, changes = sweep(state_at, start, end, step)
    except SweepTooLong as exc:
        raise InputErrors([Diagnostic("input.schema", f"sweep: {exc}", where)]) from exc
    actual: list[tuple[datetime, str | None, str]] = []
    for change in changes:
        if change.before[0] != change.after[0]:
            actual.append((change.at, None, change.after[0]))
        for i, rule_id in enumerate(tracked, start=1):
            if change.before[i] != change.after[i]:
                actual.append((change.at, rule_id, change.after[i]))
    mismatches = _compare_sweep(context, expect, initial, tracked, actual)
    note = f"{int((end - start) / step)} steps, {len(actual)} changes"
    return CaseResult(
        case_id,
        context.file,
        line,
        case.name,
        "failed" if mismatches else "passed",
        tuple(mismatches),
        now=start,
        now_source="test",
        note=note,
        facts=facts,
        tags=case.tags,
    )


def _compare_sweep(
    context: FileContext,
    expect: Expect,
    initial: tuple[str, ...],
    tracked: list[str],
    actual: list[tuple[datetime, str | None, str]],
) -> list[expectations.Mismatch]:
    found: list[expectations.Mismatch] = []
    if isinstance(expect.initial, Mapping):
        states = dict(zip(tracked, initial[1:], strict=True))
        for ref, wanted in expect.initial.items():
            if ref == "decision":
                if wanted != initial[0]:
                    found.append(expectations.Mismatch("initial.decision", wanted, initial[0]))
                continue
            rule_id = context.index.resolve(ref)
            if states.get(rule_id) != wanted:
                found.append(
                    expectations.Mismatch(
                        f"initial.{rule_id}", wanted, states.get(rule_id, "not tracked")
                    )
                )
    elif isinstance(expect.initial, str) and expect.initial != initial[0]:
        found.append(expectations.Mismatch("initial", expect.initial, initial[0]))
    if expect.transitions is not None:
        wanted_list = [
            (to_utc(t.at), context.index.resolve(t.rule) if t.rule else None, t.to)
            for t in expect.transitions
        ]
        if wanted_list != actual:
            found.append(
                expectations.Mismatch(
                    "transitions",
                    [_transition_text(t) for t in wanted_list],
                    [_transition_text(t) for t in actual],
                )
            )
    if expect.decision is not None and expect.decision != initial[0]:
        found.append(expectations.Mismatch("decision", expect.decision, initial[0]))
    return found


def _transition_text(item: tuple[datetime, str | None, str]) -> str:
    at, rule, to = item
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} {rule + ' ' if rule else ''}→ {to}"
