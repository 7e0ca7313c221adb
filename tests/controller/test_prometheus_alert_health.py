"""A ``prometheus-alert`` HealthCheck follows a real Prometheus (KUBERIK-SEMANTICS.md §5.3).

An alert made to fire (the test exporter's error ratio goes above 0.5) turns the
HealthCheck Unhealthy with ``lastErrorTime``; clearing it turns it Healthy again;
a Prometheus that is down gives Unhealthy "prometheus unavailable: …" with
``lastErrorTime`` unchanged. The controller polls every requeue-interval on the
test's clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from clocks import ManualClock
from harness import ControllerHarness
from kubecluster import KubeCluster
from promserver import RATE_ALERT, PrometheusServer, free_port, prometheus_process
from world import KUBERIK, World

from policy_engine.model.times import format_timestamp

MATCHERS = f"alertname={RATE_ALERT},app=checkout"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[PrometheusServer]:
    yield from prometheus_process(tmp_path)


def create_check(world: World, name: str, url: str) -> None:
    world._create(
        KUBERIK, "healthchecks",
        {"apiVersion": "kuberik.com/v1alpha1", "kind": "HealthCheck",
         "metadata": {"name": name, "labels": {"app": "r"}, "annotations": {
             "healthcheck.kuberik.com/prometheus-url": url,
             "healthcheck.kuberik.com/prometheus-alert-labels": MATCHERS,
             "healthcheck.kuberik.com/requeue-interval": "5s"}},
         "spec": {"class": "prometheus-alert"}},
    )  # fmt: skip


def polled(clock: ManualClock, world: World, name: str, wanted: str) -> dict[str, Any] | None:
    return world.hc_polled(clock, name, wanted, timedelta(seconds=5))


def test_a_firing_alert_makes_the_check_unhealthy_and_clearing_it_healthy(
    kube: KubeCluster, namespace: str, world: World, prometheus: PrometheusServer
) -> None:
    clock = ManualClock()
    create_check(world, "alerts", prometheus.base_url)
    with ControllerHarness(kube.admin_kubeconfig, clock, namespace) as controller:
        controller.wait_until(lambda: polled(clock, world, "alerts", "Healthy"), what="Healthy")
        prometheus.exporter.set("tidegate_checkout_error_ratio", 0.9)
        unhealthy = controller.wait_until(
            lambda: polled(clock, world, "alerts", "Unhealthy"), timeout=60, what="Unhealthy"
        )
        assert unhealthy["message"] == f"firing: {RATE_ALERT}"
        assert unhealthy["lastErrorTime"] == unhealthy["lastChangeTime"]
        prometheus.exporter.set("tidegate_checkout_error_ratio", 0.1)
        healthy = controller.wait_until(
            lambda: polled(clock, world, "alerts", "Healthy"), timeout=60, what="Healthy again"
        )
    assert healthy["lastErrorTime"] >= unhealthy["lastErrorTime"]  # kept: only a reset clears it
    assert healthy["lastChangeTime"] > unhealthy["lastChangeTime"]


def test_an_unreachable_prometheus_holds_without_a_new_error_time(
    kube: KubeCluster, namespace: str, world: World
) -> None:
    clock = ManualClock()
    world.health_check("Unhealthy", changed=clock.now(), error=clock.now(), name="down")
    status, body = kube.request(
        "PATCH", f"{KUBERIK.format(ns=namespace)}/healthchecks/down",
        {"metadata": {"annotations": {
            "healthcheck.kuberik.com/prometheus-url": f"http://127.0.0.1:{free_port()}",
            "healthcheck.kuberik.com/prometheus-alert-labels": "alertname=X"}},
         "spec": {"class": "prometheus-alert"}},
        content_type="application/merge-patch+json",
    )  # fmt: skip
    assert status == 200, body
    with ControllerHarness(kube.admin_kubeconfig, clock, namespace) as controller:
        controller.wait_until(
            lambda: world.hc_status("down").get("message", "").startswith("prometheus unavailable"),
            what="unavailable",
        )
    status_now = world.hc_status("down")
    assert status_now["status"] == "Unhealthy"
    assert status_now["lastErrorTime"] == format_timestamp(clock.now())
