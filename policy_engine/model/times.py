"""Parsing and formatting of timestamps and Go durations used in every file format.

Callers: facts, snapshots, loading (params), testing, CLI flags. Pure; must
never read the clock.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})$"
)


class TimeSyntaxError(ValueError):
    """A timestamp or duration that cannot be parsed; ``code`` names the problem."""

    def __init__(self, message: str, code: str = "input.schema") -> None:
        super().__init__(message)
        self.code = code


def parse_duration(text: str) -> timedelta:
    """Parses a Go duration (``24h``, ``1h30m``, ``-5m``, ``1.5s``, ``0``)."""
    raw = text.strip()
    sign = 1
    if raw[:1] in ("+", "-"):
        sign = -1 if raw[0] == "-" else 1
        raw = raw[1:]
    if raw == "0":
        return timedelta(0)
    pos = 0
    seconds = 0.0
    while pos < len(raw):
        match = _DURATION_PART.match(raw, pos)
        if match is None:
            raise TimeSyntaxError(
                f"invalid duration {text!r}: expected Go syntax such as '24h', '1h30m', '90s'"
            )
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not raw:
        raise TimeSyntaxError(f"invalid duration {text!r}: empty")
    return timedelta(seconds=sign * seconds)


def format_seconds(value: timedelta) -> str:
    """JSON form of a duration: seconds with an ``s`` suffix (``"86400s"``)."""
    total = value.total_seconds()
    if total == int(total):
        return f"{int(total)}s"
    return f"{total:.9f}".rstrip("0") + "s"


def parse_timestamp(text: str) -> datetime:
    """Parses RFC 3339 with ``Z`` or an offset; naive times raise ``input.naive_time``."""
    raw = text.strip()
    if not _RFC3339.match(raw):
        if re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$", raw):
            raise TimeSyntaxError(
                f"timestamp {text!r} has no time zone: add 'Z' or an offset such as '+01:00'",
                code="input.naive_time",
            )
        raise TimeSyntaxError(f"invalid timestamp {text!r}: expected RFC 3339")
    normalised = raw.replace("z", "Z").replace("t", "T")
    try:
        value = datetime.fromisoformat(normalised)
    except ValueError as exc:
        raise TimeSyntaxError(f"invalid timestamp {text!r}: {exc}") from exc
    return value


def ensure_aware(value: datetime, what: str) -> datetime:
    """Returns ``value`` in UTC; naive datetimes raise ``input.naive_time``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise TimeSyntaxError(
            f"{what} {value.isoformat()} has no time zone: add 'Z' or an offset",
            code="input.naive_time",
        )
    return value.astimezone(UTC)


def to_utc(value: datetime | str) -> datetime:
    """Parses if needed and converts to an aware UTC datetime."""
    if isinstance(value, str):
        value = parse_timestamp(value)
    return ensure_aware(value, "timestamp")


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with ``Z``; sub-second digits only when present."""
    utc = value.astimezone(UTC)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0") + "Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def ceil_to_second(value: datetime) -> datetime:
    """Rounds up to the next whole second (unchanged when already whole)."""
    if value.microsecond == 0:
        return value
    return value.replace(microsecond=0) + timedelta(seconds=1)
