"""Models of the kuberik.com/v1alpha1 kinds Rollout, HealthCheck and RolloutGate.

Field names, types, defaults and validation are Kuberik's (KUBERIK-SEMANTICS.md
§2.1–§2.2); tidegate additions are marked [T]. Callers: the controller
(parsing observed objects, building status) and ``controller.api.crds``
(the CRDs are generated from these classes). Pure data: no I/O, no clock;
must never rename or drop a Kuberik field.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final, Literal

from pydantic import ConfigDict, Field, field_validator

from controller.api.meta import (
    OPEN,
    Conditions,
    CrdModel,
    Duration,
    Int32,
    Int64,
    LocalObjectReference,
    ObjectMeta,
    Time,
)
from policy_engine.model import policy, times

GROUP = "kuberik.com"
API_VERSION: Final = "kuberik.com/v1alpha1"
BAKE_STATUSES = ("Deploying", "InProgress", "Succeeded", "Failed", "Cancelled")
MIN_CEL_INTERVAL = timedelta(seconds=5)

BakeStatus = Literal["Deploying", "InProgress", "Succeeded", "Failed", "Cancelled"]
DecisionWord = Literal["Allowed", "Pending", "Blocked"]


class HealthCheckSelector(CrdModel):
    """Which HealthChecks a Rollout uses; set (even ``{}``) means bake is configured."""

    selector: policy.LabelSelector | None = Field(
        default=None, description="HealthChecks used. Unset: none."
    )
    namespace_selector: policy.LabelSelector | None = Field(
        default=None,
        alias="namespaceSelector",
        description="Namespaces searched. Unset: the Rollout's namespace.",
    )


class RolloutSpec(CrdModel):
    """What to deploy, from where, and how a deployment bakes."""

    releases_image_policy: LocalObjectReference = Field(
        alias="releasesImagePolicy",
        description="The Flux ImagePolicy (same namespace) that is the only release source.",
    )
    wanted_version: str | None = Field(
        default=None,
        alias="wantedVersion",
        description="Pin: always deployed, any registry tag; ignores gates, health blocking "
        "and the failed-bake block. No automatic upgrades while set.",
    )
    version_history_limit: Int32 = Field(
        default=10, ge=1, alias="versionHistoryLimit", description="Max history entries."
    )
    available_releases_retention_days: Int32 = Field(
        default=7,
        ge=1,
        alias="availableReleasesRetentionDays",
        description="Days an available release is kept once history is full.",
    )
    available_releases_min_count: Int32 = Field(
        default=30,
        ge=1,
        alias="availableReleasesMinCount",
        description="Available releases always kept, whatever their age.",
    )
    bake_time: Duration | None = Field(
        default=None,
        alias="bakeTime",
        description="Error-free time required after the bake starts.",
    )
    deploy_timeout: Duration | None = Field(
        default=None,
        alias="deployTimeout",
        description="Max time from the deploy (or retry) to bake start. Unset: unbounded.",
    )
    health_check_selector: HealthCheckSelector | None = Field(
        default=None, alias="healthCheckSelector", description="HealthChecks that gate the bake."
    )


class VersionInfo(CrdModel):
    """A release: its tag and what the OCI manifest says about it."""

    tag: str = Field(description="Image tag.")
    digest: str | None = Field(default=None, description="From the ImagePolicy's latestRef.")
    version: str | None = Field(
        default=None, description="Annotation org.opencontainers.image.version."
    )
    revision: str | None = Field(
        default=None, description="Annotation org.opencontainers.image.revision."
    )
    created: Time | None = Field(
        default=None, description="Annotation org.opencontainers.image.created."
    )


class TriggeredBy(CrdModel):
    """Who caused a deployment."""

    kind: Literal["User", "System"] = Field(
        description="User for manual deploys with deploy-user, else System."
    )
    name: str = Field(description="The deploy-user, or rollout-controller.")


class FailedHealthCheck(CrdModel):
    """A HealthCheck that failed the bake."""

    name: str = Field(description="HealthCheck name.")
    namespace: str = Field(description="HealthCheck namespace.")
    message: str | None = Field(default=None, description="Its message at the failure.")


class HistoryEntry(CrdModel):
    """One deployment, newest first in ``status.history``."""

    id: Int64 | None = Field(default=None, description="history[0].id + 1, else 1. Never resets.")
    version: VersionInfo = Field(description="The release deployed.")
    timestamp: Time = Field(description="Deploy time.")
    message: str | None = Field(default=None, description="Why or how it was deployed.")
    triggered_by: TriggeredBy = Field(alias="triggeredBy", description="Who deployed it.")
    bake_status: BakeStatus | None = Field(
        default=None, alias="bakeStatus", description="Bake state of this deployment."
    )
    bake_status_message: str | None = Field(
        default=None, alias="bakeStatusMessage", description="Why the bake is in that state."
    )
    bake_start_time: Time | None = Field(
        default=None, alias="bakeStartTime", description="When all HealthChecks were healthy."
    )
    bake_end_time: Time | None = Field(
        default=None, alias="bakeEndTime", description="When a terminal bake state was reached."
    )
    failed_health_checks: tuple[FailedHealthCheck, ...] = Field(
        default=(), alias="failedHealthChecks", description="HealthChecks that failed the bake."
    )
    last_retry_timestamp: Time | None = Field(
        default=None,
        alias="lastRetryTimestamp",
        description="Set by a retry; the cutoff shared with the OpenKruise step gate.",
    )
    rollback_of: str | None = Field(
        default=None,
        alias="rollbackOf",
        description="[T] The tag whose failed bake caused this automatic rollback.",
    )


class GateSummary(CrdModel):
    """A RolloutGate referencing the Rollout, as the Rollout saw it."""

    name: str = Field(description="RolloutGate name.")
    passing: bool | None = Field(default=None, description="The gate's spec.passing.")
    allowed_versions: tuple[str, ...] = Field(
        default=(),
        alias="allowedVersions",
        description="The gate's spec.allowedVersions; always serialised, [] when unset.",
    )
    message: str | None = Field(default=None, description="Gate state in words.")
    bypass_gates: bool = Field(
        default=False, alias="bypassGates", description="Bypassed for the current deployment."
    )


class DecisionPolicy(CrdModel):
    """[T] A policy attached to the Rollout."""

    name: str = Field(description="Policy reference (kuberik, name or ns/name).")
    digest: str = Field(description="Digest of the compiled policy.")


class DecisionRule(CrdModel):
    """[T] A rule result that is not a pass."""

    id: str = Field(description="Rule ID, e.g. kuberik/deploy-windows.")
    result: Literal["pass", "fail", "pending", "skip", "error"] = Field(
        description="Outcome of the rule."
    )
    reason: str | None = Field(default=None, description="CamelCase reason.")
    message: str | None = Field(default=None, description="Rule message.")
    next_change: Time | None = Field(
        default=None, alias="nextChange", description="When this result would change."
    )
    outputs: dict[str, Any] | None = Field(
        default=None,
        json_schema_extra=OPEN,
        description="The rule's outputs (values computed from facts).",
    )


class DecisionCandidate(CrdModel):
    """[T] The decision for one release candidate."""

    tag: str = Field(description="Candidate tag.")
    decision: DecisionWord = Field(description="Allowed, Pending or Blocked.")
    next_change: Time | None = Field(
        default=None, alias="nextChange", description="When the decision would flip."
    )
    rules: tuple[DecisionRule, ...] = Field(default=(), description="Non-pass rule results.")


class Decision(CrdModel):
    """[T] Why the Rollout deploys, waits or is blocked; absent without candidates."""

    decision: DecisionWord = Field(
        description="Decision for the candidate that deploys next: the newest, or the oldest "
        "with sequential."
    )
    allowed_versions: tuple[str, ...] = Field(
        default=(), alias="allowedVersions", description="Allowed candidates, newest first."
    )
    next_change: Time | None = Field(
        default=None, alias="nextChange", description="When the decision would flip."
    )
    evaluated_at: Time | None = Field(
        default=None, alias="evaluatedAt", description="The evaluation instant."
    )
    policies: tuple[DecisionPolicy, ...] = Field(default=(), description="Attached policies.")
    candidates: tuple[DecisionCandidate, ...] = Field(
        default=(), description="Per-candidate decisions."
    )


class RolloutStatus(CrdModel):
    """What the controller observed and did."""

    conditions: Conditions = Field(
        default=(),
        description="Ready, ReleasesUpdated, GatesPassing, DeploymentBlocked, "
        "BakeFailureDisabled; [T] Reconciling, Stalled.",
    )
    history: tuple[HistoryEntry, ...] = Field(default=(), description="Deployments, newest first.")
    available_releases: tuple[VersionInfo, ...] = Field(
        default=(), alias="availableReleases", description="Every release seen, oldest first."
    )
    release_candidates: tuple[VersionInfo, ...] = Field(
        default=(), alias="releaseCandidates", description="Deployable releases, newest first."
    )
    gated_release_candidates: tuple[VersionInfo, ...] = Field(
        default=(),
        alias="gatedReleaseCandidates",
        description="Candidates left after the RolloutGates.",
    )
    gates: tuple[GateSummary, ...] = Field(default=(), description="Gates of this Rollout.")
    artifact_type: str | None = Field(
        default=None,
        alias="artifactType",
        description="The latest release's artifactType or media type.",
    )
    source: str | None = Field(
        default=None, description="Annotation org.opencontainers.image.source."
    )
    title: str | None = Field(
        default=None, description="Annotation org.opencontainers.image.title."
    )
    description: str | None = Field(
        default=None, description="Annotation org.opencontainers.image.description."
    )
    observed_generation: Int64 | None = Field(
        default=None, alias="observedGeneration", description="[T] Last planned generation."
    )
    decision: Decision | None = Field(default=None, description="[T] The policy decision.")


class Rollout(CrdModel):
    """A Kuberik Rollout: deploys releases of one ImagePolicy through gates and bakes."""

    api_version: Literal["kuberik.com/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["Rollout"] = "Rollout"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RolloutSpec
    status: RolloutStatus | None = None


class HealthCheckCel(CrdModel):
    """[T] A CEL health expression, evaluated every ``interval``."""

    interval: Duration = Field(
        default="30s",
        json_schema_extra={
            "maxLength": 64,
            "x-kubernetes-validations": [
                {
                    "rule": "duration(self) >= duration('5s')",
                    "message": "interval must be at least 5s",
                }
            ],
        },
        description="Evaluation interval, at least 5s.",
    )
    facts: policy.FactRequirementsSpec | None = Field(
        default=None, description="Metrics queried for the expression."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Named values, as in a RolloutPolicy."
    )
    variables: tuple[policy.NamedExpression, ...] = Field(
        default=(), description="Named CEL expressions, in order."
    )
    pending_when: str | None = Field(
        default=None, alias="pendingWhen", description="CEL: true means Pending."
    )
    expression: str = Field(description="CEL: true means Healthy, false Unhealthy.")
    message: str | None = Field(default=None, description="Message when not Healthy.")
    message_expression: str | None = Field(
        default=None, alias="messageExpression", description="CEL string message."
    )
    on_error: Literal["unhealthy", "pending"] = Field(
        default="unhealthy", alias="onError", description="Status when evaluation fails."
    )

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        if times.parse_duration(value) < MIN_CEL_INTERVAL:
            raise ValueError("interval must be at least 5s")
        return value

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any]) -> dict[str, Any]:
        return {name: policy.normalise_param(name, raw) for name, raw in value.items()}


class HealthCheckSpec(CrdModel):
    """Which controller judges the health, and how."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.cel) == (has(self.class) && self.class == 'cel')",
                    "message": "spec.cel is required with class cel and allowed only with it",
                }
            ]
        }
    )

    class_: str | None = Field(
        default=None,
        alias="class",
        description="kustomization, prometheus-alert or [T] cel; others: another controller.",
    )
    cel: HealthCheckCel | None = Field(default=None, description="[T] For class cel.")


