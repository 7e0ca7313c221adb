"""reconcile(key): one pass over one object, dispatched by kind (ARCHITECTURE.md §7).

Callers: the queue workers built by ``main``. Rollouts are planned and
applied; HealthChecks of the classes tidegate owns are evaluated; schedules
keep their gates and status. Nothing here reads the wall clock.
"""

from __future__ import annotations

from datetime import datetime

from controller.api.actions import HEALTHCHECKS, ROLLOUTS, ObjectKey
from controller.reconciling.environments import ENVIRONMENT_KINDS, reconcile_environment
from controller.reconciling.healthchecks import reconcile_health_check
from controller.reconciling.kruise import KRUISE_KINDS, reconcile_kruise
from controller.reconciling.rollouts import reconcile_rollout
from controller.reconciling.runtime import Runtime
from controller.reconciling.schedules import SCHEDULE_KINDS, reconcile_schedule

__all__ = ["Runtime", "reconcile"]


async def reconcile(key: ObjectKey, rt: Runtime) -> datetime | None:
    """Reconciles ``key``; returns when to look again (None: on watch events only)."""
    if key.kind == ROLLOUTS:
        return await reconcile_rollout(key, rt)
    if key.kind == HEALTHCHECKS:
        return await reconcile_health_check(key, rt)
    if key.kind in SCHEDULE_KINDS:
        return await reconcile_schedule(key, rt)
    if key.kind in KRUISE_KINDS:
        return await reconcile_kruise(key, rt)
    if key.kind in ENVIRONMENT_KINDS:
        return await reconcile_environment(key, rt)
    return None
