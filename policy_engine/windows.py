"""Deployment windows: is a window open at an instant, and when does it next change.

Callers: the CEL library (``inWindow``, ``nextTransition``), evaluation's
``nextChange`` (a window's transitions are time edges) and explaining (which
entries are active, and why). Semantics are POLICY-FORMATS.md §5.5: every
constraint is tested on the local wall clock of a real instant in the
window's zone, so DST gaps and folds need no special rules. Transitions are
computed analytically from day boundaries, entry start/end wall times and
the zone's offset changes. Pure: must never read the clock.
"""

from __future__ import annotations

import difflib
import functools
import heapq
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from policy_engine.model.policy import WindowSpec
from policy_engine.model.times import ensure_aware

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FULL_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAY_INDEX = {
    name.lower(): i for names in (DAY_NAMES, _FULL_DAY_NAMES) for i, name in enumerate(names)
}
_BETWEEN = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_LOOSE_BETWEEN = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATES_FORMAT = "expected YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD"
_DAY = timedelta(days=1)
_MINUTES_PER_DAY = 1440


@dataclass(frozen=True, slots=True)
class WindowEntry:
    """One allow or deny entry; a constraint set to None does not constrain."""

    name: str
    days: frozenset[int] | None  # 0=Mon … 6=Sun
    between: tuple[int, int] | None  # minutes since local midnight, [start, end)
    dates: tuple[date, date] | None  # inclusive local dates


@dataclass(frozen=True, slots=True)
class Window:
    """A named window: an IANA zone and its allow and deny entries."""

    name: str
    timezone: str
    allow: tuple[WindowEntry, ...]
    deny: tuple[WindowEntry, ...]


@dataclass(frozen=True, slots=True)
class EntryState:
    """An entry at an instant; ``because`` names the first failing constraint."""

    entry: WindowEntry
    kind: Literal["allow", "deny"]
    active: bool
    because: str  # "date", "day", "time", or "" when active


class WindowSyntaxError(ValueError):
    """An invalid window; ``field`` is the path inside it (``allow[1].between``)."""

    def __init__(
        self, window: str, field: str, value: Any, problem: str, hint: str | None = None
    ) -> None:
        where = f"window {window!r}: " if window else ""
        super().__init__(f"{where}{field} {value!r}: {problem}")
        self.window = window
        self.field = field
        self.value = value
        self.hint = hint


# ---------------------------------------------------------------- parsing


def parse_window(raw: Mapping[str, Any]) -> Window:
    """Validates a window map ``{name, timezone, allow[], deny[]}``; other keys are ignored."""
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise WindowSyntaxError("", "name", name, "a window needs a non-empty name")
    zone = raw.get("timezone")
    _check_zone(name, zone)
    return Window(
        name, str(zone), _parse_entries(name, "allow", raw), _parse_entries(name, "deny", raw)
    )


def window_from_spec(spec: WindowSpec) -> Window:
    """Builds a Window from the policy model (``spec.windows[]``)."""
    return parse_window(spec.model_dump())


def _check_zone(window: str, zone: Any) -> None:
    if not isinstance(zone, str) or not zone:
        raise WindowSyntaxError(window, "timezone", zone, "an IANA time zone name is required")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        suggestion = _closest_zone(zone)
        hint = f"did you mean {suggestion}?" if suggestion else "use an IANA name such as UTC"
        raise WindowSyntaxError(window, "timezone", zone, "unknown time zone", hint) from exc


@functools.cache
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def _closest_zone(zone: str) -> str | None:
    names = _zone_names()
    found = difflib.get_close_matches(zone.lower(), list(names), n=1, cutoff=0.6)
    return names[found[0]] if found else None


def _parse_entries(window: str, kind: str, raw: Mapping[str, Any]) -> tuple[WindowEntry, ...]:
    items = raw.get(kind)
    if items is None:
        return ()
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise WindowSyntaxError(window, kind, items, "expected a list of entries")
    return tuple(_parse_entry(window, f"{kind}[{i}]", item) for i, item in enumerate(items))


def _parse_entry(window: str, path: str, item: Any) -> WindowEntry:
    if not isinstance(item, Mapping):
        raise WindowSyntaxError(window, path, item, "expected a map {name, days, …}")
    name = item.get("name")
    if name is None:
        name = path
    if not isinstance(name, str):
        raise WindowSyntaxError(window, f"{path}.name", name, "expected a string")
    return WindowEntry(
        name,
        _parse_days(window, f"{path}.days", item.get("days")),
        _parse_between(window, f"{path}.between", item.get("between")),
        _parse_dates(window, f"{path}.dates", item.get("dates")),
    )


def _parse_days(window: str, path: str, value: Any) -> frozenset[int] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise WindowSyntaxError(window, path, value, "expected a list of days such as [Mon, Tue]")
    days = [_parse_day(window, f"{path}[{i}]", v) for i, v in enumerate(value)]
    return frozenset(days) if days else None  # [] = any day, as Kuberik's daysOfWeek


