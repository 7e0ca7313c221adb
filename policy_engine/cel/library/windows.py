"""Time functions of the library: ``since``, ``inWindow``, ``nextTransition``.

Callers: ``cel.library`` assembles them per policy (``inWindow(now, 'name')``
resolves names in the policy's own window table); backends register them.
Must not read the clock: time enters only through arguments. ``since(x)`` is
compiled as ``now - x`` by ``cel.environment`` and has no implementation here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from policy_engine import windows
from policy_engine.cel.types import CelType, Example, FunctionDecl, LibraryError, Overload

HORIZON = timedelta(days=90)
T = CelType


def _window_from_map(value: Any, function: str) -> windows.Window:
    if not isinstance(value, Mapping):
        raise LibraryError(f"{function}(): argument 2: expected a window map, got {value!r:.80}")
    try:
        return windows.parse_window(value)
    except windows.WindowSyntaxError as exc:
        raise LibraryError(f"{function}(): argument 2: {exc}") from exc


def _named(table: Mapping[str, windows.Window], name: Any, function: str) -> windows.Window:
    if not isinstance(name, str) or name not in table:
        known = ", ".join(sorted(table)) or "none declared"
        raise LibraryError(f"{function}(): argument 2: no window {name!r} (windows: {known})")
    return table[name]


def _aware(instant: Any, function: str) -> datetime:
    if not isinstance(instant, datetime) or instant.tzinfo is None:
        raise LibraryError(f"{function}(): argument 1: expected a timestamp, got {instant!r:.80}")
    return instant


def _next(window: windows.Window, instant: datetime) -> datetime:
    found = windows.next_transition(window, instant, instant + HORIZON)
    if found is None:
        raise LibraryError(
            f"nextTransition(): window {window.name!r} does not change within {HORIZON.days} days"
        )
    return found


def time_functions(table: Mapping[str, windows.Window]) -> tuple[FunctionDecl, ...]:
    """The time family with ``inWindow``/``nextTransition`` by name bound to ``table``."""

    def in_window_named(instant: Any, name: Any) -> bool:
        return windows.is_open(_named(table, name, "inWindow"), _aware(instant, "inWindow"))

    def in_window_map(instant: Any, window: Any) -> bool:
        return windows.is_open(_window_from_map(window, "inWindow"), _aware(instant, "inWindow"))

    def next_named(instant: Any, name: Any) -> datetime:
        return _next(_named(table, name, "nextTransition"), _aware(instant, "nextTransition"))

    def next_map(instant: Any, window: Any) -> datetime:
        parsed = _window_from_map(window, "nextTransition")
        return _next(parsed, _aware(instant, "nextTransition"))

    return (
        FunctionDecl(
            "since",
            (Overload("since_timestamp", (T.TIMESTAMP,), T.DURATION, _since_placeholder),),
            "Time elapsed from a timestamp until now: now - ts.",
            (
                Example("since(timestamp('2026-03-03T10:30:00Z')) == duration('24h')", True),
                Example("since(timestamp('2026-03-04T10:00:00Z')) >= duration('1h')", False),
            ),
            family="time",
            time_edges=True,
            compiled_as="(now - ({0}))",
        ),
        FunctionDecl(
            "inWindow",
            (
                Overload("in_window_string", (T.TIMESTAMP, T.STRING), T.BOOL, in_window_named),
                Overload("in_window_map", (T.TIMESTAMP, T.MAP), T.BOOL, in_window_map),
            ),
            "Whether a deploy window is open at an instant: a window of the policy by name, "
            "or a Window value such as windows[k].",
            (
                Example(
                    "inWindow(timestamp('2026-03-04T10:30:00Z'), {'name': 'w', 'timezone': "
                    "'Europe/Berlin', 'allow': [{'name': 'day', 'between': '09:00-17:00'}], "
                    "'deny': []})",
                    True,
                ),
                Example(
                    "inWindow(timestamp('2026-03-07T10:30:00Z'), {'name': 'w', 'timezone': "
                    "'Europe/Berlin', 'allow': [{'name': 'weekdays', 'days': ['Mon', 'Tue', "
                    "'Wed', 'Thu', 'Fri']}], 'deny': []})",
                    False,
                ),
            ),
            family="time",
            time_edges=True,
        ),
        FunctionDecl(
            "nextTransition",
            (
                Overload(
                    "next_transition_string", (T.TIMESTAMP, T.STRING), T.TIMESTAMP, next_named
                ),
                Overload("next_transition_map", (T.TIMESTAMP, T.MAP), T.TIMESTAMP, next_map),
            ),
            "The next instant after a timestamp at which inWindow flips (error beyond 90 days).",
            (
                Example(
                    "nextTransition(timestamp('2026-03-07T10:30:00Z'), {'name': 'w', "
                    "'timezone': 'Europe/Berlin', 'allow': [{'name': 'day', "
                    "'between': '09:00-17:00'}], 'deny': []}) == "
                    "timestamp('2026-03-07T16:00:00Z')",
                    True,
                ),
            ),
            family="time",
            time_edges=True,
        ),
    )


def _since_placeholder(_: Any) -> timedelta:
    raise LibraryError("since() is rewritten to 'now - ts' at compile time")
