"""RolloutTests as pure plans: the §8 RolloutTest table, and the test statuses it writes.

Callers: the controller's RolloutTest reconcile (``rollout_test``, ``current_job``)
and ``planning.kruise`` (the step gate's retry resets and the Kruise readers
below). Pure: observed objects and ``now`` in, plain data out. It must not do
I/O, read a clock, or import kopf. Times it writes are whole seconds
(metav1.Time); "the same second counts" comparisons truncate both sides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from controller.api.actions import ObjectKey
from controller.api.rollouttests import API_VERSION, TERMINAL_PHASES, RolloutTest
from policy_engine.model.times import TimeSyntaxError, format_timestamp, to_utc

ROLLOUT_TESTS = "rollouttests.rollout.kuberik.com"
TEST_LABEL = "rollout-test"
REVISION_LABEL = "rollout.kuberik.io/canary-revision"
PAUSED = ("StepPaused", "Paused")
CANCEL_MOVED = "Test job was cancelled because rollout step moved forward"
CANCEL_BAKE = "Test job was cancelled because kuberik rollout bake failed"
CANCEL_STALLED = "Test job was cancelled because rollout is stalled ({})"
CREATION_SKIPPED = "Test job creation skipped because rollout is stalled"
SKIPPED_MESSAGE = "Test skipped via retry annotation (mode=skip)"
CLEARED = ("observedCanaryRevision", "conditions")
BAKE_WAIT = timedelta(seconds=30)
STALE_STALL_WAIT = timedelta(seconds=2)

Obj = Mapping[str, Any]
Value = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class TestPlan:
    """What one pass changes for a RolloutTest; apply in field order.

    - ``create_job``: a batch/v1 Job manifest (deterministic name, see
      ``job_manifest``) to create; AlreadyExists means done. The next pass
      copies its name into ``jobName``.
    - ``status``: the complete new status, replacing the old one under
      ``resource_version``; None when unchanged.
    - ``delete_job``: a Job name to delete with propagation Background, after
      the status write (a crash in between is repaired by the next pass).
    - ``requeue_at``: when to look again without an event (the 30 s and 2 s waits).
    """

    __test__ = False
    test: ObjectKey
    resource_version: str
    create_job: Mapping[str, Any] | None = None
    status: Mapping[str, Any] | None = None
    delete_job: str | None = None
    requeue_at: datetime | None = None
    notes: tuple[str, ...] = ()


def rollout_test(
    test: RolloutTest,
    kruise_rollout: Obj | None,
    job: Obj | None,
    cutoff: datetime | None,
    now: datetime,
) -> TestPlan:
    """One pass of a RolloutTest: the first row of the §8 table that applies.

    ``job`` is the test's Job (see ``current_job``); ``cutoff`` is the linked
    Kuberik Rollout's retry cutoff (``planning.kruise.retry_cutoff``), if any.
    """
    key, rv = key_of(test), test.metadata.resource_version or ""
    if kruise_rollout is None:
        return TestPlan(key, rv, notes=(f"Kruise Rollout {test.spec.rollout_name} not found",))
    current = status_of(test)
    if job is not None:
        status, delete = _with_job(test, current, kruise_rollout, job, cutoff, now)
        return TestPlan(key, rv, status=None if status == current else status, delete_job=delete)
    status, create, requeue = _without_job(test, current, kruise_rollout, cutoff, now)
    changed = None if status == current else status
    return TestPlan(key, rv, create_job=create, status=changed, requeue_at=requeue)


def current_job(test_name: str, jobs: Sequence[Obj]) -> Obj | None:
    """The test's Job: labelled ``rollout-test: <test>``; live before deleting, then newest."""

    def order(job: Obj) -> tuple[bool, str, str]:
        meta = meta_of(job)
        live = meta.get("deletionTimestamp") is None
        return live, str(meta.get("creationTimestamp") or ""), str(meta.get("name", ""))

    mine = [j for j in jobs if (meta_of(j).get("labels") or {}).get(TEST_LABEL) == test_name]
    return max(mine, key=order) if mine else None


