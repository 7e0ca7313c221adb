"""An in-memory OpenKruise world for the pure step gate and RolloutTest planners.

It applies a StepGatePlan or TestPlan the way the controller's applier does
(annotation merge patch, status conditions, JSON patch of the steps, test
status writes, Job create and delete), so tests can run §8 pass by pass. The
tests play OpenKruise, the Job controller and the Kuberik side by editing the
objects between passes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from controller.api.rollouttests import RolloutTest
from controller.planning.kruise import (
    StepGatePlan,
    TestPlan,
    current_job,
    retry_cutoff,
    rollout_test,
    step_gate,
)
from policy_engine.model.times import format_timestamp, parse_timestamp

T0 = parse_timestamp("2026-03-02T10:00:00Z")
REV, REV2 = "rev-1", "rev-2"
STARTED = "internal.rollout.kuberik.io/step-1-started-at"
READY = "internal.rollout.kuberik.io/step-1-ready-at"
RETRY_MODE = "rollouttest.kuberik.com/retry-mode"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def stamp(seconds: float) -> str:
    return format_timestamp(at(seconds))


class World:
    """The Kruise Rollout, the linked Kuberik Rollout, RolloutTests and Jobs of namespace ``ns``."""

    def __init__(self, annotations: Mapping[str, str] | None = None, steps: int = 3) -> None:
        self.kruise: dict[str, Any] = {
            "apiVersion": "rollouts.kruise.io/v1beta1",
            "kind": "Rollout",
            "metadata": {
                "name": "app",
                "namespace": "ns",
                "resourceVersion": "1",
                "annotations": dict(annotations or {}),
            },
            "spec": {"strategy": {"canary": {"steps": [{"pause": {}} for _ in range(steps)]}}},
            "status": {
                "phase": "Progressing",
                "conditions": [],
                "canaryStatus": {
                    "currentStepIndex": 1,
                    "currentStepState": "StepPaused",
                    "canaryRevision": REV,
                },
            },
        }
        self.kuberik: dict[str, Any] | None = None
        self.tests: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.created = 0

    # --- playing the other controllers ---

    def kruise_at(self, step: int, state: str = "StepPaused", revision: str = REV) -> None:
        self.kruise["status"]["canaryStatus"].update(
            currentStepIndex=step, currentStepState=state, canaryRevision=revision
        )

    def link(self, bake_status: str = "InProgress", retry: datetime | None = None) -> None:
        entry = {
            "id": 1,
            "version": {"tag": "1.0.0"},
            "bakeStatus": bake_status,
            "timestamp": stamp(-600),
        }
        if retry is not None:
            entry["lastRetryTimestamp"] = format_timestamp(retry)
        annotations = (self.kuberik or {}).get("metadata", {}).get("annotations", {})
        self.kuberik = {
            "metadata": {"name": "r", "namespace": "ns", "annotations": annotations},
            "status": {"history": [entry]},
        }

    def add_test(self, name: str = "smoke", step: int = 1) -> None:
        self.tests[name] = {
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": f"uid-{name}",
                "generation": 1,
                "resourceVersion": "1",
            },
            "spec": {
                "rolloutName": "app",
                "stepIndex": step,
                "jobTemplate": {"backoffLimit": 0, "template": {"spec": {}}},
            },
        }

    def job_of(self, test: str) -> dict[str, Any]:
        job = current_job(test, list(self.jobs.values()))
        assert job is not None, f"no Job for {test}"
        return self.jobs[job["metadata"]["name"]]

    def job_runs(self, test: str, now: datetime) -> None:
        self.job_of(test)["status"] = {"startTime": format_timestamp(now), "active": 1}

    def job_ends(self, test: str, kind: str, now: datetime) -> None:
        status = self.job_of(test)["status"]
        status.update(active=0, **{"failed" if kind == "Failed" else "succeeded": 1})
        status["conditions"] = [
            {
                "type": kind,
                "status": "True",
                "reason": "BackoffLimitExceeded" if kind == "Failed" else "",
                "lastTransitionTime": format_timestamp(now),
            }
        ]

    # --- the two planners and the applier ---

    def model(self, name: str) -> RolloutTest:
        return RolloutTest.model_validate(self.tests[name])

    def gate(self, now: datetime) -> StepGatePlan:
        tests = [self.model(n) for n in self.tests]
        plan = step_gate(copy.deepcopy(self.kruise), copy.deepcopy(self.kuberik), tests, now)
        for reset in plan.test_resets:
            for name in [
                n
                for n, j in self.jobs.items()
                if j["metadata"]["labels"]["rollout-test"] == reset.job_selector["rollout-test"]
            ]:
                self.deleted.append(name)
                del self.jobs[name]
            self.tests[reset.target.name]["status"] = dict(reset.status)
        if plan.kuberik_cleanup is not None and self.kuberik is not None:
            for key in plan.kuberik_cleanup.expected:
                self.kuberik["metadata"]["annotations"].pop(key, None)
        annotations = self.kruise["metadata"]["annotations"]
        for key, value in plan.annotations.items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
        if plan.conditions is not None:
            self.kruise["status"]["conditions"] = [dict(c) for c in plan.conditions]
        for op in plan.approve:
            assert op["op"] == "add"
            *parents, last = op["path"].strip("/").split("/")
            target: Any = self.kruise
            for part in parents:
                target = target[int(part)] if isinstance(target, list) else target[part]
            target[last] = op["value"]
        return plan

    def run(self, name: str, now: datetime) -> TestPlan:
        job = current_job(name, list(self.jobs.values()))
        cutoff = retry_cutoff(self.kuberik)
        plan = rollout_test(self.model(name), copy.deepcopy(self.kruise), job, cutoff, now)
        if plan.create_job is not None:
            created = copy.deepcopy(dict(plan.create_job))
            created["metadata"]["name"] = f"{name}-{self.created}"
            self.created += 1
            created["metadata"]["creationTimestamp"] = format_timestamp(now)
            created["status"] = {}
            self.jobs[created["metadata"]["name"]] = created
        if plan.status is not None:
            self.tests[name]["status"] = dict(plan.status)
        if plan.delete_job is not None:
            self.deleted.append(plan.delete_job)
            del self.jobs[plan.delete_job]
        return plan

    # --- reading ---

    def status(self, test: str = "smoke") -> dict[str, Any]:
        return dict(self.tests[test].get("status") or {})

    def condition(self, kind: str) -> dict[str, Any] | None:
        conditions = self.kruise["status"]["conditions"]
        return next((c for c in conditions if c["type"] == kind), None)

    def test_condition(self, kind: str, test: str = "smoke") -> dict[str, Any]:
        return next(c for c in self.status(test)["conditions"] if c["type"] == kind)

    @property
    def pause(self) -> dict[str, Any]:
        pause: dict[str, Any] = self.kruise["spec"]["strategy"]["canary"]["steps"][0]["pause"]
        return pause

    @property
    def annotations(self) -> dict[str, str]:
        annotations: dict[str, str] = self.kruise["metadata"]["annotations"]
        return annotations


def passed_test(world: World, now: datetime) -> None:
    """The step-1 test runs and succeeds for the current revision."""
    world.run("smoke", now)
    world.job_runs("smoke", now)
    world.job_ends("smoke", "Complete", now)
    world.run("smoke", now)
    assert world.status()["phase"] == "Succeeded"


def failed_test(world: World, now: datetime) -> None:
    world.run("smoke", now)
    world.job_runs("smoke", now)
    world.job_ends("smoke", "Failed", now)
    world.run("smoke", now)
    assert world.status()["phase"] == "Failed"
