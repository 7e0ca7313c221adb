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


def handwritten_decision(
    facts: FactSet, window: windows.Window, *, with_next_change: bool = False
) -> dict[str, tuple[str, datetime | None, bool]]:
    """The sample policy and the builtins written by hand: (decision, nextChange, warned).

    Every rule is coded as its CEL says (bypass and unblock intents, allowedVersions,
    recorded windows, the error-budget warning), in the engine's fold order. With
    ``with_next_change`` it also computes the decision's nextChange the way a person
    would for these rules: the soak's end, else the business-hours window's next
    transition within the 90-day horizon.
    """
    values = facts.values
    now = facts.now
    history = values["history"]
    intents = values["rollout"]["intents"]
    staging = values["environments"]["staging"]
    metrics = values["metrics"]
    warned = "requestCount" not in metrics or metrics["requestCount"] < 500.0
    warned = warned or not metrics["errorRate"] < 0.01
    deployed = bool(history)
    failed = deployed and history[0]["bakeStatus"] == "Failed" and not intents.get("unblockFailed")
    unhealthy = deployed and any(h["status"] == "Unhealthy" for h in values["healthChecks"])
    critical = any(
        a["state"] == "firing" and a["labels"].get("severity") == "critical"
        for a in values["alerts"]
    )
    in_flight = deployed and history[0]["bakeStatus"] in ("Deploying", "InProgress")
    soaked_at = staging["healthySince"] + timedelta(hours=24)
    out: dict[str, tuple[str, datetime | None, bool]] = {}
    for candidate in values["candidates"]:
        tag = candidate["tag"]
        gated = deployed and intents.get("bypassGates") != tag
        gate_closed = gated and not all(
            g.get("passing") is not False
            and (g.get("allowedVersions") is None or tag in g["allowedVersions"])
            for g in values["gates"]
        )
        recorded_closed = gated and not all(
            windows.is_open(windows.parse_window(w), now) for w in values["windows"].values()
        )
        if failed or unhealthy or critical or gate_closed:
            out[tag] = ("Blocked", None, warned)
            continue
        if staging["tag"] != tag or not staging["healthy"]:
            out[tag] = ("Blocked", None, warned)
            continue
        horizon = now + (_HORIZON if with_next_change else timedelta(0))  # as the engine's
        change: datetime | None = None
        if now < soaked_at:
            # a soak that completes within the horizon is pending, else the rule fails
            if soaked_at > horizon:
                out[tag] = ("Blocked", None, warned)
                continue
            if with_next_change and not in_flight and not recorded_closed:
                opens = windows.is_open(window, soaked_at)
                change = soaked_at if opens else windows.next_transition(window, soaked_at, horizon)
            out[tag] = ("Pending", change, warned)
            continue
        # a closed window that opens within the horizon is pending, else the rule fails
        transition = windows.next_transition(window, now, horizon)
        if not windows.is_open(window, now) and transition is None:
            out[tag] = ("Blocked", None, warned)
            continue
        pending = in_flight or recorded_closed or not windows.is_open(window, now)
        if with_next_change and not in_flight and not recorded_closed:
            change = transition
        out[tag] = ("Pending" if pending else "Allowed", change, warned)
    return out


_HORIZON = timedelta(days=90)


def run(
    backends: Sequence[CelBackend],
    facts: FactSet | None = None,
    policies: Sequence[Policy] | None = None,
) -> list[tuple[str, Figure]]:
    """Measures every stage on each backend; returns (backend, figure) rows."""
    # the hand-written baseline codes the sample policy over the sample facts: it is only
    # measured (and compared) when both are the built-in ones
    sample = facts is None and policies is None
    facts = facts or sample_facts()
    chosen = list(policies) if policies is not None else sample_policies()
    rows: list[tuple[str, Figure]] = []
    for backend in backends:
        compiled = compile_policies(chosen, backend)
        rows += _stages(backend, compiled, facts)
    if not sample:
        return rows
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
    rows += [
        (
            "python",
            Figure(
                "decision (hand-written, with nextChange)",
                measure(lambda: handwritten_decision(facts, window, with_next_change=True)),
            ),
        ),
        (
            "python",
            Figure(
                "decision (hand-written, no nextChange)",
                measure(lambda: handwritten_decision(facts, window)),
            ),
        ),
    ]
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
    """Decision-time ratios between backends and against hand-written Python, like for like.

    The engine's decision with nextChange is compared with the hand-written decision
    that also computes nextChange, and the engine without nextChange (horizon 0) with
    the hand-written one without it.
    """
    pairs = (
        ("decision (evaluate, with nextChange)", "decision (hand-written, with nextChange)"),
        ("decision (evaluate, no nextChange)", "decision (hand-written, no nextChange)"),
    )
    lines: list[str] = []
    for engine, handwritten in pairs:
        python = next((f.median_s for b, f in rows if f.name == handwritten), None)
        label = "with" if "with" in engine else "without"
        for backend, figure in rows:
            if figure.name == engine and python:
                lines.append(
                    f"decision {label} nextChange {backend} / hand-written Python = "
                    f"{figure.median_s / python:.1f}x"
                )
    for engine, _ in pairs:
        seconds = {b: f.median_s for b, f in rows if f.name == engine}
        if "cel-expr-python" in seconds and "celpy" in seconds:
            label = "with" if "with" in engine else "without"
            lines.append(
                f"decision {label} nextChange celpy / cel-expr-python = "
                f"{seconds['celpy'] / seconds['cel-expr-python']:.1f}x"
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