def _with_job(
    test: RolloutTest,
    current: dict[str, Any],
    kruise: Obj,
    job: Obj,
    cutoff: datetime | None,
    now: datetime,
) -> tuple[dict[str, Any], str | None]:
    """The rows with a Job: (new status, Job to delete)."""
    name, revision = str(meta_of(job).get("name", "")), revision_of(kruise)
    if meta_of(job).get("deletionTimestamp"):
        return current, None
    if revision and (meta_of(job).get("labels") or {}).get(REVISION_LABEL) != revision:
        return waiting_status(current, "observedCanaryRevision"), name
    stall = stalled(conditions_of(kruise))
    bake_failed = _bake_failed(kruise)
    test_failure = stall is not None and stall.get("reason") == "RolloutTestFailed"
    cancel = not test_failure and (stall is not None or bake_failed)
    if cancel and stall is not None and not bake_failed and _stall_before(stall, cutoff):
        cancel = False
    if step_of(kruise) == test.spec.step_index and not cancel:
        return _from_job(current, test, job, now), None
    message = CANCEL_MOVED
    if cancel:
        reason = str((stall or {}).get("reason", ""))
        message = CANCEL_BAKE if bake_failed else CANCEL_STALLED.format(reason)
    status = _from_job(current, test, job, now) if _finished(job) else dict(current)
    if status.get("phase") in ("Running", "Pending"):
        return _cancelled(waiting_status(status), test, message, now), name
    return _step_advanced(status, test, now), name


def _without_job(
    test: RolloutTest, current: dict[str, Any], kruise: Obj, cutoff: datetime | None, now: datetime
) -> tuple[dict[str, Any], dict[str, Any] | None, datetime | None]:
    """The rows without a Job: (new status, Job to create, requeue)."""
    step, index, revision = step_of(kruise), test.spec.step_index, revision_of(kruise)
    status = dict(current)
    if step != index and status.get("phase") in ("Succeeded", "Failed"):
        status = _step_advanced(status, test, now)
    observed = status.get("observedCanaryRevision")
    if observed and revision and observed != revision:
        return waiting_status(status, *CLEARED), None, None
    if step < index:
        status.pop("jobName", None)
        return status | {"phase": "WaitingForStep"}, None, None
    if step > index:
        return status, None, None
    stall = stalled(conditions_of(kruise))
    if stall is None and _bake_failed(kruise):
        return status, None, now + BAKE_WAIT
    if stall is not None:
        if _stall_before(stall, cutoff):
            return status, None, now + STALE_STALL_WAIT
        if status.get("phase") in ("Pending", "Running"):
            # a Job that ran (``jobName``) and is gone was cancelled by the stall, whichever
            # of its deletion and the status write landed first
            ran = CANCEL_STALLED.format(stall.get("reason", "")) if status.get("jobName") else None
            status = _cancelled(status, test, ran or CREATION_SKIPPED, now)
            if revision:
                status["observedCanaryRevision"] = revision
        return status, None, None
    if status.get("phase") in TERMINAL_PHASES:
        return status, None, None
    if state_of(kruise) not in PAUSED:
        return waiting_status(status), None, None
    pending = waiting_status(status, "observedCanaryRevision") | {"phase": "Pending"}
    if revision:
        pending["observedCanaryRevision"] = revision
    return pending, job_manifest(test, revision, cutoff), None


