"""RolloutSchedule / ClusterRolloutSchedule: window, status, owned gates and the ``windows`` facts.

Callers: the controller's schedule reconcile (``schedule_status``, ``desired_gates``,
``gate_changes``; it turns the results into API calls) and the Rollout fact
builder (``windows_for_rollout``, ``is_schedule_gate``). KUBERIK-SEMANTICS.md §6:
a schedule is translated once into a ``policy_engine.windows`` Window (Allow rules
are allow entries, Deny rules deny entries, so ``is_open`` is exactly the gates'
``passing``); the gates and the engine's ``windows`` root are two views of it.
Pure: ``now`` is an argument; no I/O, and no window math of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from controller.api.actions import ROLLOUTGATES, ObjectKey
from controller.conditions import set_condition
from controller.selectors import selects
from policy_engine.model.times import ensure_aware, format_timestamp
from policy_engine.windows import (
    DAY_NAMES,
    Window,
    WindowSyntaxError,
    explain_at,
    is_open,
    next_transition,
    parse_window,
)

API_VERSION = "kuberik.com/v1alpha1"
NAMESPACED = "RolloutSchedule"
CLUSTER = "ClusterRolloutSchedule"
SCHEDULE_NAME = "gate.kuberik.com/schedule-name"
SCHEDULE_KIND = "gate.kuberik.com/schedule-kind"
SCHEDULE_NAMESPACE = "gate.kuberik.com/schedule-namespace"
ROLLOUT_NAME = "gate.kuberik.com/rollout-name"
COPIED_ANNOTATIONS = ("gate.kuberik.com/pretty-name", "gate.kuberik.com/description")
GENERATE_NAME = "schedule-gate-"
HORIZON = timedelta(days=90)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ENTRY_FIELD = re.compile(r"^(?:allow|deny)\[(\d+)\]\.(between|days|dates)")
_KUBERIK_FIELDS = (("between", "timeRange"), ("days", "daysOfWeek"), ("dates", "dateRange"))

Obj = Mapping[str, Any]
NamespaceLabels = Mapping[str, Mapping[str, str]]  # namespace name → its labels
GateKey = tuple[str, str, str, str, str]  # namespace, kind, schedule, schedule ns, rollout


@dataclass(frozen=True, slots=True)
class ScheduleStatus:
    """A schedule's evaluation at one instant; ``as_status()`` is its ``status``."""

    active: bool
    active_rules: tuple[str, ...]
    next_transition: datetime | None
    passing: bool
    matching_rollouts: int
    managed_gates: tuple[str, ...]
    conditions: tuple[dict[str, Any], ...]
    requeue_at: datetime | None

    def as_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "active": self.active,
            "activeRules": list(self.active_rules),
            "managedGates": list(self.managed_gates),
            "matchingRollouts": self.matching_rollouts,
            "conditions": [dict(c) for c in self.conditions],
        }
        if self.next_transition is not None:
            status["nextTransition"] = format_timestamp(self.next_transition)
        return status


@dataclass(frozen=True, slots=True)
class GateUpdate:
    """A JSON merge patch (RFC 7386) bringing an existing gate to its desired state."""

    namespace: str
    name: str
    patch: dict[str, Any]


class GateChanges(NamedTuple):
    create: list[dict[str, Any]]
    update: list[GateUpdate]
    delete: list[ObjectKey]


@dataclass(frozen=True, slots=True)
class _Problem:
    reason: str  # InvalidTimezone | InvalidRule
    message: str


def window_key(schedule: Obj) -> str:
    """``RolloutSchedule/<ns>/<name>`` or ``ClusterRolloutSchedule/<name>`` (POLICY-FORMATS §3)."""
    meta = schedule.get("metadata") or {}
    if _is_cluster(schedule):
        return f"{CLUSTER}/{meta.get('name', '')}"
    return f"{NAMESPACED}/{meta.get('namespace', '')}/{meta.get('name', '')}"


def window_record(schedule: Obj) -> dict[str, Any]:
    """The schedule as a ``windows`` value: ``{name, timezone, allow|deny, source}``.

    Rules become entries (``daysOfWeek``→``days``, ``timeRange``→``between``,
    ``dateRange``→``dates``); Allow rules go to ``allow``, any other action to
    ``deny`` (Kuberik's default). An invalid schedule is translated as it is, so
    the engine's ``inWindow`` fails closed naming the problem.
    """
    meta = schedule.get("metadata") or {}
    spec = schedule.get("spec") or {}
    entries = [_entry(i, rule) for i, rule in enumerate(spec.get("rules") or [])]
    source = {"kind": _kind(schedule), "name": meta.get("name")}
    if not _is_cluster(schedule):
        source["namespace"] = meta.get("namespace")
    return {
        "name": str(meta.get("name") or "schedule"),
        "timezone": spec.get("timezone") or "UTC",
        "allow" if spec.get("action") == "Allow" else "deny": entries,
        "source": source,
    }


