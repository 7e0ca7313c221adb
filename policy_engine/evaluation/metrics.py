"""The metric queries a policy set asks for (``facts.metrics``), rendered for one Rollout.

Callers: fact collectors (the controller's Rollout reconcile) before they query
Prometheus. A ``query`` is taken as written; a ``queryExpression`` is evaluated
over the facts given (``rollout``) and the policy's ``params``. Pure: no I/O, no
clock. Never raises: a failed rendering is returned as the reason, so the metric
becomes ``fact.unavailable`` and the rules reading it fail closed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from policy_engine.cel.backend import CelBackend
from policy_engine.compiling import CompiledPolicy
from policy_engine.errors import EvalError
from policy_engine.model.times import TimeSyntaxError, parse_duration


@dataclass(frozen=True, slots=True)
class MetricRequest:
    """One metric to collect: its PromQL (or why it has none), endpoint and maximum age."""

    name: str
    endpoint: str
    max_age: timedelta
    query: str | None = None
    problem: str | None = None


def metric_requests(
    policies: Sequence[CompiledPolicy],
    values: Mapping[str, Any],
    now: datetime,
    backend: CelBackend,
) -> dict[str, MetricRequest]:
    """Every metric the policies declare, by name; the first declaration of a name wins."""
    found: dict[str, MetricRequest] = {}
    for policy in policies:
        for name, spec in policy.metrics.items():
            if name not in found:
                found[name] = _request(
                    policy, name, spec.endpoint, spec.max_age, values, now, backend
                )
    return found


def _request(
    policy: CompiledPolicy,
    name: str,
    endpoint: str,
    max_age: str,
    values: Mapping[str, Any],
    now: datetime,
    backend: CelBackend,
) -> MetricRequest:
    try:
        age = parse_duration(max_age)
    except TimeSyntaxError as exc:
        return MetricRequest(name, endpoint, timedelta(0), problem=f"maxAge {max_age!r}: {exc}")
    static = policy.metrics[name].query
    if static is not None:
        return MetricRequest(name, endpoint, age, query=static)
    expr = policy.metric_queries.get(name)
    if expr is None:
        return MetricRequest(name, endpoint, age, problem="queryExpression did not compile")
    bound = backend.bind({**values, "now": now, "params": dict(policy.params), "variables": {}})
    rendered = backend.evaluate(expr.checked.program, bound)
    if isinstance(rendered, EvalError):
        problem = f"queryExpression of {policy.ref}: {rendered.code}: {rendered.message}"
        return MetricRequest(name, endpoint, age, problem=problem)
    if not isinstance(rendered, str) or not rendered.strip():
        return MetricRequest(name, endpoint, age, problem="queryExpression gave no query")
    return MetricRequest(name, endpoint, age, query=rendered)


__all__ = ["MetricRequest", "metric_requests"]
