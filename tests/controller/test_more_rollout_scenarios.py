"""More KUBERIK-SEMANTICS.md §10 scenarios on the real apiserver: gates, manual intents, bake.

Same setup as test_rollout_scenarios.py: the real controller in-process on a
ManualClock; the test plays Flux and the HealthCheck producers.
"""

from __future__ import annotations

from datetime import timedelta

from clocks import ManualClock
from harness import ControllerHarness
from world import KUBERIK, World

SELECT_HC = {"selector": {"matchLabels": {"app": "r"}}}


def test_gates_allowing_nothing_in_common_block_with_no_allowed_versions(
    world: World, controller: ControllerHarness
) -> None:
    world.rollout()
    world.deploy_each(controller.wait_until, "0.1.0")
    world.gate("a", allowed=["0.3.0"])
    world.gate("b", allowed=["0.2.0"])
    world.observe_each("0.2.0", "0.3.0")
    controller.wait_until(
        lambda: world.condition("GatesPassing").get("reason") == "NoAllowedVersions", what="blocked"
    )
    assert world.tags() == ["0.1.0"]
    world.gate("a", allowed=["0.2.0", "0.3.0"])
    controller.wait_until(lambda: world.tags()[0] == "0.2.0", what="the intersection deploys")


def test_bypass_gates_deploys_the_named_candidate_once(
    world: World, controller: ControllerHarness
) -> None:
    world.rollout()
    world.deploy_each(controller.wait_until, "0.1.0")
    world.gate("closed", passing=False)
    world.observe_each("0.2.0", "0.3.0")
    controller.wait_until(
        lambda: world.condition("GatesPassing").get("status") == "False", what="closed"
    )
    world.annotate(**{"rollout.kuberik.com/bypass-gates": "0.3.0"})
    controller.wait_until(lambda: world.tags()[0] == "0.3.0", what="bypass deploy")
    assert world.entry()["message"] == "Automatic deployment, with gate bypass"
    controller.wait_until(
        lambda: "rollout.kuberik.com/bypass-gates" not in world.annotations,
        what="annotation removed",
    )


def test_an_approval_gate_waits_for_tidegate_approve(
    world: World, controller: ControllerHarness
) -> None:
    world.rollout()
    world.deploy_each(controller.wait_until, "0.1.0")
    world.gate("qa", annotations={"tidegate.dev/approval": "true"})
    world.observe("0.2.0")
    controller.wait_until(
        lambda: world.status.get("decision", {}).get("decision") == "Blocked", what="held"
    )
    world.annotate(**{"tidegate.dev/approve": "0.2.0"})
    controller.wait_until(lambda: world.tags()[0] == "0.2.0", what="deploy after approval")
    gate = world.get(KUBERIK, "rolloutgates", "qa")
    assert gate["spec"]["allowedVersions"] == ["0.2.0"]
    controller.wait_until(lambda: world.events("ApprovalRecorded"), what="ApprovalRecorded")


def test_up_to_date_is_not_an_alarm(world: World, controller: ControllerHarness) -> None:
    world.rollout()
    world.deploy_each(controller.wait_until, "0.1.0")
    controller.wait_until(
        lambda: world.condition("GatesPassing").get("reason") == "UpToDate", what="UpToDate"
    )
    world.annotate(**{"tidegate.dev/poke": "1"})
    controller.wait_until(lambda: world.annotations.get("tidegate.dev/poke") == "1", what="poke")
    assert not world.events("NoAllowedVersions")
    assert not world.events("SomeGatesBlocking")


