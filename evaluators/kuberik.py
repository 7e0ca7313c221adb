"""Kubernetes facts: the Rollout's roots; Flux and OpenKruise objects as FluxObject, KruiseRollout.

Callers: the controller's reconcile (from its watch-fed stores, through
``controller.planning.facts`` and ``controller.planning.linked``) and ``tidegate
record``. Read-only and pure: objects in, facts out, each with provenance naming
the object and its resourceVersion. Must not decide anything (the engine does),
find linked objects (the controller links them) nor read the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from evaluators.base import CollectedFact, Object
from policy_engine.model import facts as model

SCHEDULE_LABEL = "gate.kuberik.com/schedule-name"
SOURCE = "kubernetes"


def _ref(obj: Object, kind: str) -> model.ObjectRef:
    meta = obj.get("metadata") or {}
    return model.ObjectRef(
        kind=kind,
        name=str(meta.get("name", "")),
        namespace=meta.get("namespace"),
        api_version=obj.get("apiVersion"),
        uid=meta.get("uid"),
        resource_version=meta.get("resourceVersion"),
    )


def _fact(path: str, value: Any, provenance: model.Provenance) -> CollectedFact:
    return CollectedFact(path=(path,), value=value, error=None, provenance=provenance)


def _release(info: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not info or not info.get("tag"):
        return None
    keys = ("tag", "version", "digest", "revision", "created")
    return {key: info[key] for key in keys if info.get(key) not in (None, "")}


def rollout_record(
    rollout: Object, history: Sequence[Mapping[str, Any]], environment: str | None = None
) -> dict[str, Any]:
    """The ``rollout`` root: identity, labels, spec, the current release, environment, intents."""
    meta = rollout.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    spec = rollout.get("spec") or {}
    record: dict[str, Any] = {
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "labels": dict(meta.get("labels") or {}),
        "annotations": dict(annotations),
        "spec": dict(spec),
        "intents": _intents(spec, annotations),
    }
    current = _release(history[0].get("version")) if history else None
    if current:
        record["current"] = current
    if environment:
        record["environment"] = environment
    return record


def _intents(spec: Mapping[str, Any], annotations: Mapping[str, str]) -> dict[str, Any]:
    intents: dict[str, Any] = {
        "unblockFailed": annotations.get("rollout.kuberik.com/unblock-failed") == "true"
    }
    for key, annotation in (
        ("forceDeploy", "rollout.kuberik.com/force-deploy"),
        ("bypassGates", "rollout.kuberik.com/bypass-gates"),
    ):
        if annotations.get(annotation):
            intents[key] = annotations[annotation]
    if spec.get("wantedVersion"):
        intents["wantedVersion"] = spec["wantedVersion"]
    return intents


def history_records(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``history``: the entries as Kuberik serialises them (unknown keys dropped)."""
    keys = (
        "id", "timestamp", "bakeStatus", "bakeStatusMessage", "message", "bakeStartTime",
        "bakeEndTime", "lastRetryTimestamp", "triggeredBy", "failedHealthChecks",
    )  # fmt: skip
    records = []
    for entry in history:
        record = {key: entry[key] for key in keys if entry.get(key) is not None}
        record["version"] = _release(entry.get("version")) or {"tag": ""}
        records.append(record)
    return records


def gate_record(gate: Object) -> dict[str, Any]:
    """A RolloutGate as the ``gates`` root holds it (allowedVersions unset stays unset)."""
    meta = gate.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    spec = gate.get("spec") or {}
    record: dict[str, Any] = {
        "name": meta.get("name", ""),
        "passing": spec.get("passing") is not False,
    }
    allowed = spec.get("allowedVersions")
    if allowed is None and annotations.get("tidegate.dev/approval") == "true":
        allowed = []
    if allowed is not None:
        record["allowedVersions"] = [str(v) for v in allowed]
    for key, annotation in (
        ("prettyName", "gate.kuberik.com/pretty-name"),
        ("description", "gate.kuberik.com/description"),
    ):
        if annotations.get(annotation):
            record[key] = annotations[annotation]
    owner = next(iter(meta.get("ownerReferences") or []), None)
    if owner:
        record["owner"] = f"{owner.get('kind')}/{owner.get('name')}"
    return record


