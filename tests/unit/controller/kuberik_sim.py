"""An in-memory stand-in for the API server's storage, to run planning passes in unit tests.

It applies a Plan's actions the way the API server would (status replaced under a
resourceVersion precondition, merge patches, SSA of one field, guarded annotation
removal) so tests can check the planner's behaviour pass after pass, without a
cluster. The behaviour tests in tests/controller run the same scenarios on a real
kube-apiserver.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from controller.api.actions import (
    ApplySubstitute,
    MergePatch,
    ObjectKey,
    PatchStatus,
    Plan,
    PostEvent,
    RemoveAnnotations,
    SetSourceTag,
    WriteStatus,
)
from controller.planning import decide, observe, prepare
from controller.planning.facts import facts_of
from controller.policies import PolicyEngine
from policy_engine.model.times import format_timestamp, parse_timestamp

ROLLOUTS = "rollouts.kuberik.com"
IMAGE_POLICIES = "imagepolicies.image.toolkit.fluxcd.io"
GATES = "rolloutgates.kuberik.com"
HEALTH_CHECKS = "healthchecks.kuberik.com"
KUSTOMIZATIONS = "kustomizations.kustomize.toolkit.fluxcd.io"
OCI_REPOSITORIES = "ocirepositories.source.toolkit.fluxcd.io"
T0 = parse_timestamp("2026-03-02T10:00:00Z")


@dataclass
class Store:
    """Objects by kind and (namespace, name); implements ObjectReader."""

    objects: dict[str, dict[tuple[str | None, str], dict[str, Any]]] = field(default_factory=dict)
    version: int = 0

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind = _kind(obj)
        meta = obj.setdefault("metadata", {})
        self.version += 1
        meta["resourceVersion"] = str(self.version)
        meta.setdefault("generation", 1)
        self.objects.setdefault(kind, {})[(meta.get("namespace"), meta["name"])] = obj
        return obj

    def get(self, kind: str, namespace: str | None, name: str) -> Mapping[str, Any] | None:
        found = self.objects.get(kind, {}).get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list(self, kind: str, namespace: str | None = None) -> Sequence[Mapping[str, Any]]:
        items = sorted(
            self.objects.get(kind, {}).items(), key=lambda kv: (kv[0][0] or "", kv[0][1])
        )
        return [copy.deepcopy(o) for (ns, _), o in items if namespace is None or ns == namespace]

    def synced(self, kind: str) -> bool:
        return True

    def mutable(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        return self.objects[kind][(namespace, name)]


def _kind(obj: Mapping[str, Any]) -> str:
    group = str(obj["apiVersion"]).split("/")[0]
    plural = {
        "Rollout": "rollouts", "ImagePolicy": "imagepolicies", "RolloutGate": "rolloutgates",
        "HealthCheck": "healthchecks", "Kustomization": "kustomizations",
        "OCIRepository": "ocirepositories", "Namespace": "namespaces",
        "RolloutPolicy": "rolloutpolicies", "ClusterRolloutPolicy": "clusterrolloutpolicies",
        "RolloutSchedule": "rolloutschedules", "ClusterRolloutSchedule": "clusterrolloutschedules",
    }[obj["kind"]]  # fmt: skip
    return plural if "/" not in str(obj["apiVersion"]) else f"{plural}.{group}"


class Sim:
    """A Rollout ``r`` in ``ns`` with ImagePolicy ``p``, passes run at an injected clock."""

    def __init__(self, engine: PolicyEngine, **spec: Any) -> None:
        self.engine = engine
        self.store = Store()
        self.now = T0
        self.events: list[tuple[str, str, str]] = []
        self.plans: list[Plan] = []
        self.store.put(
            {
                "apiVersion": "kuberik.com/v1alpha1",
                "kind": "Rollout",
                "metadata": {"name": "r", "namespace": "ns", "annotations": {}},
                "spec": {"releasesImagePolicy": {"name": "p"}, **spec},
            }
        )
        self.store.put(
            {
                "apiVersion": "image.toolkit.fluxcd.io/v1",
                "kind": "ImagePolicy",
                "metadata": {"name": "p", "namespace": "ns"},
                "spec": {
                    "imageRepositoryRef": {"name": "p"},
                    "policy": {"semver": {"range": ">=0.0.0"}},
                },
            }
        )

    # --- the world -------------------------------------------------------------------------
    @property
    def rollout(self) -> dict[str, Any]:
        return self.store.mutable(ROLLOUTS, "ns", "r")

    @property
    def status(self) -> dict[str, Any]:
        return self.rollout.get("status") or {}

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.status.get("history") or [])

    def tags(self) -> list[str]:
        return [e["version"]["tag"] for e in self.history]

    def condition(self, kind: str) -> dict[str, Any]:
        return next(c for c in self.status.get("conditions", []) if c["type"] == kind)

    def annotate(self, **annotations: str | None) -> None:
        current = self.rollout["metadata"].setdefault("annotations", {})
        for key, value in annotations.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        self.store.put(self.rollout)

    def set_spec(self, **spec: Any) -> None:
        for key, value in spec.items():
            if value is None:
                self.rollout["spec"].pop(key, None)
            else:
                self.rollout["spec"][key] = value
        self.store.put(self.rollout)

    def observe(self, *tags: str, reconcile: bool = True) -> None:
        for tag in tags:
            policy = self.store.mutable(IMAGE_POLICIES, "ns", "p")
            policy["status"] = {"latestRef": {"name": "registry/app", "tag": tag}}
            self.store.put(policy)
            if reconcile:
                self.reconcile()

    def gate(
        self,
        name: str,
        passing: bool | None = None,
        allowed: list[str] | None = None,
        **annotations: str,
    ) -> None:
        spec: dict[str, Any] = {"rolloutRef": {"name": "r"}}
        if passing is not None:
            spec["passing"] = passing
        if allowed is not None:
            spec["allowedVersions"] = allowed
        self.store.put(
            {
                "apiVersion": "kuberik.com/v1alpha1",
                "kind": "RolloutGate",
                "metadata": {"name": name, "namespace": "ns", "annotations": annotations},
                "spec": spec,
            }
        )

    def health_check(
        self,
        status: str,
        *,
        message: str = "",
        changed: datetime | None = None,
        error: datetime | None = None,
        name: str = "hc",
        namespace: str = "ns",
    ) -> None:
        body: dict[str, Any] = {"status": status}
        if message:
            body["message"] = message
        if changed is not None:
            body["lastChangeTime"] = format_timestamp(changed)
        if error is not None:
            body["lastErrorTime"] = format_timestamp(error)
        self.store.put(
            {
                "apiVersion": "kuberik.com/v1alpha1",
                "kind": "HealthCheck",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": "r"}},
                "spec": {"class": "external"},
                "status": body,
            }
        )

    def hc_status(self, name: str = "hc", namespace: str = "ns") -> dict[str, Any]:
        status: dict[str, Any] = (
            self.store.mutable(HEALTH_CHECKS, namespace, name).get("status") or {}
        )
        return status

    def hc_status_or_none(self, name: str = "hc", namespace: str = "ns") -> dict[str, Any] | None:
        found = self.store.get(HEALTH_CHECKS, namespace, name)
        return None if found is None else dict(found.get("status") or {})

    def put(self, obj: dict[str, Any]) -> None:
        self.store.put(obj)

    # --- passes ----------------------------------------------------------------------------
    def reconcile(self, at: datetime | None = None) -> Plan:
        """One pass at ``at`` (default: the current clock), its actions applied."""
        if at is not None:
            self.now = at
        rollout = self.store.get(ROLLOUTS, "ns", "r")
        assert rollout is not None
        observed = observe(self.store, rollout)
        prepared = prepare(observed, self.now)
        policy_set = self.engine.policies_for(self.store, "ns")
        evaluation = None
        if not prepared.stopped:
            evaluation = self.engine.evaluate(
                policy_set.policies, facts_of(observed, prepared, self.now)
            )
        plan = decide(prepared, evaluation)
        self.plans.append(plan)
        for action in plan.actions:
            self._apply(action)
        return plan

    def settle(self, at: datetime | None = None, passes: int = 4) -> None:
        """Reconciles until a pass writes nothing (the watch event of a write triggers one more)."""
        for _ in range(passes):
            plan = self.reconcile(at)
            if not any(
                isinstance(
                    a, WriteStatus | PatchStatus | ApplySubstitute | SetSourceTag | MergePatch
                )
                for a in plan.actions
            ):
                return

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now

    def _apply(self, action: object) -> None:
        if isinstance(action, WriteStatus):
            target = self._target(action.target)
            assert target["metadata"]["resourceVersion"] == action.resource_version, "409 Conflict"
            target["status"] = copy.deepcopy(dict(action.status))
            self.store.put(target)
        elif isinstance(action, PatchStatus):
            target = self._target(action.target)
            status = target.setdefault("status", {})
            for key, value in action.changes.items():
                if value is None:
                    status.pop(key, None)
                else:
                    status[key] = value
            self.store.put(target)
        elif isinstance(action, ApplySubstitute):
            target = self.store.mutable(KUSTOMIZATIONS, action.namespace, action.name)
            target["spec"].setdefault("postBuild", {}).setdefault("substitute", {})[
                action.variable
            ] = action.value
            self.store.put(target)
        elif isinstance(action, SetSourceTag):
            target = self.store.mutable(OCI_REPOSITORIES, action.namespace, action.name)
            target["spec"].setdefault("ref", {})["tag"] = action.tag
            self.store.put(target)
        elif isinstance(action, RemoveAnnotations):
            target = self._target(action.target)
            annotations = target["metadata"].get("annotations") or {}
            for key, value in action.expected.items():
                if annotations.get(key) == value:
                    del annotations[key]
            self.store.put(target)
        elif isinstance(action, PostEvent):
            self.events.append((action.type, action.reason, action.message))
        elif isinstance(action, MergePatch):
            target = self._target(action.target)
            for section, changes in action.patch.items():
                target.setdefault(section, {}).update(changes)
            self.store.put(target)

    def _target(self, key: ObjectKey) -> dict[str, Any]:
        return self.store.mutable(key.kind, key.namespace, key.name)

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]
