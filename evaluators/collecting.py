"""Collection: runs fact sources concurrently under deadlines and merges their facts.

Callers: the ``record`` verb and the controller's reconcile step; they build a
``FactSet`` from the returned pieces. Must not raise: any exception from a
source becomes ``fact.unavailable`` on the roots it owns (non-``FactError``
exceptions are also logged), so nothing defaults to pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evaluators.base import (
    CollectedFact,
    CollectRequest,
    FactError,
    FactSource,
    FactUnavailable,
)
from policy_engine.model import facts as model
from policy_engine.model.paths import FactPath

_log = logging.getLogger(__name__)
# Sources honour the request deadline themselves; this backstop fires only if one does not.
BACKSTOP_GRACE = 0.25


@dataclass(frozen=True, slots=True)
class CollectedPieces:
    """Values, errors and provenance ready for ``FactSet(now, values, errors=..., ...)``."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: tuple[model.FactError, ...] = ()
    provenance: dict[FactPath, model.Provenance] = field(default_factory=dict)


async def collect_facts(sources: Sequence[FactSource], request: CollectRequest) -> CollectedPieces:
    """Runs every source concurrently, each under ``request.deadline``; never raises."""
    results = await asyncio.gather(*(_run(source, request) for source in sources))
    values: dict[str, Any] = {}
    errors: list[model.FactError] = []
    provenance: dict[FactPath, model.Provenance] = {}
    for collected in results:
        for fact in collected:
            provenance[fact.path] = fact.provenance
            if fact.error is not None:
                errors.append(fact.error)
                continue
            existing = values.get(str(fact.path[0])) if len(fact.path) == 1 else None
            if isinstance(existing, dict) and isinstance(fact.value, dict):
                existing.update(fact.value)  # two sources (endpoints) share a map root
                continue
            value = dict(fact.value) if isinstance(fact.value, dict) else fact.value
            try:
                model.set_path(values, fact.path, value)
            except (KeyError, IndexError, TypeError):
                path = model.format_path(fact.path)
                errors.append(model.FactError(fact.path, "fact.invalid", f"cannot set {path}"))
    return CollectedPieces(values, tuple(errors), provenance)


async def _run(source: FactSource, request: CollectRequest) -> Sequence[CollectedFact]:
    try:
        async with asyncio.timeout(request.deadline + BACKSTOP_GRACE):
            return await source.collect(request)
    except TimeoutError:
        error: FactError = FactUnavailable(
            f"{source.name}: timeout after the {request.deadline:g}s deadline"
        )
    except FactError as exc:
        error = exc
    except Exception as exc:
        _log.exception("fact source %s failed", source.name)
        error = FactUnavailable(f"{source.name}: internal error {type(exc).__name__}")
    prov = model.Provenance(source=source.name, observed_at=request.now)
    return [CollectedFact((root,), None, error.at((root,)), prov) for root in source.roots]


__all__ = ["CollectedPieces", "collect_facts"]