def schedule_window(schedule: Obj) -> Window | str:
    """The schedule as a Window whose ``is_open`` is its gates' ``passing``, or the problem."""
    parsed = _parse(schedule)
    return parsed.message if isinstance(parsed, _Problem) else parsed


def _entry(index: int, rule: Any) -> dict[str, Any]:
    if not isinstance(rule, Mapping):
        return {"name": f"rules[{index}]", "between": "not a rule"}
    entry: dict[str, Any] = {"name": str(rule.get("name") or f"rules[{index}]")}
    days = rule.get("daysOfWeek")
    if days:
        entry["days"] = [DAY_NAMES[_WEEKDAYS.index(d)] if d in _WEEKDAYS else d for d in days]
    if rule.get("timeRange") is not None:
        entry["between"] = "{}-{}".format(*_bounds(rule["timeRange"]))
    if rule.get("dateRange") is not None:
        entry["dates"] = "{}..{}".format(*_bounds(rule["dateRange"]))
    return entry


def _bounds(value: Any) -> tuple[str, str]:
    if not isinstance(value, Mapping):
        return repr(value), ""
    return str(value.get("start", "")), str(value.get("end", ""))


def _parse(schedule: Obj) -> Window | _Problem:
    rules = (schedule.get("spec") or {}).get("rules") or []
    if not rules or isinstance(rules, str | bytes) or not isinstance(rules, Sequence):
        return _Problem("InvalidRule", "spec.rules: at least one rule is required")
    for index, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            return _Problem("InvalidRule", f"spec.rules[{index}]: expected a map, got {rule!r:.80}")
    try:
        return parse_window(window_record(schedule))
    except WindowSyntaxError as exc:
        return _problem(exc)


def _problem(exc: WindowSyntaxError) -> _Problem:
    text = str(exc).removeprefix(f"window {exc.window!r}: ")
    hint = f"; {exc.hint}" if exc.hint else ""
    if exc.field == "timezone":
        return _Problem("InvalidTimezone", f"spec.{text}{hint}")
    found = _ENTRY_FIELD.match(exc.field)
    if found:
        field = f"spec.rules[{found[1]}].{dict(_KUBERIK_FIELDS)[found[2]]}"
        text = field + text.removeprefix(found[0])
    return _Problem("InvalidRule", f"{text}{hint}")


def _state(schedule: Obj, now: datetime) -> tuple[ScheduleStatus, _Problem | None]:
    """The window part of the status (no rollouts, gates or conditions yet), and any problem."""
    parsed = _parse(schedule)
    if isinstance(parsed, _Problem):
        return ScheduleStatus(False, (), None, False, 0, (), (), None), parsed
    rules = (schedule.get("spec") or {}).get("rules") or []
    states = explain_at(parsed, now)
    names = tuple(
        str(rule.get("name") or "")
        for rule, state in zip(rules, states, strict=True)
        if state.active
    )
    flip = next_transition(parsed, now, ensure_aware(now, "now") + HORIZON)
    requeue = flip if flip is not None else _horizon_requeue(parsed, now)
    return ScheduleStatus(bool(names), names, flip, is_open(parsed, now), 0, (), (), requeue), None


def _horizon_requeue(window: Window, now: datetime) -> datetime | None:
    """No flip within the horizon: look again at its end while a date range lies ahead."""
    today = ensure_aware(now, "now").astimezone(ZoneInfo(window.timezone)).date()
    entries = (*window.allow, *window.deny)
    ahead = any(e.dates is not None and e.dates[1] >= today for e in entries)
    return ensure_aware(now, "now") + HORIZON if ahead else None


def schedule_status(
    schedule: Obj,
    rollouts: Sequence[Obj],
    namespaces: NamespaceLabels,
    now: datetime,
    *,
    gates: Sequence[Obj] = (),
) -> ScheduleStatus:
    """The schedule's status at ``now``. ``gates`` are its RolloutGates as they exist after
    ``gate_changes`` were applied: ``managedGates`` names those matching a desired gate."""
    state, problem = _state(schedule, now)
    matched = matching_rollouts(schedule, rollouts, namespaces)
    wanted = {_gate_key(_gate(schedule, r, state.passing)) for r in matched}
    managed = sorted({_gate_ref(schedule, g) for g in gates if _gate_key(g) in wanted})
    return replace(
        state,
        matching_rollouts=len(matched),
        managed_gates=tuple(managed),
        conditions=_conditions(schedule, state, problem, now),
    )