def job_manifest(test: RolloutTest, revision: str, cutoff: datetime | None) -> dict[str, Any]:
    """The Job: named ``<test>-<hash>``, the two labels, controlled by the RolloutTest.

    [T] Kuberik uses ``generateName: <test>-``. The name here is the same shape
    but deterministic in (test uid, canary revision, retry cutoff): a pass that
    repeats a create (a crash, or a store that lags the create) gets
    AlreadyExists instead of a second Job, while a retry or a new revision,
    which must run the test again, gets a new name.
    """
    name = test.metadata.name or ""
    identity = f"{test.metadata.uid or ''}|{revision}|{stamp(cutoff) if cutoff else ''}"
    suffix = hashlib.sha256(identity.encode()).hexdigest()[:10]
    labels = {TEST_LABEL: name} | ({REVISION_LABEL: revision} if revision else {})
    owner = {
        "apiVersion": API_VERSION,
        "kind": "RolloutTest",
        "name": name,
        "uid": test.metadata.uid or "",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    metadata = {"name": f"{name[:52]}-{suffix}", "labels": labels, "ownerReferences": [owner]}
    if test.metadata.namespace:
        metadata["namespace"] = test.metadata.namespace
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": _copy(test.spec.job_template),
    }


def _from_job(current: Obj, test: RolloutTest, job: Obj, now: datetime) -> dict[str, Any]:
    """Phase, counters (``retryCount`` = Job ``failed``) and conditions from the Job."""
    counters = job.get("status") or {}
    failed_condition: Obj = next(
        (c for c in counters.get("conditions") or [] if _true(c, "Failed")), {}
    )
    ready: Value
    if _job_condition(job, "Failed", "FailureTarget"):
        reason = failed_condition.get("reason") or "JobFailed"
        ready = ("False", reason, failed_condition.get("message") or "Test job failed")
        phase = "Failed"
    elif _job_condition(job, "Complete"):
        phase, ready = "Succeeded", ("True", "JobSucceeded", "Test job completed successfully")
    elif counters.get("startTime"):
        phase, ready = "Running", ("False", "JobInProgress", "Test job is running")
    else:
        phase, ready = "Pending", ("False", "JobPending", "Test job is pending")
    status = dict(current)
    status.update(
        phase=phase,
        jobName=meta_of(job).get("name"),
        retryCount=counters.get("failed", 0),
        activePods=counters.get("active", 0),
        succeededPods=counters.get("succeeded", 0),
        failedPods=counters.get("failed", 0),
    )
    flag: Value = ("True" if phase == "Failed" else "False", ready[1], ready[2])
    status["conditions"] = put_conditions(status, test, now, Ready=ready, Failed=flag, Stalled=flag)
    revision = (meta_of(job).get("labels") or {}).get(REVISION_LABEL)
    if revision is not None:
        status["observedCanaryRevision"] = revision
    return status


def _cancelled(current: Obj, test: RolloutTest, message: str, now: datetime) -> dict[str, Any]:
    status = {k: v for k, v in current.items() if k != "jobName"} | {"phase": "Cancelled"}
    off: Value = ("False", "JobCancelled", message)
    status["conditions"] = put_conditions(
        status, test, now, Ready=("True", "JobCancelled", message), Failed=off, Stalled=off
    )
    return status


def skipped_status(current: Obj, test: RolloutTest, now: datetime) -> dict[str, Any]:
    """A retry reset in mode ``skip``: ``Skipped``, reason ``TestSkipped``; counts as passed."""
    status = {k: v for k, v in current.items() if k != "jobName"} | {"phase": "Skipped"}
    off: Value = ("False", "TestSkipped", SKIPPED_MESSAGE)
    status["conditions"] = put_conditions(
        status, test, now, Ready=("True", "TestSkipped", SKIPPED_MESSAGE), Failed=off, Stalled=off
    )
    return status


def _step_advanced(current: Obj, test: RolloutTest, now: datetime) -> dict[str, Any]:
    """A finished test whose step moved on: result kept; ``Stalled`` cleared."""
    status = dict(current)
    if any(_true(c, "Stalled") for c in status.get("conditions") or []):
        status["conditions"] = put_conditions(
            status,
            test,
            now,
            Ready=("True", "StepAdvanced", "Step moved forward, test result is final"),
            Stalled=(
                "False",
                "StepAdvanced",
                "Step moved forward, test is no longer blocking progress",
            ),
        )
    return status


