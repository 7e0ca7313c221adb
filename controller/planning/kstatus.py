"""kstatus over raw Kubernetes objects: Current, InProgress, Failed, Terminating or Unknown.

Callers: ``planning.healthchecks`` (the ``kustomization`` HealthCheck class, KUBERIK-SEMANTICS
§5.2, and the Kruise coupling of §8). A Python reimplementation of the semantics of
sigs.k8s.io/cli-utils ``pkg/kstatus/status`` plus a ``Ready`` fallback for kinds with no
kind-specific rule. Pure: never reads the clock and never raises for a malformed object (that
is ``Unknown``).

Differences from upstream, all deliberate: ``Stalled=True`` wins over ``Reconciling=True``
whatever their order; a Pod in phase ``Failed`` is ``Failed``; a ``LoadBalancer`` Service is
``InProgress`` until ``status.loadBalancer.ingress`` is set; a Job with ``FailureTarget=True``
is ``Failed``; an unschedulable Pod stays ``InProgress`` (upstream compares with the clock).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from policy_engine.model.times import TimeSyntaxError, parse_timestamp

Status = Literal["Current", "InProgress", "Failed", "Terminating", "Unknown"]
FLUX_GROUP_SUFFIX = ".toolkit.fluxcd.io"
_NO_DEADLINE = 2**31 - 1


@dataclass(frozen=True, slots=True)
class KStatus:
    """The computed status, why, and the failure witness time (see ``witness``)."""

    status: Status
    message: str
    witness: datetime | None = None


def compute(obj: Any) -> KStatus:
    """The kstatus of ``obj`` (a decoded Kubernetes object); ``witness`` is filled in."""
    if not isinstance(obj, Mapping):
        return KStatus("Unknown", "object is not a mapping")
    result = _status_of(obj)
    return KStatus(result.status, result.message, witness(obj))


def witness(obj: Mapping[str, Any]) -> datetime | None:
    """The newest ``Stalled=True`` lastTransitionTime, else the newest condition time, else None."""
    stalled: list[datetime] = []
    every: list[datetime] = []
    for cond in conditions(obj):
        when = _time(cond.get("lastTransitionTime"))
        if when is None:
            continue
        every.append(when)
        if cond.get("type") == "Stalled" and cond.get("status") == "True":
            stalled.append(when)
    if stalled:
        return max(stalled)
    return max(every) if every else None


def conditions(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``status.conditions`` entries that are mappings (anything else is ignored)."""
    raw = _status(obj).get("conditions")
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return []
    return [cond for cond in raw if isinstance(cond, Mapping)]


def group_of(obj: Mapping[str, Any]) -> str:
    """The API group of ``apiVersion`` (``""`` for the core group)."""
    api_version = obj.get("apiVersion")
    if not isinstance(api_version, str) or "/" not in api_version:
        return ""
    return api_version.rsplit("/", 1)[0]


def _status_of(obj: Mapping[str, Any]) -> KStatus:
    generic = _generic(obj)
    if generic is not None:
        return generic
    group, kind = group_of(obj), str(obj.get("kind") or "")
    rule = _RULES.get((group, kind))
    if rule is not None:
        return rule(obj)
    ready = _ready(obj, group)
    if ready is not None:
        return ready
    return KStatus("Current", "Resource is current")


def _generic(obj: Mapping[str, Any]) -> KStatus | None:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    if meta.get("deletionTimestamp"):
        return KStatus("Terminating", "Resource scheduled for deletion")
    generation = _maybe_int(meta.get("generation"))
    observed = _maybe_int(_status(obj).get("observedGeneration"))
    if generation is not None and observed is not None and observed < generation:
        return KStatus(
            "InProgress",
            f"{obj.get('kind')} generation is {generation}, "
            f"but latest observed generation is {observed}",
        )
    found = conditions(obj)
    stalled = _find(found, "Stalled", "True")
    if stalled is not None:
        return KStatus("Failed", _text(stalled))
    reconciling = _find(found, "Reconciling", "True")
    if reconciling is not None:
        return KStatus("InProgress", _text(reconciling))
    return None


def _ready(obj: Mapping[str, Any], group: str) -> KStatus | None:
    ready = _find(conditions(obj), "Ready")
    if ready is None:
        return None
    state = ready.get("status")
    if state == "True":
        return KStatus("Current", _text(ready) or "Resource is Ready")
    if state == "False":
        message = _text(ready) or "Ready condition is False"
        if group.endswith(FLUX_GROUP_SUFFIX):
            return KStatus("Failed", message)
        return KStatus("InProgress", message)
    return KStatus("InProgress", _text(ready) or "Ready condition is Unknown")


