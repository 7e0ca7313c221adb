"""KUBERIK-SEMANTICS.md §10 acceptance scenarios on a real kube-apiserver with the real controller.

The controller runs in-process (``ControllerHarness``) on a ``ManualClock``; the
tests play Flux and the HealthCheck producers and read back status, events and
Flux objects. Time moves only when a test moves it, so requeues "at exactly T"
are proven by moving the clock to T and seeing the change with no other trigger.
"""

from __future__ import annotations

from datetime import timedelta

from clocks import ManualClock
from harness import ControllerHarness
from world import FLUX_KUSTOMIZE, KUBERIK, World

from policy_engine.model.times import format_timestamp

SELECT_HC = {"selector": {"matchLabels": {"app": "r"}}}
MORNING = {"name": "morning", "timeRange": {"start": "00:00", "end": "12:00"}}
TYPO = {"name": "typo", "kind": "gate", "expression": "release.tga == 'x'"}


def test_first_release_deploys_and_owns_only_its_substitute(
    world: World, controller: ControllerHarness
) -> None:
    world.kustomization(
        "app", {"rollout.kuberik.com/substitute.APP.from": "r"}, {"APP": "0", "OTHER": "x"}
    )
    world.rollout()
    world.observe("0.1.0")
    controller.wait_until(lambda: world.tags() == ["0.1.0"], what="0.1.0 deployed")
    entry = world.entry()
    assert entry["id"] == 1
    assert entry["bakeStatus"] == "Succeeded"
    assert entry["message"] == "Automatic deployment"
    assert entry["triggeredBy"] == {"kind": "System", "name": "rollout-controller"}
    assert world.condition("Ready")["reason"] == "RolloutSucceeded"

    def substitute() -> dict[str, str]:
        ks = world.get(FLUX_KUSTOMIZE, "kustomizations", "app")
        return dict(ks["spec"]["postBuild"]["substitute"])

    controller.wait_until(lambda: substitute() == {"APP": "0.1.0", "OTHER": "x"}, what="substitute")
    tidegate_fields = [
        f for f in world.get(FLUX_KUSTOMIZE, "kustomizations", "app")["metadata"]["managedFields"]
        if f["manager"].startswith("tidegate")
    ]  # fmt: skip
    assert "f:APP" in str(tidegate_fields)
    assert "f:OTHER" not in str(tidegate_fields)
    controller.wait_until(
        lambda: world.events("DeploymentSucceeded"), what="DeploymentSucceeded event"
    )


def test_a_closed_gate_blocks_and_status_says_which(
    world: World, controller: ControllerHarness
) -> None:
    world.rollout()
    world.observe("0.1.0")
    controller.wait_until(lambda: world.tags() == ["0.1.0"], what="first deploy")
    world.gate("closed", passing=False)
    world.observe("0.2.0")
    controller.wait_until(
        lambda: world.condition("GatesPassing").get("reason") == "SomeGatesBlocking",
        what="gates blocking",
    )
    assert world.tags() == ["0.1.0"]
    assert world.status["gates"][0] == {
        "name": "closed", "passing": False, "allowedVersions": [],
        "message": "Gate is not passing", "bypassGates": False,
    }  # fmt: skip
    decision = world.status["decision"]
    assert decision["decision"] == "Blocked"
    [candidate] = decision["candidates"]
    assert candidate["tag"] == "0.2.0"
    assert any("rollout-gates" in rule["id"] for rule in candidate["rules"])
    assert any("closed" in rule["message"] for rule in candidate["rules"])
    world.gate("closed", passing=True)
    controller.wait_until(
        lambda: world.tags() == ["0.2.0", "0.1.0"], what="deploy once the gate opens"
    )


