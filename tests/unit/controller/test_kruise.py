"""KUBERIK-SEMANTICS.md §8 and scenarios 42–45 on the pure OpenKruise planners, pass by pass.

``kruise_sim.World`` applies each plan as the controller's applier will; the
tests play OpenKruise, the Job controller and the Kuberik side between passes.
Every pass gets an injected ``now``.
Over 600 lines because each of scenarios 42–45 is several passes of one shared world;
the world itself lives in ``kruise_sim``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from kruise_sim import (
    READY,
    RETRY_MODE,
    REV,
    REV2,
    STARTED,
    World,
    at,
    failed_test,
    passed_test,
    stamp,
)

from controller.planning.kruise import TestPlan, linked_rollout, relevant_entry
from controller.planning.kruise_linking import go_duration
from controller.planning.kruise_rollouttests import job_manifest

# --- linking (§8 linking 1–3) ---------------------------------------------------------------


def kustomization(annotations: dict[str, str], source: str | None = None) -> dict[str, Any]:
    spec = {"sourceRef": {"kind": "OCIRepository", "name": source}} if source else {}
    return {
        "metadata": {"name": "apps", "namespace": "flux-system", "annotations": annotations},
        "spec": spec,
    }


def kruise_named(where: str = "annotations") -> dict[str, Any]:
    ref = {
        "kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
    }
    return {"metadata": {"name": "app", "namespace": "ns", where: ref}}


def exists(*known: tuple[str, str]) -> Any:
    return lambda namespace, name: (namespace, name) in known


def test_link_takes_the_first_substitute_key_in_key_order_whose_rollout_exists() -> None:
    keys = {
        "rollout.kuberik.com/substitute.B.from": "b",
        "rollout.kuberik.com/substitute.A.from": "a",
    }
    found = linked_rollout(
        kruise_named(),
        [kustomization(keys)],
        [],
        exists(("flux-system", "a"), ("flux-system", "b")),
    )
    assert found == ("flux-system", "a")
    only_b = exists(("flux-system", "b"))
    assert linked_rollout(kruise_named("labels"), [kustomization(keys)], [], only_b) == (
        "flux-system",
        "b",
    )


def test_link_falls_back_to_the_oci_repository_annotations() -> None:
    source: dict[str, Any] = {
        "metadata": {
            "name": "src",
            "namespace": "flux-system",
            "annotations": {
                "rollout.kuberik.com/name": "r",
                "rollout.kuberik.com/namespace": "apps-ns",
            },
        }
    }
    kust = kustomization({"rollout.kuberik.com/substitute.A.from": "gone"}, source="src")
    assert linked_rollout(kruise_named(), [kust], [source], exists(("apps-ns", "r"))) == (
        "apps-ns",
        "r",
    )
    source["metadata"]["annotations"]["rollout.kuberik.com/rollout"] = "s"
    assert linked_rollout(kruise_named(), [kust], [source], exists(("flux-system", "s"))) == (
        "flux-system",
        "s",
    )
    assert linked_rollout(kruise_named(), [kust], [source], exists()) is None


def test_no_link_without_both_flux_keys_or_the_kustomization() -> None:
    keys = {"rollout.kuberik.com/substitute.A.from": "a"}
    known = exists(("flux-system", "a"))
    half = {"metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/name": "apps"}}}
    assert linked_rollout(half, [kustomization(keys)], [], known) is None
    assert linked_rollout(kruise_named(), [], [], known) is None


def test_relevant_entry_follows_the_version_annotation() -> None:
    kuberik = {
        "status": {"history": [{"version": {"tag": "2.0.0"}}, {"version": {"tag": "1.0.0"}}]}
    }
    tagged = {"metadata": {"annotations": {"version": "1.0.0"}}}
    assert relevant_entry(kuberik, tagged) == {"version": {"tag": "1.0.0"}}
    assert relevant_entry(kuberik, {"metadata": {"annotations": {"version": "3.0.0"}}}) is None
    assert relevant_entry(kuberik, {"metadata": {}}) == {"version": {"tag": "2.0.0"}}


# --- scenario 42: approval --------------------------------------------------------------------


def test_42_step_is_approved_at_exactly_ready_at_plus_bake_time() -> None:
    world = World({"rollout.kuberik.io/step-1-bake-time": "30s"})
    world.add_test()
    first = world.gate(at(0))
    assert world.annotations[STARTED] == stamp(0)
    assert world.annotations["internal.rollout.kuberik.io/last-step-index"] == "1"
    assert world.annotations["internal.rollout.kuberik.io/step-1-last-revision"] == REV
    assert READY not in world.annotations
    assert first.requeue_at is None
    passed_test(world, at(5))
    assert world.gate(at(5)).requeue_at == at(35)
    assert world.annotations[READY] == stamp(5)
    early = world.gate(at(34))
    assert (early.approve, early.requeue_at) == ((), at(35))
    assert "duration" not in world.pause
    approved = world.gate(at(35))
    assert approved.approve == (
        {"op": "add", "path": "/spec/strategy/canary/steps/0/pause/duration", "value": 0},
    )
    assert world.pause == {"duration": 0}
    assert approved.annotations == {STARTED: None, READY: None}
    assert approved.requeue_at is None
    assert world.condition("Stalled") is None
    assert world.condition("KuberikBakeHealthy") is not None


def test_42_without_tests_a_step_is_approved_only_with_a_bake_time() -> None:
    world = World()
    for seconds in (0, 60, 86_400):
        plan = world.gate(at(seconds))
        assert (plan.approve, plan.requeue_at) == ((), None)
    assert READY not in world.annotations
    timed = World({"rollout.kuberik.io/step-1-bake-time": "10s"})
    assert timed.gate(at(0)).requeue_at == at(10)
    assert timed.gate(at(10)).approve != ()


def test_a_test_of_another_revision_or_not_yet_run_never_passes() -> None:
    world = World({"rollout.kuberik.io/step-1-bake-time": "1s"})
    world.add_test()
    world.tests["smoke"]["status"] = {"phase": "Succeeded", "observedCanaryRevision": "old"}
    world.gate(at(0))
    assert world.gate(at(60)).approve == ()
    assert READY not in world.annotations


# --- scenario 43: failures, timeout, bake failure, step moved on --------------------------------


def test_43_a_failed_test_stalls_the_rollout_and_blocks_approval() -> None:
    world = World({"rollout.kuberik.io/step-1-bake-time": "30s"})
    world.add_test()
    world.gate(at(0))
    failed_test(world, at(10))
    assert world.test_condition("Failed")["status"] == "True"
    assert world.test_condition("Stalled")["status"] == "True"
    assert world.test_condition("Ready")["status"] == "False"
    assert world.status()["retryCount"] == 1
    plan = world.gate(at(11))
    assert world.condition("Stalled") == {
        "type": "Stalled",
        "status": "True",
        "reason": "RolloutTestFailed",
        "message": "Rollout tests failed for current step (test smoke, step 1)",
        "lastUpdateTime": stamp(11),
        "lastTransitionTime": stamp(11),
    }
    assert (plan.approve, plan.requeue_at) == ((), None)
    again = world.gate(at(3600))
    assert again.conditions is None
    assert again.annotations == {}


def test_43_a_test_still_running_past_the_ready_timeout_exceeds_it() -> None:
    world = World({"rollout.kuberik.io/step-1-ready-timeout": "1m"})
    world.add_test()
    assert world.gate(at(0)).requeue_at == at(60)
    world.run("smoke", at(1))
    world.job_runs("smoke", at(2))
    world.run("smoke", at(2))
    assert world.status()["phase"] == "Running"
    assert world.gate(at(59)).requeue_at == at(60)
    assert world.condition("Stalled") is None
    plan = world.gate(at(60))
    stalled = world.condition("Stalled")
    assert stalled is not None
    assert (stalled["status"], stalled["reason"]) == ("True", "StepReadyTimeoutExceeded")
    assert stalled["message"] == (
        f"Step 1 step-ready-timeout (1m0s) exceeded at {stamp(60)} for canary {REV}."
        " Rollout is paused and requires manual intervention."
    )
    assert (plan.approve, plan.requeue_at) == ((), None)
    cancelled = world.run("smoke", at(61))
    assert cancelled.delete_job is not None
    assert world.status()["phase"] == "Cancelled"
    assert world.test_condition("Ready")["message"] == (
        "Test job was cancelled because rollout is stalled (StepReadyTimeoutExceeded)"
    )


def test_43_a_failed_bake_blocks_approval_and_new_jobs_and_cancels_running_tests() -> None:
    world = World({"rollout.kuberik.io/step-1-bake-time": "30s"})
    world.add_test("smoke")
    world.add_test("late")
    world.link("Failed")
    world.gate(at(0))
    healthy = world.condition("KuberikBakeHealthy")
    assert healthy is not None
    assert (healthy["status"], healthy["reason"]) == ("False", "BakeFailed")
    assert healthy["message"] == (
        f"Kuberik Rollout ns/r has failed bake status in latest deployment for canary {REV}"
        " (version 1.0.0). Rollout is paused and requires manual intervention."
    )
    assert world.condition("Stalled") is None
    waiting = world.run("late", at(1))
    assert (waiting.create_job, waiting.requeue_at) == (None, at(31))
    world.link("InProgress")
    world.gate(at(2))
    world.run("smoke", at(2))
    world.job_runs("smoke", at(3))
    world.run("smoke", at(3))
    world.link("Failed")
    plan = world.gate(at(4))
    assert (plan.approve, world.condition("Stalled")) == ((), None)
    cancelled = world.run("smoke", at(5))
    assert cancelled.delete_job is not None
    assert world.status()["phase"] == "Cancelled"
    assert world.test_condition("Ready") == {
        "type": "Ready",
        "status": "True",
        "reason": "JobCancelled",
        "message": "Test job was cancelled because kuberik rollout bake failed",
        "lastTransitionTime": stamp(5),
        "observedGeneration": 1,
    }
    assert world.gate(at(3600)).approve == ()


def test_43_a_failed_test_stays_failed_when_the_bake_fails_too() -> None:
    world = World()
    world.add_test()
    world.link("InProgress")
    world.gate(at(0))
    failed_test(world, at(10))
    world.gate(at(11))
    world.link("Failed")
    world.gate(at(12))
    kept = world.run("smoke", at(13))
    assert (kept.delete_job, world.status()["phase"]) == (None, "Failed")
    stalled = world.condition("Stalled")
    assert stalled is not None
    assert stalled["reason"] == "RolloutTestFailed"


def test_43_moving_on_cancels_a_running_test_and_keeps_a_succeeded_one() -> None:
    world = World()
    world.add_test("smoke")
    world.add_test("load")
    world.add_test("queued")
    world.gate(at(0))
    passed_test(world, at(1))
    world.run("load", at(1))
    world.job_runs("load", at(2))
    world.run("load", at(2))
    world.run("queued", at(2))
    world.kruise_at(2, "StepUpgrade")
    assert world.run("queued", at(3)).delete_job == "queued-2"
    assert world.status("queued")["phase"] == "Cancelled"
    running = world.run("load", at(3))
    assert running.delete_job == "load-1"
    assert world.status("load")["phase"] == "Cancelled"
    assert world.test_condition("Ready", "load")["message"] == (
        "Test job was cancelled because rollout step moved forward"
    )
    assert world.status("load").get("jobName") is None
    assert world.status("load")["activePods"] == 0
    done = world.run("smoke", at(3))
    assert done.delete_job == "smoke-0"
    assert world.status()["phase"] == "Succeeded"
    assert world.run("smoke", at(4)) == TestPlan(done.test, "1")
    assert "load-1" in world.deleted


def timeout_stall(message: str, seconds: int) -> dict[str, str]:
    """The Kruise Rollout's ``Stalled=True/StepReadyTimeoutExceeded`` condition since T0+seconds."""
    return {
        "type": "Stalled",
        "status": "True",
        "reason": "StepReadyTimeoutExceeded",
        "message": message,
        "lastTransitionTime": stamp(seconds),
    }


