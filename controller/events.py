"""Events of a Rollout (KUBERIK-SEMANTICS.md §2.7): what happened in one pass, on transitions only.

Callers: ``planning`` records ``Happening``s as it moves the state;
``condition_events`` adds the events that belong to condition transitions
(gates, health blocking, Ready errors). Pure; ``applying`` posts them after
the status write, so each is posted at most once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from controller.conditions import find

EventType = Literal["Normal", "Warning"]

READY_ERROR_REASONS = frozenset(
    {"RolloutFailed", "GateListFailed", "HealthCheckListFailed", "FactsUnavailable"}
)


@dataclass(frozen=True, slots=True)
class Happening:
    """One event to post: type, reason, message."""

    type: EventType
    reason: str
    message: str


def normal(reason: str, message: str) -> Happening:
    return Happening("Normal", reason, message)


def warning(reason: str, message: str) -> Happening:
    return Happening("Warning", reason, message)


def condition_events(
    before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]
) -> list[Happening]:
    """Events for conditions whose (status, reason) changed in this pass."""
    happenings: list[Happening] = []
    gates = _changed(before, after, "GatesPassing")
    if gates is not None and gates.get("reason") != "UpToDate":
        kind: EventType = "Normal" if gates.get("status") == "True" else "Warning"
        happenings.append(Happening(kind, str(gates["reason"]), str(gates.get("message", ""))))
    blocked = _changed(before, after, "DeploymentBlocked")
    if blocked is not None and blocked.get("status") == "True":
        happenings.append(warning("HealthCheckBlocking", str(blocked.get("message", ""))))
    ready = _changed(before, after, "Ready")
    if ready is not None and ready.get("reason") in READY_ERROR_REASONS:
        happenings.append(warning(str(ready["reason"]), str(ready.get("message", ""))))
    return happenings


def _changed(
    before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]], kind: str
) -> Mapping[str, Any] | None:
    new = find(after, kind)
    if new is None:
        return None
    old = find(before, kind)
    same = (
        old is not None
        and old.get("status") == new.get("status")
        and old.get("reason") == new.get("reason")
        and (new.get("status") == "True" or old.get("message") == new.get("message"))
    )
    return None if same else new
