"""One pass over an OpenKruise Rollout (the step gate) or a RolloutTest (its Job) (§8).

Callers: ``reconciling.reconcile`` for ``rollouts.rollouts.kruise.io`` and
``rollouttests.rollout.kuberik.com`` keys. Reads the stores only, lets
``planning.kruise`` decide, turns the plan into actions for ``applying``, and
requeues at the exact instant the plan names. Decides nothing itself; never
reads the wall clock.

Writes to the Kruise Rollout: one ``resourceVersion``-guarded JSON patch of
the object (the whole annotation map, plus the approval's
``steps[N-1].pause.duration=0``), else one guarded JSON patch of
``status.conditions``. Both are computed from one observed version, so when
the first is written the second waits for the next pass (woken by the write's
own watch event), which re-plans from the new version.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from controller.api.actions import (
    KUSTOMIZATIONS,
    OCIREPOSITORIES,
    ROLLOUTS,
    Action,
    CreateObject,
    DeleteCollection,
    DeleteObject,
    JsonPatch,
    ObjectKey,
    Plan,
    WriteStatus,
)
from controller.api.rollouttests import RolloutTest
from controller.applying import ApplyConflict
from controller.planning.kruise import (
    KRUISE_ROLLOUTS,
    StepGatePlan,
    current_job,
    linked_rollout,
    retry_cutoff,
    rollout_test,
    step_gate,
)
from controller.planning.kruise_rollouttests import ROLLOUT_TESTS
from controller.reconciling.runtime import Runtime
from evaluators.base import Object, ObjectReader

LOG = logging.getLogger("tidegate.kruise")
JOBS = "jobs.batch"
KRUISE_KINDS = (KRUISE_ROLLOUTS, ROLLOUT_TESTS)
MIN_DELAY = timedelta(seconds=1)


async def reconcile_kruise(key: ObjectKey, rt: Runtime) -> datetime | None:
    """The step gate for a Kruise Rollout key, the Job lifecycle for a RolloutTest key."""
    if key.kind == KRUISE_ROLLOUTS:
        return await _step_gate(key, rt)
    return await _rollout_test(key, rt)


def linked_kuberik(kruise: Object, reader: ObjectReader) -> Object | None:
    """The Kuberik Rollout linked to ``kruise`` (§8 linking), from the stores; None if none."""
    found = linked_rollout(
        kruise,
        reader.list(KUSTOMIZATIONS),
        reader.list(OCIREPOSITORIES),
        lambda namespace, name: reader.get(ROLLOUTS, namespace, name) is not None,
    )
    return None if found is None else reader.get(ROLLOUTS, *found)


def rollout_tests(reader: ObjectReader, namespace: str | None) -> list[RolloutTest]:
    """The namespace's RolloutTests as models; an object that does not fit is logged, skipped."""
    tests = []
    for body in reader.list(ROLLOUT_TESTS, namespace):
        try:
            tests.append(RolloutTest.model_validate(body))
        except ValidationError as exc:
            name = (body.get("metadata") or {}).get("name")
            LOG.warning("RolloutTest %s/%s ignored: %s", namespace, name, exc.errors()[:1])
    return tests


async def _step_gate(key: ObjectKey, rt: Runtime) -> datetime | None:
    kruise = rt.reader.get(KRUISE_ROLLOUTS, key.namespace, key.name)
    if kruise is None:
        return None
    now = rt.clock.now()
    plan = step_gate(
        kruise, linked_kuberik(kruise, rt.reader), rollout_tests(rt.reader, key.namespace), now
    )
    actions, deferred = step_gate_actions(plan, kruise)
    outcome = await rt.writer.apply(Plan(actions))
    LOG.info(
        "step gate %s: actions=%s requeue_at=%s",
        key, [a.key for a in actions], plan.requeue_at,
    )  # fmt: skip
    if isinstance(outcome.error, ApplyConflict):
        return now
    if outcome.error is not None:
        raise outcome.error
    return now if deferred else _requeue_at(plan.requeue_at, now)


def step_gate_actions(plan: StepGatePlan, kruise: Object) -> tuple[tuple[Action, ...], bool]:
    """The plan as actions in its order; True when the conditions wait for the next pass."""
    actions: list[Action] = []
    for reset in plan.test_resets:
        namespace = reset.target.namespace or ""
        actions.append(DeleteCollection(JOBS, namespace, reset.job_selector))
        actions.append(WriteStatus(reset.target, reset.resource_version, reset.status))
    if plan.kuberik_cleanup is not None:
        actions.append(plan.kuberik_cleanup)
    ops: list[Mapping[str, Any]] = []
    if plan.annotations:
        ops.append(
            {"op": "add", "path": "/metadata/annotations", "value": _annotated(kruise, plan)}
        )
    ops += plan.approve
    if ops:
        actions.append(JsonPatch(plan.kruise, tuple(ops), plan.resource_version))
    deferred = bool(ops) and plan.conditions is not None
    if plan.conditions is not None and not ops:
        conditions = {"op": "add", "path": "/status/conditions", "value": list(plan.conditions)}
        actions.append(JsonPatch(plan.kruise, (conditions,), plan.resource_version, "status"))
    actions += plan.events
    return tuple(actions), deferred


def _annotated(kruise: Object, plan: StepGatePlan) -> dict[str, str]:
    annotations = dict((kruise.get("metadata") or {}).get("annotations") or {})
    for name, value in plan.annotations.items():
        if value is None:
            annotations.pop(name, None)
        else:
            annotations[name] = value
    return annotations


async def _rollout_test(key: ObjectKey, rt: Runtime) -> datetime | None:
    body = rt.reader.get(ROLLOUT_TESTS, key.namespace, key.name)
    if body is None:
        return None
    try:
        test = RolloutTest.model_validate(body)
    except ValidationError as exc:
        LOG.warning("RolloutTest %s ignored: %s", key, exc.errors()[:1])
        return None
    now = rt.clock.now()
    kruise = rt.reader.get(KRUISE_ROLLOUTS, key.namespace, test.spec.rollout_name)
    kuberik = linked_kuberik(kruise, rt.reader) if kruise is not None else None
    job = current_job(key.name, rt.reader.list(JOBS, key.namespace))
    plan = rollout_test(test, kruise, job, retry_cutoff(kuberik), now)
    actions: list[Action] = []
    if plan.create_job is not None:
        actions.append(CreateObject(JOBS, key.namespace, plan.create_job))
    if plan.status is not None:
        actions.append(WriteStatus(key, plan.resource_version, plan.status))
    if plan.delete_job is not None:
        actions.append(DeleteObject(ObjectKey(JOBS, key.namespace, plan.delete_job)))
    outcome = await rt.writer.apply(Plan(tuple(actions)))
    LOG.info(
        "rollout test %s: actions=%s requeue_at=%s notes=%s",
        key, [a.key for a in actions], plan.requeue_at, plan.notes,
    )  # fmt: skip
    if isinstance(outcome.error, ApplyConflict):
        return now
    if outcome.error is not None:
        raise outcome.error
    return _requeue_at(plan.requeue_at, now)


def _requeue_at(at: datetime | None, now: datetime) -> datetime | None:
    if at is None:
        return None
    return max(at, now + MIN_DELAY) if at <= now else at