# --- scenario 44: retry -----------------------------------------------------------------------


def stalled_by_a_failed_test(world: World) -> None:
    """Step 1 with a failed test at T0+10s, a Stalled Kruise Rollout and a Failed Kuberik entry."""
    world.add_test()
    world.link("InProgress")
    world.gate(at(0))
    failed_test(world, at(10))
    world.gate(at(11))
    world.link("Failed")
    world.gate(at(12))
    stalled = world.condition("Stalled")
    assert stalled is not None
    assert stalled["status"] == "True"


def test_44_retry_in_skip_mode_skips_the_failed_test_and_clears_the_stall() -> None:
    world = World({"rollout.kuberik.io/step-1-bake-time": "30s"})
    stalled_by_a_failed_test(world)
    assert world.kuberik is not None
    world.kuberik["metadata"]["annotations"][RETRY_MODE] = "skip"
    world.link("Deploying", retry=at(100))
    plan = world.gate(at(101))
    assert [r.target.name for r in plan.test_resets] == ["smoke"]
    assert world.deleted == ["smoke-0"]
    assert world.jobs == {}
    status = world.status()
    assert status["phase"] == "Skipped"
    assert "jobName" not in status
    assert world.test_condition("Ready") == {
        "type": "Ready",
        "status": "True",
        "reason": "TestSkipped",
        "message": "Test skipped via retry annotation (mode=skip)",
        "lastTransitionTime": stamp(101),
        "observedGeneration": 1,
    }
    assert world.test_condition("Failed")["status"] == "False"
    assert plan.kuberik_cleanup is not None
    assert plan.kuberik_cleanup.expected == {RETRY_MODE: "skip"}
    assert RETRY_MODE not in world.kuberik["metadata"]["annotations"]
    assert world.annotations[STARTED] == stamp(100)
    assert world.annotations[READY] == stamp(101)
    stalled, healthy = world.condition("Stalled"), world.condition("KuberikBakeHealthy")
    assert stalled is not None
    assert healthy is not None
    assert (stalled["status"], stalled["reason"]) == ("False", "WithinDeadline")
    assert (healthy["status"], healthy["reason"]) == ("True", "BakeHealthy")
    assert plan.requeue_at == at(131)
    assert world.gate(at(131)).approve != ()
    assert world.run("smoke", at(132)).create_job is None