def _deployment(obj: Mapping[str, Any]) -> KStatus:
    spec, status = _spec(obj), _status(obj)
    found = conditions(obj)
    progressing = _int(spec.get("progressDeadlineSeconds"), _NO_DEADLINE) == _NO_DEADLINE
    for cond in found:
        if cond.get("type") != "Progressing":
            continue
        if cond.get("reason") == "ProgressDeadlineExceeded":
            return KStatus("Failed", "Progress deadline exceeded")
        if cond.get("status") == "True" and cond.get("reason") == "NewReplicaSetAvailable":
            progressing = True
    available = _find(found, "Available", "True") is not None
    wanted = _int(spec.get("replicas"), 1)
    replicas = _int(status.get("replicas"), 0)
    updated = _int(status.get("updatedReplicas"), 0)
    ready = _int(status.get("readyReplicas"), 0)
    ready_for_long = _int(status.get("availableReplicas"), 0)
    if wanted > replicas:
        return KStatus("InProgress", f"Replicas: {replicas}/{wanted}")
    if wanted > updated:
        return KStatus("InProgress", f"Updated: {updated}/{wanted}")
    if replicas > wanted:
        return KStatus("InProgress", f"Pending termination: {replicas - wanted}")
    if updated > ready_for_long:
        return KStatus("InProgress", f"Available: {ready_for_long}/{updated}")
    if wanted > ready:
        return KStatus("InProgress", f"Ready: {ready}/{wanted}")
    if not progressing:
        return KStatus("InProgress", "ReplicaSet not Available")
    if not available:
        return KStatus("InProgress", "Deployment not Available")
    return KStatus("Current", f"Deployment is available. Replicas: {replicas}")


def _stateful_set(obj: Mapping[str, Any]) -> KStatus:
    spec, status = _spec(obj), _status(obj)
    strategy = spec.get("updateStrategy")
    strategy = strategy if isinstance(strategy, Mapping) else {}
    if strategy.get("type") == "OnDelete":
        return KStatus("Current", "StatefulSet is using the ondelete update strategy")
    rolling = strategy.get("rollingUpdate")
    partition = _maybe_int(rolling.get("partition")) if isinstance(rolling, Mapping) else None
    wanted = _int(spec.get("replicas"), 1)
    replicas = _int(status.get("replicas"), 0)
    ready = _int(status.get("readyReplicas"), 0)
    current = _int(status.get("currentReplicas"), 0)
    updated = _int(status.get("updatedReplicas"), 0)
    if wanted > replicas:
        return KStatus("InProgress", f"Replicas: {replicas}/{wanted}")
    if wanted > ready:
        return KStatus("InProgress", f"Ready: {ready}/{wanted}")
    if replicas > wanted:
        return KStatus("InProgress", f"Pending termination: {replicas - wanted}")
    if partition is not None:
        if updated < wanted - partition:
            return KStatus("InProgress", f"updated: {updated}/{wanted - partition}")
        return KStatus("Current", f"Partition rollout complete. updated: {updated}")
    if wanted > current:
        return KStatus("InProgress", f"current: {current}/{wanted}")
    if status.get("currentRevision", "") != status.get("updateRevision", ""):
        return KStatus("InProgress", "Waiting for updated revision to match current")
    return KStatus("Current", f"All replicas scheduled as expected. Replicas: {replicas}")


def _daemon_set(obj: Mapping[str, Any]) -> KStatus:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or _maybe_int(meta.get("generation")) is None:
        return KStatus("InProgress", f"{obj.get('kind')} metadata.generation not found")
    status = _status(obj)
    if _maybe_int(status.get("observedGeneration")) is None:
        return KStatus("InProgress", f"{obj.get('kind')} status.observedGeneration not found")
    desired = _maybe_int(status.get("desiredNumberScheduled"))
    if desired is None:
        return KStatus("InProgress", "Missing .status.desiredNumberScheduled")
    for field, label in (
        ("currentNumberScheduled", "Current"),
        ("updatedNumberScheduled", "Updated"),
        ("numberAvailable", "Available"),
        ("numberReady", "Ready"),
    ):
        have = _int(status.get(field), 0)
        if desired > have:
            return KStatus("InProgress", f"{label}: {have}/{desired}")
    return KStatus("Current", f"All replicas scheduled as expected. Replicas: {desired}")


def _replica_set(obj: Mapping[str, Any]) -> KStatus:
    if _find(conditions(obj), "ReplicaFailure", "True") is not None:
        return KStatus("InProgress", "Replica Failure condition. Check Pods")
    spec, status = _spec(obj), _status(obj)
    wanted = _int(spec.get("replicas"), 1)
    replicas = _int(status.get("replicas"), 0)
    for field, label in (
        ("fullyLabeledReplicas", "Labelled"),
        ("availableReplicas", "Available"),
        ("readyReplicas", "Ready"),
    ):
        have = _int(status.get(field), 0)
        if wanted > have:
            return KStatus("InProgress", f"{label}: {have}/{wanted}")
    if replicas > wanted:
        return KStatus("InProgress", f"Pending termination: {replicas - wanted}")
    return KStatus("Current", f"ReplicaSet is available. Replicas: {replicas}")


