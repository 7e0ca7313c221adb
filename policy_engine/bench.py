"""The timing harness: compile, bind, evaluate, explain, test and replay, as ratios in one run.

Callers: ``tidegate bench``. Every figure is a median of repeated runs taken
in this process, and comparisons are ratios measured side by side (the
machine is shared and noisy). Reads ``time.perf_counter`` only; never the
wall clock, never asserts anything.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from policy_engine import evaluation, loading, windows
from policy_engine.cel.backend import CelBackend
from policy_engine.compiling import CompiledPolicy, compile_policies
from policy_engine.explaining import Explainer
from policy_engine.model.facts import FactSet, normalise_root
from policy_engine.model.policy import Policy
from policy_engine.replaying import ReplayInput, replay

SAMPLE_POLICY = """
apiVersion: tidegate.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: bench-promotion, namespace: shop}
spec:
  targets: {rolloutSelector: {}}
  params: {minSoak: {type: duration, default: 24h}, maxErrorRate: 0.01}
  facts: {metrics: {errorRate: {query: "x"}, requestCount: {query: "y"}}}
  windows:
    - name: business-hours
      timezone: Europe/Berlin
      allow: [{name: weekdays, days: [Mon, Tue, Wed, Thu, Fri], between: "09:00-17:00"}]
  variables: [{name: staging, expression: "environments['staging']"}]
  rules:
    - {name: business-hours, kind: window, window: business-hours}
    - name: staging-soaked
      expression: >-
        variables.staging.tag == release.tag && variables.staging.healthy &&
        since(variables.staging.healthySince) >= params.minSoak
    - name: error-budget
      effect: warn
      pendingWhen: "!has(metrics.requestCount) || metrics.requestCount < 500.0"
      expression: metrics.errorRate < params.maxErrorRate
    - name: no-critical-alerts
      expression: "!alerts.exists(a, a.state == 'firing' && a.labels.severity == 'critical')"
