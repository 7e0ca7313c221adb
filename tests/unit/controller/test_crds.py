"""The generated CRDs: up to date, Kuberik's fields with their types and validation, structural.

The field list below is the compatibility contract (KUBERIK-SEMANTICS.md §2)
copied into the test, since tests cannot read the design documents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from crd_checks import CRDS, ROOT, json_schema, schema_of, walk
from pydantic import BaseModel

from controller.api import crds
from controller.api.schemas import SchemaError, structural

DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
TIME_OF_DAY = r"^([01]\d|2[0-3]):[0-5]\d$"
DATE = r"^\d{4}-\d{2}-\d{2}$"
BAKE = ["Deploying", "InProgress", "Succeeded", "Failed", "Cancelled"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
PHASES = ["WaitingForStep", "Pending", "Running", "Succeeded", "Failed", "Cancelled", "Skipped"]
STR, INT, BOOL, OBJ, LIST, TIME = "string", "integer", "boolean", "object", "array", "date-time"

GROUPS = {
    "Rollout": ("kuberik.com", "Namespaced"),
    "HealthCheck": ("kuberik.com", "Namespaced"),
    "RolloutGate": ("kuberik.com", "Namespaced"),
    "RolloutSchedule": ("kuberik.com", "Namespaced"),
    "ClusterRolloutSchedule": ("kuberik.com", "Cluster"),
    "RolloutTest": ("rollout.kuberik.com", "Namespaced"),
    "Environment": ("environments.kuberik.com", "Namespaced"),
    "RolloutPolicy": ("tidegate.dev", "Namespaced"),
    "ClusterRolloutPolicy": ("tidegate.dev", "Cluster"),
}

Row = tuple[str, str, dict[str, Any]]
HISTORY: list[Row] = [
    ("id", INT, {"format": "int64"}),
    ("version", OBJ, {"required": True}),
    ("version.tag", STR, {"required": True}),
    ("version.digest", STR, {}),
    ("version.version", STR, {}),
    ("version.revision", STR, {}),
    ("version.created", TIME, {}),
    ("timestamp", TIME, {"required": True}),
    ("message", STR, {}),
    ("triggeredBy", OBJ, {"required": True}),
    ("triggeredBy.kind", STR, {"enum": ["User", "System"], "required": True}),
    ("triggeredBy.name", STR, {"required": True}),
    ("bakeStatus", STR, {"enum": BAKE}),
    ("bakeStatusMessage", STR, {}),
    ("bakeStartTime", TIME, {}),
    ("bakeEndTime", TIME, {}),
    ("failedHealthChecks", LIST, {}),
    ("failedHealthChecks[].name", STR, {"required": True}),
    ("failedHealthChecks[].namespace", STR, {"required": True}),
    ("failedHealthChecks[].message", STR, {}),
    ("lastRetryTimestamp", TIME, {}),
    ("rollbackOf", STR, {}),
]
SCHEDULE: list[Row] = [
    ("spec.rolloutSelector", OBJ, {"required": True}),
    ("spec.rolloutSelector.matchLabels", OBJ, {}),
    ("spec.rules", LIST, {"required": True, "minItems": 1}),
    ("spec.rules[].name", STR, {}),
    ("spec.rules[].timeRange.start", STR, {"pattern": TIME_OF_DAY, "required": True}),
    ("spec.rules[].timeRange.end", STR, {"pattern": TIME_OF_DAY, "required": True}),
    ("spec.rules[].daysOfWeek", LIST, {}),
    ("spec.rules[].daysOfWeek[]", STR, {"enum": DAYS}),
    ("spec.rules[].dateRange.start", STR, {"pattern": DATE, "required": True}),
    ("spec.rules[].dateRange.end", STR, {"pattern": DATE, "required": True}),
    ("spec.timezone", STR, {"default": "UTC"}),
    ("spec.action", STR, {"enum": ["Allow", "Deny"], "default": "Deny"}),
    ("status.active", BOOL, {}),
    ("status.activeRules[]", STR, {}),
    ("status.nextTransition", TIME, {}),
    ("status.managedGates[]", STR, {}),
    ("status.matchingRollouts", INT, {}),
    ("status.conditions[].type", STR, {"required": True}),
]
FIELDS: dict[str, list[Row]] = {
    "Rollout": [
        ("spec.releasesImagePolicy", OBJ, {"required": True}),
        ("spec.releasesImagePolicy.name", STR, {"required": True}),
        ("spec.wantedVersion", STR, {}),
        ("spec.versionHistoryLimit", INT, {"default": 10, "minimum": 1, "format": "int32"}),
        ("spec.availableReleasesRetentionDays", INT, {"default": 7, "minimum": 1}),
        ("spec.availableReleasesMinCount", INT, {"default": 30, "minimum": 1}),
        ("spec.bakeTime", STR, {"pattern": DURATION}),
        ("spec.deployTimeout", STR, {"pattern": DURATION}),
        ("spec.healthCheckSelector.selector", OBJ, {}),
        ("spec.healthCheckSelector.selector.matchExpressions[].key", STR, {"required": True}),
        ("spec.healthCheckSelector.namespaceSelector", OBJ, {}),
        ("status.conditions", LIST, {}),
        ("status.conditions[].lastTransitionTime", TIME, {"required": True}),
        *((f"status.history[].{p}", t, x) for p, t, x in HISTORY),
        ("status.availableReleases[].tag", STR, {"required": True}),
        ("status.releaseCandidates[].tag", STR, {"required": True}),
        ("status.gatedReleaseCandidates[].tag", STR, {"required": True}),
        ("status.gates[].name", STR, {"required": True}),
        ("status.gates[].passing", BOOL, {}),
        ("status.gates[].allowedVersions[]", STR, {}),
        ("status.gates[].message", STR, {}),
        ("status.gates[].bypassGates", BOOL, {}),
        ("status.artifactType", STR, {}),
        ("status.source", STR, {}),
        ("status.title", STR, {}),
        ("status.description", STR, {}),
        ("status.observedGeneration", INT, {}),
        (
            "status.decision.decision",
            STR,
            {"enum": ["Allowed", "Pending", "Blocked"], "required": True},
        ),
        ("status.decision.allowedVersions[]", STR, {}),
        ("status.decision.nextChange", TIME, {}),
        ("status.decision.evaluatedAt", TIME, {}),
        ("status.decision.policies[].name", STR, {"required": True}),
        ("status.decision.policies[].digest", STR, {"required": True}),
        ("status.decision.candidates[].tag", STR, {"required": True}),
        ("status.decision.candidates[].decision", STR, {"required": True}),
        ("status.decision.candidates[].nextChange", TIME, {}),
        ("status.decision.candidates[].rules[].id", STR, {"required": True}),
        ("status.decision.candidates[].rules[].result", STR, {"required": True}),
        ("status.decision.candidates[].rules[].reason", STR, {}),
        ("status.decision.candidates[].rules[].message", STR, {}),
        ("status.decision.candidates[].rules[].nextChange", TIME, {}),
    ],
    "HealthCheck": [
        ("spec.class", STR, {}),
        ("spec.cel", OBJ, {}),
        ("spec.cel.interval", STR, {"default": "30s", "pattern": DURATION}),
        ("spec.cel.onError", STR, {"default": "unhealthy", "enum": ["unhealthy", "pending"]}),
        ("spec.cel.expression", STR, {"required": True}),
        ("status.status", STR, {"enum": ["Healthy", "Unhealthy", "Pending", ""]}),
        ("status.message", STR, {}),
        ("status.lastChangeTime", TIME, {}),
        ("status.lastErrorTime", TIME, {}),
    ],
    "RolloutGate": [
        ("spec.rolloutRef.name", STR, {"required": True}),
        ("spec.passing", BOOL, {"default": True}),
        ("spec.allowedVersions", LIST, {"default": None}),
        ("spec.allowedVersions[]", STR, {}),
    ],
    "RolloutSchedule": SCHEDULE,
    "ClusterRolloutSchedule": [*SCHEDULE, ("spec.namespaceSelector", OBJ, {})],
    "RolloutTest": [
        ("spec.rolloutName", STR, {"required": True}),
        ("spec.stepIndex", INT, {"required": True, "format": "int32"}),
        ("spec.jobTemplate", OBJ, {"required": True}),
        ("status.phase", STR, {"enum": PHASES}),
        ("status.conditions[].reason", STR, {"required": True}),
        ("status.observedCanaryRevision", STR, {}),
        ("status.jobName", STR, {}),
        ("status.retryCount", INT, {}),
        ("status.activePods", INT, {}),
        ("status.succeededPods", INT, {}),
        ("status.failedPods", INT, {}),
    ],
    "Environment": [
        ("spec.rolloutRef.name", STR, {"required": True}),
        ("spec.name", STR, {"required": True}),
        ("spec.environment", STR, {}),
        ("spec.relationship.environment", STR, {"required": True}),
        ("spec.relationship.type", STR, {"enum": ["After", "Parallel"], "required": True}),
        ("spec.backend", OBJ, {"required": True}),
        ("spec.backend.type", STR, {"enum": ["github", "kubernetes"], "required": True}),
        ("spec.backend.project", STR, {}),
        ("spec.backend.secret", STR, {"default": "github-token"}),
        ("spec.requeueInterval", STR, {"default": "1m", "pattern": DURATION}),
        ("status.currentVersion", STR, {}),
        ("status.rolloutGateRef.name", STR, {"required": True}),
        ("status.environmentInfos[].environment", STR, {"required": True}),
        ("status.environmentInfos[].environmentUrl", STR, {}),
        (
            "status.environmentInfos[].relationship.type",
            STR,
            {"enum": ["After", "Parallel"], "required": True},
        ),
        *((f"status.environmentInfos[].history[].{p}", t, x) for p, t, x in HISTORY),
        ("status.lastStatusChangeTime", TIME, {}),
        (
            "status.conditions[].status",
            STR,
            {"enum": ["True", "False", "Unknown"], "required": True},
        ),
    ],
}
OPEN_PATHS = {
    "Rollout": {"status.decision.candidates[].rules[].outputs"},
    "HealthCheck": {"spec.cel.params.*"},
    "RolloutTest": {"spec.jobTemplate"},
    "RolloutPolicy": {"spec.params.*"},
    "ClusterRolloutPolicy": {"spec.params.*"},
}


def node_at(kind: str, path: str) -> tuple[dict[str, Any], bool]:
    """The schema node at ``a.b[].c`` and whether its parent requires it."""
    node, required = schema_of(kind), False
    for part in path.split("."):
        name, items = part.removesuffix("[]"), part.count("[]")
        assert name in node.get("properties", {}), f"{kind}: {path} has no {name!r}"
        required = name in node.get("required", ())
        node = node["properties"][name]
        for _ in range(items):
            node = node["items"]
    return node, required


def test_the_generated_files_are_the_generator_output() -> None:
    assert crds.stale(ROOT) == {}, "run `python -m controller.api.crds`"


def test_check_exits_1_with_a_diff_when_a_file_is_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "controller").mkdir()
    assert crds.main(["--root", str(tmp_path)]) == 0
    assert crds.main(["--check", "--root", str(tmp_path)]) == 0
    target = tmp_path / "crds" / "kuberik.com_rollouts.yaml"
    target.write_text(target.read_text().replace("default: 10", "default: 11"))
    capsys.readouterr()
    assert crds.main(["--check", "--root", str(tmp_path)]) == 1
    diff = capsys.readouterr().out
    assert "-                default: 11" in diff
    assert "+                default: 10" in diff


def test_every_kind_has_its_group_scope_and_a_status_subresource() -> None:
    assert {kind: (c["spec"]["group"], c["spec"]["scope"]) for kind, c in CRDS.items()} == GROUPS
    for crd in CRDS.values():
        (version,) = crd["spec"]["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
        assert version["subresources"] == {"status": {}}
        assert crd["metadata"]["name"] == f"{crd['spec']['names']['plural']}.{crd['spec']['group']}"


@pytest.mark.parametrize(
    ("kind", "path", "type_", "extra"),
    [(kind, path, type_, extra) for kind, rows in FIELDS.items() for path, type_, extra in rows],
)
def test_every_kuberik_field_is_in_the_schema_with_its_type_and_validation(
    kind: str, path: str, type_: str, extra: dict[str, Any]
) -> None:
    node, required = node_at(kind, path)
    if type_ == TIME:
        assert (node["type"], node.get("format")) == (STR, TIME)
    else:
        assert node["type"] == type_
    assert required == extra.get("required", False)
    for key in ("enum", "pattern", "minimum", "minItems", "format"):
        if key in extra:
            assert node[key] == extra[key]
    if "default" in extra:
        assert node.get("default") == extra["default"]


def test_the_namespaced_schedule_has_no_namespace_selector() -> None:
    assert (
        "namespaceSelector" not in schema_of("RolloutSchedule")["properties"]["spec"]["properties"]
    )


def test_schemas_are_structural_with_open_content_only_where_declared() -> None:
    for kind, crd in CRDS.items():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        opened = set()
        for path, node in walk(schema):
            assert not {"$ref", "anyOf", "oneOf", "allOf", "not", "title"} & set(node), path
            assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
            assert not ("properties" in node and "additionalProperties" in node), path
            if node.get("x-kubernetes-preserve-unknown-fields"):
                opened.add(path)
            if "default" in node:
                assert not path.startswith("status"), path
                jsonschema.validate(node["default"], json_schema(node))
        assert opened == OPEN_PATHS.get(kind, set()), kind


def test_printer_columns_match_kuberik_plus_the_tidegate_ones() -> None:
    def columns(kind: str) -> list[tuple[str, str, int]]:
        version = CRDS[kind]["spec"]["versions"][0]
        return [
            (c["name"], c["jsonPath"], c.get("priority", 0))
            for c in version["additionalPrinterColumns"]
        ]

    ready = '.status.conditions[?(@.type=="Ready")]'
    assert columns("Rollout") == [
        ("Version", ".status.history[0].version.tag", 0),
        ("Message", ".status.history[0].message", 0),
        ("BakeStatus", ".status.history[0].bakeStatus", 0),
        ("BakeTime", ".status.history[0].bakeStartTime", 0),
        ("Gates", '.status.conditions[?(@.type=="GatesPassing")].status', 0),
        ("Available", ".status.releaseCandidates[0].tag", 0),
        ("Age", ".metadata.creationTimestamp", 0),
        ("Ready", f"{ready}.status", 0),
        ("Status", f"{ready}.message", 0),
        ("Decision", ".status.decision.decision", 1),
        ("Next", ".status.decision.nextChange", 1),
    ]
    assert [c[0] for c in columns("HealthCheck") if not c[2]][:3] == [
        "Class",
        "Status",
        "LastChange",
    ]
    for kind in ("RolloutSchedule", "ClusterRolloutSchedule"):
        assert [c[0] for c in columns(kind)] == ["Action", "Active", "Matching", "Age"]
    short_names = {s for c in CRDS.values() for s in c["spec"]["names"].get("shortNames", [])}
    assert "ro" not in short_names, "clashes with OpenKruise"


class Loose(BaseModel):
    value: int | str


class Untyped(BaseModel):
    values: dict[str, Any]


def test_the_translation_refuses_what_a_structural_schema_cannot_say() -> None:
    with pytest.raises(SchemaError, match=r"spec\.value: unions"):
        structural(Loose, "spec")
    with pytest.raises(SchemaError, match=r"spec\.values: a map of untyped values"):
        structural(Untyped, "spec")
    opened = structural(Untyped, "spec", open_paths={"spec.values"})
    assert opened["properties"]["values"]["additionalProperties"] == {
        "x-kubernetes-preserve-unknown-fields": True
    }
