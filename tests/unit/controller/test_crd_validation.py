"""Objects the apiserver must accept or reject under the generated CRDs, and the examples.

Also checks that the pydantic models read what the CRDs accept and refuse
what admission refuses, so the controller and the apiserver agree.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from crd_checks import CRDS, ROOT, errors, pruned, schema_of
from pydantic import BaseModel

from controller.api import environments, kuberik, rollouttests, schedules
from controller.api.meta import CrdModel

SCHEDULE: dict[str, Any] = {
    "rolloutSelector": {"matchLabels": {"tier": "prod"}},
    "rules": [
        {
            "name": "night",
            "timeRange": {"start": "22:00", "end": "06:00"},
            "daysOfWeek": ["Friday"],
            "dateRange": {"start": "2026-12-24", "end": "2026-12-26"},
        }
    ],
    "action": "Allow",
}
BASE: dict[str, dict[str, Any]] = {
    "Rollout": {"spec": {"releasesImagePolicy": {"name": "app"}, "bakeTime": "5m"}},
    "RolloutSchedule": {"spec": SCHEDULE},
    "ClusterRolloutSchedule": {"spec": {**SCHEDULE, "namespaceSelector": {"matchLabels": {}}}},
    "HealthCheck": {"spec": {"class": "cel", "cel": {"interval": "1m", "expression": "true"}}},
    "RolloutGate": {"spec": {"rolloutRef": {"name": "app"}, "allowedVersions": []}},
    "RolloutTest": {
        "spec": {"rolloutName": "canary", "stepIndex": 1, "jobTemplate": {"template": {}}}
    },
    "Environment": {
        "spec": {
            "rolloutRef": {"name": "app"},
            "name": "shop",
            "environment": "prod",
            "relationship": {"environment": "staging", "type": "After"},
            "backend": {"type": "github", "project": "acme/shop"},
        }
    },
    "ClusterRolloutPolicy": {
        "spec": {
            "targets": {"namespaceSelector": {}, "rolloutSelector": {}},
            "facts": {"metrics": {"errors": {"query": "sum(up)"}}},
            "rules": [{"name": "ok", "expression": "true", "reason": "Fine"}],
        }
    },
}
STATUS = {
    "history": [
        {
            "version": {"tag": "1.0.0"},
            "timestamp": "2026-03-04T12:00:00Z",
            "triggeredBy": {"kind": "System", "name": "rollout-controller"},
            "bakeStatus": "Succeeded",
        }
    ]
}


def sample(kind: str, *edits: tuple[str, Any]) -> dict[str, Any]:
    """The base object of ``kind`` with ``(path, value)`` edits; value ``...`` deletes."""
    obj = {"apiVersion": "x/v1", "kind": kind, "metadata": {"name": "a"}}
    obj |= copy.deepcopy(BASE[kind])
    for path, value in edits:
        *parents, last = path.replace("[", ".").replace("]", "").split(".")
        target: Any = obj
        for part in parents:
            target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
        if value is ...:
            del target[last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return obj


@pytest.mark.parametrize(
    "edits",
    [
        (),
        (("spec.bakeTime", "1h30m"),),
        (("spec.bakeTime", "1.5h"),),
        (("spec.deployTimeout", "250ms"),),
        (("status", STATUS),),
        (("status", STATUS), ("status.decision", {"decision": "Pending", "nextChange": None})),
    ],
)
def test_valid_rollouts_are_accepted(edits: tuple[tuple[str, Any], ...]) -> None:
    assert errors(sample("Rollout", *edits)) == []


@pytest.mark.parametrize(
    ("kind", "edits"),
    [
        ("RolloutSchedule", ()),
        ("RolloutSchedule", (("spec.rules", [{}]),)),
        ("RolloutSchedule", (("spec.rules[0].timeRange", {"start": "00:00", "end": "23:59"}),)),
        ("HealthCheck", ()),
        ("HealthCheck", (("spec", {"class": "kustomization"}),)),
        ("HealthCheck", (("spec", ...),)),
        ("HealthCheck", (("spec.cel.params", {"max": 0.5, "soak": {"type": "duration"}}),)),
        ("RolloutGate", ()),
        ("RolloutTest", ()),
        ("Environment", ()),
        ("Environment", (("spec.backend", {"type": "kubernetes"}),)),
        ("ClusterRolloutPolicy", ()),
    ],
)
def test_valid_objects_are_accepted(kind: str, edits: tuple[tuple[str, Any], ...]) -> None:
    assert errors(sample(kind, *edits)) == []


@pytest.mark.parametrize(
    ("kind", "path", "value", "expected"),
    [
        ("Rollout", "spec.bakeTime", "5 minutes", "does not match"),
        ("Rollout", "spec.bakeTime", "1d", "does not match"),
        ("Rollout", "spec.deployTimeout", "-5m", "does not match"),
        ("Rollout", "spec.versionHistoryLimit", 0, "less than the minimum"),
        ("Rollout", "spec.availableReleasesMinCount", 0, "less than the minimum"),
        ("Rollout", "spec.releasesImagePolicy", {}, "'name' is a required property"),
        ("Rollout", "spec", ..., "'spec' is a required property"),
        ("RolloutSchedule", "spec.rules[0].timeRange.start", "24:00", "does not match"),
        ("RolloutSchedule", "spec.rules[0].timeRange.end", "9:00", "does not match"),
        ("RolloutSchedule", "spec.rules[0].dateRange.start", "2026-1-01", "does not match"),
        ("RolloutSchedule", "spec.rules[0].dateRange.end", "2026-12-01", "start <= end"),
        ("RolloutSchedule", "spec.rules[0].dateRange.start", "2026-02-30", "real dates"),
        ("RolloutSchedule", "spec.rules[0].daysOfWeek", ["Mon"], "is not one of"),
        ("RolloutSchedule", "spec.action", "Block", "is not one of"),
        ("RolloutSchedule", "spec.rules", [], "non-empty"),
        ("HealthCheck", "spec.cel.interval", "1s", "at least 5s"),
        ("HealthCheck", "spec.cel.interval", "4500ms", "at least 5s"),
        ("HealthCheck", "spec.cel.onError", "allow", "is not one of"),
        ("HealthCheck", "spec.cel", ..., "class cel"),
        ("HealthCheck", "spec.class", "kustomization", "class cel"),
        ("HealthCheck", "status", {"status": "Broken"}, "is not one of"),
        ("RolloutGate", "spec.passing", "yes", "is not of type"),
        ("RolloutGate", "spec.rolloutRef", ..., "'rolloutRef' is a required property"),
        ("RolloutTest", "spec.stepIndex", 0, "less than the minimum"),
        ("RolloutTest", "spec.jobTemplate", ..., "'jobTemplate' is a required property"),
        ("RolloutTest", "status", {"phase": "Done"}, "is not one of"),
        ("Environment", "spec.relationship.type", "Before", "is not one of"),
        ("Environment", "spec.backend.type", "gitlab", "is not one of"),
        ("Environment", "spec.backend.project", ..., "required for type github"),
        ("Environment", "spec.requeueInterval", "1 minute", "does not match"),
        ("ClusterRolloutPolicy", "spec.targets.namespaceSelector", ..., "namespaceSelector"),
        ("ClusterRolloutPolicy", "spec.targets", {"namespaceSelector": {}}, "rolloutSelector or"),
        ("ClusterRolloutPolicy", "spec.rules[0].window", "w", "exactly one of expression"),
        ("ClusterRolloutPolicy", "spec.rules[0].reason", "not-camel", "does not match"),
        ("ClusterRolloutPolicy", "spec.rules[0].onError", "allow", "is not one of"),
        ("ClusterRolloutPolicy", "spec.facts.metrics.errors.queryExpression", "'q'", "exactly one"),
        ("ClusterRolloutPolicy", "spec.rules", [], "non-empty"),
    ],
)
def test_invalid_values_are_rejected(kind: str, path: str, value: Any, expected: str) -> None:
    found = errors(sample(kind, (path, value)))
    assert any(expected in e for e in found), found


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("bakeStatus", "None", "is not one of"),
        ("triggeredBy", {"kind": "Robot", "name": "x"}, "is not one of"),
        ("triggeredBy", ..., "'triggeredBy' is a required property"),
        ("timestamp", ..., "'timestamp' is a required property"),
    ],
)
def test_invalid_history_entries_are_rejected(field: str, value: Any, expected: str) -> None:
    found = errors(sample("Rollout", ("status", STATUS), (f"status.history[0].{field}", value)))
    assert any(expected in e for e in found), found


def test_a_namespaced_policy_rejects_a_namespace_selector() -> None:
    obj = sample("ClusterRolloutPolicy") | {"kind": "RolloutPolicy"}
    assert any("only valid in a ClusterRolloutPolicy" in e for e in errors(obj))
    del obj["spec"]["targets"]["namespaceSelector"]
    assert errors(obj) == []


def example_objects() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") in CRDS:
                group = str(doc.get("apiVersion", "")).split("/")[0]
                if group == CRDS[doc["kind"]]["spec"]["group"]:
                    found.append((f"{path.relative_to(ROOT)}:{doc['kind']}", doc))
    return found


@pytest.mark.parametrize(("where", "obj"), example_objects(), ids=lambda v: str(v)[:60])
def test_examples_of_these_kinds_validate_and_lose_no_field(
    where: str, obj: dict[str, Any]
) -> None:
    assert errors(obj) == [], where
    assert list(pruned(schema_of(obj["kind"]), obj)) == [], where


def test_the_examples_cover_rollouts_healthchecks_tests_and_policies() -> None:
    kinds = {obj["kind"] for _, obj in example_objects()}
    assert {"Rollout", "HealthCheck", "RolloutTest", "RolloutPolicy"} <= kinds


MODELS: dict[str, type[CrdModel]] = {
    "Rollout": kuberik.Rollout,
    "HealthCheck": kuberik.HealthCheck,
    "RolloutGate": kuberik.RolloutGate,
    "RolloutSchedule": schedules.RolloutSchedule,
    "ClusterRolloutSchedule": schedules.ClusterRolloutSchedule,
    "RolloutTest": rollouttests.RolloutTest,
    "Environment": environments.Environment,
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_the_models_read_valid_objects_and_write_them_back(kind: str) -> None:
    obj = sample(kind) | {"apiVersion": f"{CRDS[kind]['spec']['group']}/v1alpha1"}
    model = MODELS[kind].model_validate(obj)
    written = model.to_k8s()
    assert written["spec"] == MODELS[kind].model_validate(written).to_k8s()["spec"]
    assert errors(written) == []


def test_the_models_keep_unset_and_empty_allowed_versions_apart() -> None:
    unset = kuberik.RolloutGateSpec.model_validate({"rolloutRef": {"name": "r"}})
    empty = kuberik.RolloutGateSpec.model_validate(
        {"rolloutRef": {"name": "r"}, "allowedVersions": []}
    )
    assert "allowedVersions" not in unset.to_k8s()
    assert empty.to_k8s()["allowedVersions"] == []
    assert kuberik.GateSummary(name="g").to_k8s()["allowedVersions"] == []


@pytest.mark.parametrize(
    ("model", "value", "expected"),
    [
        (schedules.DateRange, {"start": "2026-02-30", "end": "2026-03-01"}, "impossible date"),
        (schedules.DateRange, {"start": "2026-03-02", "end": "2026-03-01"}, "before start"),
        (schedules.TimeRange, {"start": "24:00", "end": "01:00"}, "should match pattern"),
        (kuberik.HealthCheckCel, {"interval": "4s", "expression": "true"}, "at least 5s"),
        (
            kuberik.HistoryEntry,
            {"version": {"tag": "1"}, "timestamp": "2026-01-01T00:00:00"},
            "timezone",
        ),
    ],
)
def test_the_models_reject_what_admission_rejects(
    model: type[BaseModel], value: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValueError, match=expected):
        model.model_validate(value)
