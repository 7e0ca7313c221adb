"""The engine's view of a prepared Rollout: Kuberik roots as a normalised FactSet.

Callers: ``reconciling`` (and tests of planning). Pure; a malformed root
becomes a ``fact.invalid`` error, so the engine fails closed on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from controller.api.actions import ObjectKey
from controller.planning.observing import Observed
from controller.planning.preparing import Prepared
from evaluators.base import CollectedFact
from evaluators.kuberik import rollout_facts
from policy_engine import FactSet
from policy_engine.model import facts as model


def facts_of(observed: Observed, prepared: Prepared, now: datetime) -> FactSet:
    """The FactSet of the prepared Rollout: Kuberik roots from the planned status."""
    collected = rollout_facts(
        observed.rollout,
        history=prepared.history,
        candidates=prepared.candidates.releases,
        gates=observed.gates,
        health_checks=observed.health_checks,
        observed_at=now,
        windows=observed.windows,
    )
    return assemble(collected, now, observed.key)


def assemble(collected: Sequence[CollectedFact], now: datetime, key: ObjectKey) -> FactSet:
    """Normalised values, errors and provenance; a malformed root becomes ``fact.invalid``."""
    values: dict[str, Any] = {}
    errors: list[model.FactError] = []
    provenance: dict[tuple[str | int, ...], model.Provenance] = {}
    for fact in collected:
        root = str(fact.path[0])
        provenance[fact.path] = fact.provenance
        if fact.error is not None:
            errors.append(fact.error)
            continue
        try:
            values[root] = model.normalise_root(root, fact.value)
        except model.FactShapeError as exc:
            errors.append(model.FactError(exc.path, exc.code, exc.detail))
    return FactSet(
        now=now,
        values=values,
        now_source="controller",
        target=(key.namespace or "", key.name),
        errors=tuple(errors),
        provenance=provenance,
    )
