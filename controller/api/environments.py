"""Model of Environment (environments.kuberik.com/v1alpha1): one stage of an app's promotion chain.

Fields follow KUBERIK-SEMANTICS.md §2.5 and §7; [T] marks tidegate additions
(backend type ``kubernetes``, the Ready condition). Callers: the controller's
environment reconcile, the ``environments`` fact source, and
``controller.api.crds``. Pure data: no I/O, no GitHub.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import ConfigDict, Field

from controller.api.kuberik import HistoryEntry
from controller.api.meta import (
    Conditions,
    CrdModel,
    Duration,
    LocalObjectReference,
    ObjectMeta,
    Time,
)

GROUP = "environments.kuberik.com"
API_VERSION: Final = "environments.kuberik.com/v1alpha1"
DEFAULT_SECRET = "github-token"

RelationshipType = Literal["After", "Parallel"]


class Relationship(CrdModel):
    """The upstream environment this one follows."""

    environment: str = Field(description="The upstream's spec.environment.")
    type: RelationshipType = Field(
        description="After: upstream bake Succeeded. Parallel: [T] upstream deployed."
    )


class Backend(CrdModel):
    """Where deployments are mirrored and upstreams are read."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.type != 'github' || has(self.project)",
                    "message": "backend.project (owner/repo) is required for type github",
                }
            ]
        }
    )

    type: Literal["github", "kubernetes"] = Field(
        description="github, or [T] kubernetes (same-cluster upstreams, no GitHub)."
    )
    project: str | None = Field(
        default=None, description="owner/repo for github; links environments."
    )
    secret: str = Field(
        default=DEFAULT_SECRET, description="Secret with the GitHub token under key token."
    )


class EnvironmentSpec(CrdModel):
    """Links a Rollout to its app's other environments."""

    rollout_ref: LocalObjectReference = Field(
        alias="rolloutRef", description="The Rollout (same namespace)."
    )
    name: str = Field(
        description="App name, identical across its environments; kuberik/ is prefixed."
    )
    environment: str | None = Field(
        default=None, description="This environment's name, e.g. staging."
    )
    relationship: Relationship | None = Field(default=None, description="Upstream environment.")
    backend: Backend = Field(description="Deployment backend.")
    requeue_interval: Duration = Field(
        default="1m", alias="requeueInterval", description="Mirroring interval."
    )


class EnvironmentInfo(CrdModel):
    """One linked environment and its deployments."""

    environment: str = Field(description="Environment name.")
    environment_url: str | None = Field(
        default=None, alias="environmentUrl", description="Where it is shown."
    )
    relationship: Relationship | None = Field(default=None, description="Its upstream.")
    history: tuple[HistoryEntry, ...] = Field(
        default=(), description="Its deployments; non-adjacent ones keep only the latest."
    )


class EnvironmentStatus(CrdModel):
    """The promotion chain as this Environment sees it."""

    last_status_change_time: Time | None = Field(
        default=None, alias="lastStatusChangeTime", description="Last content change."
    )
    current_version: str | None = Field(
        default=None, alias="currentVersion", description="Revision of the newest entry."
    )
    rollout_gate_ref: LocalObjectReference | None = Field(
        default=None, alias="rolloutGateRef", description="The RolloutGate it owns."
    )
    environment_infos: tuple[EnvironmentInfo, ...] = Field(
        default=(), alias="environmentInfos", description="Linked environments, ancestors first."
    )
    conditions: Conditions = Field(default=(), description="[T] Ready.")


class Environment(CrdModel):
    """A stage of an app's promotion chain; owns a gate on its Rollout."""

    api_version: Literal["environments.kuberik.com/v1alpha1"] = Field(
        default=API_VERSION, alias="apiVersion"
    )
    kind: Literal["Environment"] = "Environment"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: EnvironmentSpec
    status: EnvironmentStatus | None = None