def test_44_retry_without_skip_runs_the_test_again() -> None:
    world = World()
    stalled_by_a_failed_test(world)
    world.link("Deploying", retry=at(100))
    plan = world.gate(at(100))
    assert plan.kuberik_cleanup is None
    assert world.status() == {
        "phase": "WaitingForStep",
        "retryCount": 0,
        "activePods": 0,
        "succeededPods": 0,
        "failedPods": 0,
    }
    assert world.deleted == ["smoke-0"]
    stalled = world.condition("Stalled")
    assert stalled is not None
    assert stalled["status"] == "False"
    assert plan.approve == ()
    again = world.run("smoke", at(101))
    assert again.create_job is not None
    assert world.status()["phase"] == "Pending"
    world.job_runs("smoke", at(102))
    world.job_ends("smoke", "Failed", at(110))
    world.run("smoke", at(110))
    fresh = world.gate(at(111))
    assert fresh.test_resets == ()
    stalled = world.condition("Stalled")
    assert stalled is not None
    assert (stalled["status"], stalled["reason"]) == ("True", "RolloutTestFailed")


def test_44_a_failure_in_the_same_second_as_the_retry_counts_as_before_it() -> None:
    world = World()
    stalled_by_a_failed_test(world)
    world.link("Deploying", retry=at(10.5))
    assert [r.target.name for r in world.gate(at(11)).test_resets] == ["smoke"]


