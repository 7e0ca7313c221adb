"""The deployment manifests: they parse, bind the right ServiceAccount, grant no wildcard, and
cover every kind tidegate serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from controller.api import kinds

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
SUBJECT = {"kind": "ServiceAccount", "name": "tidegate", "namespace": "tidegate-system"}
STATUS_WRITTEN = {
    ("kuberik.com", "rollouts/status"),
    ("kuberik.com", "healthchecks/status"),
    ("kuberik.com", "rolloutschedules/status"),
    ("kuberik.com", "clusterrolloutschedules/status"),
    ("rollout.kuberik.com", "rollouttests/status"),
    ("environments.kuberik.com", "environments/status"),
}


def manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text(encoding="utf-8"))
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        path = DEPLOY / resource
        if path.is_dir():
            assert (path / "kustomization.yaml").is_file(), resource
            continue
        docs.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return docs


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in manifests() if d["kind"] == kind]


def granted(verb: str) -> set[tuple[str, str]]:
    """(apiGroup, resource) pairs some bound ClusterRole grants ``verb`` on."""
    bound = {b["roleRef"]["name"] for b in of_kind("ClusterRoleBinding")}
    return {
        (group, resource)
        for role in of_kind("ClusterRole")
        if role["metadata"]["name"] in bound
        for rule in role["rules"]
        if verb in rule["verbs"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def test_every_manifest_parses_and_the_base_includes_the_crds() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "../crds" in kustomization["resources"]
    kinds = sorted(d["kind"] for d in manifests())
    assert {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= set(kinds)
    assert {"Deployment", "Service"} <= set(kinds)
    names = {(d["kind"], d["metadata"]["name"]) for d in manifests()}
    assert {("Namespace", "tidegate-system"), ("ServiceAccount", "tidegate")} <= names


def test_every_binding_binds_the_tidegate_service_account_to_a_defined_role() -> None:
    roles = {r["metadata"]["name"] for r in of_kind("ClusterRole")}
    bindings = of_kind("ClusterRoleBinding")
    assert bindings
    for binding in bindings:
        assert binding["subjects"] == [SUBJECT]
        assert binding["roleRef"]["kind"] == "ClusterRole"
        assert binding["roleRef"]["name"] in roles


def test_no_rule_grants_a_wildcard() -> None:
    for role in of_kind("ClusterRole"):
        for rule in role["rules"]:
            for key in ("verbs", "resources", "apiGroups"):
                assert "*" not in rule[key], (role["metadata"]["name"], rule)
            assert not any("*" in r for r in rule["resources"]), rule


def test_the_controller_can_watch_every_kind_it_serves_and_write_their_status() -> None:
    readable = granted("get") & granted("list") & granted("watch")
    for kind in kinds.kinds():
        assert (kind.group, kind.plural) in readable, kind.kind
    assert granted("update") & granted("patch") >= STATUS_WRITTEN
    writable = {("kuberik.com", "rolloutgates")}
    for verb in ("create", "update", "patch", "delete"):
        assert writable <= granted(verb), verb
    assert {("batch", "jobs")} <= granted("create") & granted("delete")
    assert {("", "events"), ("events.k8s.io", "events")} <= granted("create")


def test_secrets_are_readable_by_name_only() -> None:
    assert ("", "secrets") in granted("get")
    assert ("", "secrets") not in granted("list") | granted("watch")


def test_the_deployment_runs_the_controller_non_root_with_probes_on_the_metrics_port() -> None:
    (deployment,) = of_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["metadata"]["namespace"] == "tidegate-system"
    assert pod["serviceAccountName"] == "tidegate"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/tidegate/tidegate:0.1.0"
    assert [*container["command"], *container["args"]] == [
        "tidegate",
        "run",
        "--metrics-port",
        "8080",
    ]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert set(container["resources"]) == {"requests", "limits"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_the_metrics_service_selects_the_controller_on_port_8080() -> None:
    (service,) = of_kind("Service")
    (deployment,) = of_kind("Deployment")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(8080, "metrics")]
