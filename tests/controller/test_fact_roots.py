"""The fact roots beyond the Rollout's own, on the real apiserver with the real controller.

A RolloutPolicy reading ``flux.kustomizations`` holds a release until the
Kustomization is Ready; a HealthCheck of class ``cel`` follows its expression over
the namespace's Flux objects (and says why when it cannot compile); a
``prometheus-alert`` HealthCheck still sees an alert that fired and resolved
between two polls (real Prometheus). The controller runs on a ``ManualClock``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from urllib.request import urlopen

import pytest
from clocks import ManualClock
from harness import ControllerHarness
from kubecluster import KubeCluster
from promserver import RATE_ALERT, PrometheusServer, prometheus_process
from world import FLUX_KUSTOMIZE, KUBERIK, World

from policy_engine.model.times import format_timestamp

SUBSTITUTE = {"rollout.kuberik.com/substitute.APP.from": "r"}
FLUX_READY = "flux.kustomizations.all(k, flux.kustomizations[k].ready)"


def set_ready(world: World, name: str, ready: bool) -> None:
    """Flux's kustomize-controller reports the Kustomization's Ready condition."""
    condition = {
        "type": "Ready", "status": "True" if ready else "False",
        "reason": "ReconciliationSucceeded" if ready else "HealthCheckFailed",
        "message": "Applied revision" if ready else "Deployment/app not ready",
    }  # fmt: skip
    path = f"{FLUX_KUSTOMIZE.format(ns=world.ns)}/kustomizations/{name}/status"
    world._patch(path, {"status": {"conditions": [condition]}})


def create_policy(world: World, expression: str) -> None:
    status, body = world.kube.request(
        "POST", f"/apis/tidegate.dev/v1alpha1/namespaces/{world.ns}/rolloutpolicies",
        {
            "apiVersion": "tidegate.dev/v1alpha1", "kind": "RolloutPolicy",
            "metadata": {"name": "platform", "namespace": world.ns},
            "spec": {"targets": {"rolloutSelector": {}},
                     "rules": [{"name": "flux-ready", "kind": "health",
                                "expression": expression, "reason": "FluxNotReady"}]},
        },
    )  # fmt: skip
    assert status == 201, body


def test_a_policy_reading_flux_kustomizations_holds_the_release_until_it_is_ready(
    world: World, controller: ControllerHarness
) -> None:
    world.kustomization("app", SUBSTITUTE, {"APP": "0"})
    set_ready(world, "app", True)
    create_policy(world, FLUX_READY)
    world.rollout()
    world.observe("0.1.0")
    controller.wait_until(lambda: world.tags() == ["0.1.0"], what="first deploy")
    set_ready(world, "app", False)
    world.observe("0.2.0")
    controller.wait_until(
        lambda: (world.status.get("decision") or {}).get("decision") == "Blocked", what="Blocked"
    )
    [candidate] = world.status["decision"]["candidates"]
    assert candidate["tag"] == "0.2.0"
    assert any("flux-ready" in rule["id"] for rule in candidate["rules"])
    assert world.tags() == ["0.1.0"]
    set_ready(world, "app", True)
    controller.wait_until(lambda: world.tags()[:1] == ["0.2.0"], what="deploy once Ready")


def create_cel_check(world: World, name: str, expression: str) -> None:
    world._create(
        KUBERIK, "healthchecks",
        {"apiVersion": "kuberik.com/v1alpha1", "kind": "HealthCheck",
         "metadata": {"name": name, "labels": {"app": "r"}},
         "spec": {"class": "cel", "cel": {
             "interval": "10s", "expression": expression,
             "messageExpression": "'app ready: ' + string(flux.kustomizations['app'].ready)"}}},
    )  # fmt: skip


def polled(clock: ManualClock, world: World, name: str, wanted: str) -> dict[str, Any] | None:
    return world.hc_polled(clock, name, wanted, timedelta(seconds=10))


def test_a_cel_health_check_follows_its_expression_over_flux_facts(
    kube: KubeCluster, namespace: str, world: World, clock: ManualClock
) -> None:
    world.kustomization("app", {}, {})
    set_ready(world, "app", True)
    expression = "healthCheck.name == 'flux' && flux.kustomizations['app'].ready"
    create_cel_check(world, "flux", expression)
    with ControllerHarness(kube.admin_kubeconfig, clock, namespace) as controller:
        healthy = controller.wait_until(
            lambda: polled(clock, world, "flux", "Healthy"), what="Healthy"
        )
        assert healthy["message"] == "cel expression is true"
        assert "lastErrorTime" not in healthy
        set_ready(world, "app", False)
        sick = controller.wait_until(
            lambda: polled(clock, world, "flux", "Unhealthy"), what="Unhealthy"
        )
        assert sick["message"] == "app ready: false"
        assert sick["lastErrorTime"] >= sick["lastChangeTime"] > healthy["lastChangeTime"]
        set_ready(world, "app", True)
        again = controller.wait_until(
            lambda: polled(clock, world, "flux", "Healthy"), what="Healthy again"
        )
    assert again["lastErrorTime"] >= sick["lastErrorTime"]  # kept: only a reset clears it
    assert again["lastChangeTime"] > sick["lastChangeTime"]


def test_a_cel_health_check_that_cannot_compile_or_evaluate_is_unhealthy_saying_why(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    world.kustomization("app", {}, {})
    create_cel_check(world, "typo", "flux.kustomizations['app'].redy")
    create_cel_check(world, "gone", "flux.kustomizations['gone'].ready")
    typo = controller.wait_until(lambda: polled(clock, world, "typo", "Unhealthy"), what="typo")
    assert typo["message"].startswith("invalid spec.cel: cel.undeclared_fact")
    assert "redy" in typo["message"]
    gone = controller.wait_until(lambda: polled(clock, world, "gone", "Unhealthy"), what="gone")
    assert gone["message"].startswith("cel error: eval.no_such_key")
    assert gone["lastErrorTime"] >= gone["lastChangeTime"]  # a failure witness: refreshed


# --- prometheus-alert: an alert that fired and resolved between two polls -------------------------


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[PrometheusServer]:
    yield from prometheus_process(tmp_path)


def alerts_now(prometheus: PrometheusServer, selector: str) -> list[dict[str, Any]]:
    url = f"{prometheus.base_url}/api/v1/query?query={quote(selector)}"
    with urlopen(url, timeout=5) as response:
        result: list[dict[str, Any]] = json.load(response)["data"]["result"]
    return result


def wait_real(what: str, check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.1)


def test_an_alert_that_fired_and_resolved_between_two_polls_still_counts(
    kube: KubeCluster, namespace: str, world: World, prometheus: PrometheusServer
) -> None:
    clock = ManualClock()
    world._create(
        KUBERIK, "healthchecks",
        {"apiVersion": "kuberik.com/v1alpha1", "kind": "HealthCheck",
         "metadata": {"name": "blip", "annotations": {
             "healthcheck.kuberik.com/prometheus-url": prometheus.base_url,
             "healthcheck.kuberik.com/prometheus-alert-labels": f"alertname={RATE_ALERT}",
             "healthcheck.kuberik.com/requeue-interval": "60s"}},
         "spec": {"class": "prometheus-alert"}},
    )  # fmt: skip
    active = f'ALERTS{{alertname="{RATE_ALERT}"}}'
    firing = f'ALERTS{{alertname="{RATE_ALERT}",alertstate="firing"}}'
    with ControllerHarness(kube.admin_kubeconfig, clock, namespace) as controller:
        controller.wait_until(lambda: world.hc_status("blip").get("status") == "Healthy")
        polled_at = world.hc_status("blip")["lastChangeTime"]
        prometheus.exporter.set("tidegate_checkout_error_ratio", 0.9)
        wait_real("the alert fires", lambda: alerts_now(prometheus, firing))
        prometheus.exporter.set("tidegate_checkout_error_ratio", 0.1)
        wait_real("the alert resolves", lambda: not alerts_now(prometheus, active))
        assert world.hc_status("blip") == {
            "status": "Healthy", "message": "no matching alerts firing or pending",
            "lastChangeTime": polled_at,
        }  # fmt: skip
        clock.advance(timedelta(seconds=60))
        status = controller.wait_until(
            lambda: (s := world.hc_status("blip")).get("status") == "Unhealthy" and s,
            what="the next poll sees the firing",
        )
    assert status["message"] == f"firing: {RATE_ALERT}"
    assert status["lastErrorTime"] == format_timestamp(clock.now())