def is_schedule_gate(gate: Object) -> bool:
    """A RolloutGate managed by a RolloutSchedule or ClusterRolloutSchedule."""
    return SCHEDULE_LABEL in ((gate.get("metadata") or {}).get("labels") or {})


def health_check_record(hc: Object) -> dict[str, Any]:
    """A HealthCheck as the ``healthChecks`` root holds it."""
    meta = hc.get("metadata") or {}
    status = hc.get("status") or {}
    record: dict[str, Any] = {
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "status": status.get("status") or "",
        "labels": dict(meta.get("labels") or {}),
    }
    if (hc.get("spec") or {}).get("class"):
        record["class"] = hc["spec"]["class"]
    for key in ("message", "lastChangeTime", "lastErrorTime"):
        if status.get(key):
            record[key] = status[key]
    return record


def health_check_fact(hc: Object, observed_at: datetime) -> CollectedFact:
    """The ``healthCheck`` root of a ``cel`` HealthCheck: the check itself."""
    prov = model.Provenance(SOURCE, ref=_ref(hc, "HealthCheck"), observed_at=observed_at)
    return _fact("healthCheck", health_check_record(hc), prov)


def rollout_facts(
    rollout: Object,
    *,
    history: Sequence[Mapping[str, Any]],
    candidates: Sequence[Mapping[str, Any]],
    gates: Sequence[Object],
    health_checks: Sequence[Object],
    observed_at: datetime,
    windows: Mapping[str, Mapping[str, Any]] | None = None,
    environment: str | None = None,
) -> list[CollectedFact]:
    """The Kuberik roots of one Rollout, from its (planned) status and related objects.

    Gates owned by schedules (label ``gate.kuberik.com/schedule-name``) are left out of
    ``gates``: their schedules are the ``windows`` root (KUBERIK-SEMANTICS.md §6), so
    one schedule is judged once, by ``deploy-windows``, with an exact nextChange.
    """
    own = model.Provenance(SOURCE, ref=_ref(rollout, "Rollout"), observed_at=observed_at)
    facts = [
        _fact("rollout", rollout_record(rollout, history, environment), own),
        _fact("history", history_records(history), own),
        _fact("candidates", [r for r in map(_release, candidates) if r], own),
        _fact(
            "windows",
            {key: dict(value) for key, value in (windows or {}).items()},
            model.Provenance(
                SOURCE, query="schedules selecting the Rollout", observed_at=observed_at
            ),
        ),
    ]
    facts.append(
        _fact(
            "gates",
            [gate_record(g) for g in gates if not is_schedule_gate(g)],
            model.Provenance(SOURCE, query="RolloutGates by rolloutRef", observed_at=observed_at),
        )
    )
    facts.append(
        _fact(
            "healthChecks",
            [health_check_record(hc) for hc in health_checks],
            model.Provenance(
                SOURCE, query="HealthChecks by healthCheckSelector", observed_at=observed_at
            ),
        )
    )
    return facts


# --- flux, kruise, environments: projections of objects the controller linked ------------------

FLUX_KINDS = {
    "kustomizations": "Kustomization",
    "helmReleases": "HelmRelease",
    "ociRepositories": "OCIRepository",
    "imagePolicies": "ImagePolicy",
}
"""The ``flux`` root's keys and the Flux kind each holds."""


def conditions_record(obj: Object) -> dict[str, dict[str, Any]]:
    """``status.conditions`` as type -> ``{status, reason, message, lastTransitionTime}``."""
    found: dict[str, dict[str, Any]] = {}
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if not isinstance(cond, Mapping) or not cond.get("type"):
            continue
        keys = ("status", "reason", "message", "lastTransitionTime")
        found[str(cond["type"])] = {k: cond[k] for k in keys if cond.get(k) not in (None, "")}
    return found


