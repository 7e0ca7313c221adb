"""Facts as the evaluator contract: FactSet, provenance, errors, normalisation.

Callers: evaluators build FactSets; snapshots read and write them; evaluation
binds them. Values are plain Python (dict, list, str, int, float, bool, None,
aware ``datetime``, ``timedelta``), normalised to the declared schema so both
CEL backends see identical types. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from policy_engine.model import schema
from policy_engine.model.paths import FactPath, format_path, is_prefix, overlaps, parse_path
from policy_engine.model.times import TimeSyntaxError, ensure_aware, parse_duration, parse_timestamp

FACT_ERROR_CODES = ("fact.unavailable", "fact.stale", "fact.invalid")


@dataclass(frozen=True, slots=True)
class ObjectRef:
    kind: str
    name: str
    namespace: str | None = None
    api_version: str | None = None
    uid: str | None = None
    resource_version: str | None = None


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a fact came from: source, object or endpoint+query, when observed."""

    source: str
    ref: ObjectRef | None = None
    endpoint: str | None = None
    query: str | None = None
    observed_at: datetime | None = None
    evaluated_at: datetime | None = None

    def describe(self) -> str:
        parts = [self.source]
        if self.ref is not None:
            where = f"{self.ref.namespace}/" if self.ref.namespace else ""
            parts = [f"{self.ref.kind} {where}{self.ref.name}"]
            if self.ref.resource_version:
                parts.append(f"rv {self.ref.resource_version}")
        elif self.endpoint:
            parts.append(self.endpoint)
        if self.query:
            parts.append(f"query {self.query}")
        if self.observed_at is not None:
            parts.append(f"observed {self.observed_at.isoformat()}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class FactError:
    """Why a fact path is absent: ``fact.unavailable``, ``fact.stale`` or ``fact.invalid``."""

    path: FactPath
    code: str
    message: str


class FactShapeError(ValueError):
    """A fact value that does not match its declared type."""

    def __init__(self, path: FactPath, message: str, code: str = "fact.invalid") -> None:
        super().__init__(f"{format_path(path)}: {message}")
        self.path = path
        self.code = code
        self.detail = message


@dataclass(frozen=True, slots=True)
class FactSet:
    """All facts of one evaluation: ``now``, root values, errors and provenance.

    A root or key listed in ``errors`` is absent from ``values``.
    """

    now: datetime
    values: Mapping[str, Any]
    now_source: str = "flag"
    target: tuple[str, str] | None = None
    errors: tuple[FactError, ...] = ()
    provenance: Mapping[FactPath, Provenance] = field(default_factory=dict)
    digest: str | None = None

    def with_now(self, now: datetime, source: str | None = None) -> FactSet:
        return replace(self, now=now, now_source=source or self.now_source)

    def error_for(self, reads: Sequence[FactPath]) -> FactError | None:
        """The first recorded error at, below or above one of ``reads``."""
        for error in self.errors:
            if any(overlaps(error.path, path) for path in reads):
                return error
        return None

    def provenance_of(self, path: FactPath) -> Provenance | None:
        """Provenance recorded for ``path`` or its longest recorded prefix."""
        for length in range(len(path), 0, -1):
            found = self.provenance.get(tuple(path[:length]))
            if found is not None:
                return found
        return None


def normalise_root(name: str, value: Any) -> Any:
    """Normalises a snapshot root to its declared type; raises FactShapeError."""
    declared = schema.root_type(name)
    if declared is None:
        raise FactShapeError((name,), f"unknown fact root {name!r}")
    return normalise(value, declared, (name,))


def normalise(value: Any, declared: schema.FactType, path: FactPath) -> Any:
    """Converts ``value`` to ``declared``; ``None`` stays ``None`` for every type."""
    if value is None:
        if isinstance(declared, schema.Record) and declared.always:
            return _normalise_record({}, declared, path)
        return None
    if isinstance(declared, schema.Record):
        return _normalise_record(value, declared, path)
    if isinstance(declared, schema.ListOf):
        if not isinstance(value, list | tuple):
            raise FactShapeError(path, f"expected a list, got {_kind(value)}")
        return [normalise(item, declared.item, (*path, i)) for i, item in enumerate(value)]
    if isinstance(declared, schema.MapOf):
        if not isinstance(value, Mapping):
            raise FactShapeError(path, f"expected a map, got {_kind(value)}")
        return {str(k): normalise(v, declared.value, (*path, str(k))) for k, v in value.items()}
    return _normalise_scalar(value, declared.name, path)


def _normalise_record(value: Any, declared: schema.Record, path: FactPath) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise FactShapeError(path, f"expected a {declared.name} map, got {_kind(value)}")
    unknown = sorted(set(map(str, value)) - set(declared.fields))
    if unknown:
        allowed = ", ".join(declared.fields)
        raise FactShapeError(
            (*path, unknown[0]), f"unknown key {unknown[0]!r} in {declared.name} (keys: {allowed})"
        )
    return {
        key: normalise(
            value.get(key) if value.get(key) is not None else declared.defaults.get(key),
            field_type,
            (*path, key),
        )
        for key, field_type in declared.fields.items()
    }


def _normalise_scalar(value: Any, kind: str, path: FactPath) -> Any:
    if kind == "raw":
        return _plain(value)
    if kind == "string":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise FactShapeError(path, f"expected a string, got {_kind(value)}")
        return value if isinstance(value, str) else str(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise FactShapeError(path, f"expected a bool, got {_kind(value)}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise FactShapeError(path, f"expected an int, got {_kind(value)}")
        return int(value)
    if kind == "double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FactShapeError(path, f"expected a number, got {_kind(value)}")
        return float(value)
    if kind == "timestamp":
        return _timestamp(value, path)
    if kind == "duration":
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except TimeSyntaxError as exc:
            raise FactShapeError(path, str(exc)) from exc
    raise FactShapeError(path, f"unsupported declared type {kind}")


def _timestamp(value: Any, path: FactPath) -> datetime:
    try:
        if isinstance(value, datetime):
            return ensure_aware(value, "timestamp")
        if isinstance(value, str):
            return ensure_aware(parse_timestamp(value), "timestamp")
    except TimeSyntaxError as exc:
        raise FactShapeError(path, str(exc), code=exc.code) from exc
    raise FactShapeError(path, f"expected an RFC 3339 timestamp, got {_kind(value)}")


def _plain(value: Any) -> Any:
    """Raw objects keep JSON types; timestamps inside them become strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _kind(value: Any) -> str:
    return {
        dict: "a map",
        list: "a list",
        str: "a string",
        bool: "a bool",
        int: "an int",
        float: "a double",
    }.get(type(value), type(value).__name__)


def lookup(values: Mapping[str, Any], path: FactPath) -> Any:
    """Reads ``path`` from root values; raises KeyError/IndexError when absent."""
    current: Any = values
    for segment in path:
        current = current[segment]
    return current


def set_path(values: dict[str, Any], path: FactPath, new: Any) -> None:
    """Sets (or deletes, with ``new is DELETE``) a path, creating maps on the way."""
    parent: Any = values
    for segment in path[:-1]:
        parent = parent.setdefault(segment, {}) if isinstance(parent, dict) else parent[segment]
        if parent is None:
            raise KeyError(format_path(path))
    last = path[-1]
    if new is DELETE:
        if isinstance(parent, dict):
            parent.pop(last, None)
        elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
            del parent[last]
        return
    if isinstance(parent, list):
        if not isinstance(last, int):
            raise KeyError(format_path(path))
        if last == len(parent):
            parent.append(new)
        else:
            parent[last] = new
    else:
        parent[last] = new


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE: Any = _Delete()


def errors_below(errors: Sequence[FactError], path: FactPath) -> tuple[FactError, ...]:
    """Errors that are not at or below ``path`` (a ``set`` clears those)."""
    return tuple(e for e in errors if not is_prefix(path, e.path))


def with_overrides(
    facts: FactSet,
    assignments: Sequence[tuple[FactPath, Any]],
    source: str,
) -> FactSet:
    """Applies ``path = value`` assignments (``DELETE`` removes); re-normalises touched roots.

    Set values get provenance ``source`` and clear recorded errors at or below
    their path. Raises FactShapeError for a value of the wrong shape.
    """
    values = {k: _copy(v) for k, v in facts.values.items()}
    errors = facts.errors
    provenance = dict(facts.provenance)
    touched: set[str] = set()
    for path, value in assignments:
        root = str(path[0])
        if len(path) == 1:
            if value is DELETE:
                values.pop(root, None)
            else:
                values[root] = value
        else:
            if values.get(root) is None and value is not DELETE:
                values[root] = {} if isinstance(path[1], str) else []
            try:
                set_path(values, path, value)
            except (KeyError, IndexError, TypeError) as exc:
                raise FactShapeError(
                    path, f"cannot set {format_path(path)}: no such parent"
                ) from exc
        errors = errors_below(errors, path)
        provenance[path] = Provenance(source)
        touched.add(root)
    for root in touched:
        if root in values and schema.root_type(root) is not None:
            values[root] = normalise_root(root, values[root])
    return replace(facts, values=values, errors=errors, provenance=provenance, digest=None)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


__all__ = [
    "DELETE",
    "FactError",
    "FactSet",
    "FactShapeError",
    "ObjectRef",
    "Provenance",
    "errors_below",
    "format_path",
    "lookup",
    "normalise",
    "normalise_root",
    "parse_path",
    "set_path",
    "with_overrides",
]
