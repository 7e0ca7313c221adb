"""Sweeps: how a decision (or any state) changes over a time range, bisected to the second.

Callers: ``eval --sweep`` and ``testing`` (``sweep`` cases). Generic over the
state function; pure (the caller's function evaluates facts at an instant).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

State = TypeVar("State", bound=Hashable)
SECOND = timedelta(seconds=1)
MAX_STEPS = 100_000


class SweepTooLong(ValueError):
    """More steps than MAX_STEPS."""


@dataclass(frozen=True, slots=True)
class Transition(Generic[State]):
    at: datetime
    before: State
    after: State


def sweep(
    state_at: Callable[[datetime], State],
    start: datetime,
    end: datetime,
    step: timedelta,
) -> tuple[State, list[Transition[State]]]:
    """The state at ``start`` and every change in ``(start, end]``, each at the exact second.

    The range is sampled every ``step``; a change between two samples is
    bisected to the first whole second at which the new state holds.
    Changes that revert within one step are not seen (choose a finer step).
    """
    if step <= timedelta(0):
        raise ValueError("sweep step must be positive")
    if (end - start) / step > MAX_STEPS:
        raise SweepTooLong(f"sweep has more than {MAX_STEPS} steps; use a larger step")
    initial = state_at(start)
    transitions: list[Transition[State]] = []
    previous_time, previous = start, initial
    current_time = start
    while current_time < end:
        current_time = min(current_time + step, end)
        current = state_at(current_time)
        if current != previous:
            at = _bisect(state_at, previous_time, current_time, previous)
            transitions.append(Transition(at, previous, state_at(at)))
        previous_time, previous = current_time, current
    return initial, transitions


def _bisect(
    state_at: Callable[[datetime], State], low: datetime, high: datetime, before: State
) -> datetime:
    """The earliest whole second in ``(low, high]`` whose state differs from ``before``."""
    low_s = int(low.timestamp())
    high_s = int(high.timestamp()) + (1 if high.microsecond else 0)
    tz = high.tzinfo
    while high_s - low_s > 1:
        middle = (low_s + high_s) // 2
        if state_at(datetime.fromtimestamp(middle, tz)) != before:
            high_s = middle
        else:
            low_s = middle
    return datetime.fromtimestamp(high_s, tz)
