"""KUBERIK-SEMANTICS.md §10 variants of scenarios 6, 7, 26, 34 and 35 on the real apiserver.

The pure planner tests cover these too; here the real controller, on a ManualClock,
must reach the same outcome through watches, status writes and requeues.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from clocks import ManualClock
from harness import ControllerHarness
from kubecluster import KubeCluster
from world import KUBERIK, World

MERGE = "application/merge-patch+json"
CLUSTER_KUBERIK = "/apis/kuberik.com/v1alpha1"


def observed(world: World, tag: str) -> bool:
    return tag in [r.get("tag") for r in world.status.get("availableReleases") or []]


def test_candidate_order_observed_deploys_an_older_semver(
    world: World, controller: ControllerHarness
) -> None:
    world.rollout()
    world.annotate(**{"tidegate.dev/candidate-order": "observed"})
    world.deploy_each(controller.wait_until, "1.10.0")
    world.observe("1.9.0")
    controller.wait_until(lambda: world.tags()[:1] == ["1.9.0"], what="1.9.0 deploys")
    assert world.tags() == ["1.9.0", "1.10.0"]


def test_a_removed_pin_to_an_unobserved_version_resumes_from_the_releases(
    world: World, controller: ControllerHarness
) -> None:
    world.rollout()
    world.set_spec(wantedVersion="1.2.3")
    world.observe_each("1.2.0")
    controller.wait_until(lambda: world.tags() == ["1.2.3"], what="the pin deploys")
    world.observe_each("1.3.0")
    assert world.tags() == ["1.2.3"]
    world.set_spec(wantedVersion=None)
    controller.wait_until(lambda: world.tags()[:1] == ["1.3.0"], what="1.3.0 deploys")


def test_an_opening_gate_deploys_the_newest_candidate_only(
    world: World, controller: ControllerHarness
) -> None:
    world.rollout()
    world.deploy_each(controller.wait_until, "1.0.0")
    world.gate("hold", passing=False)
    world.observe_each("1.1.0", "1.2.0")
    controller.wait_until(
        lambda: len(world.status.get("releaseCandidates") or []) == 2, what="two candidates"
    )
    world.gate("hold", passing=True)
    controller.wait_until(lambda: world.tags()[:1] == ["1.2.0"], what="1.2.0 deploys")
    assert world.tags() == ["1.2.0", "1.0.0"]


def test_sequential_behind_a_gate_that_skips_the_next_version_deploys_nothing(
    world: World, controller: ControllerHarness
) -> None:
    world.rollout()
    world.annotate(**{"tidegate.dev/sequential": "true"})
    world.deploy_each(controller.wait_until, "1.0.0")
    world.gate("only-1-2", allowed=["1.2.0"])
    world.observe_each("1.1.0", "1.2.0")

    def blamed_rules() -> list[str]:
        decision = world.status.get("decision") or {}
        candidates = decision.get("candidates") or []
        first = next((c for c in candidates if c.get("tag") == "1.1.0"), None)
        if first is None or first.get("decision") != "Blocked":
            return []
        return [r["id"] for r in first.get("rules") or [] if r.get("result") == "fail"]

    blamed = controller.wait_until(blamed_rules, what="1.1.0 Blocked")
    assert any(rule.startswith("kuberik/rollout-gates") for rule in blamed), blamed
    assert world.status["decision"]["decision"] == "Blocked", "the next in order decides"
    assert world.tags() == ["1.0.0"]


def test_history_keeps_the_limit_and_no_matching_check_completes_the_bake(
    world: World, controller: ControllerHarness
) -> None:
    world.rollout(
        versionHistoryLimit=3, healthCheckSelector={"selector": {"matchLabels": {"app": "none"}}}
    )
    for n, tag in enumerate(("0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0"), start=1):
        world.observe(tag)
        controller.wait_until(lambda t=tag: world.tags()[:1] == [t], what=f"{tag} deployed")
        controller.wait_until(
            lambda: world.entry().get("bakeStatus") == "Succeeded", what=f"bake {n} completes"
        )
    assert [e["id"] for e in world.status["history"]] == [5, 4, 3]
    assert world.entry()["bakeStatusMessage"] == "Bake completed (no bake time configured)."


# --- schedules ---------------------------------------------------------------------------------


@pytest.fixture
def other_namespace(kube: KubeCluster) -> Iterator[str]:
    name = f"t-other-{uuid.uuid4().hex[:6]}"
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    status, answer = kube.request("POST", "/api/v1/namespaces", body)
    assert status == 201, answer
    yield name
    kube.request("DELETE", f"/api/v1/namespaces/{name}")


def label_namespace(kube: KubeCluster, namespace: str, labels: dict[str, str]) -> None:
    body = {"metadata": {"labels": labels}}
    status, answer = kube.request(
        "PATCH", f"/api/v1/namespaces/{namespace}", body, content_type=MERGE
    )
    assert status == 200, answer


def schedule_gates(kube: KubeCluster, namespace: str) -> list[dict[str, Any]]:
    status, body = kube.request("GET", f"{KUBERIK.format(ns=namespace)}/rolloutgates")
    assert status == 200, body
    return [g for g in body["items"] if g["metadata"]["name"].startswith("schedule-gate-")]


def cluster_schedule(kube: KubeCluster, name: str, namespace_selector: Any) -> None:
    spec: dict[str, Any] = {
        "rolloutSelector": {"matchLabels": {"app": "foo"}},
        "action": "Deny",
        "rules": [{"name": "always", "daysOfWeek": ["Monday"]}],
    }
    if namespace_selector is not None:
        spec["namespaceSelector"] = namespace_selector
    body = {
        "apiVersion": "kuberik.com/v1alpha1",
        "kind": "ClusterRolloutSchedule",
        "metadata": {"name": name},
        "spec": spec,
    }
    status, answer = kube.request("POST", f"{CLUSTER_KUBERIK}/clusterrolloutschedules", body)
    assert status == 201, answer


@pytest.mark.parametrize("selector", [{"matchLabels": {"env": "prod"}}, {}, None])
def test_a_cluster_schedule_selects_namespaces(
    kube: KubeCluster, namespace: str, other_namespace: str, clock: ManualClock, selector: Any
) -> None:
    label_namespace(kube, namespace, {"env": "prod"})
    label_namespace(kube, other_namespace, {"env": "dev"})
    prod, dev = World(kube, namespace), World(kube, other_namespace)
    prod.rollout(labels={"app": "foo"})
    dev.rollout(labels={"app": "foo"})
    name = f"freeze-{uuid.uuid4().hex[:6]}"
    cluster_schedule(kube, name, selector)
    try:
        with ControllerHarness(kube.admin_kubeconfig, clock) as controller:
            controller.wait_until(lambda: len(schedule_gates(kube, namespace)) == 1, what="prod")
            if selector:
                controller.wait_until(
                    lambda: _cluster_status(kube, name).get("matchingRollouts") == 1,
                    what="status counts the prod Rollout only",
                )
                assert schedule_gates(kube, other_namespace) == []
                label_namespace(kube, namespace, {"env": "staging"})
                controller.wait_until(
                    lambda: schedule_gates(kube, namespace) == [], what="the gate is removed"
                )
            else:
                controller.wait_until(
                    lambda: len(schedule_gates(kube, other_namespace)) == 1, what="dev too"
                )
    finally:
        kube.request("DELETE", f"{CLUSTER_KUBERIK}/clusterrolloutschedules/{name}")


def _cluster_status(kube: KubeCluster, name: str) -> dict[str, Any]:
    status, body = kube.request("GET", f"{CLUSTER_KUBERIK}/clusterrolloutschedules/{name}")
    assert status == 200, body
    found: dict[str, Any] = body.get("status") or {}
    return found


def _schedule(world: World, name: str, timezone: str, rule: dict[str, Any]) -> None:
    world._create(
        KUBERIK, "rolloutschedules",
        {
            "apiVersion": "kuberik.com/v1alpha1", "kind": "RolloutSchedule",
            "metadata": {"name": name},
            "spec": {"rolloutSelector": {"matchLabels": {"app": "r"}}, "timezone": timezone,
                     "action": "Allow", "rules": [rule]},
        },
    )  # fmt: skip


def test_a_lone_past_date_range_is_inactive_with_no_next_transition(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    world.rollout()
    past = {"name": "old", "dateRange": {"start": "2025-12-24", "end": "2025-12-26"}}
    _schedule(world, "past", "UTC", past)

    def status() -> dict[str, Any]:
        found: dict[str, Any] = world.get(KUBERIK, "rolloutschedules", "past").get("status") or {}
        return found

    controller.wait_until(lambda: status().get("managedGates"), what="schedule status")
    assert status()["active"] is False
    assert status().get("nextTransition") is None
    hour_resync = clock.now() + timedelta(minutes=59)
    assert not clock.wait_for_sleeper(until=hour_resync, timeout=0.5), "no requeue for the past"


def test_an_unknown_timezone_closes_the_gates_and_says_why(
    world: World, controller: ControllerHarness
) -> None:
    world.rollout()
    _schedule(world, "mars", "Mars/Base", {"name": "any", "daysOfWeek": ["Monday"]})

    def condition() -> dict[str, Any]:
        found = world.get(KUBERIK, "rolloutschedules", "mars").get("status") or {}
        return next((c for c in found.get("conditions") or [] if c.get("status") == "False"), {})

    controller.wait_until(lambda: condition().get("reason") == "InvalidTimezone", what="reason")
    controller.wait_until(lambda: schedule_gates(world.kube, world.ns), what="a managed gate")
    assert all(g["spec"]["passing"] is False for g in schedule_gates(world.kube, world.ns))