"""

SAMPLE_FACTS: Mapping[str, Any] = {
    "rollout": {
        "namespace": "shop",
        "name": "checkout",
        "labels": {"tier": "prod"},
        "annotations": {},
        "current": {"tag": "1.4.1"},
        "intents": {},
    },
    "candidates": [{"tag": "1.4.3"}, {"tag": "1.4.2"}],
    "history": [{"id": 1, "version": {"tag": "1.4.1"}, "bakeStatus": "Succeeded"}],
    "environments": {
        "staging": {
            "name": "staging",
            "tag": "1.4.2",
            "healthy": True,
            "healthySince": "2026-03-03T08:10:00Z",
        }
    },
    "gates": [],
    "windows": {},
    "healthChecks": [],
    "alerts": [
        {"name": f"A{i}", "labels": {"severity": "warning"}, "state": "firing"} for i in range(20)
    ],
    "metrics": {"errorRate": 0.004, "requestCount": 18000.0},
    "metricsMeta": {},
    "flux": {"kustomizations": {}},
    "kruise": {},
}
SAMPLE_NOW = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    median_s: float
    unit: str = "op"

    @property
    def per_second(self) -> float:
        return 1.0 / self.median_s if self.median_s else float("inf")


def measure(action: Callable[[], object], *, repeat: int = 7, budget_s: float = 0.2) -> float:
    """Median seconds per call, each sample looping long enough to be measurable."""
    loops = 1
    while True:
        started = time.perf_counter()
        for _ in range(loops):
            action()
        elapsed = time.perf_counter() - started
        if elapsed >= budget_s / repeat or loops >= 1 << 20:
            break
        loops *= 2
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(loops):
            action()
        samples.append((time.perf_counter() - started) / loops)
    return statistics.median(samples)


def sample_facts(now: datetime = SAMPLE_NOW) -> FactSet:
    values = {root: normalise_root(root, value) for root, value in SAMPLE_FACTS.items()}
    return FactSet(now=now, values=values, now_source="flag")


def sample_policies() -> list[Policy]:
    return [*loading.load_builtin_policies(), *loading.load_policy_text(SAMPLE_POLICY, "<bench>")]


def handwritten_decision(facts: FactSet, window: windows.Window) -> dict[str, str]:
    """The sample policy and the builtins written by hand in Python (no nextChange)."""
    values = facts.values
    staging = values["environments"]["staging"]
    history = values["history"]
    out: dict[str, str] = {}
    for candidate in values["candidates"]:
        tag = candidate["tag"]
        blocked = (
            any(g.get("passing") is False for g in values["gates"])
            or (bool(history) and history[0]["bakeStatus"] == "Failed")
            or any(h["status"] == "Unhealthy" for h in values["healthChecks"])
            or any(
                a["state"] == "firing" and a["labels"].get("severity") == "critical"
                for a in values["alerts"]
            )
        )
        soaked = (
            staging["tag"] == tag
            and staging["healthy"]
            and facts.now - staging["healthySince"] >= timedelta(hours=24)
        )
        pending = not windows.is_open(window, facts.now) or (
            bool(history) and history[0]["bakeStatus"] in ("Deploying", "InProgress")
        )
        out[tag] = "Blocked" if blocked or not soaked else ("Pending" if pending else "Allowed")
    return out


def run(
    backends: Sequence[CelBackend],
    facts: FactSet | None = None,
    policies: Sequence[Policy] | None = None,
) -> list[tuple[str, Figure]]:
    """Measures every stage on each backend; returns (backend, figure) rows."""
    facts = facts or sample_facts()
    chosen = list(policies) if policies is not None else sample_policies()
    rows: list[tuple[str, Figure]] = []
    for backend in backends:
        compiled = compile_policies(chosen, backend)
        rows += _stages(backend, compiled, facts)
    window = windows.parse_window(
        {
            "name": "business-hours",
            "timezone": "Europe/Berlin",
            "allow": [
                {
                    "name": "weekdays",
                    "days": ["Mon", "Tue", "Wed", "Thu", "Fri"],
                    "between": "09:00-17:00",
                }
            ],
        }
    )
    rows.append(
        (
            "python",
            Figure(
                "decision (hand-written, no nextChange)",
                measure(lambda: handwritten_decision(facts, window)),
            ),
        )
    )
    return rows


def _stages(
    backend: CelBackend, compiled: list[CompiledPolicy], facts: FactSet
) -> list[tuple[str, Figure]]:
    name = backend.name
    policies = [p.policy for p in compiled]
    result = evaluation.evaluate(compiled, facts, backend)
    explainer = Explainer(compiled, facts, backend)
    flat = evaluation.Options(horizon=timedelta(0))
    snapshots = [
        ReplayInput(
            facts,
            {"candidates": {v.tag: {"decision": v.decision.value} for v in result.verdicts}},
            "bench",
        )
    ]
    return [
        (
            name,
            Figure(
                "compile (policy set)",
                measure(lambda: compile_policies(policies, backend), repeat=3),
            ),
        ),
        (
            name,
            Figure(
                "bind (facts, once per cycle)",
                measure(lambda: backend.bind({**facts.values, "now": facts.now})),
            ),
        ),
        (
            name,
            Figure(
                "decision (evaluate, with nextChange)",
                measure(lambda: evaluation.evaluate(compiled, facts, backend)),
            ),
        ),
        (
            name,
            Figure(
                "decision (evaluate, no nextChange)",
                measure(lambda: evaluation.evaluate(compiled, facts, backend, flat)),
            ),
        ),
        (
            name,
            Figure(
                "explain (one verdict)",
                measure(lambda: explainer.explain(result.verdicts[0], "all")),
            ),
        ),
        (
            name,
            Figure(
                "replay (one snapshot)",
                measure(lambda: replay(snapshots, compiled, backend)),
                "snapshot",
            ),
        ),
    ]


def ratios(rows: Sequence[tuple[str, Figure]]) -> list[str]:
    """Decision-time ratios between backends and against hand-written Python."""
    decision = {
        b: f.median_s
        for b, f in rows
        if f.name.startswith(("decision (evaluate, with", "decision (hand"))
    }
    flat = {b: f.median_s for b, f in rows if f.name == "decision (evaluate, no nextChange)"}
    lines: list[str] = []
    python = decision.get("python")
    for backend, seconds in decision.items():
        if backend != "python" and python:
            lines.append(f"decision {backend} / hand-written Python = {seconds / python:.1f}x")
    for backend, seconds in flat.items():
        if python:
            lines.append(
                f"decision without nextChange {backend} / hand-written Python = "
                f"{seconds / python:.1f}x"
            )
    if "cel-expr-python" in decision and "celpy" in decision:
        lines.append(
            "decision celpy / cel-expr-python = "
            f"{decision['celpy'] / decision['cel-expr-python']:.1f}x"
        )
    return lines


def simple_suite(cases: int = 300) -> str:
    """A PolicyTest of ``cases`` simple cases over the builtins (for test throughput)."""
    outcomes = (("Succeeded", "Allowed"), ("Failed", "Blocked"), ("InProgress", "Pending"))
    lines = [
        "apiVersion: tidegate.dev/v1alpha1",
        "kind: PolicyTest",
        "metadata: {name: bench-simple}",
        "defaults:",
        '  now: "2026-03-04T10:30:00+01:00"',
        "  facts:",
        "    patch:",
        "      rollout: {namespace: shop, name: checkout}",
        "      candidates: [{tag: 1.4.2}]",
        "      history: [{id: 1, version: {tag: 1.4.1}, bakeStatus: Succeeded}]",
        "      gates: []",
        "      windows: {}",
        "      healthChecks: []",
        "cases:",
    ]
    for index in range(cases):
        status, decision = outcomes[index % len(outcomes)]
        lines += [
            f"  - name: case {index}",
            f'    facts: {{set: {{"history[0].bakeStatus": {status}}}}}',
            f"    expect: {{decision: {decision}}}",
        ]
    return "\n".join(lines) + "\n"
