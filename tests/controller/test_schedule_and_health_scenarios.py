"""Schedules and HealthCheck producers on the real apiserver (KUBERIK-SEMANTICS.md §10: 29–32)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from clocks import ManualClock
from harness import ControllerHarness
from kubecluster import KubeCluster
from world import KUBERIK, World

from policy_engine.model.times import format_timestamp

WORKDAY = {"name": "workday", "timeRange": {"start": "09:00", "end": "17:00"}}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(ManualClock().now().replace(hour=10))


def schedule_gates(world: World) -> list[dict[str, Any]]:
    status, body = world.kube.request("GET", f"{KUBERIK.format(ns=world.ns)}/rolloutgates")
    assert status == 200, body
    return [g for g in body["items"] if g["metadata"]["name"].startswith("schedule-gate-")]


def test_an_allow_schedule_owns_one_gate_that_follows_the_window(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    world.rollout()
    world._create(
        KUBERIK, "rolloutschedules",
        {
            "apiVersion": "kuberik.com/v1alpha1", "kind": "RolloutSchedule",
            "metadata": {"name": "hours"},
            "spec": {"rolloutSelector": {"matchLabels": {"app": "r"}}, "timezone": "UTC",
                     "action": "Allow", "rules": [WORKDAY]},
        },
    )  # fmt: skip

    def schedule_status() -> dict[str, Any]:
        found: dict[str, Any] = world.get(KUBERIK, "rolloutschedules", "hours").get("status") or {}
        return found

    controller.wait_until(lambda: len(schedule_gates(world)) == 1, what="one schedule gate")
    controller.wait_until(
        lambda: len(schedule_status().get("managedGates") or []) == 1, what="schedule status"
    )
    [gate] = schedule_gates(world)
    assert gate["metadata"]["name"] in schedule_status()["managedGates"]
    assert gate["spec"] == {"rolloutRef": {"name": "r"}, "passing": True}
    labels = gate["metadata"]["labels"]
    assert labels["gate.kuberik.com/schedule-name"] == "hours"
    assert labels["gate.kuberik.com/rollout-name"] == "r"
    assert gate["metadata"]["ownerReferences"][0]["kind"] == "RolloutSchedule"
    status = schedule_status()
    assert status["activeRules"] == ["workday"]
    assert status["nextTransition"] == format_timestamp(clock.now().replace(hour=17))
    assert status["matchingRollouts"] == 1
    assert len(status["managedGates"]) == 1
    closes = clock.now().replace(hour=17)
    assert clock.wait_for_sleeper(until=closes)
    clock.set(closes)
    controller.wait_until(
        lambda: schedule_gates(world)[0]["spec"]["passing"] is False, what="gate closed at 17:00"
    )
    assert len(schedule_gates(world)) == 1


def test_a_stale_health_check_is_reset_on_deploy_and_a_fresh_one_is_not(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    world.health_check(
        "Healthy", changed=clock.now() - timedelta(hours=1), error=clock.now() - timedelta(hours=2)
    )
    world.health_check("Healthy", changed=clock.now() - timedelta(hours=1), name="other")
    world.rollout(bakeTime="1h", healthCheckSelector={"selector": {"matchLabels": {"app": "r"}}})
    world.observe("0.1.0")
    controller.wait_until(lambda: world.hc_status().get("status") == "Pending", what="reset")
    status = world.hc_status()
    assert status["message"] == "Health check reset due to new deployment"
    assert status["lastChangeTime"] == format_timestamp(clock.now())
    assert "lastErrorTime" not in status


def test_a_kustomization_health_check_reads_kstatus_of_its_inventory(
    world: World, controller: ControllerHarness, clock: ManualClock, kube: KubeCluster
) -> None:
    stalled_at = clock.now() - timedelta(minutes=3)
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": world.ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
    }  # fmt: skip
    status, body = kube.request(
        "POST", f"/apis/apps/v1/namespaces/{world.ns}/deployments", deployment
    )
    assert status == 201, body
    failed = {
        "observedGeneration": body["metadata"]["generation"], "replicas": 1,
        "conditions": [{"type": "Progressing", "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": "ReplicaSet web-1 has timed out progressing.",
                        "lastTransitionTime": format_timestamp(stalled_at),
                        "lastUpdateTime": format_timestamp(stalled_at)}],
    }  # fmt: skip
    path = f"/apis/apps/v1/namespaces/{world.ns}/deployments/web/status"
    assert (
        kube.request(
            "PATCH", path, {"status": failed}, content_type="application/merge-patch+json"
        )[0]
        == 200
    )
    world.kustomization("app", {}, {})
    ks_path = (
        f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{world.ns}/kustomizations/app/status"
    )
    ks = world.get("/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{ns}", "kustomizations", "app")
    ks_status = {
        "observedGeneration": ks["metadata"]["generation"],
        "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                        "message": "Applied revision: v1",
                        "lastTransitionTime": format_timestamp(stalled_at)}],
        "inventory": {"entries": [{"id": f"{world.ns}_web_apps_Deployment", "v": "v1"}]},
    }  # fmt: skip
    assert (
        kube.request(
            "PATCH", ks_path, {"status": ks_status}, content_type="application/merge-patch+json"
        )[0]
        == 200
    )
    world._create(
        KUBERIK, "healthchecks",
        {"apiVersion": "kuberik.com/v1alpha1", "kind": "HealthCheck",
         "metadata": {"name": "ks", "labels": {"app": "r"},
                      "annotations": {"healthcheck.kuberik.com/kustomization": "app"}},
         "spec": {"class": "kustomization"}},
    )  # fmt: skip
    controller.wait_until(
        lambda: world.hc_status("ks").get("status") == "Unhealthy", what="Unhealthy"
    )
    hc = world.hc_status("ks")
    assert hc["message"].startswith(f"Unhealthy resources: {world.ns}/web")
    assert hc["lastErrorTime"] == format_timestamp(stalled_at)
