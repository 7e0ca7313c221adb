"""The declared shape of every fact root and record (POLICY-FORMATS.md §3).

Callers: ``model.facts`` (normalising values), ``cel`` (declared variables,
``cel.undeclared_fact`` checks), ``rendering`` (``tidegate functions --facts``).
This module is data plus pure lookups; it must not convert or evaluate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Scalar:
    """A leaf: string, int, double, bool, timestamp, duration or raw (any JSON)."""

    name: str

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class ListOf:
    item: FactType

    def describe(self) -> str:
        return f"list({self.item.describe()})"


@dataclass(frozen=True, slots=True)
class MapOf:
    """A map with string keys."""

    value: FactType

    def describe(self) -> str:
        return f"map(string, {self.value.describe()})"


@dataclass(frozen=True, slots=True)
class Record:
    """A map with exactly the listed keys (``null`` when unset, else ``defaults``).

    ``always``: an absent record of this type normalises to one with every key
    set to its default (``rollout.intents`` is always readable).
    """

    name: str
    fields: Mapping[str, FactType] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    always: bool = False

    def describe(self) -> str:
        return self.name


FactType = Scalar | ListOf | MapOf | Record

STRING = Scalar("string")
INT = Scalar("int")
DOUBLE = Scalar("double")
BOOL = Scalar("bool")
TIMESTAMP = Scalar("timestamp")
DURATION = Scalar("duration")
RAW = Scalar("raw")
STRINGS = ListOf(STRING)
LABELS = MapOf(STRING)

RELEASE = Record(
    "Release",
    {"tag": STRING, "version": STRING, "digest": STRING, "revision": STRING, "created": TIMESTAMP},
)
INTENTS = Record(
    "Intents",
    {"wantedVersion": STRING, "forceDeploy": STRING, "bypassGates": STRING, "unblockFailed": BOOL},
    defaults={"unblockFailed": False},
    always=True,
)
ROLLOUT = Record(
    "Rollout",
    {
        "namespace": STRING,
        "name": STRING,
        "uid": STRING,
        "labels": LABELS,
        "annotations": LABELS,
        "spec": RAW,
        "current": RELEASE,
        "environment": STRING,
        "intents": INTENTS,
    },
)
TRIGGERED_BY = Record("TriggeredBy", {"kind": STRING, "name": STRING})
FAILED_HEALTH_CHECK = Record(
    "FailedHealthCheck", {"namespace": STRING, "name": STRING, "message": STRING}
)
HISTORY_ENTRY = Record(
    "HistoryEntry",
    {
        "id": INT,
        "version": RELEASE,
        "timestamp": TIMESTAMP,
        "bakeStatus": STRING,
        "bakeStatusMessage": STRING,
        "message": STRING,
        "bakeStartTime": TIMESTAMP,
        "bakeEndTime": TIMESTAMP,
        "lastRetryTimestamp": TIMESTAMP,
        "triggeredBy": TRIGGERED_BY,
        "failedHealthChecks": ListOf(FAILED_HEALTH_CHECK),
    },
)
ENVIRONMENT = Record(
    "Environment",
    {
        "name": STRING,
        "tag": STRING,
        "revision": STRING,
        "relation": STRING,
        "bakeStatus": STRING,
        "deployedAt": TIMESTAMP,
        "bakeStartTime": TIMESTAMP,
        "bakeEndTime": TIMESTAMP,
        "healthy": BOOL,
        "healthySince": TIMESTAMP,
        "source": STRING,
    },
)
GATE = Record(
    "Gate",
    {
        "name": STRING,
        "passing": BOOL,
        "allowedVersions": STRINGS,
        "prettyName": STRING,
        "description": STRING,
        "owner": STRING,
    },
)
WINDOW_ENTRY = Record(
    "WindowEntry", {"name": STRING, "days": STRINGS, "between": STRING, "dates": STRING}
)
WINDOW_SOURCE = Record("WindowSource", {"kind": STRING, "namespace": STRING, "name": STRING})
WINDOW = Record(
    "Window",
    {
        "name": STRING,
        "timezone": STRING,
        "allow": ListOf(WINDOW_ENTRY),
        "deny": ListOf(WINDOW_ENTRY),
        "source": WINDOW_SOURCE,
    },
)
HEALTH_CHECK = Record(
    "HealthCheck",
    {
        "namespace": STRING,
        "name": STRING,
        "class": STRING,
        "status": STRING,
        "message": STRING,
        "lastChangeTime": TIMESTAMP,
        "lastErrorTime": TIMESTAMP,
        "labels": LABELS,
    },
)
ALERT = Record(
    "Alert",
    {
        "name": STRING,
        "labels": LABELS,
        "annotations": LABELS,
        "state": STRING,
        "activeAt": TIMESTAMP,
        "value": DOUBLE,
    },
)
METRIC_META = Record(
    "MetricMeta",
    {
        "evaluatedAt": TIMESTAMP,
        "samples": INT,
        "endpoint": STRING,
        "query": STRING,
        "stale": BOOL,
    },
)
CONDITION = Record(
    "Condition",
    {"status": STRING, "reason": STRING, "message": STRING, "lastTransitionTime": TIMESTAMP},
)
FLUX_OBJECT = Record(
    "FluxObject",
    {
        "name": STRING,
        "ready": BOOL,
        "reason": STRING,
        "message": STRING,
        "revision": STRING,
        "lastAttemptedRevision": STRING,
        "suspended": BOOL,
        "generation": INT,
        "observedGeneration": INT,
        "conditions": MapOf(CONDITION),
    },
)
FLUX = Record(
    "Flux",
    {
        "kustomizations": MapOf(FLUX_OBJECT),
        "helmReleases": MapOf(FLUX_OBJECT),
        "ociRepositories": MapOf(FLUX_OBJECT),
        "imagePolicies": MapOf(FLUX_OBJECT),
    },
)
KRUISE_TEST = Record("KruiseTest", {"name": STRING, "stepIndex": INT, "phase": STRING})
KRUISE_ROLLOUT = Record(
    "KruiseRollout",
    {
        "name": STRING,
        "phase": STRING,
        "currentStepIndex": INT,
        "currentStepState": STRING,
        "canaryRevision": STRING,
        "stableRevision": STRING,
        "paused": BOOL,
        "conditions": MapOf(CONDITION),
        "tests": ListOf(KRUISE_TEST),
    },
)

#: Roots a FactSnapshot carries (everything but now, release, params, variables).
SNAPSHOT_ROOTS: Mapping[str, FactType] = {
    "rollout": ROLLOUT,
    "candidates": ListOf(RELEASE),
    "history": ListOf(HISTORY_ENTRY),
    "environments": MapOf(ENVIRONMENT),
    "gates": ListOf(GATE),
    "windows": MapOf(WINDOW),
    "healthChecks": ListOf(HEALTH_CHECK),
    "alerts": ListOf(ALERT),
    "metrics": MapOf(DOUBLE),
    "metricsMeta": MapOf(METRIC_META),
    "flux": FLUX,
    "kruise": MapOf(KRUISE_ROLLOUT),
    # the HealthCheck a `cel`-class expression judges (POLICY-FORMATS.md §2.5); absent elsewhere
    "healthCheck": HEALTH_CHECK,
}

#: Roots computed per evaluation rather than recorded.
DERIVED_ROOTS: Mapping[str, FactType] = {"now": TIMESTAMP, "release": RELEASE}

#: Roots whose members are declared by the policy (params, variables).
POLICY_ROOTS = ("params", "variables")

ALL_ROOTS: tuple[str, ...] = (*DERIVED_ROOTS, *SNAPSHOT_ROOTS, *POLICY_ROOTS)


def root_type(name: str) -> FactType | None:
    """Returns the declared type of a fact root, or None for policy-declared roots."""
    if name in DERIVED_ROOTS:
        return DERIVED_ROOTS[name]
    return SNAPSHOT_ROOTS.get(name)


def element_type(parent: FactType) -> FactType | None:
    """Type of ``parent[i]`` for lists and maps."""
    if isinstance(parent, ListOf):
        return parent.item
    if isinstance(parent, MapOf):
        return parent.value
    if parent == RAW:
        return RAW
    return None
