"""A test case's facts and ``now``: from → use → patch → set, then every form of ``now``.

Callers: ``testing.runner``. Reads snapshot and fixture files (relative to
the test file); raises ``InputErrors`` (``input.*``, ``fact.invalid``) with
the case's location. Never evaluates rules.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from policy_engine import snapshots
from policy_engine.errors import Diagnostic, InputErrors, SourceLocation
from policy_engine.model import schema
from policy_engine.model.facts import (
    DELETE,
    FactError,
    FactSet,
    FactShapeError,
    Provenance,
    errors_below,
    normalise_root,
    set_path,
)
from policy_engine.model.paths import PathSyntaxError, parse_path
from policy_engine.model.times import TimeSyntaxError, ensure_aware, to_utc
from policy_engine.testing.documents import FactsSpec


@dataclass(slots=True)
class Composed:
    """Raw fact values being composed, with what the source snapshot recorded."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: tuple[FactError, ...] = ()
    provenance: dict[Any, Provenance] = field(default_factory=dict)
    snapshot: snapshots.Snapshot | None = None


FixtureLookup = Callable[[str], Mapping[str, Any] | None]
SnapshotLoader = Callable[[Path], "list[snapshots.Snapshot]"]


def caching_loader() -> SnapshotLoader:
    """Loads each snapshot file once per run (cases share them)."""
    cache: dict[Path, list[snapshots.Snapshot]] = {}

    def load(path: Path) -> list[snapshots.Snapshot]:
        if path not in cache:
            cache[path] = snapshots.load_snapshot_path(str(path))
        return cache[path]

    return load


def compose(
    case_facts: FactsSpec | None,
    default_facts: FactsSpec | None,
    base: Path,
    fixtures: FixtureLookup,
    where: SourceLocation,
    load: SnapshotLoader,
) -> Composed:
    """Applies the defaults' steps (unless the case has its own ``from``), then the case's."""
    composed = Composed()
    steps: list[FactsSpec] = []
    if case_facts is not None and case_facts.from_ is not None:
        steps = [case_facts]
    else:
        steps = [s for s in (default_facts, case_facts) if s is not None]
    for step in steps:
        if step.from_ is not None:
            composed = _load_from(step.from_, base, where, load)
        for name in step.use:
            fixture = fixtures(name)
            if fixture is None:
                raise _error(
                    "input.unknown_reference",
                    f"no fixture named {name!r}",
                    where,
                    "define it under fixtures: or in a FactFixture in fixtures/",
                )
            composed.values = merge_patch(composed.values, dict(fixture))
        if step.patch is not None:
            composed.values = merge_patch(composed.values, step.patch)
        for path_text, value in (step.set or {}).items():
            _set(composed, path_text, value, where)
    return composed


def _load_from(reference: str, base: Path, where: SourceLocation, load: SnapshotLoader) -> Composed:
    path_text, _, pin = reference.partition("@")
    path = (base / path_text).resolve()
    if not path.is_file():
        raise _error("input.unknown_reference", f"facts file {path_text!r} not found", where)
    found = load(path)
    if found:
        snapshot = found[-1]
        if pin and not snapshot.digest.startswith(pin):
            raise _error(
                "input.digest_mismatch",
                f"{path_text}: pinned {pin} but the snapshot's digest is {snapshot.digest}",
                where,
            )
        facts = snapshot.facts
        return Composed(dict(facts.values), facts.errors, dict(facts.provenance), snapshot)
    raise _error("input.schema", f"{path_text} holds no FactSnapshot", where)