# --- scenario 45: coupling, seen from the step gate ---------------------------------------------


def test_45_a_test_failure_stalls_and_a_bake_failure_only_flips_kuberik_bake_healthy() -> None:
    world = World()
    world.add_test()
    world.link("InProgress")
    world.gate(at(0))
    failed_test(world, at(10))
    world.gate(at(11))
    before = world.condition("Stalled")
    world.link("Failed")
    world.gate(at(12))
    healthy = world.condition("KuberikBakeHealthy")
    assert healthy is not None
    assert (healthy["status"], healthy["reason"]) == ("False", "BakeFailed")
    assert world.condition("Stalled") == before


def test_45_a_bake_failure_never_sets_stalled_even_past_the_ready_timeout() -> None:
    world = World({"rollout.kuberik.io/step-1-ready-timeout": "1m"})
    world.link("Failed")
    world.gate(at(0))
    plan = world.gate(at(3600))
    assert world.condition("Stalled") is None
    assert (plan.approve, plan.requeue_at) == ((), None)


# --- the RolloutTest table, revisions, last step, bad input ---------------------------------------


def test_the_job_is_created_from_the_template_once_the_step_pauses() -> None:
    world = World()
    world.add_test("smoke", step=1)
    world.add_test("later", step=2)
    world.kruise_at(1, "StepUpgrade")
    assert world.run("smoke", at(0)).create_job is None
    assert world.status()["phase"] == "WaitingForStep"
    assert world.run("later", at(0)).create_job is None
    assert world.status("later")["phase"] == "WaitingForStep"
    world.kruise_at(1, "StepPaused")
    plan = world.run("smoke", at(1))
    assert plan.create_job is not None
    name = plan.create_job["metadata"]["name"]
    assert re.fullmatch(r"smoke-[0-9a-f]{10}", name)
    assert plan.create_job == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "labels": {"rollout-test": "smoke", "rollout.kuberik.io/canary-revision": REV},
            "ownerReferences": [
                {
                    "apiVersion": "rollout.kuberik.com/v1alpha1",
                    "kind": "RolloutTest",
                    "name": "smoke",
                    "uid": "uid-smoke",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"backoffLimit": 0, "template": {"spec": {}}},
    }
    assert world.status()["phase"] == "Pending"
    assert world.status()["observedCanaryRevision"] == REV
    world.run("smoke", at(2))
    assert world.status()["jobName"] == "smoke-0"
    assert world.test_condition("Ready")["reason"] == "JobPending"
    world.job_runs("smoke", at(3))
    world.run("smoke", at(3))
    assert (world.status()["phase"], world.status()["activePods"]) == ("Running", 1)


