"""The registry of custom-resource kinds tidegate serves: groups, names, scope, models, columns.

Callers: ``controller.api.crds`` (CRD generation and docs), the deploy tests.
Pure data: no I/O. Schemas are never written here; they come from the
pydantic models each ``Kind`` names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from controller.api import environments, kuberik, policies, rollouttests, schedules
from policy_engine.model import policy

CRD_DIR = "crds"
AGE = ("Age", "date", ".metadata.creationTimestamp", 0)
READY = '.status.conditions[?(@.type=="Ready")]'


@dataclass(frozen=True)
class Column:
    """An additional printer column (``kubectl get``; priority 1 is ``-o wide`` only)."""

    name: str
    type: str
    json_path: str
    priority: int = 0

    def to_k8s(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.priority:
            column["priority"] = self.priority
        return column


@dataclass(frozen=True)
class Kind:
    """One custom resource kind and how its CRD is built."""

    group: str
    kind: str
    plural: str
    scope: str
    description: str
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: tuple[Column, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ("tidegate",)
    spec_required: bool = True
    descriptions: Mapping[str, str] = field(default_factory=dict)
    open_paths: frozenset[str] = frozenset()
    patch: Callable[[dict[str, Any]], None] | None = None

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def file(self) -> str:
        return f"{CRD_DIR}/{self.group}_{self.plural}.yaml"


def _columns(*specs: tuple[str, str, str, int]) -> tuple[Column, ...]:
    return tuple(Column(*spec) for spec in specs)


def _kuberik_kinds() -> tuple[Kind, ...]:
    history0 = ".status.history[0]"
    schedule_columns = _columns(
        ("Action", "string", ".spec.action", 0),
        ("Active", "boolean", ".status.active", 0),
        ("Matching", "integer", ".status.matchingRollouts", 0),
        AGE,
    )
    kuberik_categories = ("tidegate", "kuberik")
    return (
        Kind(
            kuberik.GROUP,
            "Rollout",
            "rollouts",
            "Namespaced",
            "Deploys releases of one ImagePolicy through gates, policies and bakes.",
            kuberik.RolloutSpec,
            kuberik.RolloutStatus,
            _columns(
                ("Version", "string", f"{history0}.version.tag", 0),
                ("Message", "string", f"{history0}.message", 0),
                ("BakeStatus", "string", f"{history0}.bakeStatus", 0),
                ("BakeTime", "string", f"{history0}.bakeStartTime", 0),
                ("Gates", "string", '.status.conditions[?(@.type=="GatesPassing")].status', 0),
                ("Available", "string", ".status.releaseCandidates[0].tag", 0),
                AGE,
                ("Ready", "string", f"{READY}.status", 0),
                ("Status", "string", f"{READY}.message", 0),
                ("Decision", "string", ".status.decision.decision", 1),
                ("Next", "string", ".status.decision.nextChange", 1),
            ),
            categories=kuberik_categories,
        ),
        Kind(
            kuberik.GROUP,
            "HealthCheck",
            "healthchecks",
            "Namespaced",
            "A health signal Rollouts select to block deploys and judge bakes.",
            kuberik.HealthCheckSpec,
            kuberik.HealthCheckStatus,
            _columns(
                ("Class", "string", ".spec.class", 0),
                ("Status", "string", ".status.status", 0),
                ("LastChange", "date", ".status.lastChangeTime", 0),
                ("Message", "string", ".status.message", 1),
                AGE,
            ),
            short_names=("hc",),
            categories=kuberik_categories,
            spec_required=False,
            open_paths=frozenset({"spec.cel.params"}),
            descriptions={
                **policies.metric_descriptions("spec.cel.facts"),
                **policies.named_descriptions("spec.cel.variables", "Variable"),
            },
            patch=policies.cel_health_rules,
        ),
        Kind(
            kuberik.GROUP,
            "RolloutGate",
            "rolloutgates",
            "Namespaced",
            "A gate on a Rollout's automatic deploys: a switch and an optional allow-list.",
            kuberik.RolloutGateSpec,
            kuberik.RolloutGateStatus,
            _columns(
                ("Rollout", "string", ".spec.rolloutRef.name", 0),
                ("Passing", "boolean", ".spec.passing", 0),
                ("Allowed", "string", ".spec.allowedVersions", 1),
                AGE,
            ),
            short_names=("rgate",),
            categories=kuberik_categories,
        ),
        Kind(
            kuberik.GROUP,
            "RolloutSchedule",
            "rolloutschedules",
            "Namespaced",
            "A deployment window for the Rollouts of its namespace.",
            schedules.RolloutScheduleSpec,
            schedules.RolloutScheduleStatus,
            schedule_columns,
            short_names=("rsched",),
            categories=kuberik_categories,
        ),
        Kind(
            kuberik.GROUP,
            "ClusterRolloutSchedule",
            "clusterrolloutschedules",
            "Cluster",
            "A deployment window for Rollouts across namespaces.",
            schedules.ClusterRolloutScheduleSpec,
            schedules.RolloutScheduleStatus,
            schedule_columns,
            short_names=("crsched",),
            categories=kuberik_categories,
        ),
        Kind(
            rollouttests.GROUP,
            "RolloutTest",
            "rollouttests",
            "Namespaced",
            "A test Job that must pass before a paused OpenKruise canary step is approved.",
            rollouttests.RolloutTestSpec,
            rollouttests.RolloutTestStatus,
            _columns(
                ("Rollout", "string", ".spec.rolloutName", 0),
                ("Step", "integer", ".spec.stepIndex", 0),
                ("Phase", "string", ".status.phase", 0),
                ("Job", "string", ".status.jobName", 1),
                AGE,
            ),
            short_names=("rtest",),
            categories=kuberik_categories,
        ),
        Kind(
            environments.GROUP,
            "Environment",
            "environments",
            "Namespaced",
            "A stage of an app's promotion chain; owns a gate on its Rollout.",
            environments.EnvironmentSpec,
            environments.EnvironmentStatus,
            _columns(
                ("App", "string", ".spec.name", 0),
                ("Environment", "string", ".spec.environment", 0),
                ("Upstream", "string", ".spec.relationship.environment", 0),
                ("Revision", "string", ".status.currentVersion", 1),
                AGE,
            ),
            categories=kuberik_categories,
        ),
    )


def _policy_kinds() -> tuple[Kind, ...]:
    columns = _columns(
        AGE,
        ("Description", "string", ".spec.description", 1),
        ("Ready", "string", f"{READY}.status", 0),
    )

    def namespaced(spec: dict[str, Any]) -> None:
        policies.admission_rules(spec, cluster=False)

    def cluster(spec: dict[str, Any]) -> None:
        policies.admission_rules(spec, cluster=True)

    common: dict[str, Any] = {
        "descriptions": policies.DESCRIPTIONS,
        "open_paths": policies.OPEN_PATHS,
    }
    return (
        Kind(
            policies.GROUP,
            "RolloutPolicy",
            "rolloutpolicies",
            "Namespaced",
            "CEL rules over facts attached to the Rollouts of its namespace.",
            policy.PolicySpec,
            policies.PolicyStatus,
            columns,
            short_names=("rpol",),
            patch=namespaced,
            **common,
        ),
        Kind(
            policies.GROUP,
            "ClusterRolloutPolicy",
            "clusterrolloutpolicies",
            "Cluster",
            "CEL rules over facts attached to Rollouts in selected namespaces.",
            policy.PolicySpec,
            policies.PolicyStatus,
            columns,
            short_names=("crpol",),
            patch=cluster,
            **common,
        ),
    )


def kinds() -> tuple[Kind, ...]:
    """Every kind tidegate serves, in generation order."""
    return _kuberik_kinds() + _policy_kinds()
