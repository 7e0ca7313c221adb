"""``facts.metrics`` rendered for one Rollout: queries as written, queryExpression evaluated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from policy_engine import loading
from policy_engine.cel.backend import CelBackend
from policy_engine.compiling import compile_policies
from policy_engine.evaluation.metrics import MetricRequest, metric_requests
from policy_engine.model.facts import normalise_root

NOW = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)
ROLLOUT = normalise_root("rollout", {"namespace": "shop", "name": "checkout", "labels": {}})
POLICY = """
apiVersion: tidegate.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: slo, namespace: shop}
spec:
  targets: {rolloutSelector: {}}
  params:
    window: {type: string, default: 5m}
  facts:
    metrics:
      errors: {query: 'sum(rate(errors_total[5m]))', maxAge: 2m}
      requests:
        queryExpression: >-
          'sum(increase(requests_total{namespace="' + rollout.namespace + '"}['
          + params.window + ']))'
      broken:
        queryExpression: "rollout.labels['missing']"
      elsewhere: {query: up, endpoint: thanos}
  rules:
    - {name: ok, expression: "true"}
"""


def requests(backend: CelBackend) -> dict[str, MetricRequest]:
    compiled = compile_policies(loading.load_policy_text(POLICY, "slo.yaml"), backend)
    return dict(metric_requests(compiled, {"rollout": ROLLOUT}, NOW, backend))


def test_a_static_query_is_taken_as_written_with_its_max_age(backend: CelBackend) -> None:
    errors = requests(backend)["errors"]
    assert errors.query == "sum(rate(errors_total[5m]))"
    assert errors.max_age == timedelta(minutes=2)
    assert errors.endpoint == "default"


def test_a_query_expression_is_rendered_over_the_rollout_and_params(backend: CelBackend) -> None:
    rendered = requests(backend)["requests"]
    wanted = 'sum(increase(requests_total{namespace="shop"}[5m]))'
    assert rendered.query == wanted
    assert rendered.max_age == timedelta(minutes=5)


def test_a_failing_query_expression_is_a_problem_not_a_query(backend: CelBackend) -> None:
    broken = requests(backend)["broken"]
    assert broken.query is None
    assert broken.problem is not None
    assert "slo" in broken.problem
    assert "eval." in broken.problem


def test_the_endpoint_is_kept_for_the_collector(backend: CelBackend) -> None:
    assert requests(backend)["elsewhere"].endpoint == "thanos"