def test_unhealthy_check_blocks_with_one_event(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    world.health_check("Pending", changed=clock.now())
    world.rollout(healthCheckSelector=SELECT_HC)
    world.observe("0.1.0")
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Deploying", what="Deploying")
    world.health_check("Healthy", changed=clock.advance(timedelta(seconds=1)))
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Succeeded", what="bake done")
    world.health_check(
        "Unhealthy", message="boom", changed=clock.advance(timedelta(seconds=1)), error=clock.now()
    )
    world.observe("0.2.0")
    controller.wait_until(
        lambda: world.condition("DeploymentBlocked").get("status") == "True",
        what="DeploymentBlocked",
    )
    assert world.condition("DeploymentBlocked")["message"] == (
        "HealthCheck 'hc' in namespace '" + world.ns + "' is not healthy (status: Unhealthy): boom"
    )
    assert world.tags() == ["0.1.0"]
    controller.wait_until(lambda: world.events("HealthCheckBlocking"), what="HealthCheckBlocking")
    world.annotate(**{"tidegate.dev/poke": "1"})  # another reconcile: no second event
    controller.wait_until(lambda: world.annotations.get("tidegate.dev/poke") == "1", what="poke")
    assert len(world.events("HealthCheckBlocking")) == 1
    world.health_check("Pending", changed=clock.advance(timedelta(seconds=1)))
    controller.wait_until(lambda: world.tags()[0] == "0.2.0", what="deploy once no HC is Unhealthy")


def test_bake_starts_on_fresh_health_and_ends_exactly_on_time(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    world.health_check("Healthy", changed=clock.now() - timedelta(hours=1))
    world.rollout(bakeTime="5m", healthCheckSelector=SELECT_HC)
    world.observe("0.1.0")
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Deploying", what="Deploying")
    controller.wait_until(
        lambda: world.hc_status().get("message") == "Health check reset due to new deployment",
        what="the stale HealthCheck reset",
    )
    started = clock.advance(timedelta(seconds=1))
    world.health_check("Healthy", changed=started)
    controller.wait_until(
        lambda: world.entry().get("bakeStatus") == "InProgress", what="bake started"
    )
    assert world.entry()["bakeStartTime"] == format_timestamp(started)
    assert clock.wait_for_sleeper(until=started + timedelta(minutes=5))
    clock.advance(timedelta(minutes=5) - timedelta(seconds=1))
    assert world.entry()["bakeStatus"] == "InProgress"
    clock.advance(timedelta(seconds=1))
    controller.wait_until(
        lambda: world.entry().get("bakeStatus") == "Succeeded", what="bake passed"
    )
    assert world.entry()["bakeEndTime"] == format_timestamp(started + timedelta(minutes=5))
    assert world.condition("Ready")["reason"] == "BakeTimePassed"


def test_deploy_timeout_fails_after_the_deadline_without_polling(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    world.health_check("Pending", changed=clock.now())
    world.rollout(deployTimeout="10m", healthCheckSelector=SELECT_HC)
    world.observe("0.1.0")
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Deploying", what="Deploying")
    deploy_time = world.entry()["timestamp"]
    assert clock.wait_for_sleeper()
    deadline = clock.now() + timedelta(minutes=10)
    assert clock.wait_for_sleeper(until=deadline)
    clock.set(deadline + timedelta(seconds=1))
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Failed", what="timeout")
    entry = world.entry()
    assert entry["timestamp"] == deploy_time
    assert entry["bakeStatusMessage"].startswith("Deploy timeout reached before bake could start")
    assert entry["failedHealthChecks"][0]["name"] == "hc"
    assert world.condition("Ready")["reason"] == "BakeTimeFailed"
    controller.wait_until(lambda: world.events("BakeTimeFailed"), what="BakeTimeFailed event")


def test_force_deploy_with_message_and_user_then_annotations_are_removed(
    world: World, controller: ControllerHarness
) -> None:
    world.rollout()
    world.observe("0.1.0")
    controller.wait_until(lambda: world.tags() == ["0.1.0"], what="0.1.0")
    world.observe("0.2.0")
    controller.wait_until(lambda: world.tags() == ["0.2.0", "0.1.0"], what="0.2.0")
    world.annotate(**{
        "rollout.kuberik.com/force-deploy": "0.1.0",
        "rollout.kuberik.com/deploy-message": "hotfix",
        "rollout.kuberik.com/deploy-user": "alice",
    })  # fmt: skip
    controller.wait_until(
        lambda: world.tags()[:2] == ["0.1.0", "0.2.0"] or len(world.tags()) > 3, what="force deploy"
    )
    entry = next(
        e for e in world.status["history"] if e["version"]["tag"] == "0.1.0" and e["id"] == 3
    )
    assert entry["message"] == "hotfix, with force deploy"
    assert entry["triggeredBy"] == {"kind": "User", "name": "alice"}
    controller.wait_until(
        lambda: not any(k.startswith("rollout.kuberik.com/") for k in world.annotations),
        what="one-shot annotations removed",
    )


def test_retry_resets_the_failed_entry(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    world.health_check("Pending", changed=clock.now())
    world.rollout(bakeTime="1h", deployTimeout="1m", healthCheckSelector=SELECT_HC)
    world.observe("0.1.0")
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Deploying", what="Deploying")
    assert clock.wait_for_sleeper()
    clock.advance(timedelta(minutes=2))
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Failed", what="Failed")
    retry_at = clock.advance(timedelta(minutes=1))
    world.annotate(**{"rollout.kuberik.com/retry": "x"})
    controller.wait_until(lambda: world.entry().get("bakeStatus") == "Deploying", what="retried")
    entry = world.entry()
    assert entry["id"] == 1
    assert entry["lastRetryTimestamp"] == format_timestamp(retry_at)
    assert "failedHealthChecks" not in entry
    controller.wait_until(
        lambda: "rollout.kuberik.com/retry" not in world.annotations, what="removed"
    )
    controller.wait_until(lambda: world.events("RetryRequested"), what="RetryRequested event")
    world.health_check("Healthy", changed=clock.advance(timedelta(seconds=1)))
    controller.wait_until(
        lambda: world.entry().get("bakeStatus") == "InProgress", what="bake after retry"
    )


def test_a_deny_window_holds_the_release_until_it_opens(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    world.rollout()
    world.observe("0.1.0")
    controller.wait_until(lambda: world.tags() == ["0.1.0"], what="first deploy")
    opens = clock.now().replace(hour=12, minute=0, second=0)
    world._create(
        KUBERIK, "rolloutschedules",
        {
            "apiVersion": "kuberik.com/v1alpha1", "kind": "RolloutSchedule",
            "metadata": {"name": "freeze"},
            "spec": {"rolloutSelector": {"matchLabels": {"app": "r"}}, "timezone": "UTC",
                     "action": "Deny", "rules": [MORNING]},
        },
    )  # fmt: skip
    world.observe("0.2.0")
    controller.wait_until(
        lambda: (world.status.get("decision") or {}).get("decision") == "Pending", what="Pending"
    )
    assert world.status["decision"]["nextChange"] == format_timestamp(opens)
    assert world.tags() == ["0.1.0"]
    assert clock.wait_for_sleeper(until=opens)
    clock.set(opens)
    controller.wait_until(lambda: world.tags()[0] == "0.2.0", what="deploy when the window opens")
    assert world.entry()["timestamp"] == format_timestamp(opens)


def test_an_invalid_policy_stalls_and_blocks_automatic_deploys(
    world: World, controller: ControllerHarness
) -> None:
    world.rollout()
    world.observe("0.1.0")
    controller.wait_until(lambda: world.tags() == ["0.1.0"], what="first deploy")
    status, body = world.kube.request(
        "POST", f"/apis/tidegate.dev/v1alpha1/namespaces/{world.ns}/rolloutpolicies",
        {
            "apiVersion": "tidegate.dev/v1alpha1", "kind": "RolloutPolicy",
            "metadata": {"name": "broken", "namespace": world.ns},
            "spec": {"targets": {"rolloutSelector": {}},
                     "rules": [TYPO]},
        },
    )  # fmt: skip
    assert status == 201, body
    world.observe("0.2.0")
    controller.wait_until(
        lambda: world.condition("Stalled").get("reason") == "InvalidPolicy", what="Stalled"
    )
    assert "broken" in world.condition("Stalled")["message"]
    assert world.tags() == ["0.1.0"]
