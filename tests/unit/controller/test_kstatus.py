"""kstatus over raw objects: generic rules, built-in kinds, the Ready fallback and witnesses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from controller.planning.kstatus import compute, witness

T1 = "2026-03-01T10:00:00Z"
T2 = "2026-03-01T11:00:00Z"
T3 = "2026-03-01T12:00:00Z"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def cond(kind: str, status: str, reason: str = "", message: str = "", when: str = T1) -> Any:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": when,
    }


def obj(api: str, kind: str, spec: Any = None, status: Any = None, **meta: Any) -> Any:
    found: dict[str, Any] = {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ns", **meta},
    }
    if spec is not None:
        found["spec"] = spec
    if status is not None:
        found["status"] = status
    return found


def deployment(spec: Any = None, **status: Any) -> Any:
    base = {"replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}
    conditions = [
        cond("Available", "True", "MinimumReplicasAvailable"),
        cond("Progressing", "True", "NewReplicaSetAvailable", when=T2),
    ]
    return obj(
        "apps/v1",
        "Deployment",
        {"replicas": 2, "progressDeadlineSeconds": 600, **(spec or {})},
        {"conditions": conditions, **base, **status},
    )


KRUISE_STALLED = obj(
    "rollouts.kruise.io/v1beta1",
    "Rollout",
    {},
    {
        "observedGeneration": 3,
        "conditions": [
            cond("Progressing", "True", "InRolling", when=T3),
            cond("Stalled", "True", "RolloutTestFailed", "Rollout tests failed", when=T2),
        ],
    },
    generation=3,
)

CASES: list[tuple[str, Any, str, str]] = [
    ("not a mapping", ["x"], "Unknown", "object is not a mapping"),
    (
        "deletion",
        obj("v1", "ConfigMap", deletionTimestamp=T1),
        "Terminating",
        "Resource scheduled for deletion",
    ),
    (
        "generation not observed",
        obj("example.com/v1", "Thing", {}, {"observedGeneration": 1}, generation=2),
        "InProgress",
        "Thing generation is 2, but latest observed generation is 1",
    ),
    (
        "generation observed",
        obj("example.com/v1", "Thing", {}, {"observedGeneration": 2}, generation=2),
        "Current",
        "Resource is current",
    ),
    (
        "stalled",
        obj("example.com/v1", "Thing", {}, {"conditions": [cond("Stalled", "True", "X", "stuck")]}),
        "Failed",
        "stuck",
    ),
    (
        "stalled wins over an earlier reconciling",
        obj(
            "example.com/v1",
            "Thing",
            {},
            {"conditions": [cond("Reconciling", "True", "Busy", "busy"), cond("Stalled", "True")]},
        ),
        "Failed",
        "",
    ),
    (
        "reconciling",
        obj(
            "example.com/v1",
            "Thing",
            {},
            {"conditions": [cond("Reconciling", "True", "Busy", "busy")]},
        ),
        "InProgress",
        "busy",
    ),
    (
        "stalled false is ignored",
        obj("example.com/v1", "Thing", {}, {"conditions": [cond("Stalled", "False")]}),
        "Current",
        "Resource is current",
    ),
    ("kruise rollout stalled", KRUISE_STALLED, "Failed", "Rollout tests failed"),
    (
        "flux ready false",
        obj(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            {},
            {"conditions": [cond("Ready", "False", "BuildFailed", "kustomize build failed")]},
        ),
        "Failed",
        "kustomize build failed",
    ),
    (
        "flux ready false while reconciling",
        obj(
            "helm.toolkit.fluxcd.io/v2",
            "HelmRelease",
            {},
            {
                "conditions": [
                    cond("Ready", "False", "Progressing", "installing"),
                    cond("Reconciling", "True", "Progressing", "reconciling"),
                ]
            },
        ),
        "InProgress",
        "reconciling",
    ),
    (
        "other ready false",
        obj("example.com/v1", "Thing", {}, {"conditions": [cond("Ready", "False", "", "wait")]}),
        "InProgress",
        "wait",
    ),
    (
        "ready unknown",
        obj(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            {},
            {"conditions": [cond("Ready", "Unknown", "Progressing", "")]},
        ),
        "InProgress",
        "Ready condition is Unknown",
    ),
    (
        "ready true",
        obj(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            {},
            {"conditions": [cond("Ready", "True", "Succeeded", "Applied revision: v1")]},
        ),
        "Current",
        "Applied revision: v1",
    ),
    ("no conditions", obj("v1", "ConfigMap"), "Current", "Resource is current"),
    (
        "malformed conditions",
        obj("example.com/v1", "Thing", {}, {"conditions": "nope"}),
        "Current",
        "Resource is current",
    ),
]

DEPLOYMENTS: list[tuple[str, Any, str, str]] = [
    ("available", deployment(), "Current", "Deployment is available. Replicas: 2"),
    (
        "progress deadline exceeded",
        obj(
            "apps/v1",
            "Deployment",
            {"replicas": 1},
            {"conditions": [cond("Progressing", "False", "ProgressDeadlineExceeded", "timed out")]},
        ),
        "Failed",
        "Progress deadline exceeded",
    ),
    ("too few replicas", deployment(replicas=1), "InProgress", "Replicas: 1/2"),
    ("too few updated", deployment(updatedReplicas=1), "InProgress", "Updated: 1/2"),
    ("extra pods", deployment(replicas=3), "InProgress", "Pending termination: 1"),
    ("too few available", deployment(availableReplicas=1), "InProgress", "Available: 1/2"),
    ("too few ready", deployment(readyReplicas=1), "InProgress", "Ready: 1/2"),
    (
        "replica set not available",
        deployment(conditions=[cond("Available", "True")]),
        "InProgress",
        "ReplicaSet not Available",
    ),
    (
        "no deadline means progressing",
        deployment({"progressDeadlineSeconds": None}, conditions=[cond("Available", "True")]),
        "Current",
        "Deployment is available. Replicas: 2",
    ),
    (
        "deployment not available",
        deployment(conditions=[cond("Progressing", "True", "NewReplicaSetAvailable")]),
        "InProgress",
        "Deployment not Available",
    ),
    (
        "generation first",
        obj("apps/v1", "Deployment", {}, {"observedGeneration": 4}, generation=5),
        "InProgress",
        "Deployment generation is 5, but latest observed generation is 4",
    ),
]


def sts(spec: Any = None, **status: Any) -> Any:
    base = {
        "replicas": 2,
        "readyReplicas": 2,
        "currentReplicas": 2,
        "updatedReplicas": 2,
        "currentRevision": "r1",
        "updateRevision": "r1",
    }
    return obj("apps/v1", "StatefulSet", {"replicas": 2, **(spec or {})}, {**base, **status})


def ds(**status: Any) -> Any:
    base = {
        "observedGeneration": 1,
        "desiredNumberScheduled": 3,
        "currentNumberScheduled": 3,
        "updatedNumberScheduled": 3,
        "numberAvailable": 3,
        "numberReady": 3,
    }
    return obj("apps/v1", "DaemonSet", {}, {**base, **status}, generation=1)


def pod(phase: str | None, conditions: Any = (), **status: Any) -> Any:
    return obj("v1", "Pod", {}, {"phase": phase, "conditions": list(conditions), **status})


CRASH = {
    "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
}

WORKLOADS: list[tuple[str, Any, str, str]] = [
    ("sts ok", sts(), "Current", "All replicas scheduled as expected. Replicas: 2"),
    (
        "sts on delete",
        sts({"updateStrategy": {"type": "OnDelete"}}, replicas=0),
        "Current",
        "StatefulSet is using the ondelete update strategy",
    ),
    ("sts replicas", sts(replicas=1), "InProgress", "Replicas: 1/2"),
    ("sts ready", sts(readyReplicas=0), "InProgress", "Ready: 0/2"),
    ("sts extra", sts(replicas=3, readyReplicas=3), "InProgress", "Pending termination: 1"),
    (
        "sts partition pending",
        sts({"updateStrategy": {"rollingUpdate": {"partition": 1}}}, updatedReplicas=0),
        "InProgress",
        "updated: 0/1",
    ),
    (
        "sts partition done",
        sts({"updateStrategy": {"rollingUpdate": {"partition": 1}}}, updatedReplicas=1),
        "Current",
        "Partition rollout complete. updated: 1",
    ),
    ("sts current", sts(currentReplicas=1), "InProgress", "current: 1/2"),
    (
        "sts revision",
        sts(updateRevision="r2"),
        "InProgress",
        "Waiting for updated revision to match current",
    ),
    ("ds ok", ds(), "Current", "All replicas scheduled as expected. Replicas: 3"),
    (
        "ds no generation",
        obj("apps/v1", "DaemonSet", {}, {"observedGeneration": 1}),
        "InProgress",
        "DaemonSet metadata.generation not found",
    ),
    (
        "ds no observed generation",
        obj("apps/v1", "DaemonSet", {}, {}, generation=1),
        "InProgress",
        "DaemonSet status.observedGeneration not found",
    ),
    (
        "ds no desired",
        ds(desiredNumberScheduled=None),
        "InProgress",
        "Missing .status.desiredNumberScheduled",
    ),
    ("ds current", ds(currentNumberScheduled=2), "InProgress", "Current: 2/3"),
    ("ds updated", ds(updatedNumberScheduled=2), "InProgress", "Updated: 2/3"),
    ("ds available", ds(numberAvailable=2), "InProgress", "Available: 2/3"),
    ("ds ready", ds(numberReady=2), "InProgress", "Ready: 2/3"),
    (
        "rs ok",
        obj(
            "apps/v1",
            "ReplicaSet",
            {"replicas": 1},
            {"replicas": 1, "fullyLabeledReplicas": 1, "availableReplicas": 1, "readyReplicas": 1},
        ),
        "Current",
        "ReplicaSet is available. Replicas: 1",
    ),
    (
        "rs failure",
        obj("apps/v1", "ReplicaSet", {}, {"conditions": [cond("ReplicaFailure", "True")]}),
        "InProgress",
        "Replica Failure condition. Check Pods",
    ),
    ("rs labelled", obj("apps/v1", "ReplicaSet", {}, {}), "InProgress", "Labelled: 0/1"),
    (
        "job failed",
        obj("batch/v1", "Job", {}, {"failed": 3, "conditions": [cond("Failed", "True")]}),
        "Failed",
        "Job Failed. failed: 3/1",
    ),
    (
        "job failure target",
        obj("batch/v1", "Job", {}, {"conditions": [cond("FailureTarget", "True")]}),
        "Failed",
        "Job Failed. failed: 0/1",
    ),
    (
        "job complete",
        obj(
            "batch/v1",
            "Job",
            {"completions": 2},
            {"succeeded": 2, "conditions": [cond("Complete", "True")]},
        ),
        "Current",
        "Job Completed. succeeded: 2/2",
    ),
    (
        "job suspended",
        obj("batch/v1", "Job", {}, {"conditions": [cond("Suspended", "True")]}),
        "Current",
        "Job is suspended",
    ),
    ("job not started", obj("batch/v1", "Job", {}, {}), "InProgress", "Job not started"),
    (
        "job running",
        obj("batch/v1", "Job", {}, {"startTime": T1, "active": 1}),
        "Current",
        "Job in progress. success:0, active: 1, failed: 0",
    ),
    ("pod succeeded", pod("Succeeded"), "Current", "Pod has completed successfully"),
    ("pod failed", pod("Failed"), "Failed", "Pod has completed, but not successfully"),
    ("pod ready", pod("Running", [cond("Ready", "True")]), "Current", "Pod is Ready"),
    (
        "pod crash looping",
        pod("Running", [cond("Ready", "False")], **CRASH),
        "Failed",
        "Containers in CrashLoop state: app",
    ),
    ("pod not ready", pod("Running"), "InProgress", "Pod is running but is not Ready"),
    (
        "pod unschedulable",
        pod("Pending", [cond("PodScheduled", "False", "Unschedulable")]),
        "InProgress",
        "Pod has not been scheduled",
    ),
    ("pod pending", pod("Pending"), "InProgress", "Pod is in the Pending phase"),
    ("pod no phase", pod(None), "InProgress", "Pod phase not available"),
    ("pod odd phase", pod("Exploded"), "Unknown", "unknown Pod phase 'Exploded'"),
    (
        "pvc bound",
        obj("v1", "PersistentVolumeClaim", {}, {"phase": "Bound"}),
        "Current",
        "PVC is Bound",
    ),
    (
        "pvc pending",
        obj("v1", "PersistentVolumeClaim", {}, {"phase": "Pending"}),
        "InProgress",
        "PVC is not Bound. phase: Pending",
    ),
    ("svc cluster ip", obj("v1", "Service", {"type": "ClusterIP"}), "Current", "Service is ready"),
    (
        "svc lb waiting",
        obj("v1", "Service", {"type": "LoadBalancer"}, {"loadBalancer": {}}),
        "InProgress",
        "LoadBalancer ingress not assigned",
    ),
    (
        "svc lb ready",
        obj(
            "v1",
            "Service",
            {"type": "LoadBalancer"},
            {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}},
        ),
        "Current",
        "Service is ready",
    ),
    (
        "crd established",
        obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            {},
            {"conditions": [cond("NamesAccepted", "True"), cond("Established", "True")]},
        ),
        "Current",
        "CRD is established",
    ),
    (
        "crd names rejected",
        obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            {},
            {"conditions": [cond("NamesAccepted", "False", "Conflict", "names clash")]},
        ),
        "Failed",
        "names clash",
    ),
    (
        "crd installing",
        obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", {}, {}),
        "InProgress",
        "Install in progress",
    ),
]


@pytest.mark.parametrize(
    ("case", "found", "status", "message"),
    CASES + DEPLOYMENTS + WORKLOADS,
    ids=[case[0] for case in CASES + DEPLOYMENTS + WORKLOADS],
)
def test_compute(case: str, found: Any, status: str, message: str) -> None:
    result = compute(found)
    assert (result.status, result.message) == (status, message), case


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([cond("Ready", "False", when=T3), cond("Stalled", "True", when=T2)], T2),
        ([cond("Stalled", "True", when=T1), cond("Stalled", "True", when=T2)], T2),
        ([cond("Ready", "False", when=T1), cond("Progressing", "False", when=T3)], T3),
        ([cond("Stalled", "False", when=T3), cond("Ready", "False", when=T1)], T3),
        ([cond("Stalled", "True", when="yesterday"), cond("Ready", "False", when=T1)], T1),
        ([cond("Ready", "False", when="2026-03-01T10:00:00")], None),
        ([], None),
    ],
    ids=[
        "stalled beats newer",
        "newest stalled",
        "newest condition",
        "stalled false counts as a condition",
        "unparsable skipped",
        "naive skipped",
        "none",
    ],
)
def test_witness(conditions: list[Any], expected: str | None) -> None:
    found = obj("example.com/v1", "Thing", {}, {"conditions": conditions})
    want = at(expected) if expected else None
    assert witness(found) == want
    assert compute(found).witness == want


def test_kruise_rollout_stalled_witness_is_the_stall_time() -> None:
    result = compute(KRUISE_STALLED)
    assert result.status == "Failed"
    assert result.witness == at(T2)


def test_deadline_exceeded_witness_is_the_newest_condition() -> None:
    found = deployment(
        conditions=[
            cond("Available", "False", when=T1),
            cond("Progressing", "False", "ProgressDeadlineExceeded", when=T3),
        ]
    )
    result = compute(found)
    assert (result.status, result.witness) == ("Failed", at(T3))


def test_aware_datetime_conditions_are_accepted() -> None:
    found = obj(
        "example.com/v1",
        "Thing",
        {},
        {"conditions": [{"type": "Stalled", "status": "True", "lastTransitionTime": at(T2)}]},
    )
    assert compute(found).witness == at(T2)
