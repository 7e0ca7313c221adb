"""The OpenKruise step gate as a pure plan (§8), and the one import for all Kruise planning.

Callers: the controller's OpenKruise reconciles. They find the linked Kuberik
Rollout (``linked_rollout``), plan the Kruise Rollout with ``step_gate`` and each
RolloutTest with ``rollout_test`` (both re-exported here from
``kruise_linking`` and ``kruise_rollouttests``), then apply the plans. Pure:
observed objects and ``now`` in, plain data out. It must not do I/O, read a
clock, or import kopf. Times it writes are whole seconds, as Kuberik writes them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from controller.api.actions import ROLLOUTS, ObjectKey, PostEvent, RemoveAnnotations
from controller.api.rollouttests import RolloutTest
from controller.planning.intents import RETRY
from controller.planning.kruise_linking import (
    annotations_of,
    go_duration,
    linked_rollout,
    relevant_entry,
    retry_cutoff,
)
from controller.planning.kruise_rollouttests import (
    CLEARED,
    PAUSED,
    TEST_LABEL,
    TestPlan,
    current_job,
    key_of,
    meta_of,
    rollout_test,
    second,
    skipped_status,
    stalled,
    stamp,
    status_of,
    time_of,
    waiting_status,
)
from policy_engine.model.times import TimeSyntaxError, parse_duration

__all__ = [
    "StepGatePlan",
    "TestPlan",
    "TestReset",
    "current_job",
    "linked_rollout",
    "relevant_entry",
    "retry_cutoff",
    "rollout_test",
    "step_gate",
]

KRUISE_ROLLOUTS = "rollouts.rollouts.kruise.io"
STEP_BAKE_TIME = "rollout.kuberik.io/step-{}-bake-time"
STEP_READY_TIMEOUT = "rollout.kuberik.io/step-{}-ready-timeout"
STARTED_AT = "internal.rollout.kuberik.io/step-{}-started-at"
READY_AT = "internal.rollout.kuberik.io/step-{}-ready-at"
LAST_REVISION = "internal.rollout.kuberik.io/step-{}-last-revision"
LAST_STEP_INDEX = "internal.rollout.kuberik.io/last-step-index"
STEP_KEY = re.compile(
    r"^internal\.rollout\.kuberik\.io/step-(\d+)-(started-at|ready-at|last-revision)$"
)
RETRY_MODE = "rollouttest.kuberik.com/retry-mode"
DEFAULT_READY_TIMEOUT = timedelta(hours=100 * 365 * 24)
BAKE_HEALTHY = ("True", "BakeHealthy", "Kuberik Rollout bake is healthy")
WITHIN_DEADLINE = ("False", "WithinDeadline", "Step is within step-ready-timeout deadline")

Obj = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TestReset:
    """A step-N RolloutTest reset by a retry (§8 step 3).

    Apply in this order: delete every Job in the test's namespace labelled
    ``job_selector`` (propagation Background), then replace the test's status
    with ``status`` under ``resource_version``. Deleting first keeps the test
    reconcile from copying the old Job's result over the reset.
    """

    __test__ = False
    target: ObjectKey
    resource_version: str
    status: Mapping[str, Any]
    job_selector: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class StepGatePlan:
    """What one step-gate pass changes; apply in field order, stopping at the first failure.

    - ``test_resets``, then ``kuberik_cleanup`` (removes ``retry-mode`` from the
      Kuberik Rollout only after the resets, so a crash leaves the mode set);
    - ``annotations``: JSON merge patch of the Kruise Rollout's
      ``metadata.annotations`` (None removes the key); empty when unchanged;
    - ``conditions``: the complete new ``status.conditions`` of the Kruise
      Rollout (status subresource, under ``resource_version``); None when unchanged;
    - ``approve``: RFC 6902 ops setting ``spec.strategy.canary.steps[N-1].pause.duration=0``;
    - ``events``: Warnings to post;
    - ``requeue_at``: the next instant the outcome changes with time alone.
    """

    kruise: ObjectKey
    resource_version: str
    test_resets: tuple[TestReset, ...] = ()
    kuberik_cleanup: RemoveAnnotations | None = None
    annotations: Mapping[str, str | None] = field(default_factory=dict)
    conditions: tuple[Mapping[str, Any], ...] | None = None
    approve: tuple[Mapping[str, Any], ...] = ()
    events: tuple[PostEvent, ...] = ()
    requeue_at: datetime | None = None


# --- step gate ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Gate:
    """The working copy of one pass: steps 1–10 edit it in order; ``plan`` diffs it."""

    kruise: Obj
    n: int
    revision: str
    annotations: dict[str, str]
    conditions: list[dict[str, Any]]
    tests: dict[str, tuple[RolloutTest, dict[str, Any]]]
    resets: list[TestReset] = field(default_factory=list)
    cleanup: RemoveAnnotations | None = None
    events: list[PostEvent] = field(default_factory=list)

    def plan(self, requeue_at: datetime | None = None, approve: Sequence[Obj] = ()) -> StepGatePlan:
        before = annotations_of(self.kruise)
        patch: dict[str, str | None] = {k: None for k in before if k not in self.annotations}
        patch.update({k: v for k, v in self.annotations.items() if before.get(k) != v})
        old = list((self.kruise.get("status") or {}).get("conditions") or [])
        return StepGatePlan(
            kruise=_kruise_key(self.kruise),
            resource_version=str(meta_of(self.kruise).get("resourceVersion") or ""),
            test_resets=tuple(self.resets),
            kuberik_cleanup=self.cleanup,
            annotations=patch,
            conditions=None if self.conditions == old else tuple(self.conditions),
            approve=tuple(approve),
            events=tuple(self.events),
            requeue_at=requeue_at,
        )


def step_gate(
    kruise_rollout: Obj,
    kuberik_rollout: Obj | None,
    tests: Sequence[RolloutTest],
    now: datetime,
) -> StepGatePlan:
    """One pass of the step gate (§8 steps 1–10).

    ``kuberik_rollout`` is the linked Rollout (None: not linked); ``tests`` are
    the RolloutTests of the Kruise Rollout's namespace (others are ignored).
    """
    status = kruise_rollout.get("status") or {}
    canary = status.get("canaryStatus")
    n = int((canary or {}).get("currentStepIndex") or 0)
    gate = _Gate(
        kruise=kruise_rollout,
        n=n,
        revision=str((canary or {}).get("canaryRevision") or ""),
        annotations=annotations_of(kruise_rollout),
        conditions=[dict(c) for c in status.get("conditions") or []],
        tests={t.metadata.name or "": (t, status_of(t)) for t in _tests(kruise_rollout, tests, n)},
    )
    if canary is None or n < 1:
        return gate.plan()
    if status.get("phase") == "Healthy" or canary.get("currentStepState") == "Completed":
        _clear_stalled(gate, now)
        return gate.plan()
    stall = stalled(gate.conditions)
    if stall and _named_revision(str(stall.get("message", ""))) not in ("", gate.revision):
        _clear_stalled(gate, now)
    cutoff = retry_cutoff(kuberik_rollout)
    if kuberik_rollout is not None and cutoff is not None:
        _retry(gate, kuberik_rollout, cutoff, now)
    _revision_and_step(gate, now)
    durations = _durations(gate)
    if durations is None:
        return gate.plan()
    bake = None
    if kuberik_rollout is not None:
        entry = relevant_entry(kuberik_rollout, kruise_rollout)
        if entry is not None and entry.get("bakeStatus") == "Failed":
            bake = _bake_message(gate, kuberik_rollout, entry)
    return _decide(gate, durations, bake, now)


def _retry(gate: _Gate, kuberik: Obj, cutoff: datetime, now: datetime) -> None:
    """Step 3: re-anchor the step deadline, reset stale failed tests, drop ``retry-mode``.

    ``started-at`` only moves forward to the cutoff: a step that started after
    the retry keeps its own start (else a later step would be timed from an old
    retry, and each pass would undo step 5). ``retry-mode`` is consumed only by
    the pass that acts on this cutoff (``started-at`` moved or a test was
    reset), so a mode set for the next retry survives passes under an old cutoff.
    """
    started = STARTED_AT.format(gate.n)
    begun = time_of(gate.annotations.get(started))
    moved = begun is not None and second(begun) < second(cutoff)
    if moved:
        gate.annotations[started] = stamp(cutoff)
        gate.annotations.pop(READY_AT.format(gate.n), None)
    kuberik_annotations = annotations_of(kuberik)
    skip = "skip" in (kuberik_annotations.get(RETRY_MODE), kuberik_annotations.get(RETRY))
    for name, (test, current) in sorted(gate.tests.items()):
        if not _stale_failure(current, cutoff):
            continue
        reset = skipped_status(current, test, now) if skip else waiting_status(current, *CLEARED)
        gate.tests[name] = (test, reset)
        rv = test.metadata.resource_version or ""
        gate.resets.append(TestReset(key_of(test), rv, reset, {TEST_LABEL: name}))
    if RETRY_MODE in kuberik_annotations and (moved or gate.resets):
        gate.cleanup = RemoveAnnotations(
            ObjectKey(
                ROLLOUTS, meta_of(kuberik).get("namespace"), str(meta_of(kuberik).get("name", ""))
            ),
            {RETRY_MODE: kuberik_annotations[RETRY_MODE]},
        )
    stall = stalled(gate.conditions)
    when = time_of((stall or {}).get("lastTransitionTime"))
    if when is not None and second(when) <= second(cutoff):
        _clear_stalled(gate, now)


def _revision_and_step(gate: _Gate, now: datetime) -> None:
    """Steps 4 and 5: a new canary revision, then a new step, reset the bookkeeping."""
    ann, n = gate.annotations, gate.n
    last = ann.get(LAST_REVISION.format(n), "")
    if last and last != gate.revision:
        ann[LAST_REVISION.format(n)] = gate.revision
        ann.pop(STARTED_AT.format(n), None)
        ann.pop(READY_AT.format(n), None)
        _clear_stalled(gate, now)
    elif not last and gate.revision:
        ann[LAST_REVISION.format(n)] = gate.revision
    if ann.get(LAST_STEP_INDEX) != str(n):
        for key in [k for k in ann if (m := STEP_KEY.match(k)) and int(m.group(1)) != n]:
            del ann[key]
        ann[LAST_STEP_INDEX] = str(n)
        ann[STARTED_AT.format(n)] = stamp(now)
        ann.pop(READY_AT.format(n), None)


def _durations(gate: _Gate) -> tuple[timedelta, timedelta, bool] | None:
    """Step 6: (readyTimeout, bakeTime, timeout given); None after a Warning for a bad value."""
    timeout_key, bake_key = STEP_READY_TIMEOUT.format(gate.n), STEP_BAKE_TIME.format(gate.n)
    parsed: dict[str, timedelta] = {}
    for key in (timeout_key, bake_key):
        text = gate.annotations.get(key, "")
        try:
            parsed[key] = parse_duration(text) if text else timedelta(0)
        except TimeSyntaxError as exc:
            meta = meta_of(gate.kruise)
            where = f"{meta.get('namespace')}/{meta.get('name')}"
            gate.events.append(
                PostEvent(
                    _kruise_key(gate.kruise),
                    "Warning",
                    "InvalidStepAnnotation",
                    f"Annotation {key} of Kruise Rollout {where}: {exc}."
                    f" Step {gate.n} is not gated until it is fixed.",
                )
            )
            return None
    given = bool(gate.annotations.get(timeout_key))
    timeout = parsed[timeout_key] if given else DEFAULT_READY_TIMEOUT
    return timeout, parsed[bake_key], given


def _decide(
    gate: _Gate, durations: tuple[timedelta, timedelta, bool], bake: str | None, now: datetime
) -> StepGatePlan:
    """Steps 7–10: test verdict, readiness, conditions, approval, and the next deadline.

    ``bake`` is the ``KuberikBakeHealthy`` failure message when the relevant entry failed.
    """
    ready_timeout, bake_time, timeout_given = durations
    all_passed, failed_test = _verdict(gate, bake_time)
    ann = gate.annotations
    started_key, ready_key = STARTED_AT.format(gate.n), READY_AT.format(gate.n)
    started = time_of(ann.get(started_key))
    if started is None:
        started, ann[started_key] = second(now), stamp(now)
    deadline = started + ready_timeout
    paused = str(gate.kruise["status"]["canaryStatus"].get("currentStepState")) in PAUSED
    ready = paused and all_passed and bake is None and (now < deadline or ready_key in ann)
    ready_at = time_of(ann.get(ready_key)) if ready else None
    if ready and ready_at is None:
        ready_at, ann[ready_key] = second(now), stamp(now)
    elif not ready:
        ann.pop(ready_key, None)
    _set(gate.conditions, "KuberikBakeHealthy", _bake_value(bake), now)
    if failed_test is not None:
        message = f"Rollout tests failed for current step (test {failed_test}, step {gate.n})"
        _set(gate.conditions, "Stalled", ("True", "RolloutTestFailed", message), now)
    elif not ready and bake is None and now >= deadline:
        _set(gate.conditions, "Stalled", _timeout(gate, ready_timeout, deadline), now)
    else:
        _clear_stalled(gate, now)
    if ready_at is None:
        waiting = failed_test is None and bake is None and timeout_given and now < deadline
        return gate.plan(deadline if waiting else None)
    if now < ready_at + bake_time:
        return gate.plan(ready_at + bake_time)
    ann.pop(started_key, None)
    ann.pop(ready_key, None)
    return gate.plan(approve=_approve_ops(gate.kruise, gate.n))


def _verdict(gate: _Gate, bake_time: timedelta) -> tuple[bool, str | None]:
    """Step 7: (allPassed, the first failed test) over the step's tests for this revision.

    With no test for the step at all, a positive bake time passes; tests that
    have not observed this revision yet never pass.
    """
    if not gate.tests:
        return bake_time > timedelta(0), None
    relevant = [
        (name, status)
        for name, (_, status) in sorted(gate.tests.items())
        if not gate.revision or status.get("observedCanaryRevision") == gate.revision
    ]
    failed = next((n for n, s in relevant if s.get("phase") in ("Failed", "Cancelled")), None)
    passed = all(s.get("phase") in ("Succeeded", "Skipped") for _, s in relevant)
    return bool(relevant) and passed, failed


def _bake_message(gate: _Gate, kuberik: Obj, entry: Obj) -> str:
    """Step 9's ``KuberikBakeHealthy=False/BakeFailed`` message."""
    meta, tag = meta_of(kuberik), (entry.get("version") or {}).get("tag", "")
    where = (
        f"in latest deployment for canary {gate.revision} (version {tag})"
        if gate.revision
        else f"in deployment of version {tag}"
    )
    return (
        f"Kuberik Rollout {meta.get('namespace')}/{meta.get('name')} has failed bake status"
        f" {where}. Rollout is paused and requires manual intervention."
    )


