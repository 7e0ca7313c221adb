"""Work one evaluation shares between candidates never changes a result (both backends).

Evaluation fuses a rule's parts into one program, evaluates rules that do not
read ``release`` once for all candidates and batches those that do (policy
``q``; ``p`` has a variable reading ``release``, so its rules go candidate by
candidate); these tests hold it to the results each candidate gets alone.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from policy_engine import evaluation, loading
from policy_engine.cel.backend import CelBackend
from policy_engine.compiling import CompiledPolicy, compile_policies
from policy_engine.model.facts import FactSet, normalise_root
from policy_engine.model.verdict import Evaluation, Outcome, RuleResult, Verdict

NOW = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)  # Wednesday 10:30 in Berlin
FACTS: dict[str, Any] = {
    "rollout": {"namespace": "shop", "name": "checkout", "spec": {"flag": "yes"}},
    "candidates": [{"tag": "1.4.3"}, {"tag": "1.4.2"}, {"tag": "7"}, {"tag": "0"}],
    "history": [{"id": 1, "version": {"tag": "1.4.1"}, "bakeStatus": "Succeeded"}],
    "environments": {
        "staging": {"tag": "1.4.2", "healthy": True, "healthySince": "2026-03-03T08:10:00Z"}
    },
    "gates": [{"name": "qa", "passing": True, "allowedVersions": ["1.4.2", "7"]}],
    "windows": {},
    "healthChecks": [],
    "alerts": [],
    "metrics": {"errorRate": 0.004},
}
POLICY = """
apiVersion: tidegate.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: p, namespace: shop}
spec:
  targets: {rolloutSelector: {}}
  params: {minSoak: {type: duration, default: 24h}}
  facts: {metrics: {errorRate: {query: rate}}}
  windows:
    - name: hours
      timezone: Europe/Berlin
      allow: [{name: weekdays, days: [Mon, Tue, Wed, Thu, Fri], between: "09:00-17:00"}]
  variables:
    - {name: staging, expression: "environments['staging']"}
    - {name: mine, expression: "release.tag == variables.staging.tag"}
  rules:
    - {name: hours, kind: window, window: hours}
    - name: soaked
      expression: "variables.mine && since(variables.staging.healthySince) >= params.minSoak"
      messageExpression: "'not soaked: ' + release.tag"
---
apiVersion: tidegate.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: q, namespace: shop}
spec:
  targets: {rolloutSelector: {}}
  params: {least: 0}
  facts: {metrics: {errorRate: {query: rate}}}
  variables: [{name: staging, expression: "environments['staging']"}]
  rules:
    - name: numeric
      when: "release.tag.matches('^[0-9]+$')"
      expression: "int(release.tag) > params.least"
    - name: gated
      pendingWhen: "size(history) == 0"
      all:
        - {name: passing, expression: "gates.all(g, g.passing)"}
        - {name: allowed, expression: "gates.all(g, release.tag in g.allowedVersions)"}
      messageExpression: "'gate closed for ' + release.tag"
    - {name: quiet, effect: warn, expression: "metrics.errorRate < 0.01"}