def _conditions(
    schedule: Obj, state: ScheduleStatus, problem: _Problem | None, now: datetime
) -> tuple[dict[str, Any], ...]:
    meta = schedule.get("metadata") or {}
    previous = (schedule.get("status") or {}).get("conditions") or []
    generation = meta.get("generation")
    if problem is not None:
        ready = ("False", problem.reason, f"{problem.message}; its gates are not passing")
    else:
        action = "Allow" if (schedule.get("spec") or {}).get("action") == "Allow" else "Deny"
        word = "active" if state.active else "inactive"
        gates = "passing" if state.passing else "not passing"
        ready = ("True", "Evaluated", f"{action} schedule is {word}; its gates are {gates}")
    gen = generation if isinstance(generation, int) else None
    return tuple(set_condition(previous, "Ready", *ready, now, gen))


def selects_rollout(schedule: Obj, rollout: Obj, namespaces: NamespaceLabels) -> bool:
    """Whether the schedule applies to ``rollout`` (``namespaces``: name → labels, all of them).

    RolloutSchedule: its own namespace only. ClusterRolloutSchedule: a
    ``namespaceSelector`` of ``{}`` or omitted selects every namespace ([T]).
    """
    spec = schedule.get("spec") or {}
    meta = rollout.get("metadata") or {}
    if not selects(spec.get("rolloutSelector"), meta.get("labels")):
        return False
    namespace = str(meta.get("namespace") or "")
    if _is_cluster(schedule):
        chosen = spec.get("namespaceSelector")
        return chosen is None or selects(chosen, namespaces.get(namespace) or {})
    return namespace == (schedule.get("metadata") or {}).get("namespace")


def matching_rollouts(
    schedule: Obj, rollouts: Sequence[Obj], namespaces: NamespaceLabels
) -> list[Obj]:
    """The Rollouts the schedule applies to, by namespace and name."""
    found = [r for r in rollouts if selects_rollout(schedule, r, namespaces)]
    return sorted(found, key=_rollout_key)


def windows_for_rollout(
    rollout: Obj, schedules: Sequence[Obj], namespaces: NamespaceLabels
) -> dict[str, dict[str, Any]]:
    """The ``windows`` root of ``rollout``: every schedule selecting it, by ``window_key``."""
    return {
        window_key(s): window_record(s)
        for s in schedules
        if selects_rollout(s, rollout, namespaces)
    }


def is_schedule_gate(gate: Obj) -> bool:
    """Owned by a schedule (label ``gate.kuberik.com/schedule-name``): not in the ``gates`` root."""
    return SCHEDULE_NAME in ((gate.get("metadata") or {}).get("labels") or {})


def gate_labels(schedule: Obj) -> dict[str, str]:
    """The labels naming the schedule on its gates (a label selector to list them)."""
    meta = schedule.get("metadata") or {}
    labels = {SCHEDULE_NAME: str(meta.get("name", "")), SCHEDULE_KIND: _kind(schedule)}
    if not _is_cluster(schedule):
        labels[SCHEDULE_NAMESPACE] = str(meta.get("namespace", ""))
    return labels


def desired_gates(
    schedule: Obj, rollouts: Sequence[Obj], namespaces: NamespaceLabels, now: datetime
) -> list[dict[str, Any]]:
    """One RolloutGate per matched Rollout, ``passing`` as the schedule's window at ``now``."""
    passing = _state(schedule, now)[0].passing
    return [_gate(schedule, r, passing) for r in matching_rollouts(schedule, rollouts, namespaces)]


def _gate(schedule: Obj, rollout: Obj, passing: bool) -> dict[str, Any]:
    meta = schedule.get("metadata") or {}
    rollout_meta = rollout.get("metadata") or {}
    name = str(rollout_meta.get("name", ""))
    metadata: dict[str, Any] = {
        "generateName": GENERATE_NAME,
        "namespace": str(rollout_meta.get("namespace", "")),
        "labels": {**gate_labels(schedule), ROLLOUT_NAME: name},
        "ownerReferences": [_owner(schedule)],
    }
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k in COPIED_ANNOTATIONS
    }
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": API_VERSION,
        "kind": "RolloutGate",
        "metadata": metadata,
        "spec": {"rolloutRef": {"name": name}, "passing": passing},
    }