def _bake_value(bake: str | None) -> tuple[str, str, str]:
    return ("False", "BakeFailed", bake) if bake else BAKE_HEALTHY


def _timeout(gate: _Gate, ready_timeout: timedelta, deadline: datetime) -> tuple[str, str, str]:
    message = (
        f"Step {gate.n} step-ready-timeout ({go_duration(ready_timeout)}) exceeded at"
        f" {stamp(deadline)} for canary {gate.revision}. Rollout is paused and requires"
        " manual intervention."
    )
    return "True", "StepReadyTimeoutExceeded", message


def _approve_ops(kruise: Obj, n: int) -> list[dict[str, Any]]:
    """Step 10: ``steps[N-1].pause.duration = 0`` as JSON Patch; none if there is no step N
    or it is approved already (OpenKruise has not moved on yet: nothing to write again)."""
    canary = ((kruise.get("spec") or {}).get("strategy") or {}).get("canary") or {}
    steps = canary.get("steps")
    if not isinstance(steps, list) or n > len(steps):
        return []
    path = f"/spec/strategy/canary/steps/{n - 1}/pause"
    pause = steps[n - 1].get("pause")
    if isinstance(pause, dict) and pause.get("duration") == 0:
        return []
    if isinstance(pause, dict):
        return [{"op": "add", "path": f"{path}/duration", "value": 0}]
    return [{"op": "add", "path": path, "value": {"duration": 0}}]