def _flux_revision(obj: Object) -> str | None:
    """The revision each Flux kind reports: applied, artifact, or the ImagePolicy's latest tag."""
    status = obj.get("status") or {}
    kind = obj.get("kind")
    if kind == "OCIRepository":
        return (status.get("artifact") or {}).get("revision")
    if kind == "ImagePolicy":
        latest = status.get("latestRef") or {}
        if latest.get("tag"):
            return str(latest["tag"])
        image = str(status.get("latestImage") or "")
        return image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else None
    return status.get("lastAppliedRevision")


def flux_object_record(obj: Object, kstatus: tuple[str, str] | None = None) -> dict[str, Any]:
    """A Flux object as a FluxObject: ``ready`` from its Ready condition (None without one).

    ``kstatus`` is the object's ``(status, message)`` as kstatus computes it (the caller's
    implementation): a Ready object that kstatus does not call ``Current`` (a newer
    generation not yet observed, ``Stalled`` or ``Reconciling``) is not ready, and the
    message says why.
    """
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    conditions = conditions_record(obj)
    ready_condition = conditions.get("Ready")
    record: dict[str, Any] = {
        "name": meta.get("name", ""),
        "ready": None if ready_condition is None else ready_condition.get("status") == "True",
        "suspended": (obj.get("spec") or {}).get("suspend") is True,
        "revision": _flux_revision(obj),
        "lastAttemptedRevision": status.get("lastAttemptedRevision"),
        "generation": meta.get("generation"),
        "observedGeneration": status.get("observedGeneration"),
        "conditions": conditions,
    }
    if ready_condition is not None:
        record["reason"] = ready_condition.get("reason")
        record["message"] = ready_condition.get("message")
    if record["ready"] and kstatus is not None and kstatus[0] != "Current":
        record["ready"] = False
        record["message"] = f"{kstatus[0]}: {kstatus[1]}"
    return {k: v for k, v in record.items() if v is not None}


def kruise_record(kruise: Object, tests: Sequence[Object] = ()) -> dict[str, Any]:
    """An OpenKruise Rollout as a KruiseRollout, with the RolloutTests naming it."""
    meta = kruise.get("metadata") or {}
    status = kruise.get("status") or {}
    canary = status.get("canaryStatus") or {}

    def either(key: str) -> Any:
        return canary.get(key) if canary.get(key) not in (None, "") else status.get(key)

    strategy = (kruise.get("spec") or {}).get("strategy") or {}
    record: dict[str, Any] = {
        "name": meta.get("name", ""),
        "phase": status.get("phase"),
        "currentStepIndex": either("currentStepIndex"),
        "currentStepState": either("currentStepState"),
        "canaryRevision": either("canaryRevision"),
        "stableRevision": either("stableRevision"),
        "paused": strategy.get("paused") is True,
        "conditions": conditions_record(kruise),
        "tests": [
            {
                "name": (test.get("metadata") or {}).get("name", ""),
                "stepIndex": (test.get("spec") or {}).get("stepIndex"),
                "phase": (test.get("status") or {}).get("phase"),
            }
            for test in tests
        ],
    }
    return {k: v for k, v in record.items() if v is not None}


def object_provenance(obj: Object, kind: str, observed_at: datetime) -> model.Provenance:
    """``kubernetes`` provenance naming ``obj`` and its resourceVersion."""
    return model.Provenance(SOURCE, ref=_ref(obj, kind), observed_at=observed_at)


def query_provenance(query: str, observed_at: datetime) -> model.Provenance:
    """``kubernetes`` provenance of a root gathered from several objects."""
    return model.Provenance(SOURCE, query=query, observed_at=observed_at)
