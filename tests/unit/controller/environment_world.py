"""Shared builders for the Environments tests: history entries, Environments, an in-memory GitHub.

Callers: test_environments.py (promotion, gate, facts) and test_mirroring.py (GitHub
mirroring and remote history). ``FakeGitHub`` applies mirror plans with the API's JSON
shapes, statuses kept newest first; nothing here talks to a network.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.planning.mirroring import CreateDeployment, PostStatus

Obj = dict[str, Any]
S = datetime(2026, 3, 4, 8, 0, tzinfo=UTC)
STAGING_SPEC: Obj = {
    "rolloutRef": {"name": "r"},
    "name": "app",
    "environment": "staging",
    "backend": {"type": "github", "project": "acme/app"},
}


def at(offset: timedelta = timedelta(0)) -> str:
    return (S + offset).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry(
    ident: int | None, revision: str | None, bake: str | None, *, tag: str = "1.0.0",
    message: str | None = None, when: timedelta = timedelta(0), start: timedelta | None = None,
) -> Obj:  # fmt: skip
    made: Obj = {
        "id": ident,
        "version": {"tag": tag, "revision": revision},
        "timestamp": at(when),
        "message": "Automatic deployment",
        "triggeredBy": {"kind": "System", "name": "rollout-controller"},
        "bakeStatus": bake,
        "bakeStatusMessage": message,
        "bakeStartTime": None if start is None else at(start),
    }
    return {k: v for k, v in made.items() if v is not None}


def environment(
    name: str = "prod", *, relationship: Obj | None = None, annotations: Obj | None = None,
    backend: Obj | None = None,
) -> Obj:  # fmt: skip
    spec: Obj = {
        "rolloutRef": {"name": f"r-{name}"},
        "name": "app",
        "environment": name,
        "backend": backend or {"type": "github", "project": "acme/app"},
    }
    if relationship:
        spec["relationship"] = relationship
    return {
        "apiVersion": "environments.kuberik.com/v1alpha1",
        "kind": "Environment",
        "metadata": {
            "name": f"app-{name}",
            "namespace": "ns",
            "uid": f"uid-{name}",
            "annotations": annotations or {},
        },
        "spec": spec,
    }


class FakeGitHub:
    """Applies mirror plans with the API's JSON shapes; statuses kept newest first."""

    def __init__(self) -> None:
        self.pairs: list[tuple[Obj, list[Obj]]] = []
        self.next_id = 100
        self.clock = S

    def tick(self) -> str:
        self.clock += timedelta(seconds=1)
        self.next_id += 1
        return self.clock.strftime("%Y-%m-%dT%H:%M:%SZ")

    def deployment(self, body: Obj) -> Obj:
        stamp = self.tick()
        made = {**body, "id": self.next_id, "created_at": stamp, "updated_at": stamp}
        self.pairs.insert(0, (made, []))
        return made

    def status(self, deployment_id: int, body: Obj) -> None:
        statuses = next(s for d, s in self.pairs if d["id"] == deployment_id)
        stamp = self.tick()
        statuses.insert(0, {**body, "id": self.next_id, "created_at": stamp})

    def apply(self, plan: Sequence[CreateDeployment | PostStatus]) -> None:
        for operation in plan:
            if isinstance(operation, CreateDeployment):
                made = self.deployment(operation.request)
                self.status(made["id"], operation.status)
            else:
                self.status(operation.deployment_id, operation.request)