def gate_changes(
    existing_gates: Sequence[Obj], desired: Sequence[Obj], *, schedule: Obj | None = None
) -> GateChanges:
    """What to create, patch and delete so the schedule's gates are ``desired``.

    Existing gates are matched to desired ones by label (schedule name, kind,
    [namespace], rollout name) and namespace. Gates without the schedule labels
    are never touched; with ``schedule`` given, neither are other schedules' gates
    (without it, ``existing_gates`` must be this schedule's, e.g. listed by
    ``gate_labels``). Duplicates beyond the first by name are deleted.
    """
    pool: dict[GateKey, list[Obj]] = {}
    for gate in sorted(existing_gates, key=lambda g: str((g.get("metadata") or {}).get("name"))):
        if is_schedule_gate(gate) and (schedule is None or _belongs(schedule, gate)):
            pool.setdefault(_gate_key(gate), []).append(gate)
    changes = GateChanges([], [], [])
    for want in desired:
        found = pool.pop(_gate_key(want), [])
        if not found:
            changes.create.append(dict(want))
            continue
        patch = _patch(found[0], want)
        if patch:
            meta = found[0].get("metadata") or {}
            name = str(meta.get("name", ""))
            changes.update.append(GateUpdate(str(meta.get("namespace", "")), name, patch))
        changes.delete.extend(_object_key(g) for g in found[1:])
    changes.delete.extend(_object_key(g) for stale in pool.values() for g in stale)
    return changes


def _patch(gate: Obj, want: Obj) -> dict[str, Any]:
    """The merge patch from ``gate`` to ``want``; ``{}`` when nothing differs."""
    meta, spec = gate.get("metadata") or {}, gate.get("spec") or {}
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    wanted = want["metadata"].get("annotations") or {}
    refs = list(meta.get("ownerReferences") or [])
    owner = want["metadata"]["ownerReferences"][0]
    owned = any(r.get("uid") == owner["uid"] and r.get("controller") for r in refs)
    metadata = {
        "labels": {k: v for k, v in want["metadata"]["labels"].items() if labels.get(k) != v},
        "annotations": {
            k: wanted.get(k) for k in COPIED_ANNOTATIONS if notes.get(k) != wanted.get(k)
        },
        "ownerReferences": [] if owned else [*(r for r in refs if not r.get("controller")), owner],
    }
    changed = {k: v for k, v in want["spec"].items() if spec.get(k) != v}
    if "allowedVersions" in spec:
        changed["allowedVersions"] = None
    patch: dict[str, Any] = {}
    if any(metadata.values()):
        patch["metadata"] = {k: v for k, v in metadata.items() if v}
    if changed:
        patch["spec"] = changed
    return patch


def _owner(schedule: Obj) -> dict[str, Any]:
    meta = schedule.get("metadata") or {}
    return {
        "apiVersion": schedule.get("apiVersion") or API_VERSION,
        "kind": _kind(schedule),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _gate_key(gate: Obj) -> GateKey:
    meta = gate.get("metadata") or {}
    labels = meta.get("labels") or {}
    return (
        str(meta.get("namespace", "")),
        str(labels.get(SCHEDULE_KIND, "")),
        str(labels.get(SCHEDULE_NAME, "")),
        str(labels.get(SCHEDULE_NAMESPACE, "")),
        str(labels.get(ROLLOUT_NAME, "")),
    )


def _belongs(schedule: Obj, gate: Obj) -> bool:
    labels = (gate.get("metadata") or {}).get("labels") or {}
    own = gate_labels(schedule)
    return all(labels.get(k) == v for k, v in own.items())


def _gate_ref(schedule: Obj, gate: Obj) -> str:
    meta = gate.get("metadata") or {}
    name = str(meta.get("name", ""))
    return f"{meta.get('namespace', '')}/{name}" if _is_cluster(schedule) else name


def _object_key(gate: Obj) -> ObjectKey:
    meta = gate.get("metadata") or {}
    return ObjectKey(ROLLOUTGATES, meta.get("namespace"), str(meta.get("name", "")))


def _rollout_key(rollout: Obj) -> tuple[str, str]:
    meta = rollout.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def _is_cluster(schedule: Obj) -> bool:
    return schedule.get("kind") == CLUSTER


def _kind(schedule: Obj) -> str:
    return CLUSTER if _is_cluster(schedule) else NAMESPACED