def test_a_pin_deploys_despite_gates_health_and_a_failed_bake(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    world.health_check("Pending", changed=clock.now())
    world.rollout(deployTimeout="1m", healthCheckSelector=SELECT_HC)
    world.observe("0.2.0")
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Deploying", what="Deploying")
    assert clock.wait_for_sleeper()
    clock.advance(timedelta(minutes=2))
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Failed", what="Failed")
    world.health_check("Unhealthy", changed=clock.now(), error=clock.now())
    world.gate("closed", passing=False)
    world.set_spec(wantedVersion="0.1.0")
    controller.wait_until(lambda: world.tags()[0] == "0.1.0", what="pinned deploy")
    assert world.entry()["message"] == "Manual deployment"
    assert world.condition("DeploymentBlocked")["reason"] == "ManualDeployment"
    assert world.condition("BakeFailureDisabled")["reason"] == "PreviousBakeFailed"


def test_force_deploy_of_an_unobserved_tag_fails_and_of_the_current_one_is_cleared(
    world: World, controller: ControllerHarness
) -> None:
    world.rollout()
    world.deploy_each(controller.wait_until, "1.0.0", "2.0.0")
    world.annotate(**{"rollout.kuberik.com/force-deploy": "3.0.0"})
    controller.wait_until(
        lambda: world.condition("Ready").get("reason") == "RolloutFailed", what="RolloutFailed"
    )
    assert (
        "force deploy version 3.0.0 is not in available releases"
        in world.condition("Ready")["message"]
    )
    world.annotate(**{"rollout.kuberik.com/force-deploy": "2.0.0"})
    controller.wait_until(
        lambda: "rollout.kuberik.com/force-deploy" not in world.annotations, what="cleared"
    )
    assert world.tags() == ["2.0.0", "1.0.0"]
    controller.wait_until(lambda: world.events("ForceDeployIgnored"), what="ForceDeployIgnored")


def test_a_health_error_fails_the_bake_and_unblock_lets_the_next_release_through(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    world.health_check("Pending", changed=clock.now())
    world.rollout(bakeTime="1h", healthCheckSelector=SELECT_HC)
    world.observe("0.1.0")
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Deploying", what="Deploying")
    world.health_check("Healthy", changed=clock.advance(timedelta(seconds=1)))
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "InProgress", what="bake")
    world.health_check("Unhealthy", message="5xx", changed=clock.now(), error=clock.now())
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Failed", what="Failed")
    entry = world.entry()
    assert entry["bakeStatusMessage"] == "A HealthCheck reported an error after bake started."
    assert entry["failedHealthChecks"] == [{"name": "hc", "namespace": world.ns, "message": "5xx"}]
    world.health_check("Healthy", changed=clock.advance(timedelta(seconds=1)))
    world.observe("0.2.0")
    controller.wait_until(
        lambda: world.status.get("decision", {}).get("decision") == "Blocked", what="blocked"
    )
    world.annotate(**{"rollout.kuberik.com/unblock-failed": "true"})
    controller.wait_until(lambda: world.tags()[0] == "0.2.0", what="unblocked deploy")
    assert world.entry()["message"] == "Automatic deployment, with failed bake unblock"


def test_history_is_capped_and_ids_continue(world: World, controller: ControllerHarness) -> None:
    world.rollout(versionHistoryLimit=3)
    world.deploy_each(controller.wait_until, "0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0")
    assert [e["id"] for e in world.status["history"]] == [5, 4, 3]


def test_a_failed_automatic_deploy_rolls_back_and_mark_successful_resumes(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    world.health_check("Pending", changed=clock.now())
    world.rollout(labels={"app": "r"}, deployTimeout="1m", healthCheckSelector=SELECT_HC)
    world.annotate(**{"tidegate.dev/rollback-on-failure": "true"})
    world.observe("0.2.0")
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Deploying", what="Deploying")
    world.health_check("Healthy", changed=clock.advance(timedelta(seconds=1)))
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Succeeded", what="0.2.0 ok")
    world.health_check("Pending", changed=clock.now())
    world.observe("0.3.0")
    controller.wait_until(lambda: world.tags()[0] == "0.3.0", what="0.3.0 deployed")
    assert clock.wait_for_sleeper()
    clock.advance(timedelta(minutes=2))
    controller.wait_until(lambda: world.tags()[:2] == ["0.2.0", "0.3.0"], what="rolled back")
    assert world.entry()["message"] == "Automatic rollback after failed bake of 0.3.0"
    assert world.entry()["rollbackOf"] == "0.3.0"
    controller.wait_until(lambda: world.events("AutomaticRollback"), what="AutomaticRollback")
    world.annotate(**{"tidegate.dev/mark-successful": "ok"})
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Succeeded", what="marked")
    assert (
        world.entry()["bakeStatusMessage"] == "Deployment manually marked as successful by user: ok"
    )
