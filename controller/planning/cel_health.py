"""HealthChecks of class ``cel`` (POLICY-FORMATS.md §2.5): ``spec.cel`` as a one-rule policy.

Callers: ``reconciling.healthchecks``, which compiles with ``compile_check``,
collects the facts the check asks for (``alerts``, ``metrics``, ``flux``,
``kruise`` of its namespace) and asks ``verdict_of`` for the status. Pure: the
engine compiles and evaluates; no I/O, no clock. Never raises for a bad
``spec.cel``: a compile error is an ``Unhealthy`` verdict naming the cause, a
runtime error follows ``onError`` (an unreadable source keeps ``lastErrorTime``,
KUBERIK-SEMANTICS.md §5.1 [T]).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from controller.planning.healthchecks import Verdict, unavailable_verdict
from evaluators.base import MetricQuery
from policy_engine import (
    CompiledPolicy,
    FactSet,
    Options,
    Outcome,
    PolicyErrors,
    RuleResult,
    compile_policies,
    evaluate,
    load_policy_text,
)
from policy_engine.cel.backend import CelBackend
from policy_engine.model.times import TimeSyntaxError, parse_duration

RULE = "health"
DEFAULT_INTERVAL = timedelta(seconds=30)
MIN_INTERVAL = timedelta(seconds=5)
HEALTHY_MESSAGE = "cel expression is true"
UNHEALTHY_MESSAGE = "cel expression is false"
PENDING_MESSAGE = "cel pendingWhen is true"
CANDIDATE = {"tag": "healthcheck"}
RULE_KEYS = {"pendingWhen": "pendingWhen", "messageExpression": "messageExpression"}


@dataclass(frozen=True, slots=True)
class CelCheck:
    """A compiled ``spec.cel``: the policy, ``onError`` and the metric queries to collect.

    ``uncollectable`` names metrics that cannot be collected, and why (they are
    unavailable, so reading them is an error).
    """

    policy: CompiledPolicy
    on_error: str
    metrics: Mapping[str, MetricQuery] = field(default_factory=dict)
    uncollectable: Mapping[str, str] = field(default_factory=dict)


def cel_spec(hc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``spec.cel`` when it is a map, else None."""
    found = (hc.get("spec") or {}).get("cel")
    return found if isinstance(found, Mapping) else None


def interval(hc: Mapping[str, Any]) -> timedelta:
    """``spec.cel.interval``: default 30 s, at least 5 s; an invalid value means 30 s."""
    raw = (cel_spec(hc) or {}).get("interval")
    if not isinstance(raw, str) or not raw:
        return DEFAULT_INTERVAL
    try:
        return max(parse_duration(raw), MIN_INTERVAL)
    except (TimeSyntaxError, OverflowError):
        return DEFAULT_INTERVAL


def policy_document(hc: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """The RolloutPolicy equivalent of ``spec.cel``: its params, variables, facts, one rule."""
    meta = hc.get("metadata") or {}
    rule: dict[str, Any] = {
        "name": RULE,
        "kind": "health",
        "expression": spec.get("expression"),
        "message": spec.get("message") or UNHEALTHY_MESSAGE,
    }
    rule.update({key: spec[key] for key in RULE_KEYS if spec.get(key) is not None})
    body: dict[str, Any] = {"targets": {"rolloutSelector": {}}, "rules": [rule]}
    for key in ("params", "variables", "facts"):
        if spec.get(key):
            body[key] = spec[key]
    return {
        "apiVersion": "tidegate.dev/v1alpha1",
        "kind": "RolloutPolicy",
        "metadata": {"name": str(meta.get("name", "")), "namespace": meta.get("namespace")},
        "spec": body,
    }


def compile_check(hc: Mapping[str, Any], backend: CelBackend) -> CelCheck | Verdict:
    """Compiles ``spec.cel``; a missing or invalid one is an ``Unhealthy`` verdict saying why."""
    spec = cel_spec(hc)
    if spec is None or not isinstance(spec.get("expression"), str):
        return Verdict("Unhealthy", "invalid spec.cel: spec.cel.expression is required")
    document = policy_document(hc, spec)
    try:
        [policy] = compile_policies(load_policy_text(json.dumps(document), "spec.cel"), backend)
    except PolicyErrors as exc:
        found = sorted(exc.diagnostics, key=lambda d: d.code)
        problems = "; ".join(f"{d.code}: {d.message}" for d in found[:3]) or str(exc)
        return Verdict("Unhealthy", f"invalid spec.cel: {problems}"[:1024])
    on_error = "pending" if spec.get("onError") == "pending" else "unhealthy"
    metrics: dict[str, MetricQuery] = {}
    uncollectable: dict[str, str] = {}
    for name, metric in policy.metrics.items():
        if metric.query is None:
            uncollectable[name] = "queryExpression is not available in a HealthCheck (no rollout)"
            continue
        age = parse_duration(metric.max_age)
        metrics[name] = MetricQuery(metric.query, metric.endpoint, age)
    return CelCheck(policy, on_error, metrics, uncollectable)


def verdict_of(check: CelCheck, facts: FactSet, backend: CelBackend) -> Verdict:
    """§2.5: pendingWhen true → Pending; true → Healthy; false → Unhealthy; error → onError."""
    options = Options(candidates=[CANDIDATE], check_attachment=False)
    evaluation = evaluate([check.policy], facts, backend, options)
    result = next((r for v in evaluation.verdicts for r in v.results if r.rule == RULE), None)
    if result is None:
        return Verdict("Unhealthy", "cel: the engine returned no result")
    return _verdict(check, result)


def _verdict(check: CelCheck, result: RuleResult) -> Verdict:
    if result.outcome is Outcome.PASS:
        return Verdict("Healthy", HEALTHY_MESSAGE)
    if result.outcome is Outcome.PENDING:
        message = result.message if result.message != UNHEALTHY_MESSAGE else PENDING_MESSAGE
        return Verdict("Pending", message)
    if result.outcome is Outcome.FAIL:
        return Verdict("Unhealthy", result.message or UNHEALTHY_MESSAGE)
    error = result.error
    text = f"{error.code}: {error.message}" if error is not None else "evaluation failed"
    if check.on_error == "pending":
        return Verdict("Pending", f"cel error: {text}")
    if error is not None and error.code.startswith("fact."):
        return unavailable_verdict("facts", text)
    return Verdict("Unhealthy", f"cel error: {text}")


__all__ = [
    "DEFAULT_INTERVAL",
    "CelCheck",
    "cel_spec",
    "compile_check",
    "interval",
    "policy_document",
    "verdict_of",
]