def test_job_names_repeat_for_the_same_run_and_change_with_a_retry_or_revision() -> None:
    world = World()
    world.add_test("smoke", step=1)
    test = world.model("smoke")
    first = job_manifest(test, REV, None)["metadata"]["name"]
    assert job_manifest(test, REV, None)["metadata"]["name"] == first
    retried = job_manifest(test, REV, at(100))["metadata"]["name"]
    other = job_manifest(test, REV2, None)["metadata"]["name"]
    assert len({first, retried, other}) == 3
    world.add_test("x" * 63, step=1)
    assert len(job_manifest(world.model("x" * 63), REV, None)["metadata"]["name"]) == 63


def test_tests_on_the_last_step_never_run() -> None:
    world = World(steps=3)
    world.add_test("final", step=3)
    for state in ("StepUpgrade", "StepReady", "Completed"):
        world.kruise_at(3, state)
        assert world.run("final", at(0)).create_job is None
        assert world.status("final")["phase"] == "WaitingForStep"
    world.kruise["status"]["phase"] = "Healthy"
    world.kruise["status"]["conditions"] = [timeout_stall("old", 0)]
    plan = world.gate(at(5))
    assert (plan.approve, plan.annotations) == ((), {})
    stalled = world.condition("Stalled")
    assert stalled is not None
    assert stalled["status"] == "False"


def test_a_new_canary_revision_clears_the_step_bookkeeping_and_resets_tests() -> None:
    world = World({"rollout.kuberik.io/step-1-bake-time": "1h"})
    world.add_test("smoke")
    world.add_test("load")
    world.gate(at(0))
    passed_test(world, at(1))
    del world.jobs["smoke-0"]  # finished Jobs may be garbage-collected (ttlSecondsAfterFinished)
    world.run("load", at(3))
    world.job_ends("load", "Failed", at(4))
    world.run("load", at(4))
    world.gate(at(5))
    stalled = world.condition("Stalled")
    assert stalled is not None
    assert stalled["reason"] == "RolloutTestFailed"
    world.kruise_at(1, "StepUpgrade", REV2)
    plan = world.gate(at(20))
    assert world.annotations["internal.rollout.kuberik.io/step-1-last-revision"] == REV2
    assert plan.annotations == {
        "internal.rollout.kuberik.io/step-1-last-revision": REV2,
        STARTED: stamp(20),
    }
    stalled = world.condition("Stalled")
    assert stalled is not None
    assert (stalled["status"], stalled["reason"]) == ("False", "WithinDeadline")
    with_job = world.run("load", at(21))
    assert with_job.delete_job == "load-1"
    load = world.status("load")
    assert (load["phase"], load["retryCount"], load["failedPods"]) == ("WaitingForStep", 0, 0)
    assert "observedCanaryRevision" not in load
    assert "jobName" not in load
    without_job = world.run("smoke", at(21))
    assert without_job.delete_job is None
    assert world.status() == {
        "phase": "WaitingForStep",
        "retryCount": 0,
        "activePods": 0,
        "succeededPods": 0,
        "failedPods": 0,
    }
    world.kruise_at(1, "StepPaused", REV2)
    created = world.run("load", at(23)).create_job
    assert created is not None
    assert created["metadata"]["labels"]["rollout.kuberik.io/canary-revision"] == REV2


