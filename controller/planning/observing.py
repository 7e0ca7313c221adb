"""What one reconcile looks at: the Rollout and its related objects, read from the stores.

Callers: ``reconciling``. Reads only the ObjectReader (watch-fed caches, no
API calls); decides nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.api import actions as kinds
from controller.api.actions import ObjectKey
from controller.planning.linked import LINKED_ROOTS, Linked, observe_linked
from controller.planning.schedules import windows_for_rollout
from controller.selectors import selects
from controller.stores import GATES_BY_ROLLOUT, KUSTOMIZATIONS_BY_ROLLOUT, SOURCES_BY_ROLLOUT, find
from evaluators.base import Object, ObjectReader

IMAGE_POLICIES = kinds.IMAGEPOLICIES
GATES = kinds.ROLLOUTGATES
HEALTH_CHECKS = kinds.HEALTHCHECKS
KUSTOMIZATIONS = kinds.KUSTOMIZATIONS
OCI_REPOSITORIES = kinds.OCIREPOSITORIES
NAMESPACES = kinds.NAMESPACES
SCHEDULES = kinds.ROLLOUTSCHEDULES
CLUSTER_SCHEDULES = kinds.CLUSTERROLLOUTSCHEDULES


@dataclass(frozen=True, slots=True)
class Observed:
    """The Rollout and everything its plan depends on, as seen in the stores."""

    rollout: Object
    image_policy: Object | None
    gates: tuple[Object, ...]
    health_checks: tuple[Object, ...]
    kustomizations: tuple[Object, ...]
    sources: tuple[Object, ...]
    metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    windows: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    unsynced: tuple[str, ...] = ()
    linked: Linked = field(default_factory=Linked)

    @property
    def key(self) -> ObjectKey:
        meta = self.rollout["metadata"]
        return ObjectKey("rollouts.kuberik.com", meta.get("namespace"), meta["name"])


def observe(
    reader: ObjectReader, rollout: Object, linked_roots: frozenset[str] = LINKED_ROOTS
) -> Observed:
    """Collects the Rollout's ImagePolicy, gates, selected HealthChecks and Flux targets.

    ``linked_roots``: the fact roots of ``planning.linked`` to build (all by default; the
    reconcile passes those its policies read).
    """
    meta = rollout["metadata"]
    namespace, name = meta.get("namespace"), meta["name"]
    spec = rollout.get("spec") or {}
    policy_name = (spec.get("releasesImagePolicy") or {}).get("name")
    image_policy = reader.get(IMAGE_POLICIES, namespace, policy_name) if policy_name else None
    gates = tuple(find(reader, GATES_BY_ROLLOUT, namespace or None, name))
    kinds = (
        IMAGE_POLICIES, GATES, HEALTH_CHECKS, KUSTOMIZATIONS, OCI_REPOSITORIES,
        SCHEDULES, CLUSTER_SCHEDULES,
    )  # fmt: skip
    return Observed(
        rollout=rollout,
        image_policy=image_policy,
        gates=gates,
        health_checks=selected_health_checks(reader, rollout),
        kustomizations=tuple(find(reader, KUSTOMIZATIONS_BY_ROLLOUT, namespace or None, name)),
        sources=tuple(find(reader, SOURCES_BY_ROLLOUT, namespace or None, name)),
        windows=windows_of(reader, rollout),
        unsynced=tuple(kind for kind in kinds if not reader.synced(kind)),
        linked=observe_linked(reader, rollout, linked_roots),
    )


def windows_of(reader: ObjectReader, rollout: Object) -> dict[str, dict[str, Any]]:
    """The ``windows`` root: every schedule selecting the Rollout, as a window."""
    namespace = rollout["metadata"].get("namespace")
    schedules = [*reader.list(SCHEDULES, namespace), *reader.list(CLUSTER_SCHEDULES)]
    if not schedules:
        return {}
    labels = {
        ns["metadata"]["name"]: (ns["metadata"].get("labels") or {})
        for ns in reader.list(NAMESPACES)
    }
    return windows_for_rollout(rollout, schedules, labels)


def selected_health_checks(reader: ObjectReader, rollout: Object) -> tuple[Object, ...]:
    """HealthChecks picked by ``spec.healthCheckSelector`` (nil selector: none)."""
    chooser = (rollout.get("spec") or {}).get("healthCheckSelector")
    if chooser is None or chooser.get("selector") is None:
        return ()
    namespace = rollout["metadata"].get("namespace")
    namespaces = _namespaces(reader, chooser.get("namespaceSelector"), namespace)
    found: list[Object] = []
    for where in sorted({ns for ns in namespaces if ns}):  # one namespace's listing at a time
        for hc in reader.list(HEALTH_CHECKS, where):
            if selects(chooser["selector"], (hc.get("metadata") or {}).get("labels")):
                found.append(hc)
    return tuple(found)


def _namespaces(
    reader: ObjectReader, selector: Mapping[str, Any] | None, own: str | None
) -> Sequence[str | None]:
    if selector is None:
        return [own]
    return [
        ns["metadata"]["name"]
        for ns in reader.list(NAMESPACES)
        if selects(selector, (ns.get("metadata") or {}).get("labels"))
    ]
