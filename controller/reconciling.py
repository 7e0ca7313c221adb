"""reconcile(key): one pass over a Rollout, the steps of ARCHITECTURE.md §7.

Callers: the queue workers built by ``main``. Observes from caches only,
asks the engine, lets ``planning`` decide and ``applying`` write. Decides
nothing itself; never reads the wall clock (the Runtime's clock is injected).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.api.actions import ROLLOUTS, ObjectKey, Plan
from controller.applying import Writer
from controller.decisionlog import DecisionLog
from controller.metrics import Metrics
from controller.planning import Prepared, decide, observe, prepare
from controller.planning.facts import facts_of
from controller.policies import PolicyEngine, PolicySet
from evaluators.base import Clock, ObjectReader
from policy_engine import Evaluation

LOG = logging.getLogger("tidegate.reconcile")
MIN_DELAY = timedelta(seconds=1)


@dataclass
class Runtime:
    """Everything a reconcile needs; built by ``main``."""

    clock: Clock
    reader: ObjectReader
    writer: Writer
    engine: PolicyEngine
    decision_log: DecisionLog | None = None
    metrics: Metrics | None = None


async def reconcile(key: ObjectKey, rt: Runtime) -> datetime | None:
    """Plans and applies one Rollout; returns when to look again (None: on events only)."""
    rollout = rt.reader.get(ROLLOUTS, key.namespace, key.name)
    if rollout is None:
        return None
    now = rt.clock.now()
    started = time.perf_counter()
    observed = observe(rt.reader, rollout)
    prepared = prepare(observed, now)
    policy_set = rt.engine.policies_for(rt.reader, key.namespace)
    evaluation = _evaluate(prepared, policy_set, rt.engine, now)
    plan = decide(prepared, evaluation)
    await rt.writer.apply(plan)
    _report(key, plan, evaluation, started)
    return _requeue_at(plan, now)


def _evaluate(
    prepared: Prepared, policy_set: PolicySet, engine: PolicyEngine, now: datetime
) -> Evaluation | None:
    if prepared.stopped:
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
    return engine.evaluate(policy_set.policies, facts_of(prepared.observed, prepared, now))


def _requeue_at(plan: Plan, now: datetime) -> datetime | None:
    if plan.requeue_at is None:
        return None
    return max(plan.requeue_at, now + MIN_DELAY) if plan.requeue_at <= now else plan.requeue_at


def _report(key: ObjectKey, plan: Plan, evaluation: Evaluation | None, started: float) -> None:
    decision = evaluation.decision if evaluation is not None else None
    LOG.info(
        "reconciled %s: decision=%s actions=%s requeue_at=%s in %.1f ms",
        key, decision, [a.key for a in plan.actions], plan.requeue_at,
        (time.perf_counter() - started) * 1000,
    )  # fmt: skip
