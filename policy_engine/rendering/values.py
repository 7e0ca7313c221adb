"""Plain values for output: JSON-safe conversion and short human display of CEL values.

Callers: the json and text renderers. Pure functions; no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from policy_engine.cel.types import Semver
from policy_engine.errors import EvalError
from policy_engine.model.times import format_seconds, format_timestamp


def jsonable(value: Any) -> Any:
    """Converts engine values to JSON: timestamps RFC 3339 UTC, durations ``"86400s"``."""
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, timedelta):
        return format_seconds(value)
    if isinstance(value, Semver):
        return str(value)
    if isinstance(value, EvalError):
        return {"code": value.code, "message": value.message}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def display(value: Any, limit: int = 80) -> str:
    """A short one-line rendering of a value as CEL would write it."""
    if isinstance(value, EvalError):
        text = f"error {value.code}: {value.message}"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, datetime):
        text = format_timestamp(value)
    elif isinstance(value, timedelta):
        text = format_seconds(value)
    elif isinstance(value, Semver):
        text = f"semver({str(value)!r})"
    else:
        text = json.dumps(jsonable(value), ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"