def waiting_status(current: Obj, *drop: str) -> dict[str, Any]:
    """``WaitingForStep`` with counters reset; ``jobName`` and the ``drop`` keys removed."""
    status = {k: v for k, v in current.items() if k not in ("jobName", *drop)}
    status.update(phase="WaitingForStep", retryCount=0, activePods=0, succeededPods=0, failedPods=0)
    return status


def put_conditions(
    status: Obj, test: RolloutTest, now: datetime, **values: Value
) -> list[dict[str, Any]]:
    """metav1.Condition semantics: ``lastTransitionTime`` moves only when the status does."""
    result = [dict(c) for c in status.get("conditions") or []]
    for kind, (value, reason, message) in values.items():
        old = next((c for c in result if c.get("type") == kind), None)
        new: dict[str, Any] = {"type": kind, "status": value, "reason": reason}
        new["message"] = message
        new["lastTransitionTime"] = stamp(now)
        if old is not None and old.get("status") == value and old.get("lastTransitionTime"):
            new["lastTransitionTime"] = old["lastTransitionTime"]
        if test.metadata.generation is not None:
            new["observedGeneration"] = test.metadata.generation
        if old is None:
            result.append(new)
        else:
            result[result.index(old)] = new
    return result


# --- readers shared with the step gate ------------------------------------------------------


def stalled(conditions: Sequence[Obj]) -> Obj | None:
    """The ``Stalled=True`` condition, if any."""
    return next((c for c in conditions if _true(c, "Stalled")), None)


def _stall_before(stall: Obj, cutoff: datetime | None) -> bool:
    """The stall is at or before the retry cutoff (the same second counts)."""
    when = time_of(stall.get("lastTransitionTime"))
    return cutoff is not None and when is not None and second(when) <= second(cutoff)


def _bake_failed(kruise: Obj) -> bool:
    return any(
        c.get("type") == "KuberikBakeHealthy" and c.get("status") == "False"
        for c in conditions_of(kruise)
    )


def _true(condition: Obj, kind: str) -> bool:
    return condition.get("type") == kind and condition.get("status") == "True"


def _job_condition(job: Obj, *kinds: str) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(_true(c, kind) for c in conditions for kind in kinds)


def _finished(job: Obj) -> bool:
    return _job_condition(job, "Failed", "FailureTarget", "Complete")


def _canary_or_status(kruise: Obj) -> Obj:
    status: Obj = kruise.get("status") or {}
    canary: Obj | None = status.get("canaryStatus")
    return canary if canary is not None else status


def step_of(kruise: Obj) -> int:
    """``canaryStatus.currentStepIndex`` (else ``status.currentStepIndex``), 0 if unset."""
    return int(_canary_or_status(kruise).get("currentStepIndex") or 0)


def state_of(kruise: Obj) -> str:
    return str(_canary_or_status(kruise).get("currentStepState") or "")


def revision_of(kruise: Obj) -> str:
    canary = (kruise.get("status") or {}).get("canaryStatus") or {}
    return str(canary.get("canaryRevision") or "")


def conditions_of(kruise: Obj) -> list[Obj]:
    return list((kruise.get("status") or {}).get("conditions") or [])


def status_of(test: RolloutTest) -> dict[str, Any]:
    return test.status.to_k8s() if test.status is not None else {}


def key_of(test: RolloutTest) -> ObjectKey:
    return ObjectKey(ROLLOUT_TESTS, test.metadata.namespace, test.metadata.name or "")


def meta_of(obj: Obj) -> Obj:
    meta: Obj = obj.get("metadata") or {}
    return meta


def time_of(value: Any) -> datetime | None:
    """An aware UTC instant from a datetime or RFC 3339 text; None if unset or malformed."""
    try:
        if isinstance(value, datetime):
            return to_utc(value)
        return to_utc(str(value)) if value else None
    except TimeSyntaxError:
        return None


def second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def stamp(value: datetime) -> str:
    """RFC 3339 to the second, as metav1.Time and Go's ``time.RFC3339`` write it."""
    return format_timestamp(second(value))


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
