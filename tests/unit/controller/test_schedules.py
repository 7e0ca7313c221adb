"""RolloutSchedule / ClusterRolloutSchedule planning (KUBERIK-SEMANTICS.md §6, §10 items 32–36).

Pure functions of ``controller.planning.schedules``: rule evaluation (DST in two
zones), status, the owned gates and their changes, and the ``windows`` facts the
builtin ``deploy-windows`` reads, evaluated by the engine on every backend.
Over 600 lines because scenario 33 is a 28-row rule table run for Allow and Deny.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from controller.api.actions import ROLLOUTGATES, ROLLOUTS, ObjectKey
from controller.planning.facts import assemble
from controller.planning.schedules import (
    GateUpdate,
    desired_gates,
    gate_changes,
    gate_labels,
    is_schedule_gate,
    schedule_status,
    schedule_window,
    windows_for_rollout,
)
from evaluators.base import CollectedFact
from evaluators.kuberik import rollout_facts
from policy_engine import Decision, Options, compile_policies, evaluate, load_builtin_policies
from policy_engine.cel.backend import CelBackend
from policy_engine.model import facts as model
from policy_engine.windows import is_open

Obj = dict[str, Any]
NO_SELECTOR = object()
WORKDAY: Obj = {"name": "workday", "timeRange": {"start": "09:00", "end": "17:00"}}
NAMESPACES = {"ns": {}, "prod": {"env": "prod"}, "dev": {"env": "dev"}}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def schedule(
    *rules: Obj,
    action: str | None = "Allow",
    timezone: str | None = None,
    kind: str = "RolloutSchedule",
    name: str = "s",
    selector: Obj | None = None,
    namespace_selector: Any = NO_SELECTOR,
    annotations: dict[str, str] | None = None,
) -> Obj:
    spec: Obj = {
        "rolloutSelector": selector or {"matchLabels": {"app": "r"}},
        "rules": list(rules),
    }
    if action is not None:
        spec["action"] = action
    if timezone is not None:
        spec["timezone"] = timezone
    if namespace_selector is not NO_SELECTOR:
        spec["namespaceSelector"] = namespace_selector
    meta: Obj = {"name": name, "uid": f"uid-{name}", "generation": 3}
    if kind == "RolloutSchedule":
        meta["namespace"] = "ns"
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "kuberik.com/v1alpha1", "kind": kind, "metadata": meta, "spec": spec}


def rollout(name: str = "r", namespace: str = "ns", app: str = "r") -> Obj:
    return {
        "apiVersion": "kuberik.com/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}, "uid": name},
        "spec": {},
    }


def created(gates: Sequence[Mapping[str, Any]], *names: str) -> list[Obj]:
    """The gates as the API server stores them after ``create`` (generateName resolved)."""
    out = []
    for gate, name in zip(gates, names, strict=True):
        meta = {k: v for k, v in gate["metadata"].items() if k != "generateName"}
        out.append({**gate, "metadata": {**meta, "name": name}})
    return out


def hours(start: str, end: str, name: str = "n") -> Obj:
    return {"name": name, "timeRange": {"start": start, "end": end}}


def ready(status: Any) -> tuple[str, str]:
    [condition] = [c for c in status.conditions if c["type"] == "Ready"]
    return condition["status"], condition["reason"]


# ------------------------------------------------------------------ scenario 32


@pytest.mark.parametrize(
    ("action", "now", "active", "passing", "following"),
    [
        ("Allow", "2026-03-04T10:00:00Z", True, True, "2026-03-04T17:00:00Z"),
        ("Allow", "2026-03-04T20:00:00Z", False, False, "2026-03-05T09:00:00Z"),
        ("Deny", "2026-03-04T10:00:00Z", True, False, "2026-03-04T17:00:00Z"),
        ("Deny", "2026-03-04T20:00:00Z", False, True, "2026-03-05T09:00:00Z"),
    ],
)
def test_a_schedule_owns_one_labelled_gate_per_rollout_passing_by_action(
    action: str, now: str, active: bool, passing: bool, following: str
) -> None:
    notes = {"gate.kuberik.com/pretty-name": "Work day", "gate.kuberik.com/description": "9-5"}
    s = schedule(WORKDAY, action=action, annotations={**notes, "other": "x"})
    rollouts = [rollout(), rollout("q", app="q"), rollout("r", namespace="elsewhere")]
    [gate] = desired_gates(s, rollouts, NAMESPACES, at(now))
    assert gate == {
        "apiVersion": "kuberik.com/v1alpha1",
        "kind": "RolloutGate",
        "metadata": {
            "generateName": "schedule-gate-",
            "namespace": "ns",
            "labels": {
                "gate.kuberik.com/schedule-name": "s",
                "gate.kuberik.com/schedule-kind": "RolloutSchedule",
                "gate.kuberik.com/schedule-namespace": "ns",
                "gate.kuberik.com/rollout-name": "r",
            },
            "ownerReferences": [
                {
                    "apiVersion": "kuberik.com/v1alpha1",
                    "kind": "RolloutSchedule",
                    "name": "s",
                    "uid": "uid-s",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "annotations": notes,
        },
        "spec": {"rolloutRef": {"name": "r"}, "passing": passing},
    }
    gates = created([gate], "schedule-gate-x7k2p")
    status = schedule_status(s, rollouts, NAMESPACES, at(now), gates=gates)
    assert (status.active, status.passing) == (active, passing)
    assert status.active_rules == (("workday",) if active else ())
    assert status.next_transition == status.requeue_at == at(following)
    assert (status.matching_rollouts, status.managed_gates) == (1, ("schedule-gate-x7k2p",))
    assert ready(status) == ("True", "Evaluated")
    assert status.as_status() == {
        "active": active,
        "activeRules": ["workday"] if active else [],
        "nextTransition": following.replace("+00:00", "Z"),
        "managedGates": ["schedule-gate-x7k2p"],
        "matchingRollouts": 1,
        "conditions": list(status.conditions),
    }


def test_the_action_defaults_to_deny_and_the_zone_to_utc() -> None:
    s = schedule(WORKDAY, action=None)
    [gate] = desired_gates(s, [rollout()], NAMESPACES, at("2026-03-04T10:00:00Z"))
    assert gate["spec"]["passing"] is False
    [gate] = desired_gates(s, [rollout()], NAMESPACES, at("2026-03-04T08:59:59Z"))
    assert gate["spec"]["passing"] is True


def test_gates_are_created_patched_left_alone_and_deleted_by_label() -> None:
    s = schedule(WORKDAY)
    ten, eight_pm = at("2026-03-04T10:00:00Z"), at("2026-03-04T20:00:00Z")
    desired = desired_gates(s, [rollout()], NAMESPACES, ten)
    assert gate_changes([], desired) == (desired, [], [])
    existing = created(desired, "schedule-gate-a")
    assert gate_changes(existing, desired) == ([], [], [])
    later = desired_gates(s, [rollout()], NAMESPACES, eight_pm)
    patch = GateUpdate("ns", "schedule-gate-a", {"spec": {"passing": False}})
    assert gate_changes(existing, later) == ([], [patch], [])
    moved = desired_gates(s, [rollout(app="other")], NAMESPACES, eight_pm)
    assert moved == []
    assert gate_changes(existing, moved) == (
        [],
        [],
        [ObjectKey(ROLLOUTGATES, "ns", "schedule-gate-a")],
    )
    status = schedule_status(s, [rollout(app="other")], NAMESPACES, eight_pm, gates=existing)
    assert (status.matching_rollouts, status.managed_gates) == (0, ())


def test_gate_changes_repair_drift_and_touch_only_the_schedules_own_gates() -> None:
    s = schedule(WORKDAY, annotations={"gate.kuberik.com/pretty-name": "Hours"})
    desired = desired_gates(s, [rollout()], NAMESPACES, at("2026-03-04T10:00:00Z"))
    [first, duplicate] = created(desired * 2, "schedule-gate-a", "schedule-gate-b")
    drifted = {
        **first,
        "metadata": {
            **first["metadata"],
            "annotations": {"gate.kuberik.com/description": "stale"},
            "ownerReferences": [],
        },
        "spec": {"rolloutRef": {"name": "r"}, "allowedVersions": []},
    }
    ordinary = {"metadata": {"name": "qa", "namespace": "ns"}, "spec": {"passing": False}}
    [foreign] = created(
        desired_gates(
            schedule(WORKDAY, name="t"), [rollout()], NAMESPACES, at("2026-03-04T10:00:00Z")
        ),
        "schedule-gate-t",
    )
    create, update, delete = gate_changes(
        [duplicate, ordinary, foreign, drifted], desired, schedule=s
    )
    assert create == []
    assert update == [
        GateUpdate(
            "ns",
            "schedule-gate-a",
            {
                "metadata": {
                    "annotations": {
                        "gate.kuberik.com/pretty-name": "Hours",
                        "gate.kuberik.com/description": None,
                    },
                    "ownerReferences": desired[0]["metadata"]["ownerReferences"],
                },
                "spec": {"passing": True, "allowedVersions": None},
            },
        )
    ]
    assert delete == [ObjectKey(ROLLOUTGATES, "ns", "schedule-gate-b")]
    assert gate_labels(s) == {
        "gate.kuberik.com/schedule-name": "s",
        "gate.kuberik.com/schedule-kind": "RolloutSchedule",
        "gate.kuberik.com/schedule-namespace": "ns",
    }


# ------------------------------------------------------------------ scenario 33

FRIDAY_NIGHT: Obj = {
    "name": "friday-night",
    "timeRange": {"start": "22:00", "end": "06:00"},
    "daysOfWeek": ["Friday"],
}
WEEKNIGHTS: Obj = {
    "name": "weeknights",
    "timeRange": {"start": "22:00", "end": "06:00"},
    "daysOfWeek": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
}
CHRISTMAS: Obj = {"name": "christmas", "dateRange": {"start": "2025-12-24", "end": "2025-12-26"}}
MORNING: Obj = {"name": "morning", "timeRange": {"start": "09:00", "end": "11:00"}}
AFTERNOON: Obj = {"name": "afternoon", "timeRange": {"start": "14:00", "end": "16:00"}}
ALL_DAY: Obj = {"name": "all-day", "timeRange": {"start": "09:00", "end": "09:00"}}
EARLY: Obj = {"name": "early", "timeRange": {"start": "02:30", "end": "04:00"}}
BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"

RULE_CASES: list[tuple[list[Obj], str | None, str, tuple[str, ...]]] = [
    # 22:00–06:00 on [Friday]: today's weekday is tested
    ([FRIDAY_NIGHT], None, "2026-03-06T23:00:00Z", ("friday-night",)),
    ([FRIDAY_NIGHT], None, "2026-03-07T02:00:00Z", ()),
    ([FRIDAY_NIGHT], None, "2026-03-06T12:00:00Z", ()),
    ([FRIDAY_NIGHT], None, "2026-03-06T02:00:00Z", ("friday-night",)),
    ([FRIDAY_NIGHT], None, "2026-03-06T22:00:00Z", ("friday-night",)),
    ([FRIDAY_NIGHT], None, "2026-03-06T21:59:59Z", ()),
    ([WEEKNIGHTS], None, "2026-03-07T02:00:00Z", ()),
    ([WEEKNIGHTS], None, "2026-03-09T02:00:00Z", ("weeknights",)),
    ([WEEKNIGHTS], None, "2026-03-09T06:00:00Z", ()),
    # inclusive local days
    ([CHRISTMAS], None, "2025-12-26T23:59:00Z", ("christmas",)),
    ([CHRISTMAS], None, "2025-12-27T00:00:00Z", ()),
    ([CHRISTMAS], None, "2025-12-24T00:00:00Z", ("christmas",)),
    ([CHRISTMAS], None, "2025-12-23T23:59:59Z", ()),
    ([CHRISTMAS], BERLIN, "2025-12-26T23:30:00Z", ()),
    ([CHRISTMAS], BERLIN, "2025-12-23T23:30:00Z", ("christmas",)),
    # rules are ORed; activeRules lists only the active ones
    ([MORNING, AFTERNOON], None, "2026-03-04T10:00:00Z", ("morning",)),
    ([MORNING, AFTERNOON], None, "2026-03-04T15:00:00Z", ("afternoon",)),
    ([MORNING, AFTERNOON], None, "2026-03-04T12:00:00Z", ()),
    # start == end is all day; a rule without constraints is always active
    ([ALL_DAY], None, "2026-03-04T08:59:00Z", ("all-day",)),
    ([ALL_DAY], None, "2026-03-04T09:00:00Z", ("all-day",)),
    ([{"name": "always"}], None, "2026-03-04T03:00:00Z", ("always",)),
    # 02:30–04:00 in Berlin on 2026-03-29 (02:00 CET → 03:00 CEST): active 01:00Z–02:00Z
    ([EARLY], BERLIN, "2026-03-29T00:59:59Z", ()),
    ([EARLY], BERLIN, "2026-03-29T01:00:00Z", ("early",)),
    ([EARLY], BERLIN, "2026-03-29T01:59:59Z", ("early",)),
    ([EARLY], BERLIN, "2026-03-29T02:00:00Z", ()),
    # the same rule in New York on 2026-03-08 (02:00 EST → 03:00 EDT): active 07:00Z–08:00Z
    ([EARLY], NEW_YORK, "2026-03-08T06:59:59Z", ()),
    ([EARLY], NEW_YORK, "2026-03-08T07:00:00Z", ("early",)),
    ([EARLY], NEW_YORK, "2026-03-08T08:00:00Z", ()),
]


@pytest.mark.parametrize(("rules", "zone", "now", "active_rules"), RULE_CASES)
@pytest.mark.parametrize("action", ["Allow", "Deny"])
def test_rule_evaluation(
    rules: list[Obj], zone: str | None, now: str, active_rules: tuple[str, ...], action: str
) -> None:
    s = schedule(*rules, action=action, timezone=zone)
    status = schedule_status(s, [], NAMESPACES, at(now))
    assert status.active_rules == active_rules
    assert status.active is bool(active_rules)
    assert status.passing is (status.active if action == "Allow" else not status.active)
    window = schedule_window(s)
    assert not isinstance(window, str)
    assert is_open(window, at(now)) is status.passing


TRANSITION_CASES: list[tuple[Obj, str, str, str]] = [
    # Berlin spring forward: a start inside the gap opens at the gap's end
    (EARLY, BERLIN, "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z"),
    (EARLY, BERLIN, "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"),
    # Berlin fall back (03:00 CEST → 02:00 CET): the repeated hour is inside on both passes
    (hours("02:00", "03:00"), BERLIN, "2026-10-24T23:30:00Z", "2026-10-25T00:00:00Z"),
    (hours("02:00", "03:00"), BERLIN, "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z"),
    (hours("02:30", "03:00"), BERLIN, "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z"),
    (hours("02:30", "03:00"), BERLIN, "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z"),
    # New York spring forward and a window inside the gap (it does not open that day)
    (EARLY, NEW_YORK, "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"),
    (EARLY, NEW_YORK, "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"),
    (hours("02:15", "02:45"), NEW_YORK, "2026-03-08T06:00:00Z", "2026-03-09T06:15:00Z"),
    # New York fall back (02:00 EDT → 01:00 EST): 01:00–02:00 is open 05:00Z–07:00Z
    (hours("01:00", "02:00"), NEW_YORK, "2026-11-01T04:30:00Z", "2026-11-01T05:00:00Z"),
    (hours("01:00", "02:00"), NEW_YORK, "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z"),
    # days and dates flip at local midnight
    (FRIDAY_NIGHT, BERLIN, "2026-03-06T12:00:00Z", "2026-03-06T21:00:00Z"),
    (FRIDAY_NIGHT, BERLIN, "2026-03-06T21:00:00Z", "2026-03-06T23:00:00Z"),
    (CHRISTMAS, BERLIN, "2025-12-20T00:00:00Z", "2025-12-23T23:00:00Z"),
]


@pytest.mark.parametrize(("rule", "zone", "now", "following"), TRANSITION_CASES)
def test_next_transition_is_exact_across_dst(
    rule: Obj, zone: str, now: str, following: str
) -> None:
    status = schedule_status(schedule(rule, timezone=zone), [], NAMESPACES, at(now))
    assert status.next_transition == status.requeue_at == at(following)
    after = schedule_status(schedule(rule, timezone=zone), [], NAMESPACES, at(following))
    before = at(following) - timedelta(seconds=1)
    assert schedule_status(schedule(rule, timezone=zone), [], NAMESPACES, before).active is not (
        after.active
    )


@pytest.mark.parametrize(
    ("now", "active"),
    [
        ("2026-10-25T00:30:00Z", True),  # 02:30 CEST
        ("2026-10-25T01:00:00Z", False),  # 02:00 CET, before the second 02:30
        ("2026-10-25T01:30:00Z", True),  # 02:30 CET
        ("2026-10-25T02:00:00Z", False),  # 03:00 CET
    ],
)
def test_a_repeated_hour_is_inside_on_both_passes(now: str, active: bool) -> None:
    s = schedule(hours("02:30", "03:00"), timezone=BERLIN)
    assert schedule_status(s, [], NAMESPACES, at(now)).active is active


# ------------------------------------------------------------------ scenario 34


@pytest.mark.parametrize(
    ("namespace_selector", "namespaces"),
    [
        ({"matchLabels": {"env": "prod"}}, ["prod"]),
        ({}, ["dev", "prod"]),
        (NO_SELECTOR, ["dev", "prod"]),
    ],
)
def test_a_cluster_schedule_selects_namespaces(
    namespace_selector: Any, namespaces: list[str]
) -> None:
    s = schedule(
        WORKDAY,
        kind="ClusterRolloutSchedule",
        name="c",
        selector={"matchLabels": {"app": "foo"}},
        namespace_selector=namespace_selector,
    )
    rollouts = [rollout("foo", "prod", "foo"), rollout("foo", "dev", "foo"), rollout("r", "prod")]
    now = at("2026-03-04T10:00:00Z")
    desired = desired_gates(s, rollouts, NAMESPACES, now)
    assert [g["metadata"]["namespace"] for g in desired] == namespaces
    for gate in desired:
        assert gate["metadata"]["labels"] == {
            "gate.kuberik.com/schedule-name": "c",
            "gate.kuberik.com/schedule-kind": "ClusterRolloutSchedule",
            "gate.kuberik.com/rollout-name": "foo",
        }
        assert gate["metadata"]["ownerReferences"][0]["kind"] == "ClusterRolloutSchedule"
    gates = created(desired, *(f"schedule-gate-{n}" for n in namespaces))
    status = schedule_status(s, rollouts, NAMESPACES, now, gates=gates)
    assert status.matching_rollouts == len(namespaces)
    assert status.managed_gates == tuple(f"{n}/schedule-gate-{n}" for n in namespaces)
    keys = windows_for_rollout(rollouts[0], [s], NAMESPACES)
    assert list(keys) == ["ClusterRolloutSchedule/c"]


def test_a_rollout_in_a_namespace_that_stops_matching_loses_its_gate() -> None:
    s = schedule(
        WORKDAY,
        kind="ClusterRolloutSchedule",
        name="c",
        namespace_selector={"matchLabels": {"env": "prod"}},
    )
    now = at("2026-03-04T10:00:00Z")
    existing = created(desired_gates(s, [rollout("r", "prod")], NAMESPACES, now), "schedule-gate-p")
    relabelled = {**NAMESPACES, "prod": {"env": "staging"}}
    desired = desired_gates(s, [rollout("r", "prod")], relabelled, now)
    assert gate_changes(existing, desired, schedule=s) == (
        [],
        [],
        [ObjectKey(ROLLOUTGATES, "prod", "schedule-gate-p")],
    )


# ------------------------------------------------------------------ scenario 35


@pytest.mark.parametrize("action", ["Allow", "Deny"])
def test_a_lone_past_date_range_has_no_transition_and_no_requeue(action: str) -> None:
    s = schedule(
        {"name": "old", "dateRange": {"start": "2025-01-01", "end": "2025-01-02"}}, action=action
    )
    status = schedule_status(s, [rollout()], NAMESPACES, at("2026-03-04T10:00:00Z"))
    assert (status.active, status.next_transition, status.requeue_at) == (False, None, None)
    assert status.passing is (action == "Deny")
    assert "nextTransition" not in status.as_status()
    assert ready(status) == ("True", "Evaluated")


def test_a_transition_beyond_the_horizon_is_not_reported_but_looked_at_again() -> None:
    s = schedule(
        {"name": "freeze", "dateRange": {"start": "2026-01-01", "end": "2026-12-31"}},
        action="Deny",
    )
    now = at("2026-03-04T10:00:00Z")
    status = schedule_status(s, [], NAMESPACES, now)
    assert (status.active, status.next_transition) == (True, None)
    assert status.requeue_at == now + timedelta(days=90)


@pytest.mark.parametrize("action", ["Allow", "Deny"])
def test_an_invalid_timezone_closes_every_gate(action: str) -> None:
    s = schedule(WORKDAY, action=action, timezone="Mars/Base")
    now = at("2026-03-04T20:00:00Z")
    [gate] = desired_gates(s, [rollout()], NAMESPACES, now)
    assert gate["spec"]["passing"] is False
    status = schedule_status(s, [rollout()], NAMESPACES, now)
    assert (status.active, status.passing, status.next_transition, status.requeue_at) == (
        False,
        False,
        None,
        None,
    )
    assert ready(status) == ("False", "InvalidTimezone")
    assert "spec.timezone 'Mars/Base': unknown time zone" in status.conditions[0]["message"]
    problem = schedule_window(s)
    assert isinstance(problem, str)
    assert problem.startswith("spec.timezone 'Mars/Base': unknown time zone")


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        (
            [{"name": "x", "dateRange": {"start": "2026-01-05", "end": "2026-01-01"}}],
            "spec.rules[0].dateRange '2026-01-05..2026-01-01': the range ends before it starts",
        ),
        (
            [WORKDAY, {"name": "x", "dateRange": {"start": "2026-02-30", "end": "2026-03-01"}}],
            "spec.rules[1].dateRange '2026-02-30..2026-03-01': 2026-02-30 is not a calendar date",
        ),
        (
            [{"name": "x", "timeRange": {"start": "9:00", "end": "17:00"}}],
            "spec.rules[0].timeRange '9:00-17:00': expected a time range HH:MM-HH:MM",
        ),
        ([], "spec.rules: at least one rule is required"),
    ],
)
def test_an_invalid_rule_is_reported_and_closes_the_gates(rules: list[Obj], problem: str) -> None:
    s = schedule(*rules, action="Deny")
    found = schedule_window(s)
    assert isinstance(found, str)
    assert found.startswith(problem)
    now = at("2026-03-04T10:00:00Z")
    assert ready(schedule_status(s, [rollout()], NAMESPACES, now)) == ("False", "InvalidRule")
    [gate] = desired_gates(s, [rollout()], NAMESPACES, now)
    assert gate["spec"]["passing"] is False


def test_ready_keeps_its_transition_time_while_the_status_holds() -> None:
    s = schedule(WORKDAY)
    first = schedule_status(s, [], NAMESPACES, at("2026-03-04T10:00:00Z"))
    s["status"] = first.as_status()
    second = schedule_status(s, [], NAMESPACES, at("2026-03-04T20:00:00Z"))
    [condition] = second.conditions
    assert condition["lastTransitionTime"] == "2026-03-04T10:00:00Z"
    assert condition["observedGeneration"] == 3
    broken = {**s, "spec": {**s["spec"], "timezone": "Mars/Base"}}
    [condition] = schedule_status(broken, [], NAMESPACES, at("2026-03-04T21:00:00Z")).conditions
    assert (condition["status"], condition["lastTransitionTime"]) == (
        "False",
        "2026-03-04T21:00:00Z",
    )


# ------------------------------------------------------------------ windows facts


def test_schedules_selecting_a_rollout_become_its_windows() -> None:
    business = schedule(
        {**WORKDAY, "daysOfWeek": ["Monday", "Friday"]}, timezone=BERLIN, name="hours"
    )
    freeze = schedule(
        {"name": "holidays", "dateRange": {"start": "2026-12-19", "end": "2027-01-06"}},
        action="Deny",
        kind="ClusterRolloutSchedule",
        name="freeze",
        selector={},
    )
    other = schedule(WORKDAY, name="other", selector={"matchLabels": {"app": "q"}})
    assert windows_for_rollout(rollout(), [business, freeze, other], NAMESPACES) == {
        "RolloutSchedule/ns/hours": {
            "name": "hours",
            "timezone": BERLIN,
            "allow": [{"name": "workday", "days": ["Mon", "Fri"], "between": "09:00-17:00"}],
            "source": {"kind": "RolloutSchedule", "namespace": "ns", "name": "hours"},
        },
        "ClusterRolloutSchedule/freeze": {
            "name": "freeze",
            "timezone": "UTC",
            "deny": [{"name": "holidays", "dates": "2026-12-19..2027-01-06"}],
            "source": {"kind": "ClusterRolloutSchedule", "name": "freeze"},
        },
    }
    assert windows_for_rollout(rollout(namespace="dev"), [business], NAMESPACES) == {}


def test_schedule_gates_are_recognised_by_their_label() -> None:
    [gate] = desired_gates(schedule(WORKDAY), [rollout()], NAMESPACES, at("2026-03-04T10:00:00Z"))
    assert is_schedule_gate(gate)
    assert not is_schedule_gate({"metadata": {"name": "qa", "labels": {"team": "qa"}}})
    assert not is_schedule_gate({"metadata": {"name": "bare"}})


# ------------------------------------------------------------------ scenario 36 (engine half)


def engine_facts(s: Obj, gates: Sequence[Mapping[str, Any]], now: datetime) -> model.FactSet:
    """Facts as the lead's builder will make them: schedule gates out, schedules as windows."""
    r = rollout()
    collected = [
        fact
        for fact in rollout_facts(
            r,
            history=[
                {
                    "id": 1,
                    "version": {"tag": "1.0.0"},
                    "timestamp": "2026-03-01T10:00:00Z",
                    "bakeStatus": "Succeeded",
                }
            ],
            candidates=[{"tag": "1.1.0"}],
            gates=[g for g in gates if not is_schedule_gate(g)],
            health_checks=[],
            observed_at=now,
        )
        if fact.path != ("windows",)
    ]
    windows = windows_for_rollout(r, [s], NAMESPACES)
    collected.append(
        CollectedFact(("windows",), windows, None, model.Provenance("kubernetes", observed_at=now))
    )
    return assemble(collected, now, ObjectKey(ROLLOUTS, "ns", "r"))