"""


def facts_with(**overrides: Any) -> FactSet:
    values = {k: normalise_root(k, v) for k, v in {**FACTS, **overrides}.items()}
    return FactSet(now=NOW, values=values)


def compiled(backend: CelBackend, text: str = POLICY) -> list[CompiledPolicy]:
    return compile_policies(loading.load_policy_text(text, "p.yaml"), backend)


def comparable(verdict: Verdict) -> tuple[RuleResult, ...]:
    return tuple(dataclasses.replace(r, duration_ns=0) for r in verdict.results)


def alone(
    backend: CelBackend, policies: list[CompiledPolicy], facts: FactSet, verdict: Verdict
) -> Verdict:
    options = evaluation.Options(candidates=[verdict.candidate])
    (only,) = evaluation.evaluate(policies, facts, backend, options).verdicts
    return only


def assert_same_as_alone(
    backend: CelBackend, policies: list[CompiledPolicy], facts: FactSet
) -> Evaluation:
    together = evaluation.evaluate(policies, facts, backend)
    assert len(together.verdicts) == len(facts.values["candidates"])
    for verdict in together.verdicts:
        single = alone(backend, policies, facts, verdict)
        assert comparable(verdict) == comparable(single), verdict.tag
        assert (verdict.decision, verdict.next_change) == (single.decision, single.next_change)
    return together


def result(found: Evaluation, tag: str, rule: str) -> RuleResult:
    verdict = found.verdict_for(tag)
    assert verdict is not None
    return next(r for r in verdict.results if r.rule == rule)


def test_every_candidate_gets_the_results_it_gets_alone(backend: CelBackend) -> None:
    found = assert_same_as_alone(backend, compiled(backend), facts_with())
    assert result(found, "1.4.2", "soaked").outcome is Outcome.PASS
    assert result(found, "1.4.3", "soaked").message == "not soaked: 1.4.3"
    assert result(found, "1.4.3", "gated").message == "gate closed for 1.4.3"
    assert result(found, "7", "numeric").outcome is Outcome.PASS
    assert result(found, "0", "numeric").outcome is Outcome.FAIL
    assert result(found, "1.4.2", "numeric").outcome is Outcome.SKIP
    assert result(found, "1.4.2", "hours").next_change is not None


def test_one_candidate_failing_to_evaluate_leaves_the_others_their_results(
    backend: CelBackend,
) -> None:
    candidates = [{"tag": "7"}, {"tag": "99999999999999999999"}, {"tag": "0"}]
    found = assert_same_as_alone(backend, compiled(backend), facts_with(candidates=candidates))
    failed = result(found, "99999999999999999999", "numeric")
    assert failed.outcome is Outcome.ERROR
    assert failed.error is not None
    assert result(found, "7", "numeric").outcome is Outcome.PASS
    assert result(found, "0", "numeric").outcome is Outcome.FAIL


def test_a_failing_when_reports_its_own_error(backend: CelBackend) -> None:
    text = POLICY.replace(
        'pendingWhen: "size(history) == 0"', 'pendingWhen: "rollout.spec.missing == 1"'
    )
    found = assert_same_as_alone(backend, compiled(backend, text), facts_with())
    gated = result(found, "1.4.2", "gated")
    assert gated.outcome is Outcome.ERROR
    assert gated.error is not None
    assert gated.error.code == "eval.no_such_key"
    assert "missing" in gated.error.message
    assert gated.checks == ()


def test_a_check_that_is_not_a_bool_is_a_type_error(backend: CelBackend) -> None:
    text = POLICY.replace('expression: "gates.all(g, g.passing)"', "expression: rollout.spec.flag")
    found = assert_same_as_alone(backend, compiled(backend, text), facts_with())
    gated = result(found, "1.4.2", "gated")
    assert gated.outcome is Outcome.ERROR
    assert gated.error is not None
    assert gated.error.code == "eval.type_error"


def test_a_pending_check_rule_keeps_its_check_values(backend: CelBackend) -> None:
    found = assert_same_as_alone(backend, compiled(backend), facts_with(history=[]))
    gated = result(found, "1.4.3", "gated")
    assert gated.outcome is Outcome.PENDING
    assert [(c.name, c.value) for c in gated.checks] == [("passing", True), ("allowed", False)]


def test_evaluation_leaves_the_facts_as_they_were(backend: CelBackend) -> None:
    facts = facts_with()
    before = copy.deepcopy(dict(facts.values))
    evaluation.evaluate(compiled(backend), facts, backend)
    assert dict(facts.values) == before
    assert isinstance(facts.values["environments"]["staging"]["healthySince"], datetime)


def test_without_a_horizon_time_rules_have_no_next_change_and_opaque_ones_stay_opaque(
    backend: CelBackend,
) -> None:
    text = POLICY + "    - {name: opaque, expression: \"string(now) != ''\"}\n"
    policies = compiled(backend, text)
    flat = evaluation.Options(horizon=timedelta(0))
    found = evaluation.evaluate(policies, facts_with(), backend, flat)
    assert result(found, "1.4.2", "hours").next_change is None
    assert result(found, "1.4.2", "hours").opaque_time is False
    assert result(found, "1.4.2", "opaque").opaque_time is True
    assert found.verdict_for("1.4.2").next_change is None  # type: ignore[union-attr]
