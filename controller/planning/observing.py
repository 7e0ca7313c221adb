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
from controller.planning.deploying import SOURCE_KEY, SUBSTITUTE_KEY
from controller.planning.schedules import windows_for_rollout
from controller.selectors import selects
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

    @property
    def key(self) -> ObjectKey:
        meta = self.rollout["metadata"]
        return ObjectKey("rollouts.kuberik.com", meta.get("namespace"), meta["name"])


def observe(reader: ObjectReader, rollout: Object) -> Observed:
    """Collects the Rollout's ImagePolicy, gates, selected HealthChecks and Flux targets."""
    meta = rollout["metadata"]
    namespace, name = meta.get("namespace"), meta["name"]
    spec = rollout.get("spec") or {}
    policy_name = (spec.get("releasesImagePolicy") or {}).get("name")
    image_policy = reader.get(IMAGE_POLICIES, namespace, policy_name) if policy_name else None
    gates = tuple(
        g for g in reader.list(GATES, namespace)
        if ((g.get("spec") or {}).get("rolloutRef") or {}).get("name") == name
    )  # fmt: skip
    kinds = (
        IMAGE_POLICIES, GATES, HEALTH_CHECKS, KUSTOMIZATIONS, OCI_REPOSITORIES,
        SCHEDULES, CLUSTER_SCHEDULES,
    )  # fmt: skip
    return Observed(
        rollout=rollout,
        image_policy=image_policy,
        gates=gates,
        health_checks=selected_health_checks(reader, rollout),
        kustomizations=tuple(
            k for k in reader.list(KUSTOMIZATIONS, namespace) if _names(k, name, substitute=True)
        ),
        sources=tuple(
            s for s in reader.list(OCI_REPOSITORIES, namespace) if _names(s, name, substitute=False)
        ),
        windows=windows_of(reader, rollout),
        unsynced=tuple(kind for kind in kinds if not reader.synced(kind)),
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


def _names(obj: Object, rollout: str, *, substitute: bool) -> bool:
    annotations: Mapping[str, str] = (obj.get("metadata") or {}).get("annotations") or {}
    if not substitute:
        return annotations.get(SOURCE_KEY) == rollout
    return any(v == rollout and SUBSTITUTE_KEY.match(k) for k, v in annotations.items())


def selected_health_checks(reader: ObjectReader, rollout: Object) -> tuple[Object, ...]:
    """HealthChecks picked by ``spec.healthCheckSelector`` (nil selector: none)."""
    chooser = (rollout.get("spec") or {}).get("healthCheckSelector")
    if chooser is None or chooser.get("selector") is None:
        return ()
    namespace = rollout["metadata"].get("namespace")
    namespaces = _namespaces(reader, chooser.get("namespaceSelector"), namespace)
    found: list[Object] = []
    for hc in reader.list(HEALTH_CHECKS):
        meta = hc.get("metadata") or {}
        if meta.get("namespace") in namespaces and selects(chooser["selector"], meta.get("labels")):
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