def test_a_stall_from_before_the_retry_is_waited_out() -> None:
    world = World()
    world.add_test()
    world.link("Deploying", retry=at(20))
    world.kruise["status"]["conditions"] = [timeout_stall("m", 10)]
    plan = world.run("smoke", at(21))
    assert (plan.status, plan.create_job, plan.requeue_at) == (None, None, at(23))


def test_a_running_test_whose_job_is_gone_under_a_stall_reads_cancelled_by_it() -> None:
    # the step gate deleted the Job before its Cancelled status landed (a 409 re-plan)
    world = World()
    world.add_test()
    world.tests["smoke"]["status"] = {"phase": "Running", "jobName": "smoke-1"}
    world.kruise["status"]["conditions"] = [timeout_stall("m", 10)]
    plan = world.run("smoke", at(21))
    assert plan.create_job is None
    assert world.status()["phase"] == "Cancelled"
    assert world.test_condition("Ready")["message"] == (
        "Test job was cancelled because rollout is stalled (StepReadyTimeoutExceeded)"
    )


def test_a_fresh_stall_cancels_a_pending_test_without_a_job() -> None:
    world = World()
    world.add_test()
    world.tests["smoke"]["status"] = {"phase": "Pending"}
    world.kruise["status"]["conditions"] = [timeout_stall("m", 10)]
    plan = world.run("smoke", at(21))
    assert plan.create_job is None
    assert world.status()["phase"] == "Cancelled"
    assert world.status()["observedCanaryRevision"] == REV
    assert world.test_condition("Ready")["message"] == (
        "Test job creation skipped because rollout is stalled"
    )


def test_an_invalid_step_duration_posts_a_warning_and_stops_the_pass() -> None:
    world = World({"rollout.kuberik.io/step-1-bake-time": "soon"})
    world.add_test()
    world.tests["smoke"]["status"] = {"phase": "Succeeded", "observedCanaryRevision": REV}
    plan = world.gate(at(0))
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "InvalidStepAnnotation")]
    assert "rollout.kuberik.io/step-1-bake-time" in plan.events[0].message
    assert (plan.approve, plan.conditions, plan.requeue_at) == ((), None, None)


def test_a_stall_naming_another_canary_is_cleared() -> None:
    world = World()
    other = "Step 1 step-ready-timeout (1m0s) exceeded at x for canary old. Rollout…"
    world.kruise["status"]["conditions"] = [timeout_stall(other, 0)]
    world.gate(at(1))
    stalled = world.condition("Stalled")
    assert stalled is not None
    assert stalled["status"] == "False"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=60), "1m0s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=1), "1h0m0s"),
        (timedelta(seconds=1.5), "1.5s"),
        (timedelta(milliseconds=100), "100ms"),
        (timedelta(microseconds=1500), "1.5ms"),
        (timedelta(minutes=-5), "-5m0s"),
        (timedelta(hours=100 * 365 * 24), "876000h0m0s"),
    ],
)
def test_durations_are_written_as_go_prints_them(value: timedelta, text: str) -> None:
    assert go_duration(value) == text


def test_failure_target_fails_the_test_and_a_deleting_job_leaves_the_status_alone() -> None:
    world = World()
    world.add_test()
    world.run("smoke", at(0))
    job = world.job_of("smoke")
    job["status"] = {
        "startTime": stamp(1),
        "failed": 2,
        "conditions": [{"type": "FailureTarget", "status": "True"}],
    }
    world.run("smoke", at(2))
    status = world.status()
    assert (status["phase"], status["retryCount"], status["failedPods"]) == ("Failed", 2, 2)
    assert world.test_condition("Failed") == {
        "type": "Failed",
        "status": "True",
        "reason": "JobFailed",
        "message": "Test job failed",
        "lastTransitionTime": stamp(2),
        "observedGeneration": 1,
    }
    job["metadata"]["deletionTimestamp"] = stamp(3)
    world.tests["smoke"]["status"] = {"phase": "Skipped", "observedCanaryRevision": REV}
    plan = world.run("smoke", at(4))
    assert (plan.status, plan.delete_job, plan.create_job) == (None, None, None)