def _parse_day(window: str, path: str, value: Any) -> int:
    key = value.lower() if isinstance(value, str) else ""
    if key in _DAY_INDEX:
        return _DAY_INDEX[key]
    close = difflib.get_close_matches(key, list(_DAY_INDEX), n=1, cutoff=0.5)
    hint = f"did you mean {DAY_NAMES[_DAY_INDEX[close[0]]]}?" if close else None
    raise WindowSyntaxError(window, path, value, "expected a day Mon…Sun", hint)


def _parse_between(window: str, path: str, value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else ""
    match = _BETWEEN.match(text.strip())
    if match is None:
        hint = "write times as HH:MM-HH:MM, e.g. 09:00-17:00"
        loose = _LOOSE_BETWEEN.match(text.strip())
        if loose:
            h1, m1, h2, m2 = loose.groups()
            hint = f"write hours with two digits: '{int(h1):02d}:{m1}-{int(h2):02d}:{m2}'"
        raise WindowSyntaxError(window, path, value, "expected a time range HH:MM-HH:MM", hint)
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return _minute(window, path, value, h1, m1), _minute(window, path, value, h2, m2)


def _minute(window: str, path: str, value: Any, hour: int, minute: int) -> int:
    if minute > 59 or hour > 24 or (hour == 24 and minute):
        raise WindowSyntaxError(
            window, path, value, f"{hour:02d}:{minute:02d} is not a time of day (00:00..24:00)"
        )
    return hour * 60 + minute


def _parse_dates(window: str, path: str, value: Any) -> tuple[date, date] | None:
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value, value
    if not isinstance(value, str):
        raise WindowSyntaxError(window, path, value, _DATES_FORMAT)
    first, sep, last = value.strip().partition("..")
    start = _parse_date(window, path, value, first)
    end = _parse_date(window, path, value, last) if sep else start
    if end < start:
        raise WindowSyntaxError(
            window, path, value, "the range ends before it starts", f"write '{last}..{first}'"
        )
    return start, end


def _parse_date(window: str, path: str, value: str, text: str) -> date:
    problem = _DATES_FORMAT
    if _DATE.match(text.strip()):
        try:
            return date.fromisoformat(text.strip())
        except ValueError:
            problem = f"{text.strip()} is not a calendar date"
    raise WindowSyntaxError(window, path, value, problem)


# ---------------------------------------------------------------- evaluation


def is_open(window: Window, instant: datetime) -> bool:
    """True when no deny entry is active and, if there are allow entries, one is."""
    return _open_local(window, _local(window, instant))


def entry_active(entry: WindowEntry, local: datetime) -> bool:
    """Whether every constraint of ``entry`` holds on the wall clock ``local``."""
    return not _failing(entry, local)


def explain_at(window: Window, instant: datetime) -> tuple[EntryState, ...]:
    """Each entry (allow first, then deny) as active or not at ``instant``, and why."""
    local = _local(window, instant)
    allow = tuple(_state(e, "allow", local) for e in window.allow)
    return allow + tuple(_state(e, "deny", local) for e in window.deny)


def describe_entry(entry: WindowEntry) -> str:
    """``2026-12-19..2027-01-06``, ``Mon Tue 09:00-17:00``; ``always`` when unconstrained."""
    parts: list[str] = []
    if entry.dates is not None:
        first, last = entry.dates
        parts.append(first.isoformat() if first == last else f"{first}..{last}")
    if entry.days is not None:
        parts.append(" ".join(DAY_NAMES[d] for d in sorted(entry.days)))
    if entry.between is not None:
        parts.append(f"{_hhmm(entry.between[0])}-{_hhmm(entry.between[1])}")
    return " ".join(parts) or "always"


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _state(entry: WindowEntry, kind: Literal["allow", "deny"], local: datetime) -> EntryState:
    because = _failing(entry, local)
    return EntryState(entry, kind, not because, because)


def _local(window: Window, instant: datetime) -> datetime:
    return ensure_aware(instant, "instant").astimezone(ZoneInfo(window.timezone))


def _open_local(window: Window, local: datetime) -> bool:
    if any(not _failing(e, local) for e in window.deny):
        return False
    return not window.allow or any(not _failing(e, local) for e in window.allow)


def _failing(entry: WindowEntry, local: datetime) -> str:
    """The first constraint (date, day, time) that does not hold, or ``""``."""
    day = local.date()
    if not _in_dates(entry, day):
        return "date"
    if entry.days is not None and day.weekday() not in entry.days:
        return "day"
    if entry.between is not None and not _in_between(entry.between, local.hour * 60 + local.minute):
        return "time"
    return ""


def _in_dates(entry: WindowEntry, day: date) -> bool:
    return entry.dates is None or entry.dates[0] <= day <= entry.dates[1]


def _on_day(entry: WindowEntry, day: date) -> bool:
    """The date and weekday constraints (the ones that hold for a whole local day)."""
    days_ok = entry.days is None or day.weekday() in entry.days
    return days_ok and _in_dates(entry, day)


def _in_between(between: tuple[int, int], minute: int) -> bool:
    start, end = between
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


# ---------------------------------------------------------------- transitions


def next_transition(window: Window, after: datetime, horizon: datetime) -> datetime | None:
    """The first instant in (after, horizon] where ``is_open`` differs from at ``after`` (UTC)."""
    return next(transitions(window, after, horizon), None)


def transitions(window: Window, start: datetime, end: datetime) -> Iterator[datetime]:
    """Every instant in (start, end] where ``is_open`` flips, ascending, in UTC, lazily."""
    first = ensure_aware(start, "start")
    last = ensure_aware(end, "end")
    if not (window.allow or window.deny) or last <= first:
        return
    zone = ZoneInfo(window.timezone)
    state = _open_local(window, first.astimezone(zone))
    for candidate in _candidates(window, zone, first, last):
        now_open = _open_local(window, candidate.astimezone(zone))
        if now_open != state:
            state = now_open
            yield candidate


def _candidates(
    window: Window, zone: ZoneInfo, after: datetime, limit: datetime
) -> Iterator[datetime]:
    """Distinct instants in (after, limit], ascending, including every instant where
    ``is_open`` can change: day starts, entry boundaries and the zone's offset changes."""
    last: datetime | None = None
    for candidate in _ordered(window, zone, after, limit):
        if candidate > limit:
            return
        if candidate > after and candidate != last:
            last = candidate
            yield candidate


def _ordered(
    window: Window, zone: ZoneInfo, after: datetime, limit: datetime
) -> Iterator[datetime]:
    """Candidates day by day from the day before ``after``'s, ascending, past ``limit``.

    Every instant whose wall date is ``d`` or later is at or after ``_day_start(d)``,
    so pending candidates below the next day's start are final (a fold can put a
    day's second pass after the next day's start: it stays pending until then).
    """
    day = max(after.astimezone(zone).date(), date.min + _DAY) - _DAY
    start, offset = _day_start(zone, day, None)
    pending: list[datetime] = []
    while start <= limit and day < date.max - _DAY:
        following, next_offset = _day_start(zone, day + _DAY, offset)
        uniform = offset if next_offset == offset else None
        for candidate in _day_candidates(window, zone, day, start, uniform):
            heapq.heappush(pending, candidate)
        if uniform is None:
            heapq.heappush(pending, _offset_change(zone, start, following))
        while pending and pending[0] < following:
            yield heapq.heappop(pending)
        day, start, offset = day + _DAY, following, next_offset
    while pending:
        yield heapq.heappop(pending)


def _day_candidates(
    window: Window, zone: ZoneInfo, day: date, start: datetime, offset: timedelta | None
) -> Iterator[datetime]:
    """The day's start and entry boundaries; ``offset`` is set when it holds all day."""
    yield start
    uniform = offset is not None and _utc_midnight(day) - offset == start
    for minute in _boundaries(window, day):
        if uniform:
            yield start + timedelta(minutes=minute)
        else:
            yield from _occurrences(zone, day, minute)


def _utc_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _boundaries(window: Window, day: date) -> set[int]:
    """Start and end minutes of the entries that can be active on ``day``."""
    found: set[int] = set()
    for entry in (*window.allow, *window.deny):
        if entry.between is not None and _on_day(entry, day):
            found.update(entry.between)
    found.difference_update((0, _MINUTES_PER_DAY))
    return found


def _day_start(
    zone: ZoneInfo, day: date, offset: timedelta | None
) -> tuple[datetime, timedelta | None]:
    """The first instant whose wall clock is at or after ``day`` 00:00, and its offset.

    ``offset`` (the previous day start's) is tried first: it is right on all days
    but those with an offset change since the previous midnight.
    """
    if offset is not None:
        guess = _utc_midnight(day) - offset
        if guess.astimezone(zone).utcoffset() == offset:
            return guess, offset
    first = _occurrences(zone, day, 0)[0]
    return first, _offset(zone, first)


def _occurrences(zone: ZoneInfo, day: date, minute: int) -> list[datetime]:
    """The UTC instants showing wall time ``day + minute``: two in a fold, and in a
    spring-forward gap the gap's end (the first instant whose wall clock is later)."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    tries = [wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)]
    found = sorted({u for u in tries if u.astimezone(zone).replace(tzinfo=None) == wall})
    if found:
        return found
    return [_offset_change(zone, min(tries), max(tries))]


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta | None:
    return instant.astimezone(zone).utcoffset()


def _offset_change(zone: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The first whole second in (low, high] whose UTC offset differs from ``low``'s."""
    before = _offset(zone, low)
    lo, hi = 0, int((high - low).total_seconds())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(zone, low + timedelta(seconds=mid)) == before:
            lo = mid
        else:
            hi = mid
    return low + timedelta(seconds=hi)