def test_a_closed_deny_window_makes_the_candidate_pending_until_it_opens(
    backend: CelBackend,
) -> None:
    policies = compile_policies(load_builtin_policies(), backend)
    night = {"name": "night", "timeRange": {"start": "17:00", "end": "09:00"}}
    s = schedule(night, action="Deny", timezone=BERLIN)
    ordinary = {"metadata": {"name": "qa", "namespace": "ns"}, "spec": {"passing": True}}
    now = at("2026-03-04T07:30:00Z")  # 08:30 in Berlin
    opening = at("2026-03-04T08:00:00Z")  # 09:00 in Berlin
    own = desired_gates(s, [rollout()], NAMESPACES, now)
    facts = engine_facts(s, [*created(own, "schedule-gate-n"), ordinary], now)
    assert [g["name"] for g in facts.values["gates"]] == ["qa"]
    result = evaluate(policies, facts, backend, Options())
    assert result.decision is Decision.PENDING
    assert result.next_change == opening
    status = schedule_status(s, [rollout()], NAMESPACES, now)
    assert status.next_transition == status.requeue_at == opening
    [verdict] = result.verdicts
    [windows_rule] = [r for r in verdict.results if r.rule == "deploy-windows"]
    assert (windows_rule.outcome, windows_rule.next_change) == ("pending", opening)
    later = evaluate(policies, engine_facts(s, [ordinary], opening), backend, Options())
    assert later.decision is Decision.ALLOWED


def test_an_invalid_schedule_window_fails_closed_in_the_engine(backend: CelBackend) -> None:
    policies = compile_policies(load_builtin_policies(), backend)
    s = schedule(WORKDAY, timezone="Mars/Base")
    result = evaluate(policies, engine_facts(s, [], at("2026-03-04T10:00:00Z")), backend, Options())
    assert result.decision is Decision.BLOCKED
    [verdict] = result.verdicts
    [windows_rule] = [r for r in verdict.results if r.rule == "deploy-windows"]
    assert windows_rule.error is not None
    assert "Mars/Base" in str(windows_rule.error)
