"""KUBERIK-SEMANTICS.md §10 scenarios 2–7, 17, 22 and 25 on the real apiserver."""

from __future__ import annotations

from datetime import timedelta

import pytest
from clocks import ManualClock
from harness import ControllerHarness
from kubecluster import KubeCluster
from world import FLUX_KUSTOMIZE, FLUX_SOURCE, KUBERIK, World

SELECT_HC = {"selector": {"matchLabels": {"app": "r"}}}
MERGE = "application/merge-patch+json"


def seed_releases(world: World, *tags: str) -> None:
    path = f"{KUBERIK.format(ns=world.ns)}/rollouts/r/status"
    body = {"status": {"availableReleases": [{"tag": t} for t in tags]}}
    status, answer = world.kube.request("PATCH", path, body, content_type=MERGE)
    assert status == 200, answer


@pytest.mark.parametrize(("allowed", "expected"), [(None, "0.2.0"), (["0.1.0"], "0.1.0")])
def test_the_first_deploy_ignores_closed_gates_and_health(
    kube: KubeCluster, namespace: str, world: World, allowed: list[str] | None, expected: str
) -> None:
    clock = ManualClock()
    earlier = clock.now() - timedelta(hours=1)
    world.health_check("Unhealthy", message="boom", changed=earlier, error=earlier)
    world.rollout(healthCheckSelector=SELECT_HC)
    seed_releases(world, "0.1.0")
    world.observe("0.2.0")
    if allowed is None:
        world.gate("closed", passing=False)
    else:
        world.gate("old-only", allowed=allowed)
    with ControllerHarness(kube.admin_kubeconfig, clock, namespace) as controller:
        controller.wait_until(lambda: world.tags() == [expected], what=f"{expected} deployed")


def test_one_in_flight_then_the_newest_candidate_at_bake_end(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    world.rollout(bakeTime="1h")
    world.observe("0.1.0")
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "InProgress", what="baking")
    world.observe_each("0.2.0", "0.3.0")
    controller.wait_until(
        lambda: (
            [c["tag"] for c in world.status.get("releaseCandidates") or []] == ["0.3.0", "0.2.0"]
        ),
        what="two candidates",
    )
    assert world.tags() == ["0.1.0"]
    assert clock.wait_for_sleeper(until=clock.now() + timedelta(hours=1))
    clock.advance(timedelta(hours=1))
    controller.wait_until(lambda: world.tags() == ["0.3.0", "0.1.0"], what="0.3.0 at bake end")
    assert world.status["history"][1]["bakeStatus"] == "Succeeded"


def test_only_the_rollouts_own_flux_objects_change(
    world: World, controller: ControllerHarness
) -> None:
    for name, owner in (("a", "r"), ("b", "other")):
        world._create(
            FLUX_SOURCE, "ocirepositories",
            {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
             "metadata": {"name": name, "annotations": {"rollout.kuberik.com/rollout": owner}},
             "spec": {"url": "oci://registry.local/app", "interval": "1m",
                      "ref": {"tag": "0.0.1", "semver": ">=0.0.0"}}},
        )  # fmt: skip
    owners = {
        "rollout.kuberik.com/substitute.A.from": "r",
        "rollout.kuberik.com/substitute.B.from": "s",
    }
    world.kustomization("k", owners, {"A": "0", "B": "0"})
    world.rollout()
    world.observe("0.2.0")

    def tag(name: str) -> str:
        return str(world.get(FLUX_SOURCE, "ocirepositories", name)["spec"]["ref"]["tag"])

    controller.wait_until(lambda: tag("a") == "0.2.0", what="a patched")
    assert world.get(FLUX_SOURCE, "ocirepositories", "a")["spec"]["ref"]["semver"] == ">=0.0.0"
    assert tag("b") == "0.0.1"
    ks = world.get(FLUX_KUSTOMIZE, "kustomizations", "k")
    controller.wait_until(
        lambda: (
            world.get(FLUX_KUSTOMIZE, "kustomizations", "k")["spec"]["postBuild"]["substitute"]
            == {"A": "0.2.0", "B": "0"}
        ),
        what="only A",
    )
    assert ks["metadata"]["name"] == "k"