class HealthCheckStatus(CrdModel):
    """The verdict of a HealthCheck."""

    status: Literal["Healthy", "Unhealthy", "Pending", ""] | None = Field(
        default=None, description="Healthy, Unhealthy, Pending or empty."
    )
    message: str | None = Field(default=None, description="The verdict in words.")
    last_change_time: Time | None = Field(
        default=None, alias="lastChangeTime", description="Last change of status."
    )
    last_error_time: Time | None = Field(
        default=None, alias="lastErrorTime", description="Failure witness."
    )


class HealthCheck(CrdModel):
    """A health signal that Rollouts select to block deploys and judge bakes."""

    api_version: Literal["kuberik.com/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["HealthCheck"] = "HealthCheck"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: HealthCheckSpec = Field(default_factory=HealthCheckSpec)
    status: HealthCheckStatus | None = None


class RolloutGateSpec(CrdModel):
    """A gate on the automatic deploys of one Rollout."""

    rollout_ref: LocalObjectReference = Field(
        alias="rolloutRef", description="The Rollout (same namespace)."
    )
    passing: bool = Field(default=True, description="false blocks every automatic deploy.")
    allowed_versions: tuple[str, ...] | None = Field(
        default=None,
        alias="allowedVersions",
        description="Unset: no restriction. A list, even [], is intersected with the candidates.",
    )


class RolloutGateStatus(CrdModel):
    """Always empty."""


class RolloutGate(CrdModel):
    """A gate on a Rollout: a switch and an optional allow-list of versions."""

    api_version: Literal["kuberik.com/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["RolloutGate"] = "RolloutGate"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RolloutGateSpec
    status: RolloutGateStatus | None = None
