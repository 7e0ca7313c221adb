"""HealthCheck class ``cel`` (POLICY-FORMATS.md §2.5) and the prometheus-alert span (§5.3).

``spec.cel`` is compiled and judged by the real engine over a FactSet; the alert
span is read from the HealthCheck alone; ``PrometheusSource.series`` runs over an
``httpx.MockTransport``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from controller.planning import cel_health
from controller.planning import healthchecks as classes
from controller.planning.facts import assemble
from evaluators.base import CollectedFact, FactInvalid, FactUnavailable
from evaluators.prometheus import PrometheusSource
from policy_engine import FactSet, select_backend
from policy_engine.model import facts as model

NOW = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)
BACKEND = select_backend().backend
FLUX = {"kustomizations": {"app": {"name": "app", "ready": True}}}


def check(expression: str, **cel: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "slo", "namespace": "shop"},
        "spec": {"class": "cel", "cel": {"expression": expression, **cel}},
    }


def facts(**roots: Any) -> FactSet:
    prov = model.Provenance("test")
    collected = [CollectedFact((k,), v, None, prov) for k, v in roots.items()]
    collected.append(
        CollectedFact(
            ("metrics", "errors"),
            None,
            FactUnavailable("prometheus down").at(("metrics", "errors")),
            prov,
        )
    )
    return assemble(collected, NOW, None)


def judge(hc: dict[str, Any], **roots: Any) -> classes.Verdict:
    compiled = cel_health.compile_check(hc, BACKEND)
    if isinstance(compiled, classes.Verdict):
        return compiled
    return cel_health.verdict_of(compiled, facts(**roots), BACKEND)


def test_a_true_expression_is_healthy_and_a_false_one_unhealthy_with_its_message() -> None:
    assert judge(check("flux.kustomizations['app'].ready"), flux=FLUX).status == "Healthy"
    verdict = judge(
        check("!flux.kustomizations['app'].ready", messageExpression="'app is ' + 'ready'"),
        flux=FLUX,
    )
    assert (verdict.status, verdict.message, verdict.keep_error_time) == (
        "Unhealthy", "app is ready", False,
    )  # fmt: skip


def test_pending_when_wins_over_the_expression() -> None:
    hc = check("metrics.errors < 0.5", pendingWhen="!has(metrics.errors)",
               facts={"metrics": {"errors": {"query": "up"}}})  # fmt: skip
    verdict = judge(hc, metrics={})
    assert (verdict.status, verdict.message) == ("Pending", "cel pendingWhen is true")


def test_params_and_variables_are_bound_as_in_a_policy() -> None:
    hc = check(
        "variables.limit > params.floor",
        params={"floor": 1.0},
        variables=[{"name": "limit", "expression": "params.floor * 2.0"}],
    )
    assert judge(hc).status == "Healthy"


def test_a_compile_error_is_unhealthy_and_names_the_cause() -> None:
    verdict = judge(check("flux.kustomizations['app'].redy"), flux=FLUX)
    assert verdict.status == "Unhealthy"
    assert verdict.message.startswith("invalid spec.cel: cel.undeclared_fact")
    assert "redy" in verdict.message
    assert judge({"metadata": {"name": "x"}, "spec": {"class": "cel"}}).message == (
        "invalid spec.cel: spec.cel.expression is required"
    )


def test_a_runtime_error_is_unhealthy_or_pending_as_on_error_says() -> None:
    missing = judge(check("flux.kustomizations['gone'].ready"), flux=FLUX)
    assert missing.status == "Unhealthy"
    assert missing.message.startswith("cel error: eval.no_such_key")
    assert not missing.keep_error_time
    held = judge(check("flux.kustomizations['gone'].ready", onError="pending"), flux=FLUX)
    assert held.status == "Pending"


def test_an_unavailable_fact_is_unhealthy_without_a_new_error_time() -> None:
    hc = check("metrics.errors < 0.5", facts={"metrics": {"errors": {"query": "up"}}})
    verdict = judge(hc, metrics={})
    assert verdict.status == "Unhealthy"
    assert verdict.keep_error_time
    assert verdict.message == "facts unavailable: fact.unavailable: prometheus down"
    changes = classes.status_changes({"lastErrorTime": "2026-03-01T00:00:00Z"}, verdict, NOW)
    assert "lastErrorTime" not in changes


def test_query_expressions_cannot_be_collected_for_a_health_check() -> None:
    hc = check("true", facts={"metrics": {"e": {"queryExpression": "'up'"}}})
    compiled = cel_health.compile_check(hc, BACKEND)
    assert isinstance(compiled, cel_health.CelCheck)
    assert list(compiled.uncollectable) == ["e"]
    assert compiled.metrics == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 30), ("10s", 10), ("1s", 5), ("bogus", 30)],
)
def test_the_interval_defaults_to_30s_and_is_at_least_5s(raw: str | None, expected: int) -> None:
    hc = check("true", **({"interval": raw} if raw else {}))
    assert cel_health.interval(hc) == timedelta(seconds=expected)


# --- prometheus-alert: the span since the last successful poll ----------------------------------


def alert_check(**status: Any) -> dict[str, Any]:
    annotations = {"healthcheck.kuberik.com/requeue-interval": "30s"}
    return {"metadata": {"annotations": annotations}, "status": status}


def test_the_span_is_one_interval_after_a_successful_poll() -> None:
    span = classes.alert_span(alert_check(status="Healthy", lastChangeTime="2026-03-01T00:00:00Z"),
                              NOW)  # fmt: skip
    assert span == timedelta(seconds=30) + classes.SPAN_SLACK


def test_after_an_outage_the_span_reaches_back_to_its_start() -> None:
    began = NOW - timedelta(minutes=10)
    hc = alert_check(
        status="Unhealthy",
        message="prometheus unavailable: connect error",
        lastChangeTime=began.isoformat().replace("+00:00", "Z"),
    )
    assert classes.alert_span(hc, NOW) == timedelta(minutes=10) + classes.SPAN_SLACK
    long_ago = dict(hc["status"], lastChangeTime="2026-01-01T00:00:00Z")
    assert classes.alert_span(alert_check(**long_ago), NOW) == classes.MAX_SPAN


def test_the_alerts_query_adds_what_fired_within_the_span() -> None:
    query = classes.alerts_query({"app": "x", "alertname": "A"}, timedelta(seconds=35.2))
    assert query == (
        'ALERTS{alertname="A",app="x"} or '
        'last_over_time(ALERTS{alertname="A",alertstate="firing",app="x"}[36s])'
    )


def series_source(answer: dict[str, Any], seen: list[httpx.Request]) -> PrometheusSource:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=json.dumps(answer).encode())

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return PrometheusSource("http://prom.test", client)


def test_series_returns_every_label_set_at_prometheus_now() -> None:
    seen: list[httpx.Request] = []
    vector = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"alertname": "A", "alertstate": "firing"}, "value": [1, "1"]},
        {"metric": {"alertname": "B", "alertstate": "pending"}, "value": [1, "1"]}]}}  # fmt: skip
    source = series_source(vector, seen)
    labels = asyncio.run(source.series("ALERTS"))
    assert [x["alertname"] for x in labels] == ["A", "B"]
    assert "time" not in seen[0].url.params
    verdict = classes.prometheus_alert_verdict([{"metric": x} for x in labels], NOW)
    assert (verdict.status, verdict.message) == ("Unhealthy", "firing: A")


def test_series_refuses_a_non_vector_answer() -> None:
    matrix = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    with pytest.raises(FactInvalid, match="instant vector"):
        asyncio.run(series_source(matrix, []).series("ALERTS[1m]"))