def test_an_unrankable_pin_freezes_automation_until_a_manual_deploy(
    world: World, controller: ControllerHarness
) -> None:
    world.rollout()
    world.set_spec(wantedVersion="custom-1")
    world.observe("0.4.0")
    controller.wait_until(lambda: world.tags() == ["custom-1"], what="the pin")
    world.set_spec(wantedVersion=None)
    world.observe("0.5.0")
    controller.wait_until(
        lambda: any(r.get("tag") == "0.5.0" for r in world.status.get("availableReleases") or []),
        what="0.5.0 observed",
    )
    assert world.tags() == ["custom-1"]
    assert world.status["releaseCandidates"] == []


def test_policy_order_never_downgrades(world: World, controller: ControllerHarness) -> None:
    world.rollout()
    world.deploy_each(controller.wait_until, "1.10.0")
    world.observe("1.9.0")
    controller.wait_until(
        lambda: len(world.status.get("availableReleases") or []) == 2, what="1.9.0 observed"
    )
    assert world.tags() == ["1.10.0"]
    assert world.status["releaseCandidates"] == []


def test_sequential_ships_every_version(world: World, controller: ControllerHarness) -> None:
    world.rollout()
    world.annotate(**{"tidegate.dev/sequential": "true"})
    world.deploy_each(controller.wait_until, "1.0.0")
    world.gate("hold", passing=False)
    world.observe_each("1.1.0", "1.2.0")
    controller.wait_until(
        lambda: len(world.status.get("releaseCandidates") or []) == 2, what="two candidates"
    )
    world.gate("hold", passing=True)
    controller.wait_until(lambda: world.tags() == ["1.2.0", "1.1.0", "1.0.0"], what="both in order")


def test_a_pin_wins_over_force_deploy_and_stale_users_do_not_stick(
    world: World, controller: ControllerHarness
) -> None:
    world.rollout()
    world.annotate(**{"rollout.kuberik.com/deploy-user": "bob"})
    world.deploy_each(controller.wait_until, "0.1.0")
    assert world.entry()["triggeredBy"] == {"kind": "System", "name": "rollout-controller"}
    controller.wait_until(
        lambda: "rollout.kuberik.com/deploy-user" not in world.annotations,
        what="stale user removed",
    )
    world.deploy_each(controller.wait_until, "0.2.0")
    world.annotate(**{"rollout.kuberik.com/force-deploy": "0.2.0"})
    world.set_spec(wantedVersion="0.1.0")
    controller.wait_until(lambda: world.tags()[0] == "0.1.0", what="the pin wins")
    assert world.entry()["message"] == "Manual deployment"


def test_a_new_tag_while_deploying_is_a_candidate_only(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    world.health_check("Pending", changed=clock.now())
    world.rollout(healthCheckSelector=SELECT_HC)
    world.observe("0.1.0")
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Deploying", what="Deploying")
    world.observe("0.2.0")
    controller.wait_until(
        lambda: [c["tag"] for c in world.status.get("releaseCandidates") or []] == ["0.2.0"],
        what="candidate",
    )
    assert world.tags() == ["0.1.0"]


def test_a_manual_deploy_into_an_incident_is_never_failed_by_it(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    world.health_check("Healthy", changed=clock.now())
    world.rollout(bakeTime="10m", deployTimeout="1m", healthCheckSelector=SELECT_HC)
    world.deploy_each(controller.wait_until, "0.1.0")
    world.health_check(
        "Unhealthy",
        message="incident",
        changed=clock.advance(timedelta(seconds=1)),
        error=clock.now(),
    )
    world.set_spec(wantedVersion="0.0.9")
    controller.wait_until(lambda: world.tags()[0] == "0.0.9", what="manual deploy")
    controller.wait_until(
        lambda: (
            world.condition("BakeFailureDisabled").get("reason")
            in ("DeployedWithUnhealthyHealthChecks", "PreviousBakeFailed")
        ),
        what="recovery mode",
    )
    world.health_check(
        "Unhealthy", message="still", changed=clock.advance(timedelta(minutes=5)), error=clock.now()
    )
    clock.advance(timedelta(minutes=5))
    world.annotate(**{"tidegate.dev/poke": "1"})
    controller.wait_until(lambda: world.annotations.get("tidegate.dev/poke") == "1", what="poke")
    assert world.entry()["bakeStatus"] != "Failed"
