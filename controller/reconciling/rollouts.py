"""One pass over a Rollout, the steps of ARCHITECTURE.md §7.

Callers: ``reconciling.reconcile`` for Rollout keys. Observes from caches only,
asks the engine, lets ``planning`` decide and ``applying`` write. Decides
nothing itself; never reads the wall clock (the Runtime's clock is injected).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timedelta

from controller.api.actions import ROLLOUTS, ObjectKey, Plan
from controller.applying import ApplyConflict
from controller.planning import Prepared, decide, observe, prepare, recording
from controller.planning.facts import facts_of, with_collected
from controller.planning.linked import LINKED_ROOTS
from controller.planning.observing import Observed
from controller.policies import PolicyEngine, PolicySet
from controller.reconciling.prometheus_facts import PROMETHEUS_ROOTS, prometheus_facts
from controller.reconciling.releases import new_release_metadata
from controller.reconciling.runtime import Runtime
from policy_engine import Evaluation, FactSet

LOG = logging.getLogger("tidegate.reconcile")
MIN_DELAY = timedelta(seconds=1)
PROMETHEUS_POLL = timedelta(seconds=30)
"""How often a Rollout with candidates is re-judged when its policies read Prometheus."""


async def reconcile_rollout(key: ObjectKey, rt: Runtime) -> datetime | None:
    """Plans and applies one Rollout; returns when to look again (None: on events only)."""
    rollout = rt.reader.get(ROLLOUTS, key.namespace, key.name)
    if rollout is None:
        return None
    now = rt.clock.now()
    started = time.perf_counter()
    metadata = await new_release_metadata(rollout, rt)
    policy_set = rt.engine.policies_for(rt.reader, key.namespace)
    observed = observe(rt.reader, rollout, policy_set.roots_read & LINKED_ROOTS)
    observed = dataclasses.replace(observed, metadata=metadata)
    prepared = prepare(observed, now)
    facts = None if prepared.stopped else await _facts(observed, prepared, policy_set, rt, now)
    evaluation = _evaluate(prepared, policy_set, rt.engine, facts)
    plan = decide(prepared, evaluation)
    outcome = await rt.writer.apply(plan)
    _report(key, plan, evaluation, started, rt)
    if facts is not None:
        _record(key, rt, facts, evaluation, plan, prepared, now)
    if isinstance(outcome.error, ApplyConflict):
        return now
    if outcome.error is not None:
        raise outcome.error
    again = _requeue_at(plan, now)
    if evaluation is not None and evaluation.verdicts and policy_set.roots_read & PROMETHEUS_ROOTS:
        poll = now + PROMETHEUS_POLL  # Prometheus changes without a watch event
        again = poll if again is None else min(again, poll)
    return again


async def _facts(
    observed: Observed, prepared: Prepared, policy_set: PolicySet, rt: Runtime, now: datetime
) -> FactSet:
    """The Rollout's facts; Prometheus roots added only when a policy reads them."""
    facts = facts_of(observed, prepared, now)
    if not policy_set.roots_read & PROMETHEUS_ROOTS:
        return facts
    roots = policy_set.roots_read
    extra = await prometheus_facts(rt, policy_set.policies, roots, facts.values, now)
    return with_collected(facts, extra)


def _record(
    key: ObjectKey,
    rt: Runtime,
    facts: FactSet,
    evaluation: Evaluation | None,
    plan: Plan,
    prepared: Prepared,
    now: datetime,
) -> None:
    """A decision-log line when the decision or the facts changed, or the plan deployed."""
    if rt.decision_log is None:
        return
    before = ((prepared.observed.rollout.get("status") or {}).get("history") or [{}])[0]
    before_tag = (before.get("version") or {}).get("tag")
    action = recording.action_of(plan, prepared.current, before_tag)
    signature = recording.signature(evaluation, recording.facts_digest(facts))
    identity = (key.namespace, key.name)
    if action == "none" and rt.logged.get(identity) == signature:
        return
    rt.logged[identity] = signature
    rt.decision_log.offer(recording.decision_line(facts, evaluation, action, now))


def _evaluate(
    prepared: Prepared, policy_set: PolicySet, engine: PolicyEngine, facts: FactSet | None
) -> Evaluation | None:
    if facts is None:
        return None
    if policy_set.problems:
        message = "; ".join(policy_set.problems)
        prepared.condition("Stalled", "True", "InvalidPolicy", message)
        prepared.condition("Ready", "False", "InvalidPolicy", f"Invalid policy: {message}")
        return None
    prepared.condition("Stalled", "False", "", "")
    if prepared.observed.unsynced:
        unsynced = ", ".join(prepared.observed.unsynced)
        prepared.condition(
            "Ready", "False", "FactsUnavailable", f"Facts unavailable: {unsynced} not synced"
        )
        return None
    return engine.evaluate(policy_set.policies, facts)


def _requeue_at(plan: Plan, now: datetime) -> datetime | None:
    if plan.requeue_at is None:
        return None
    return max(plan.requeue_at, now + MIN_DELAY) if plan.requeue_at <= now else plan.requeue_at


def _report(
    key: ObjectKey, plan: Plan, evaluation: Evaluation | None, started: float, rt: Runtime
) -> None:
    decision = evaluation.decision if evaluation is not None else None
    if rt.metrics is not None:
        rt.metrics.observe_step("rollout", time.perf_counter() - started)
        if decision is not None:
            rt.metrics.count_decision(str(decision))
    LOG.info(
        "reconciled %s: decision=%s actions=%s requeue_at=%s in %.1f ms",
        key, decision, [a.key for a in plan.actions], plan.requeue_at,
        (time.perf_counter() - started) * 1000,
    )  # fmt: skip
