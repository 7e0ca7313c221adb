"""The Prometheus fact source against a real Prometheus and real loopback fault servers.

Black-box through ``collect_facts`` (the entry point the CLI and controller
use) and ``PrometheusSource``. Prometheus is the Debian binary started by the
``prometheus_server`` fixture; failure modes come from ``fault_server``.
``httpx.MockTransport`` is used only for a stale sample, which a real instant
query cannot return (Prometheus stamps samples with the evaluation time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import pytest

from evaluators._http import make_client
from evaluators.base import (
    CollectedFact,
    CollectRequest,
    FactSource,
    FactSourceMisconfigured,
    MetricQuery,
)
from evaluators.collecting import CollectedPieces, collect_facts
from evaluators.prometheus import PrometheusSource
from policy_engine.model.facts import FactError


def collect(
    base_url: str,
    metrics: dict[str, MetricQuery] | None = None,
    *,
    deadline: float = 10.0,
    on_request: Callable[[httpx.Request], Any] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    now: datetime | None = None,
) -> CollectedPieces:
    """One collection cycle through ``collect_facts`` with a fresh, closed-after client."""

    async def run() -> CollectedPieces:
        hooks = {"request": [on_request]} if on_request is not None else None
        async with make_client(timeout=deadline, transport=transport, event_hooks=hooks) as client:
            source = PrometheusSource(base_url, client)
            request = CollectRequest(
                now=now or datetime.now(UTC), deadline=deadline, metrics=metrics or {}
            )
            return await collect_facts([source], request)

    return asyncio.run(run())


def error_at(pieces: CollectedPieces, *path: str) -> FactError:
    found = [e for e in pieces.errors if e.path == path]
    assert found, f"no error at {path}; errors: {pieces.errors}"
    return found[0]


def test_the_firing_alert_is_collected_with_labels_state_and_active_time(
    prometheus_server: Any,
) -> None:
    pieces = collect(prometheus_server.base_url)

    alerts = [a for a in pieces.values["alerts"] if a["name"] == "TidegateAlways"]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["state"] == "firing"
    assert {"app": "checkout", "severity": "critical", "namespace": "shop"}.items() <= alert[
        "labels"
    ].items()
    assert alert["annotations"] == {"summary": "always firing"}
    assert isinstance(alert["activeAt"], datetime)
    assert alert["activeAt"].tzinfo is not None
    assert alert["activeAt"] <= datetime.now(UTC)
    assert alert["value"] == 1.0
    assert pieces.provenance[("alerts",)].endpoint == prometheus_server.base_url


def test_a_query_for_the_exporters_metric_returns_its_value_with_metrics_meta(
    prometheus_server: Any,
) -> None:
    prometheus_server.exporter.set("tidegate_checkout_error_ratio", 0.125)
    query = "tidegate_checkout_error_ratio"
    metrics = {"errorRatio": MetricQuery(query=query, max_age=timedelta(minutes=5))}
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    pieces = collect(prometheus_server.base_url, metrics)
    while pieces.values["metrics"].get("errorRatio") != 0.125 and datetime.now(UTC) < deadline:
        pieces = collect(prometheus_server.base_url, metrics)

    assert pieces.values["metrics"] == {"errorRatio": 0.125}
    meta = pieces.values["metricsMeta"]["errorRatio"]
    assert meta["samples"] == 1
    assert meta["endpoint"] == "default"
    assert meta["query"] == query
    assert meta["stale"] is False
    assert isinstance(meta["evaluatedAt"], datetime)
    assert meta["evaluatedAt"].tzinfo is not None
    assert not pieces.errors


def test_a_query_matching_several_series_is_invalid(prometheus_server: Any) -> None:
    metrics = {"requests": MetricQuery(query="tidegate_requests_total")}

    pieces = collect(prometheus_server.base_url, metrics)

    error = error_at(pieces, "metrics", "requests")
    assert error.code == "fact.invalid"
    assert "2 series" in error.message
    assert "requests" not in pieces.values["metrics"]


def test_a_query_with_no_samples_is_unavailable(prometheus_server: Any) -> None:
    metrics = {"missing": MetricQuery(query='tidegate_requests_total{path="/nowhere"}')}

    pieces = collect(prometheus_server.base_url, metrics)

    error = error_at(pieces, "metrics", "missing")
    assert error.code == "fact.unavailable"
    assert "no samples" in error.message
    assert "missing" not in pieces.values["metrics"]
    assert error_at(pieces, "metricsMeta", "missing").code == "fact.unavailable"


def test_a_query_prometheus_rejects_is_a_misconfigured_source(prometheus_server: Any) -> None:
    metrics = {"broken": MetricQuery(query="sum(")}

    pieces = collect(prometheus_server.base_url, metrics)

    error = error_at(pieces, "metrics", "broken")
    assert error.code == "fact.unavailable"
    assert "query rejected" in error.message


def test_two_metrics_sharing_a_query_cost_one_request(prometheus_server: Any) -> None:
    queries: list[str] = []

    async def count(request: httpx.Request) -> None:
        if request.url.path == "/api/v1/query":
            queries.append(request.url.params["query"])

    shared = "tidegate_checkout_error_ratio"
    metrics = {
        "ratioFast": MetricQuery(query=shared, max_age=timedelta(minutes=1)),
        "ratioSlow": MetricQuery(query=shared, max_age=timedelta(minutes=10)),
        "up": MetricQuery(query='up{job="exporter"}'),
    }

    pieces = collect(prometheus_server.base_url, metrics, on_request=count)

    assert sorted(queries) == sorted([shared, 'up{job="exporter"}'])
    assert set(pieces.values["metrics"]) == {"ratioFast", "ratioSlow", "up"}
    assert pieces.values["metrics"]["ratioFast"] == pieces.values["metrics"]["ratioSlow"]


def test_an_unreachable_port_is_unavailable_naming_the_endpoint(free_loopback_url: str) -> None:
    pieces = collect(free_loopback_url, {"x": MetricQuery(query="vector(1)")})

    for path in (("alerts",), ("metrics", "x")):
        error = error_at(pieces, *path)
        assert error.code == "fact.unavailable"
        assert free_loopback_url in error.message
        assert "prometheus" in error.message
        assert len(error.message) <= 256
    assert "alerts" not in pieces.values


def test_a_server_slower_than_the_deadline_is_unavailable_with_timeout(fault_server: Any) -> None:
    pieces = collect(fault_server.url("slow"), deadline=0.5)

    error = error_at(pieces, "alerts")
    assert error.code == "fact.unavailable"
    assert "timeout" in error.message
    assert fault_server.url("slow") in error.message


def test_a_server_error_500_is_unavailable(fault_server: Any) -> None:
    pieces = collect(fault_server.url("status500"))

    error = error_at(pieces, "alerts")
    assert error.code == "fact.unavailable"
    assert "HTTP 500" in error.message


def test_malformed_json_is_invalid(fault_server: Any) -> None:
    pieces = collect(fault_server.url("malformed"))

    error = error_at(pieces, "alerts")
    assert error.code == "fact.invalid"
    assert "malformed JSON" in error.message


def test_a_response_over_8_mib_is_invalid_not_truncated(fault_server: Any) -> None:
    pieces = collect(fault_server.url("huge"))

    error = error_at(pieces, "alerts")
    assert error.code == "fact.invalid"
    assert "response over 8 MiB" in error.message
    assert "alerts" not in pieces.values


def test_more_than_5000_alerts_is_invalid_not_truncated(fault_server: Any) -> None:
    pieces = collect(fault_server.url("manyalerts"))

    error = error_at(pieces, "alerts")
    assert error.code == "fact.invalid"
    assert "5001 active alerts" in error.message
    assert "alerts" not in pieces.values


@pytest.mark.parametrize(
    "url",
    ["http://admin:s3cret@127.0.0.1:9090", "https://token@prometheus.example", "ftp://h:1/"],
)
def test_credentials_or_a_foreign_scheme_in_the_base_url_are_misconfigured(url: str) -> None:
    async def build() -> None:
        async with make_client() as client:
            PrometheusSource(url, client)

    with pytest.raises(FactSourceMisconfigured) as raised:
        asyncio.run(build())

    assert raised.value.code == "fact.unavailable"
    assert "s3cret" not in str(raised.value)
    assert "token" not in str(raised.value)


def _query_answer(value: str, at: float) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/alerts":
            return httpx.Response(200, json={"status": "success", "data": {"alerts": []}})
        data = {"resultType": "vector", "result": [{"metric": {}, "value": [at, value]}]}
        return httpx.Response(200, json={"status": "success", "data": data})

    return httpx.MockTransport(answer)


def test_a_sample_older_than_max_age_at_collection_is_stale() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    old = (now - timedelta(minutes=6)).timestamp()
    metrics = {"ratio": MetricQuery(query="ratio", max_age=timedelta(minutes=5))}

    pieces = collect(
        "http://prometheus.test", metrics, transport=_query_answer("0.5", old), now=now
    )

    error = error_at(pieces, "metrics", "ratio")
    assert error.code == "fact.stale"
    assert "ratio" not in pieces.values["metrics"]
    assert pieces.values["metricsMeta"]["ratio"]["stale"] is True


@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf"])
def test_a_non_finite_sample_is_invalid(value: str) -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    metrics = {"ratio": MetricQuery(query="ratio")}
    transport = _query_answer(value, now.timestamp())

    pieces = collect("http://prometheus.test", metrics, transport=transport, now=now)

    error = error_at(pieces, "metrics", "ratio")
    assert error.code == "fact.invalid"
    assert "not a finite number" in error.message
    assert "ratio" not in pieces.values["metrics"]


class _CrashingSource:
    name: ClassVar[str] = "crashing"
    roots: ClassVar[tuple[str, ...]] = ("flux",)

    async def collect(self, request: CollectRequest) -> list[CollectedFact]:
        raise RuntimeError("bug in a source")


def test_a_crashing_source_is_unavailable_on_its_roots_while_others_report(
    prometheus_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = {"ratio": MetricQuery(query="tidegate_checkout_error_ratio")}

    async def run() -> CollectedPieces:
        async with make_client() as client:
            prometheus = PrometheusSource(prometheus_server.base_url, client)
            sources: list[FactSource] = [_CrashingSource(), prometheus]
            request = CollectRequest(now=datetime.now(UTC), deadline=10.0, metrics=metrics)
            return await collect_facts(sources, request)

    pieces = asyncio.run(run())

    error = error_at(pieces, "flux")
    assert error.code == "fact.unavailable"
    assert "crashing" in error.message
    assert "RuntimeError" in error.message
    assert "ratio" in pieces.values["metrics"]
    assert "fact source crashing failed" in caplog.text


def test_metrics_of_two_endpoints_are_merged_and_alerts_come_from_the_default_one(
    prometheus_server: Any,
) -> None:
    metrics = {
        "here": MetricQuery(query="tidegate_checkout_error_ratio", endpoint="default"),
        "there": MetricQuery(query='up{job="exporter"}', endpoint="eu"),
    }
    alert_requests: list[str] = []

    async def count(request: httpx.Request) -> None:
        if request.url.path == "/api/v1/alerts":
            alert_requests.append(str(request.url))

    async def run() -> CollectedPieces:
        async with make_client(event_hooks={"request": [count]}) as client:
            url = prometheus_server.base_url
            sources = [PrometheusSource(url, client), PrometheusSource(url, client, endpoint="eu")]
            request = CollectRequest(now=datetime.now(UTC), deadline=10.0, metrics=metrics)
            return await collect_facts(sources, request)

    pieces = asyncio.run(run())

    assert set(pieces.values["metrics"]) == {"here", "there"}
    assert pieces.values["metricsMeta"]["there"]["endpoint"] == "eu"
    assert len(alert_requests) == 1
    assert not pieces.errors
