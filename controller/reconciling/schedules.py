"""One pass over a RolloutSchedule or ClusterRolloutSchedule: its gates, then its status (§6).

Callers: ``reconciling.reconcile`` for schedule keys. The gates and status are
planned by ``planning.schedules`` (pure); this module turns them into actions
and requeues at the exact next transition.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from controller.api.actions import (
    ROLLOUTGATES,
    ROLLOUTS,
    Action,
    CreateObject,
    DeleteObject,
    MergePatch,
    ObjectKey,
    Plan,
    WriteStatus,
)
from controller.applying import ApplyConflict
from controller.planning import schedules
from controller.reconciling.runtime import Runtime

SCHEDULE_KINDS = ("rolloutschedules.kuberik.com", "clusterrolloutschedules.kuberik.com")


async def reconcile_schedule(key: ObjectKey, rt: Runtime) -> datetime | None:
    """Creates, patches and deletes the schedule's gates, writes its status."""
    schedule = rt.reader.get(key.kind, key.namespace, key.name)
    if schedule is None:
        return None
    now = rt.clock.now()
    rollouts = list(rt.reader.list(ROLLOUTS))
    namespaces = namespace_labels(rt)
    desired = schedules.desired_gates(schedule, rollouts, namespaces, now)
    existing = [g for g in rt.reader.list(ROLLOUTGATES) if _owned_by(g, schedule)]
    changes = schedules.gate_changes(existing, desired, schedule=schedule)
    gate_actions: list[Action] = [
        CreateObject(ROLLOUTGATES, g["metadata"]["namespace"], named(g)) for g in changes.create
    ]
    gate_actions += [
        MergePatch(ObjectKey(ROLLOUTGATES, u.namespace, u.name), u.patch) for u in changes.update
    ]
    gate_actions += [DeleteObject(target) for target in changes.delete]
    gone = {(k.namespace, k.name) for k in changes.delete}
    kept = [
        g for g in existing if (g["metadata"].get("namespace"), g["metadata"]["name"]) not in gone
    ]
    status = schedules.schedule_status(schedule, rollouts, namespaces, now, gates=kept).as_status()
    plans: list[Plan] = []
    if status != (schedule.get("status") or {}):
        rv = str(schedule["metadata"].get("resourceVersion", ""))
        plans.append(Plan((WriteStatus(key, rv, status),)))
    plans += [Plan(tuple(group)) for group in _by_namespace(gate_actions)]
    errors = [e for e in [(await rt.writer.apply(p)).error for p in plans] if e is not None]
    if any(isinstance(e, ApplyConflict) for e in errors):
        return now
    if errors:
        raise errors[0]
    return schedules.schedule_status(schedule, rollouts, namespaces, now).requeue_at


def named(gate: Mapping[str, Any]) -> dict[str, Any]:
    """The gate with a stable name ``schedule-gate-<hash>`` in place of ``generateName``.

    Two passes that both see the gate missing (the store lags the create) then
    create the same name, and the second gets AlreadyExists instead of a twin gate.
    """
    meta = dict(gate["metadata"])
    prefix = meta.pop("generateName", "schedule-gate-")
    identity = json.dumps([*sorted(meta.get("labels", {}).items()), meta.get("namespace")])
    meta["name"] = prefix + hashlib.sha256(identity.encode()).hexdigest()[:10]
    return {**gate, "metadata": meta}


def _by_namespace(actions: Sequence[Action]) -> list[list[Action]]:
    """Actions grouped by target namespace: one namespace's failure (say, it is being
    deleted) must not keep the schedule's gates in other namespaces from being written."""
    groups: dict[str | None, list[Action]] = {}
    for action in actions:
        groups.setdefault(_namespace_of(action), []).append(action)
    return list(groups.values())


def _namespace_of(action: Action) -> str | None:
    if isinstance(action, CreateObject):
        return action.namespace
    if isinstance(action, MergePatch | DeleteObject):
        return action.target.namespace
    return None


def _owned_by(gate: Mapping[str, Any], schedule: Mapping[str, Any]) -> bool:
    labels = (gate.get("metadata") or {}).get("labels") or {}
    wanted = schedules.gate_labels(schedule)
    return all(labels.get(k) == v for k, v in wanted.items())


def namespace_labels(rt: Runtime) -> dict[str, Mapping[str, str]]:
    return {
        ns["metadata"]["name"]: ns["metadata"].get("labels") or {}
        for ns in rt.reader.list("namespaces")
    }