def _clear_stalled(gate: _Gate, now: datetime) -> None:
    """A ``Stalled=True`` becomes ``False/WithinDeadline``; otherwise nothing changes."""
    if stalled(gate.conditions):
        _set(gate.conditions, "Stalled", WITHIN_DEADLINE, now)


def _set(
    conditions: list[dict[str, Any]], kind: str, value: tuple[str, str, str], now: datetime
) -> None:
    """A Kruise RolloutCondition: kept if equal, else rewritten with both times = now."""
    new = dict(zip(("type", "status", "reason", "message"), (kind, *value), strict=True))
    new.update(lastUpdateTime=stamp(now), lastTransitionTime=stamp(now))
    for i, old in enumerate(conditions):
        if old.get("type") == kind:
            if (old.get("status"), old.get("reason"), old.get("message")) != value:
                conditions[i] = new
            return
    conditions.append(new)


def _named_revision(message: str) -> str:
    """The revision after "for canary " in a ``Stalled`` message, up to a period or space."""
    found = re.search(r"for canary ([^. ]+)", message)
    return found.group(1) if found else ""


def _stale_failure(status: Obj, cutoff: datetime) -> bool:
    """Failed or Cancelled, its ``Failed`` (else ``Ready``) condition at or before the cutoff."""
    if status.get("phase") not in ("Failed", "Cancelled"):
        return False
    conditions = status.get("conditions") or []
    found = next((c for c in conditions if c.get("type") == "Failed"), None)
    found = found or next((c for c in conditions if c.get("type") == "Ready"), None)
    when = time_of((found or {}).get("lastTransitionTime"))
    return when is not None and second(when) <= second(cutoff)


def _tests(kruise: Obj, tests: Sequence[RolloutTest], n: int) -> list[RolloutTest]:
    meta = meta_of(kruise)
    return [
        t
        for t in tests
        if t.spec.rollout_name == meta.get("name")
        and t.spec.step_index == n
        and t.metadata.namespace in (None, meta.get("namespace"))
    ]


def _kruise_key(kruise: Obj) -> ObjectKey:
    meta = meta_of(kruise)
    return ObjectKey(KRUISE_ROLLOUTS, meta.get("namespace"), str(meta.get("name", "")))