def _job(obj: Mapping[str, Any]) -> KStatus:
    spec, status = _spec(obj), _status(obj)
    parallelism = _int(spec.get("parallelism"), 1)
    completions = _int(spec.get("completions"), parallelism)
    succeeded = _int(status.get("succeeded"), 0)
    active = _int(status.get("active"), 0)
    failed = _int(status.get("failed"), 0)
    for cond in conditions(obj):
        if cond.get("status") != "True":
            continue
        kind = cond.get("type")
        if kind in ("Failed", "FailureTarget"):
            return KStatus("Failed", f"Job Failed. failed: {failed}/{completions}")
        if kind == "Complete":
            return KStatus("Current", f"Job Completed. succeeded: {succeeded}/{completions}")
        if kind == "Suspended":
            return KStatus("Current", "Job is suspended")
    if not status.get("startTime"):
        return KStatus("InProgress", "Job not started")
    return KStatus(
        "Current", f"Job in progress. success:{succeeded}, active: {active}, failed: {failed}"
    )


def _pod(obj: Mapping[str, Any]) -> KStatus:
    phase = _status(obj).get("phase") or ""
    if phase == "Succeeded":
        return KStatus("Current", "Pod has completed successfully")
    if phase == "Failed":
        return KStatus("Failed", "Pod has completed, but not successfully")
    if phase == "Running":
        if _find(conditions(obj), "Ready", "True") is not None:
            return KStatus("Current", "Pod is Ready")
        looping = _crash_looping(obj)
        if looping:
            return KStatus("Failed", f"Containers in CrashLoop state: {','.join(looping)}")
        return KStatus("InProgress", "Pod is running but is not Ready")
    if phase == "Pending":
        unscheduled = _find(conditions(obj), "PodScheduled", "False")
        if unscheduled is not None and unscheduled.get("reason") == "Unschedulable":
            return KStatus("InProgress", "Pod has not been scheduled")
        return KStatus("InProgress", "Pod is in the Pending phase")
    if phase == "":
        return KStatus("InProgress", "Pod phase not available")
    return KStatus("Unknown", f"unknown Pod phase {str(phase)[:40]!r}")


def _crash_looping(obj: Mapping[str, Any]) -> list[str]:
    raw = _status(obj).get("containerStatuses")
    names: list[str] = []
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return names
    for item in raw:
        state = item.get("state") if isinstance(item, Mapping) else None
        waiting = state.get("waiting") if isinstance(state, Mapping) else None
        if isinstance(waiting, Mapping) and waiting.get("reason") == "CrashLoopBackOff":
            names.append(str(item.get("name", "")))
    return names


def _pvc(obj: Mapping[str, Any]) -> KStatus:
    phase = _status(obj).get("phase") or "unknown"
    if phase != "Bound":
        return KStatus("InProgress", f"PVC is not Bound. phase: {phase}")
    return KStatus("Current", "PVC is Bound")


def _service(obj: Mapping[str, Any]) -> KStatus:
    if _spec(obj).get("type") != "LoadBalancer":
        return KStatus("Current", "Service is ready")
    balancer = _status(obj).get("loadBalancer")
    ingress = balancer.get("ingress") if isinstance(balancer, Mapping) else None
    if not ingress:
        return KStatus("InProgress", "LoadBalancer ingress not assigned")
    return KStatus("Current", "Service is ready")


def _crd(obj: Mapping[str, Any]) -> KStatus:
    for cond in conditions(obj):
        kind, state = cond.get("type"), cond.get("status")
        if kind == "NamesAccepted" and state == "False":
            return KStatus("Failed", _text(cond))
        if kind == "Established" and state == "False" and cond.get("reason") != "Installing":
            return KStatus("Failed", _text(cond))
        if kind == "Established" and state == "True":
            return KStatus("Current", "CRD is established")
    return KStatus("InProgress", "Install in progress")


_RULES: Mapping[tuple[str, str], Callable[[Mapping[str, Any]], KStatus]] = {
    ("apps", "Deployment"): _deployment,
    ("extensions", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _stateful_set,
    ("apps", "DaemonSet"): _daemon_set,
    ("extensions", "DaemonSet"): _daemon_set,
    ("apps", "ReplicaSet"): _replica_set,
    ("extensions", "ReplicaSet"): _replica_set,
    ("batch", "Job"): _job,
    ("", "Pod"): _pod,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "Service"): _service,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
}


def _find(
    found: Sequence[Mapping[str, Any]], kind: str, state: str | None = None
) -> Mapping[str, Any] | None:
    for cond in found:
        if cond.get("type") == kind and (state is None or cond.get("status") == state):
            return cond
    return None


def _text(cond: Mapping[str, Any]) -> str:
    message = cond.get("message")
    return message if isinstance(message, str) else ""


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, Mapping) else {}


def _maybe_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _int(value: Any, default: int) -> int:
    found = _maybe_int(value)
    return default if found is None else found


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.utcoffset() is not None else None
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except TimeSyntaxError:
        return None


__all__ = ["FLUX_GROUP_SUFFIX", "KStatus", "Status", "compute", "conditions", "group_of", "witness"]
