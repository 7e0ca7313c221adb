"""Condition lists as Kubernetes writes them: set, find, and keep transition times.

Callers: ``planning`` (Rollout conditions of KUBERIK-SEMANTICS.md §2.6) and
``events`` (transitions). Pure: the instant is passed in; never reads a clock.
``Reconciling`` and ``Stalled`` follow kstatus: present only while True.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from policy_engine.model.times import format_timestamp

KSTATUS_ONLY_WHILE_TRUE = ("Reconciling", "Stalled")
MESSAGE_LIMIT = 1024

Condition = dict[str, Any]


def find(conditions: Sequence[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    """The condition of ``kind``, or None."""
    return next((c for c in conditions if c.get("type") == kind), None)


def is_true(conditions: Sequence[Mapping[str, Any]], kind: str) -> bool:
    found = find(conditions, kind)
    return found is not None and found.get("status") == "True"


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    kind: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None = None,
) -> list[Condition]:
    """``conditions`` with ``kind`` set; ``lastTransitionTime`` moves only when status does."""
    previous = find(conditions, kind)
    if kind in KSTATUS_ONLY_WHILE_TRUE and status != "True":
        return [dict(c) for c in conditions if c.get("type") != kind]
    changed = previous is None or previous.get("status") != status
    condition: Condition = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": _one_line(message),
        "lastTransitionTime": (
            format_timestamp(now)
            if changed or previous is None
            else previous.get("lastTransitionTime", format_timestamp(now))
        ),
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    updated = [dict(c) if c.get("type") != kind else condition for c in conditions]
    if previous is None:
        updated.append(condition)
    return updated


def remove(conditions: Sequence[Mapping[str, Any]], kind: str) -> list[Condition]:
    return [dict(c) for c in conditions if c.get("type") != kind]


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MESSAGE_LIMIT else flat[: MESSAGE_LIMIT - 1] + "…"
