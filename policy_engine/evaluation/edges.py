"""Time edges: the candidate instants at which a time-dependent result may change.

Callers: ``evaluation`` (rule and decision nextChange, §5.4). Sites come
from ``cel.parsing.timing``; this module turns them into ascending instants within
the horizon, evaluating the fixed sides of relations against the bound
facts. Edges may over-approximate: every edge is verified by evaluation.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from policy_engine import windows
from policy_engine.cel.backend import Bound, CelBackend
from policy_engine.cel.parsing.timing import TimeSite
from policy_engine.compiling import CompiledPolicy
from policy_engine.errors import EvalError
from policy_engine.model.times import ceil_to_second

MAX_EDGES = 10_000
SECOND = timedelta(seconds=1)


class OpaqueTime(Exception):
    """The rule reads ``now`` in a way whose edges cannot be computed."""


def site_edges(
    site: TimeSite,
    policy: CompiledPolicy,
    backend: CelBackend,
    bound: Bound,
    facts: Mapping[str, Any],
    now: datetime,
    horizon: datetime,
) -> Iterator[datetime]:
    """Ascending candidate instants in ``(now, horizon]`` for one site."""
    if site.kind not in ("window", "relation", "accessor"):
        raise OpaqueTime(site.text)
    if horizon <= now:
        return iter(())  # nothing to evaluate: no instant can fall in the range
    if site.kind == "window":
        return _window_edges(site, policy, backend, bound, facts, now, horizon)
    if site.kind == "relation":
        return iter(_relation_edges(site, backend, bound, now, horizon))
    return _accessor_edges(site.unit or "", site.zone, now, horizon)


def merged(sources: Iterable[Iterator[datetime]], now: datetime) -> Iterator[datetime]:
    """Distinct instants in ascending order, rounded up to the second, at most MAX_EDGES."""
    last: datetime | None = None
    count = 0
    for instant in heapq.merge(*sources):
        rounded = ceil_to_second(instant)
        if rounded <= now or rounded == last:
            continue
        count += 1
        if count > MAX_EDGES:
            raise OpaqueTime(f"more than {MAX_EDGES} time edges")
        last = rounded
        yield rounded


def _window_edges(
    site: TimeSite,
    policy: CompiledPolicy,
    backend: CelBackend,
    bound: Bound,
    facts: Mapping[str, Any],
    now: datetime,
    horizon: datetime,
) -> Iterator[datetime]:
    targets: list[windows.Window] = []
    if site.window_name is not None:
        window = policy.windows.get(site.window_name)
        targets = [window] if window is not None else []
    elif site.window_arg is not None:
        value = backend.evaluate(site.window_arg, bound)
        targets = _parsed([value])
    else:
        recorded = facts.get("windows")
        values = list(recorded.values()) if isinstance(recorded, Mapping) else []
        targets = [*_parsed(values), *policy.windows.values()]
    return heapq.merge(*(windows.transitions(w, now, horizon) for w in targets))


def _parsed(values: Iterable[Any]) -> list[windows.Window]:
    out: list[windows.Window] = []
    for value in values:
        if isinstance(value, Mapping):
            try:
                out.append(windows.parse_window(value))
            except windows.WindowSyntaxError:
                continue
    return out


def _relation_edges(
    site: TimeSite, backend: CelBackend, bound: Bound, now: datetime, horizon: datetime
) -> list[datetime]:
    assert site.moving is not None
    assert site.fixed is not None
    moving = backend.evaluate(site.moving, bound)
    fixed = backend.evaluate(site.fixed, bound)
    if isinstance(moving, EvalError) or isinstance(fixed, EvalError):
        return []
    delta = _difference(fixed, moving)
    if delta is None:
        return []
    crossing = now + delta
    edges = [ceil_to_second(crossing), ceil_to_second(crossing) + SECOND]
    return [e for e in edges if now < e <= horizon]


def _difference(fixed: Any, moving: Any) -> timedelta | None:
    if isinstance(fixed, datetime) and isinstance(moving, datetime):
        return fixed - moving
    if isinstance(fixed, timedelta) and isinstance(moving, timedelta):
        return fixed - moving
    return None


_UNIT_OF = {
    "getMilliseconds": "second",
    "getSeconds": "second",
    "getMinutes": "minute",
    "getHours": "hour",
    "getDate": "day",
    "getDayOfMonth": "day",
    "getDayOfWeek": "day",
    "getDayOfYear": "day",
    "getMonth": "month",
    "getFullYear": "year",
}


def _accessor_edges(
    accessor: str, zone_name: str | None, now: datetime, horizon: datetime
) -> Iterator[datetime]:
    zone = ZoneInfo(zone_name) if zone_name else UTC
    unit = _UNIT_OF.get(accessor, "second")
    current = now
    while True:
        following = _next_boundary(current, unit, zone)
        if following > horizon:
            return
        yield following
        current = following


def _next_boundary(instant: datetime, unit: str, zone: Any) -> datetime:
    local = instant.astimezone(zone)
    if unit == "second":
        step = local.replace(microsecond=0) + SECOND
    elif unit == "minute":
        step = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
    elif unit == "hour":
        # UTC hours and half hours cover every zone's local hour boundaries
        return _next_utc_multiple(instant, timedelta(minutes=15))
    elif unit == "day":
        step = _local_midnight(local.date() + timedelta(days=1), zone)
    elif unit == "month":
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        step = _local_midnight(local.date().replace(year=year, month=month, day=1), zone)
    else:
        step = _local_midnight(local.date().replace(year=local.year + 1, month=1, day=1), zone)
    return step.astimezone(UTC)


def _next_utc_multiple(instant: datetime, step: timedelta) -> datetime:
    utc = instant.astimezone(UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    elapsed = utc - epoch
    return epoch + (elapsed // step + 1) * step


def _local_midnight(day: Any, zone: Any) -> datetime:
    naive = datetime(day.year, day.month, day.day)
    aware = naive.replace(tzinfo=zone)
    # a midnight inside a DST gap maps to the first valid local instant
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return aware.astimezone(UTC)
    return aware
