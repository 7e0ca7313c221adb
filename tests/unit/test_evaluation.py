"""Evaluation semantics (POLICY-FORMATS.md §5) on both backends, through the public API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from policy_engine import evaluation, loading
from policy_engine.cel.backend import CelBackend
from policy_engine.compiling import compile_policies
from policy_engine.model.facts import FactError, FactSet, normalise_root
from policy_engine.model.verdict import Decision, Evaluation, Outcome

NOW = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)  # Wednesday 10:30 in Berlin
BASE: dict[str, Any] = {
    "rollout": {"namespace": "shop", "name": "checkout", "labels": {"tier": "prod"}},
    "candidates": [{"tag": "1.4.3"}, {"tag": "1.4.2"}],
    "history": [{"id": 1, "version": {"tag": "1.4.1"}, "bakeStatus": "Succeeded"}],
    "environments": {
        "staging": {"tag": "1.4.2", "healthy": True, "healthySince": "2026-03-03T08:10:00Z"}
    },
    "gates": [],
    "windows": {},
    "healthChecks": [],
    "alerts": [],
    "metrics": {"errorRate": 0.5},
    "metricsMeta": {},
    "flux": {},
    "kruise": {},
}


def policy(rules: str, extra: str = "") -> str:
    return f"""
apiVersion: tidegate.dev/v1alpha1
kind: RolloutPolicy
metadata: {{name: p, namespace: shop}}
spec:
  targets: {{rolloutSelector: {{}}}}
{extra}
  rules:
{rules}
"""


def decide(
    backend: CelBackend,
    text: str,
    now: datetime = NOW,
    builtins: bool = False,
    errors: tuple[FactError, ...] = (),
    **overrides: Any,
) -> Evaluation:
    policies = loading.load_policy_text(text, "p.yaml")
    if builtins:
        policies = [*loading.load_builtin_policies(), *policies]
    values = {k: normalise_root(k, v) for k, v in {**BASE, **overrides}.items()}
    for error in errors:
        values.pop(str(error.path[0]), None)
    facts = FactSet(now=now, values=values, errors=errors)
    return evaluation.evaluate(compile_policies(policies, backend), facts, backend)


def outcome(result: Evaluation, tag: str, rule: str) -> Outcome:
    verdict = result.verdict_for(tag)
    assert verdict is not None
    return next(r.outcome for r in verdict.results if r.rule_id.endswith("/" + rule))


def test_a_failing_block_rule_blocks_and_a_passing_one_allows(backend: CelBackend) -> None:
    result = decide(
        backend, policy("    - {name: only-142, expression: \"release.tag == '1.4.2'\"}")
    )
    assert result.allowed_versions == ("1.4.2",)
    assert result.verdict_for("1.4.3").decision is Decision.BLOCKED  # type: ignore[union-attr]
    assert result.decision is Decision.ALLOWED


def test_warn_and_audit_rules_never_decide(backend: CelBackend) -> None:
    rules = (
        "    - {name: w, effect: warn, expression: 'false'}\n"
        "    - {name: a, effect: audit, expression: 'false'}"
    )
    result = decide(backend, policy(rules))
    verdict = result.verdicts[0]
    assert verdict.decision is Decision.ALLOWED
    assert verdict.warnings == ("shop/p/w",)


@pytest.mark.parametrize(
    ("on_error", "decision"), [("block", Decision.BLOCKED), ("pending", Decision.PENDING)]
)
def test_errors_fold_by_on_error_and_never_allow(
    backend: CelBackend, on_error: str, decision: Decision
) -> None:
    rule = f"    - {{name: e, onError: {on_error}, expression: 'rollout.spec.x == 1'}}"
    result = decide(backend, policy(rule), rollout={**BASE["rollout"], "spec": {}})
    assert {v.decision for v in result.verdicts} == {decision}
    assert outcome(result, "1.4.2", "e") is Outcome.ERROR


def test_an_unavailable_fact_is_an_error_that_names_the_source(backend: CelBackend) -> None:
    rule = "    - {name: no-alerts, expression: 'alerts.size() == 0'}"
    lost = (FactError(("alerts",), "fact.unavailable", "prometheus: connection refused"),)
    result = decide(backend, policy(rule), errors=lost)
    verdict = result.verdicts[0]
    failed = next(r for r in verdict.results if r.rule == "no-alerts")
    assert failed.error is not None
    assert failed.error.code == "fact.unavailable"
    assert "connection refused" in failed.error.message
    assert verdict.decision is Decision.BLOCKED


def test_pending_when_makes_a_rule_pending_without_time(backend: CelBackend) -> None:
    rule = "    - {name: wait, pendingWhen: 'true', expression: 'false'}"
    result = decide(backend, policy(rule))
    assert outcome(result, "1.4.2", "wait") is Outcome.PENDING
    assert result.decision is Decision.PENDING
    assert result.next_change is None


def test_when_false_skips_and_skips_never_block(backend: CelBackend) -> None:
    rule = "    - {name: s, when: 'false', expression: 'false'}"
    result = decide(backend, policy(rule))
    assert outcome(result, "1.4.2", "s") is Outcome.SKIP
    assert result.decision is Decision.ALLOWED


def test_all_and_any_follow_cel_error_rules(backend: CelBackend) -> None:
    rules = """    - name: both
      all:
        - {name: broken, expression: 'rollout.spec.x == 1'}
        - {name: no, expression: 'false'}
    - name: either
      any:
        - {name: broken, expression: 'rollout.spec.x == 1'}
        - {name: yes, expression: 'true'}"""
    result = decide(backend, policy(rules), rollout={**BASE["rollout"], "spec": {}})
    assert outcome(result, "1.4.2", "both") is Outcome.FAIL
    assert outcome(result, "1.4.2", "either") is Outcome.PASS


def test_soak_in_progress_is_pending_until_the_exact_second(backend: CelBackend) -> None:
    rule = (
        '    - {name: soaked, expression: "since(environments.staging.healthySince)'
        " >= duration('24h')\"}"
    )
    result = decide(backend, policy(rule), now=datetime(2026, 3, 3, 20, 0, tzinfo=UTC))
    assert outcome(result, "1.4.2", "soaked") is Outcome.PENDING
    assert result.next_change == datetime(2026, 3, 4, 8, 10, tzinfo=UTC)


def test_a_strict_crossing_is_reported_one_second_later(backend: CelBackend) -> None:
    rule = (
        '    - {name: soaked, expression: "since(environments.staging.healthySince)'
        " > duration('24h')\"}"
    )
    result = decide(backend, policy(rule), now=datetime(2026, 3, 3, 20, 0, tzinfo=UTC))
    assert result.next_change == datetime(2026, 3, 4, 8, 10, 1, tzinfo=UTC)


def test_a_passing_deadline_reports_when_it_stops_passing(backend: CelBackend) -> None:
    rule = "    - {name: before, expression: \"now < timestamp('2026-03-05T00:00:00Z')\"}"
    result = decide(backend, policy(rule))
    assert outcome(result, "1.4.2", "before") is Outcome.PASS
    assert result.next_change == datetime(2026, 3, 5, tzinfo=UTC)


def test_hour_accessors_change_at_the_local_hour(backend: CelBackend) -> None:
    rule = "    - {name: morning, expression: \"now.getHours('Asia/Kolkata') < 16\"}"
    result = decide(backend, policy(rule))  # 15:00 in Kolkata
    assert result.decision is Decision.ALLOWED
    assert result.next_change == datetime(2026, 3, 4, 10, 30, tzinfo=UTC)


def test_a_closed_window_is_pending_until_its_next_opening(backend: CelBackend) -> None:
    extra = """  windows:
    - name: nights
      timezone: Europe/Berlin
      allow: [{name: late, between: "22:00-06:00"}]"""
    rule = "    - {name: nights, kind: window, window: nights}"
    result = decide(backend, policy(rule, extra))
    assert outcome(result, "1.4.2", "nights") is Outcome.PENDING
    assert result.next_change == datetime(2026, 3, 4, 21, 0, tzinfo=UTC)


def test_variables_are_visible_to_rules_and_errors_name_the_variable(backend: CelBackend) -> None:
    extra = "  variables: [{name: prod, expression: \"environments['prod']\"}]"
    rule = '    - {name: uses, expression: "variables.prod.tag == release.tag"}'
    result = decide(backend, policy(rule, extra))
    failed = next(r for r in result.verdicts[0].results if r.rule == "uses")
    assert failed.outcome is Outcome.ERROR
    assert failed.error is not None
    assert "variable prod" in failed.error.message


def test_match_conditions_skip_the_whole_policy(backend: CelBackend) -> None:
    extra = "  matchConditions: [{name: prod-only, expression: \"rollout.labels.tier == 'dev'\"}]"
    rule = "    - {name: never, expression: 'false'}"
    result = decide(backend, policy(rule, extra))
    assert outcome(result, "1.4.2", "never") is Outcome.SKIP
    assert result.decision is Decision.ALLOWED


def test_disabling_a_builtin_reports_it_as_skipped(backend: CelBackend) -> None:
    rule = "    - {name: ok, expression: 'true'}"
    annotated = {
        **BASE["rollout"],
        "annotations": {"tidegate.dev/disable-builtins": "one-in-flight, no-such-rule"},
    }
    history = [{"id": 2, "version": {"tag": "1.4.2"}, "bakeStatus": "InProgress"}]
    result = decide(backend, policy(rule), builtins=True, rollout=annotated, history=history)
    skipped = next(r for r in result.verdicts[0].results if r.rule == "one-in-flight")
    assert skipped.outcome is Outcome.SKIP
    assert skipped.reason == "DisabledByRollout"
    assert result.decision is Decision.ALLOWED
    assert [d.code for d in result.diagnostics] == ["policy.unknown_reference"]


def test_no_candidates_means_no_decision(backend: CelBackend) -> None:
    result = decide(backend, policy("    - {name: ok, expression: 'true'}"), candidates=[])
    assert result.decision is None
    assert result.allowed_versions == ()


def test_policies_not_selecting_the_rollout_do_not_attach(backend: CelBackend) -> None:
    text = policy("    - {name: never, expression: 'false'}").replace(
        "rolloutSelector: {}", "rolloutSelector: {matchLabels: {tier: dev}}"
    )
    result = decide(backend, text)
    assert result.decision is Decision.ALLOWED
    assert result.policies == ()


def test_a_spent_evaluation_budget_fails_closed(backend: CelBackend) -> None:
    policies = loading.load_policy_text(policy("    - {name: ok, expression: 'true'}"), "p.yaml")
    values = {k: normalise_root(k, v) for k, v in BASE.items()}
    facts = FactSet(now=NOW, values=values)
    options = evaluation.Options(budget_seconds=0.0)
    result = evaluation.evaluate(compile_policies(policies, backend), facts, backend, options)
    rules = [r for v in result.verdicts for r in v.results]
    assert {r.error.code for r in rules if r.error} == {"eval.limit"}
    assert result.decision is Decision.BLOCKED


def test_has_on_an_unavailable_root_is_false_but_whole_reads_still_fail(
    backend: CelBackend,
) -> None:
    rules = (
        "    - {name: probe, pendingWhen: '!has(metrics.requests)', expression: 'true'}\n"
        "    - {name: count, expression: 'size(metrics) == 0'}"
    )
    extra = "  facts: {metrics: {requests: {query: up}}}"
    lost = (FactError(("metrics",), "fact.unavailable", "prometheus down"),)
    result = decide(backend, policy(rules, extra), errors=lost)
    assert outcome(result, "1.4.2", "probe") is Outcome.PENDING
    assert outcome(result, "1.4.2", "count") is Outcome.ERROR