def _set(composed: Composed, path_text: str, value: Any, where: SourceLocation) -> None:
    try:
        path = parse_path(path_text)
    except PathSyntaxError as exc:
        raise _error("input.schema", f"set: {exc}", where) from exc
    root = str(path[0])
    try:
        if len(path) == 1:
            if value is None:
                composed.values.pop(root, None)
            else:
                composed.values[root] = value
        else:
            if composed.values.get(root) is None and value is not None:
                composed.values[root] = {} if isinstance(path[1], str) else []
            # snapshots are shared between cases: never write into their values
            composed.values[root] = copy.deepcopy(composed.values[root])
            set_path(composed.values, path, DELETE if value is None else value)
    except (KeyError, IndexError, TypeError) as exc:
        raise _error(
            "input.schema", f"set {path_text}: no such parent in the facts", where
        ) from exc
    composed.errors = errors_below(composed.errors, path)
    composed.provenance[path] = Provenance("test")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge recursively, ``null`` deletes, others replace."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def fact_set(composed: Composed, now: datetime, now_source: str, where: SourceLocation) -> FactSet:
    """Normalises every root and builds the FactSet the engine evaluates."""
    values: dict[str, Any] = {}
    problems: list[Diagnostic] = []
    for root, value in composed.values.items():
        if schema.root_type(root) is None:
            problems.append(
                Diagnostic(
                    "input.schema",
                    f"unknown fact root {root!r}",
                    where,
                    hint="roots: " + ", ".join(schema.SNAPSHOT_ROOTS),
                )
            )
            continue
        try:
            values[root] = normalise_root(root, value)
        except FactShapeError as exc:
            problems.append(Diagnostic(exc.code, str(exc), where))
    if problems:
        raise InputErrors(problems)
    for error in composed.errors:
        # a recorded error means the fact is absent, whatever use/patch merged over it
        if len(error.path) == 1:
            values.pop(str(error.path[0]), None)
        else:
            try:
                set_path(values, error.path, DELETE)
            except (KeyError, IndexError, TypeError):
                continue
    target = None
    rollout = values.get("rollout")
    if isinstance(rollout, Mapping) and rollout.get("name"):
        target = (str(rollout.get("namespace")), str(rollout.get("name")))
    return FactSet(
        now=now,
        values=values,
        now_source=now_source,
        target=target,
        errors=composed.errors,
        provenance=dict(composed.provenance),
    )


def resolve_now(
    raw: Any,
    composed: Composed,
    where: SourceLocation,
    evaluate_expr: Callable[[str, Mapping[str, Any]], Any],
) -> tuple[datetime, str]:
    """``now`` as RFC 3339, ``{at, tz}``, ``{expr}`` or ``recorded``; returns (instant, source)."""
    if raw is None:
        raise _error(
            "input.schema",
            "the case has no 'now' (required)",
            where,
            "give now: RFC 3339 with an offset, {at, tz}, {expr} or recorded",
        )
    if raw == "recorded":
        if composed.snapshot is None:
            raise _error("input.schema", "now: recorded needs facts from a snapshot", where)
        return composed.snapshot.facts.now, "snapshot"
    try:
        if isinstance(raw, datetime):
            return ensure_aware(raw, "now"), "test"
        if isinstance(raw, str):
            return to_utc(raw), "test"
        if isinstance(raw, Mapping) and "at" in raw:
            return _local(str(raw["at"]), str(raw.get("tz", ""))), "test"
        if isinstance(raw, Mapping) and "expr" in raw:
            value = evaluate_expr(str(raw["expr"]), composed.values)
            if isinstance(value, datetime):
                return ensure_aware(value, "now"), "test"
            raise _error("input.schema", f"now.expr gave {value!r}, not a timestamp", where)
    except TimeSyntaxError as exc:
        raise _error(exc.code, f"now: {exc}", where) from exc
    raise _error("input.schema", f"now: cannot read {raw!r}", where)


def _local(text: str, zone_name: str) -> datetime:
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TimeSyntaxError(f"unknown time zone {zone_name!r}") from exc
    try:
        naive = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise TimeSyntaxError(f"{text!r} is not 'YYYY-MM-DD HH:MM[:SS]'") from exc
    if naive.tzinfo is not None:
        raise TimeSyntaxError(f"{text!r} already has an offset; drop tz or the offset")
    return naive.replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))


def _error(code: str, message: str, where: SourceLocation, hint: str | None = None) -> InputErrors:
    return InputErrors([Diagnostic(code, message, where, hint)])
