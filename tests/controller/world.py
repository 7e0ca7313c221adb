"""World: Kuberik and Flux objects in one test namespace on the real apiserver, as a test sees them.

Tests play Flux (ImagePolicy status, Kustomizations) and the HealthCheck
producers by writing those objects exactly as their controllers would, then
read the Rollout's status and events back. Nothing here is imported by
non-test code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from clocks import ManualClock
from kubecluster import KubeCluster

from policy_engine.model.times import format_timestamp

KUBERIK = "/apis/kuberik.com/v1alpha1/namespaces/{ns}"
FLUX_IMAGE = "/apis/image.toolkit.fluxcd.io/v1/namespaces/{ns}"
FLUX_KUSTOMIZE = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{ns}"
FLUX_SOURCE = "/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}"
MERGE = "application/merge-patch+json"
SEMVER = {"semver": {"range": ">=0.0.0"}}


class World:
    """A Rollout ``r`` with ImagePolicy ``p`` in ``namespace`` (created by ``rollout()``)."""

    def __init__(self, kube: KubeCluster, namespace: str) -> None:
        self.kube = kube
        self.ns = namespace

    # --- writing -------------------------------------------------------------------------------
    def _create(self, base: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        body.setdefault("metadata", {})["namespace"] = self.ns
        status, answer = self.kube.request("POST", f"{base.format(ns=self.ns)}/{plural}", body)
        assert status == 201, answer
        assert isinstance(answer, dict)
        return answer

    def _patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, answer = self.kube.request("PATCH", path, body, content_type=MERGE)
        assert status == 200, answer
        assert isinstance(answer, dict)
        return answer

    def rollout(
        self, name: str = "r", *, labels: dict[str, str] | None = None, **spec: Any
    ) -> None:
        self._create(
            FLUX_IMAGE, "imagepolicies",
            {
                "apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy",
                "metadata": {"name": "p"},
                "spec": {"imageRepositoryRef": {"name": "p"}, "policy": SEMVER},
            },
        )  # fmt: skip
        self._create(
            KUBERIK, "rollouts",
            {
                "apiVersion": "kuberik.com/v1alpha1", "kind": "Rollout",
                "metadata": {"name": name, "labels": labels or {"app": name}},
                "spec": {"releasesImagePolicy": {"name": "p"}, **spec},
            },
        )  # fmt: skip

    def observe(self, tag: str) -> None:
        """Flux's image-reflector: the ImagePolicy's latestRef moves to ``tag``."""
        path = f"{FLUX_IMAGE.format(ns=self.ns)}/imagepolicies/p/status"
        self._patch(path, {"status": {"latestRef": {"name": "registry.local/app", "tag": tag}}})

    def deploy_each(self, wait: Callable[..., object], *tags: str) -> None:
        """Observes each tag and waits (``controller.wait_until``) until it is history[0]."""
        for tag in tags:
            self.observe(tag)
            wait(lambda t=tag: self.tags()[:1] == [t], what=f"{tag} deployed")

    def observe_each(self, *tags: str, timeout: float = 30.0) -> None:
        """Moves latestRef through ``tags``, each once the controller recorded the previous one.

        Only observed ``latestRef`` tags exist (KUBERIK-SEMANTICS.md §4.3): a tag replaced
        before any reconcile saw it is never a release, so tests wait between moves.
        """
        for tag in tags:
            self.observe(tag)
            deadline = time.monotonic() + timeout
            while tag not in [r.get("tag") for r in self.status.get("availableReleases") or []]:
                assert time.monotonic() < deadline, f"{tag} was not recorded in {timeout} s"
                time.sleep(0.05)

    def annotate(self, **annotations: str | None) -> None:
        path = f"{KUBERIK.format(ns=self.ns)}/rollouts/r"
        self._patch(path, {"metadata": {"annotations": annotations}})

    def set_spec(self, **spec: Any) -> None:
        self._patch(f"{KUBERIK.format(ns=self.ns)}/rollouts/r", {"spec": spec})

    def gate(
        self,
        name: str,
        *,
        passing: bool | None = None,
        allowed: list[str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        spec: dict[str, Any] = {"rolloutRef": {"name": "r"}}
        if passing is not None:
            spec["passing"] = passing
        if allowed is not None:
            spec["allowedVersions"] = allowed
        status, _ = self.kube.request("GET", f"{KUBERIK.format(ns=self.ns)}/rolloutgates/{name}")
        if status == 200:
            self._patch(f"{KUBERIK.format(ns=self.ns)}/rolloutgates/{name}", {"spec": spec})
            return
        body = {
            "apiVersion": "kuberik.com/v1alpha1",
            "kind": "RolloutGate",
            "metadata": {"name": name, "annotations": annotations or {}},
        }
        self._create(KUBERIK, "rolloutgates", {**body, "spec": spec})

    def health_check(
        self,
        status: str,
        *,
        message: str = "",
        changed: datetime | None = None,
        error: datetime | None = None,
        name: str = "hc",
    ) -> None:
        """The HealthCheck's producer writes its verdict (created on first use)."""
        path = f"{KUBERIK.format(ns=self.ns)}/healthchecks/{name}"
        if self.kube.request("GET", path)[0] == 404:
            self._create(
                KUBERIK, "healthchecks",
                {"apiVersion": "kuberik.com/v1alpha1", "kind": "HealthCheck",
                 "metadata": {"name": name, "labels": {"app": "r"}}, "spec": {}},
            )  # fmt: skip
        body: dict[str, Any] = {"status": status, "message": message or None}
        body["lastChangeTime"] = format_timestamp(changed) if changed else None
        body["lastErrorTime"] = format_timestamp(error) if error else None
        self._patch(f"{path}/status", {"status": body})

    def kustomization(
        self, name: str, annotations: dict[str, str], substitute: dict[str, str]
    ) -> None:
        self._create(
            FLUX_KUSTOMIZE, "kustomizations",
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": name, "annotations": annotations},
                "spec": {"interval": "1m", "path": "./", "prune": True,
                         "sourceRef": {"kind": "OCIRepository", "name": "app"},
                         "postBuild": {"substitute": substitute}},
            },
        )  # fmt: skip

    # --- reading -------------------------------------------------------------------------------
    def get(self, base: str, plural: str, name: str) -> dict[str, Any]:
        status, body = self.kube.request("GET", f"{base.format(ns=self.ns)}/{plural}/{name}")
        assert status == 200, body
        assert isinstance(body, dict)
        return body

    @property
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.get(KUBERIK, "rollouts", "r").get("status") or {}
        return status

    @property
    def annotations(self) -> dict[str, str]:
        found: dict[str, str] = (
            self.get(KUBERIK, "rollouts", "r")["metadata"].get("annotations") or {}
        )
        return found

    def tags(self) -> list[str]:
        return [e["version"]["tag"] for e in self.status.get("history") or []]

    def entry(self) -> dict[str, Any]:
        history = self.status.get("history") or []
        return dict(history[0]) if history else {}

    def condition(self, kind: str) -> dict[str, Any]:
        conditions = self.status.get("conditions") or []
        return next((c for c in conditions if c.get("type") == kind), {})

    def hc_status(self, name: str = "hc") -> dict[str, Any]:
        found: dict[str, Any] = self.get(KUBERIK, "healthchecks", name).get("status") or {}
        return found

    def hc_polled(
        self, clock: ManualClock, name: str, wanted: str, every: timedelta
    ) -> dict[str, Any] | None:
        """The HealthCheck's status once it reads ``wanted``; else the clock moves one poll."""
        status = self.hc_status(name)
        if status.get("status") == wanted:
            return status
        clock.advance(every)
        return None

    def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        status, body = self.kube.request("GET", f"/api/v1/namespaces/{self.ns}/events")
        assert status == 200, body
        items = [e for e in body["items"] if e["involvedObject"].get("kind") == "Rollout"]
        return [e for e in items if reason is None or e["reason"] == reason]

    def managed_fields(self, base: str, plural: str, name: str) -> str:
        return json.dumps(self.get(base, plural, name)["metadata"].get("managedFields") or [])
