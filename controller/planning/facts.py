"""The engine's view of a prepared Rollout: its Kubernetes roots as a normalised FactSet.

Callers: ``reconciling`` and ``tidegate record`` (and tests of planning). The
Kuberik roots come from the planned status, ``flux``, ``kruise`` and
``environments`` from ``planning.linked``. Pure; a malformed root becomes a
``fact.invalid`` error, so the engine fails closed on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from controller.api.actions import ObjectKey
from controller.planning.linked import linked_facts
from controller.planning.observing import Observed
from controller.planning.preparing import Prepared
from evaluators.base import CollectedFact
from evaluators.kuberik import rollout_facts
from policy_engine import FactSet
from policy_engine.model import facts as model
from policy_engine.model.paths import FactPath


def facts_of(observed: Observed, prepared: Prepared, now: datetime) -> FactSet:
    """The FactSet of the prepared Rollout: Kuberik roots from the planned status, linked roots."""
    collected = rollout_facts(
        observed.rollout,
        history=prepared.history,
        candidates=prepared.candidates.releases,
        gates=observed.gates,
        health_checks=observed.health_checks,
        observed_at=now,
        windows=observed.windows,
        environment=observed.linked.environments.name if observed.linked.environments else None,
    )
    linked, provenance = linked_facts(observed.linked, prepared.history, now)
    return assemble([*collected, *linked], now, observed.key, provenance)


def with_collected(facts: FactSet, extra: Sequence[CollectedFact]) -> FactSet:
    """``facts`` plus roots collected afterwards (e.g. Prometheus'), which it does not hold."""
    added = assemble(extra, facts.now, None)
    return dataclasses.replace(
        facts,
        values={**facts.values, **added.values},
        errors=(*facts.errors, *added.errors),
        provenance={**facts.provenance, **added.provenance},
    )


def assemble(
    collected: Sequence[CollectedFact],
    now: datetime,
    key: ObjectKey | None,
    extra_provenance: Mapping[FactPath, model.Provenance] | None = None,
) -> FactSet:
    """Normalised values, errors and provenance; a malformed root becomes ``fact.invalid``.

    Value and error facts may name a root or a key below one (``metrics.errorRate``), in
    the order collected. ``extra_provenance`` adds provenance below the roots.
    """
    raw: dict[str, Any] = {}
    errors: list[model.FactError] = []
    provenance: dict[FactPath, model.Provenance] = dict(extra_provenance or {})
    for fact in collected:
        provenance[fact.path] = fact.provenance
        if fact.error is not None:
            errors.append(fact.error)
        elif len(fact.path) == 1:
            raw[str(fact.path[0])] = fact.value
        else:
            _set_below(raw, fact, errors)
    values: dict[str, Any] = {}
    for root, value in raw.items():
        try:
            values[root] = model.normalise_root(root, value)
        except model.FactShapeError as exc:
            errors.append(model.FactError(exc.path, exc.code, exc.detail))
    return FactSet(
        now=now,
        values=values,
        now_source="controller",
        target=(key.namespace or "", key.name) if key is not None else None,
        errors=tuple(errors),
        provenance=provenance,
    )


def _set_below(raw: dict[str, Any], fact: CollectedFact, errors: list[model.FactError]) -> None:
    root = str(fact.path[0])
    if isinstance(raw.get(root), dict):
        raw[root] = dict(raw[root])  # never write into a collected value
    try:
        model.set_path(raw, fact.path, fact.value)
    except (KeyError, IndexError, TypeError) as exc:
        detail = f"cannot set {model.format_path(fact.path)}: {exc}"
        errors.append(model.FactError(fact.path, "fact.invalid", detail))
