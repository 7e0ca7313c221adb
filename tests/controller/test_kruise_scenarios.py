"""OpenKruise step gate and RolloutTests on the real apiserver (KUBERIK-SEMANTICS §8, §10: 42–45).

There is no OpenKruise controller and no Job controller here: the tests play
both, writing the Kruise Rollout's ``status.canaryStatus`` and the Jobs'
status exactly as those controllers would. The controller's clock is a
ManualClock; bake times and timeouts are crossed by advancing it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from clocks import ManualClock
from harness import ControllerHarness
from kubecluster import KubeCluster
from world import KUBERIK, MERGE, World

from policy_engine.model.times import format_timestamp

KRUISE = "/apis/rollouts.kruise.io/v1beta1/namespaces/{ns}"
TESTS = "/apis/rollout.kuberik.com/v1alpha1/namespaces/{ns}"
BATCH = "/apis/batch/v1/namespaces/{ns}"
FLUX_KUSTOMIZE = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{ns}"
STEP1 = "internal.rollout.kuberik.io/step-1-"
RETRY = "rollout.kuberik.com/retry"
RETRY_MODE = "rollouttest.kuberik.com/retry-mode"
JOB_SPEC = {
    "backoffLimit": 0,
    "template": {
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "smoke", "image": "busybox", "command": ["true"]}],
        }
    },
}


class Canary:
    """Kruise Rollout ``app`` (Flux Kustomization ``app``), its RolloutTests and their Jobs."""

    def __init__(self, world: World) -> None:
        self.world, self.kube, self.ns = world, world.kube, world.ns

    def path(self, base: str, plural: str, name: str = "") -> str:
        return f"{base.format(ns=self.ns)}/{plural}" + (f"/{name}" if name else "")

    def create(self, annotations: dict[str, str] | None = None, steps: int = 3) -> None:
        body = {
            "apiVersion": "rollouts.kruise.io/v1beta1",
            "kind": "Rollout",
            "metadata": {
                "name": "app",
                "namespace": self.ns,
                "labels": {"kustomize.toolkit.fluxcd.io/name": "app",
                           "kustomize.toolkit.fluxcd.io/namespace": self.ns},
                "annotations": annotations or {},
            },
            "spec": {
                "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "strategy": {"canary": {"steps": [{"replicas": 1, "pause": {}}] * steps}},
            },
        }  # fmt: skip
        status, answer = self.kube.request("POST", self.path(KRUISE, "rollouts"), body)
        assert status == 201, answer

    def at(self, step: int, state: str = "StepPaused", revision: str = "rev-1") -> None:
        """OpenKruise moves the canary to ``step`` in ``state``."""
        canary = {"currentStepIndex": step, "currentStepState": state, "canaryRevision": revision}
        body = {"status": {"phase": "Progressing", "canaryStatus": canary}}
        status, answer = self.kube.request(
            "PATCH", self.path(KRUISE, "rollouts", "app") + "/status", body, content_type=MERGE
        )
        assert status == 200, answer

    def test(self, name: str = "smoke", step: int = 1) -> None:
        body = {
            "apiVersion": "rollout.kuberik.com/v1alpha1",
            "kind": "RolloutTest",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {"rolloutName": "app", "stepIndex": step, "jobTemplate": JOB_SPEC},
        }
        status, answer = self.kube.request("POST", self.path(TESTS, "rollouttests"), body)
        assert status == 201, answer

    # --- reading ---
    @property
    def kruise(self) -> dict[str, Any]:
        status, body = self.kube.request("GET", self.path(KRUISE, "rollouts", "app"))
        assert status == 200, body
        assert isinstance(body, dict)
        return body

    def condition(self, kind: str) -> dict[str, Any]:
        conditions = (self.kruise.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c.get("type") == kind), {})

    def pause(self, step: int = 1) -> dict[str, Any]:
        pause: dict[str, Any] = self.kruise["spec"]["strategy"]["canary"]["steps"][step - 1]
        return pause.get("pause") or {}

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.kruise["metadata"].get("annotations") or {})

    def test_status(self, name: str = "smoke") -> dict[str, Any]:
        status, body = self.kube.request("GET", self.path(TESTS, "rollouttests", name))
        assert status == 200, body
        return dict(body.get("status") or {})

    def phase(self, name: str = "smoke") -> str | None:
        return self.test_status(name).get("phase")

    def jobs(self, test: str = "smoke") -> list[dict[str, Any]]:
        status, body = self.kube.request(
            "GET", self.path(BATCH, "jobs") + f"?labelSelector=rollout-test%3D{test}"
        )
        assert status == 200, body
        return list(body["items"])

    # --- playing the Job controller ---
    def job_status(self, test: str, status: dict[str, Any]) -> None:
        [job] = self.jobs(test)
        path = self.path(BATCH, "jobs", job["metadata"]["name"]) + "/status"
        code, answer = self.kube.request("PATCH", path, {"status": status}, content_type=MERGE)
        assert code == 200, answer

    def job_runs(self, clock: ManualClock, test: str = "smoke") -> None:
        self.job_status(test, {"startTime": format_timestamp(clock.now()), "active": 1})

    def job_ends(self, clock: ManualClock, kind: str, test: str = "smoke") -> None:
        now = format_timestamp(clock.now())
        condition = {"status": "True", "lastProbeTime": now, "lastTransitionTime": now}
        if kind == "Complete":
            conditions = [
                {**condition, "type": "SuccessCriteriaMet", "reason": "CompletionsReached"},
                {**condition, "type": "Complete", "reason": "CompletionsReached"},
            ]
            counts = {"succeeded": 1, "completionTime": now}
        else:
            conditions = [
                {**condition, "type": "FailureTarget", "reason": "BackoffLimitExceeded"},
                {**condition, "type": "Failed", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"},
            ]  # fmt: skip
            counts = {"failed": 1}
        self.job_status(test, {"active": 0, "ready": 0, **counts, "conditions": conditions})


def ticking(
    clock: ManualClock, predicate: Callable[[], object], limit: timedelta = timedelta(minutes=1)
) -> Callable[[], bool]:
    """``predicate``, moving the clock 1 s per false poll (at most ``limit``): for waits whose
    next step is on the clock (a HealthCheck's poll, a backoff after a write conflict)."""
    start = clock.now()

    def check() -> bool:
        if predicate():
            return True
        if clock.now() - start < limit:
            clock.advance(timedelta(seconds=1))
        return False

    return check


def run_test(canary: Canary, controller: ControllerHarness, clock: ManualClock, end: str) -> None:
    """The step's test gets its Job, which runs and ends as ``end`` (Complete or Failed)."""
    controller.wait_until(canary.jobs, what="the test's Job")
    controller.wait_until(lambda: canary.phase() == "Pending", what="Pending")
    canary.job_runs(clock)
    controller.wait_until(lambda: canary.phase() == "Running", what="Running")
    canary.job_ends(clock, end)
    wanted = "Succeeded" if end == "Complete" else "Failed"
    controller.wait_until(lambda: canary.phase() == wanted, what=wanted)


def test_42_a_passed_test_and_the_bake_time_approve_the_step(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    canary = Canary(world)
    canary.create({"rollout.kuberik.io/step-1-bake-time": "30s"})
    canary.test()
    canary.at(1, "StepUpgrade")
    controller.wait_until(lambda: canary.phase() == "WaitingForStep", what="WaitingForStep")
    assert canary.jobs() == []
    canary.at(1, "StepPaused")
    run_test(canary, controller, clock, "Complete")
    [job] = canary.jobs()
    assert job["metadata"]["labels"] == {
        "rollout-test": "smoke",
        "rollout.kuberik.io/canary-revision": "rev-1",
    }
    assert job["metadata"]["ownerReferences"][0]["name"] == "smoke"
    assert canary.test_status()["jobName"] == job["metadata"]["name"]
    ready_at = format_timestamp(clock.now())
    controller.wait_until(lambda: canary.annotations.get(f"{STEP1}ready-at") == ready_at)
    assert canary.pause() == {}
    clock.advance(timedelta(seconds=30))
    controller.wait_until(lambda: canary.pause() == {"duration": 0}, what="the approval")
    assert len(canary.jobs()) == 1
    canary.at(2, "StepUpgrade")
    controller.wait_until(
        lambda: not [k for k in canary.annotations if k.startswith(STEP1)], what="step 1 cleared"
    )
    assert canary.phase() == "Succeeded"


def test_42_without_tests_a_step_is_approved_only_with_a_bake_time(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    canary = Canary(world)
    canary.create({"rollout.kuberik.io/step-2-bake-time": "1m"})
    canary.at(1)
    controller.wait_until(lambda: canary.condition("KuberikBakeHealthy"), what="a first pass")
    canary.at(2)
    controller.wait_until(
        lambda: canary.annotations.get("internal.rollout.kuberik.io/last-step-index") == "2"
    )
    clock.advance(timedelta(minutes=1))
    controller.wait_until(lambda: canary.pause(2) == {"duration": 0}, what="step 2 approved")
    assert canary.pause(1) == {}


def test_43_a_step_not_ready_at_its_ready_timeout_stalls_at_exactly_the_deadline(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    canary = Canary(world)
    canary.create({"rollout.kuberik.io/step-1-ready-timeout": "1m"})
    canary.at(1)
    controller.wait_until(lambda: canary.annotations.get(f"{STEP1}started-at"), what="started")
    started = clock.now()
    assert canary.annotations[f"{STEP1}started-at"] == format_timestamp(started)
    controller.wait_until(lambda: canary.condition("KuberikBakeHealthy"), what="a verdict")
    assert canary.condition("Stalled") == {}
    clock.advance(timedelta(seconds=60))
    controller.wait_until(
        lambda: canary.condition("Stalled").get("status") == "True", what="Stalled"
    )
    stalled = canary.condition("Stalled")
    deadline = format_timestamp(started + timedelta(minutes=1))
    assert (stalled["reason"], stalled["message"], stalled["lastTransitionTime"]) == (
        "StepReadyTimeoutExceeded",
        f"Step 1 step-ready-timeout (1m0s) exceeded at {deadline} for canary rev-1."
        " Rollout is paused and requires manual intervention.",
        deadline,
    )
    assert canary.pause() == {}


def test_43_a_test_still_running_at_the_ready_timeout_is_cancelled_and_fails_the_step(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    canary = Canary(world)
    canary.create({"rollout.kuberik.io/step-1-ready-timeout": "1m"})
    canary.test()
    canary.at(1)
    controller.wait_until(lambda: canary.phase() == "Pending", what="Pending")
    canary.job_runs(clock)
    controller.wait_until(lambda: canary.phase() == "Running", what="Running")
    clock.advance(timedelta(minutes=1))
    controller.wait_until(lambda: canary.phase() == "Cancelled", what="Cancelled")
    ready = next(c for c in canary.test_status()["conditions"] if c["type"] == "Ready")
    assert ready["message"] == (
        "Test job was cancelled because rollout is stalled (StepReadyTimeoutExceeded)"
    )
    controller.wait_until(lambda: canary.jobs() == [], what="the Job deleted")
    # A Cancelled test counts as failed (§8 step 7): the stall now names the test.
    controller.wait_until(
        lambda: canary.condition("Stalled").get("reason") == "RolloutTestFailed", what="reason"
    )
    assert canary.pause() == {}


def test_43_moving_on_cancels_a_running_test_and_keeps_a_succeeded_one(
    world: World, controller: ControllerHarness, clock: ManualClock
) -> None:
    canary = Canary(world)
    canary.create()
    canary.test("smoke")
    canary.test("done")
    canary.at(1)
    controller.wait_until(lambda: len(canary.jobs("smoke")) == len(canary.jobs("done")) == 1)
    canary.job_runs(clock, "smoke")
    canary.job_runs(clock, "done")
    canary.job_ends(clock, "Complete", "done")
    controller.wait_until(lambda: canary.phase("done") == "Succeeded", what="done Succeeded")
    controller.wait_until(lambda: canary.phase("smoke") == "Running", what="smoke Running")
    canary.at(2, "StepUpgrade")
    controller.wait_until(lambda: canary.phase("smoke") == "Cancelled", what="Cancelled")
    ready = next(c for c in canary.test_status("smoke")["conditions"] if c["type"] == "Ready")
    assert ready["message"] == "Test job was cancelled because rollout step moved forward"
    controller.wait_until(lambda: canary.jobs("smoke") == [], what="the running Job deleted")
    controller.wait_until(lambda: canary.jobs("done") == [], what="the finished Job deleted")
    assert canary.phase("done") == "Succeeded"


def coupled(world: World, canary: Canary, kube: KubeCluster) -> None:
    """Kuberik Rollout r (bake 10m) deploys through Kustomization app, whose inventory holds
    the Kruise Rollout; HealthCheck ks (class kustomization) reads its kstatus."""
    world.kustomization("app", {"rollout.kuberik.com/substitute.APP.from": "r"}, {"APP": "0"})
    ks = world.get(FLUX_KUSTOMIZE, "kustomizations", "app")
    ks_status = {
        "observedGeneration": ks["metadata"]["generation"],
        "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                        "message": "Applied revision: v1",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "inventory": {"entries": [{"id": f"{world.ns}_app_rollouts.kruise.io_Rollout",
                                   "v": "v1beta1"}]},
    }  # fmt: skip
    path = canary.path(FLUX_KUSTOMIZE, "kustomizations", "app") + "/status"
    assert kube.request("PATCH", path, {"status": ks_status}, content_type=MERGE)[0] == 200
    world._create(
        KUBERIK, "healthchecks",
        {"apiVersion": "kuberik.com/v1alpha1", "kind": "HealthCheck",
         "metadata": {"name": "ks", "labels": {"app": "r"},
                      "annotations": {"healthcheck.kuberik.com/kustomization": "app",
                                      "healthcheck.kuberik.com/requeue-interval": "5s"}},
         "spec": {"class": "kustomization"}},
    )  # fmt: skip
    world.rollout(bakeTime="10m", healthCheckSelector={"selector": {"matchLabels": {"app": "r"}}})


def test_done_when_a_failing_step_1_test_stalls_fails_the_bake_and_retry_skip_proceeds(
    world: World, clock: ManualClock, kube: KubeCluster
) -> None:
    canary = Canary(world)
    canary.create()
    canary.test()
    coupled(world, canary, kube)
    # Started after the objects exist, so its first LIST holds them all: a HealthCheck
    # evaluated before the Kustomization's watch event would fail closed ("not found").
    with ControllerHarness(kube.admin_kubeconfig, clock, world.ns) as controller:
        done_when(world, canary, controller, clock)


def fail_step_1(
    world: World, canary: Canary, controller: ControllerHarness, clock: ManualClock
) -> None:
    """0.1.0 deploys, the canary pauses at step 1 during the bake, its test's Job fails."""
    world.observe("0.1.0")
    controller.wait_until(lambda: world.tags() == ["0.1.0"], what="0.1.0 deployed")
    canary.at(1)
    controller.wait_until(
        ticking(clock, lambda: world.entry().get("bakeStartTime")), what="the bake to start"
    )
    clock.advance(timedelta(seconds=5))
    run_test(canary, controller, clock, "Failed")


def done_when(
    world: World, canary: Canary, controller: ControllerHarness, clock: ManualClock
) -> None:
    fail_step_1(world, canary, controller, clock)
    controller.wait_until(
        lambda: canary.condition("Stalled").get("status") == "True", what="Stalled"
    )
    stalled = canary.condition("Stalled")
    stall_time = stalled["lastTransitionTime"]
    assert (stalled["reason"], stalled["message"]) == (
        "RolloutTestFailed",
        "Rollout tests failed for current step (test smoke, step 1)",
    )
    # Scenario 45: the kustomization HC reads the stall and the Kuberik bake fails.
    controller.wait_until(
        ticking(clock, lambda: world.entry().get("bakeStatus") == "Failed"), what="bake failed"
    )
    assert world.hc_status("ks")["status"] == "Unhealthy"
    assert world.hc_status("ks")["lastErrorTime"] == stall_time
    controller.wait_until(
        lambda: canary.condition("KuberikBakeHealthy").get("status") == "False",
        what="KuberikBakeHealthy=False",
    )
    assert canary.condition("KuberikBakeHealthy")["reason"] == "BakeFailed"
    assert canary.condition("Stalled")["reason"] == "RolloutTestFailed"
    assert canary.pause() == {}
    assert canary.phase() == "Failed"
    # Scenario 44: retry with mode skip.
    clock.advance(timedelta(seconds=5))
    world.annotate(**{RETRY: "skip"})
    controller.wait_until(lambda: canary.phase() == "Skipped", what="the test Skipped")
    controller.wait_until(lambda: canary.pause() == {"duration": 0}, what="step 1 approved")
    retried = world.entry()["lastRetryTimestamp"]
    assert retried > stall_time
    assert f"{STEP1}started-at" not in canary.annotations  # consumed by the approval
    assert RETRY not in world.annotations
    controller.wait_until(lambda: RETRY_MODE not in world.annotations, what="mode removed")
    assert canary.jobs() == []
    assert canary.condition("Stalled")["status"] == "False"
    ready = next(c for c in canary.test_status()["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "TestSkipped")


def test_44_retry_without_skip_runs_the_failed_test_again_with_a_new_job(
    world: World, clock: ManualClock, kube: KubeCluster
) -> None:
    canary = Canary(world)
    canary.create()
    canary.test()
    coupled(world, canary, kube)
    with ControllerHarness(kube.admin_kubeconfig, clock, world.ns) as controller:
        fail_step_1(world, canary, controller, clock)
        controller.wait_until(
            ticking(clock, lambda: world.entry().get("bakeStatus") == "Failed"), what="failed"
        )
        first = {job["metadata"]["name"] for job in canary.jobs()}
        clock.advance(timedelta(seconds=5))
        world.annotate(**{RETRY: "true"})

        def new_job() -> bool:
            names = {job["metadata"]["name"] for job in canary.jobs()}
            return bool(names) and not names & first

        controller.wait_until(new_job, what="the failed test's Job replaced")
        assert len(canary.jobs()) == 1
        controller.wait_until(lambda: canary.phase() == "Pending", what="the test re-runs")
        assert world.entry()["bakeStatus"] in ("Deploying", "InProgress")
        assert world.entry()["lastRetryTimestamp"]
        canary.job_runs(clock)
        controller.wait_until(lambda: canary.phase() == "Running", what="Running")
        canary.job_ends(clock, "Complete")
        controller.wait_until(lambda: canary.phase() == "Succeeded", what="Succeeded")
