"""The shipped examples (``examples/``) run as documented in examples/README.md.

Every snapshot is evaluated with the installed ``tidegate`` script against
``examples/policies`` and its decision, allowed versions, next change and
non-passing rule results are compared with values verified by hand; the
decisions recorded in the snapshots must replay unchanged; every manifest is
valid Kubernetes YAML with the API versions of KUBERIK-SEMANTICS.md §1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
POLICIES = EXAMPLES / "policies"
SNAPSHOTS = EXAMPLES / "snapshots"
MANIFESTS = EXAMPLES / "manifests"
TIDEGATE = str(Path(sys.executable).parent / "tidegate")
TIMEOUT = 120

SOAK = "shop/prod-promotion/staging-soaked"
WINDOW = "shop/prod-promotion/business-hours"
PLATFORM = "shop/prod-promotion/platform-healthy"
SOAK_MESSAGE_143 = "staging runs 1.4.2, candidate is 1.4.3"

# snapshot -> (decision, allowedVersions, nextChange,
#              {tag: (decision, nextChange, {rule id: (result, reason, message, nextChange)})})
EXPECTED: dict[str, tuple[str, list[str], str | None, dict[str, Any]]] = {
    "checkout-prod": (
        "Allowed",
        ["1.4.2"],
        "2026-03-04T16:00:00Z",
        {
            "1.4.3": ("Blocked", None, {SOAK: ("fail", "SoakIncomplete", SOAK_MESSAGE_143, None)}),
            "1.4.2": ("Allowed", "2026-03-04T16:00:00Z", {}),
        },
    ),
    "allowed": (
        "Allowed",
        ["1.4.2"],
        "2026-03-04T16:00:00Z",
        {
            "1.4.3": ("Blocked", None, {SOAK: ("fail", "SoakIncomplete", SOAK_MESSAGE_143, None)}),
            "1.4.2": ("Allowed", "2026-03-04T16:00:00Z", {}),
        },
    ),
    "blocked-by-alert": (
        "Blocked",
        [],
        None,
        {
            "1.4.3": (
                "Blocked",
                None,
                {
                    SOAK: ("fail", "SoakIncomplete", SOAK_MESSAGE_143, None),
                    PLATFORM: (
                        "fail",
                        "PlatformUnhealthy",
                        "Platform not healthy enough to promote",
                        None,
                    ),
                },
            ),
            "1.4.2": (
                "Blocked",
                None,
                {
                    PLATFORM: (
                        "fail",
                        "PlatformUnhealthy",
                        "Platform not healthy enough to promote",
                        None,
                    ),
                },
            ),
        },
    ),
    "pending-window": (
        "Pending",
        [],
        "2026-03-09T08:00:00Z",
        {
            "1.4.3": (
                "Blocked",
                None,
                {
                    WINDOW: (
                        "pending",
                        "OutsideWindow",
                        "Outside the deploy window",
                        "2026-03-09T08:00:00Z",
                    ),
                    SOAK: ("fail", "SoakIncomplete", SOAK_MESSAGE_143, None),
                },
            ),
            "1.4.2": (
                "Pending",
                "2026-03-09T08:00:00Z",
                {
                    WINDOW: (
                        "pending",
                        "OutsideWindow",
                        "Outside the deploy window",
                        "2026-03-09T08:00:00Z",
                    ),
                },
            ),
        },
    ),
    "pending-soak": (
        "Pending",
        [],
        "2026-03-04T13:30:00Z",
        {
            "1.4.3": ("Blocked", None, {SOAK: ("fail", "SoakIncomplete", SOAK_MESSAGE_143, None)}),
            "1.4.2": (
                "Pending",
                "2026-03-04T13:30:00Z",
                {
                    SOAK: (
                        "pending",
                        "SoakIncomplete",
                        "staging runs 1.4.2, candidate is 1.4.2",
                        "2026-03-04T13:30:00Z",
                    ),
                },
            ),
        },
    ),
}

# file -> (apiVersion, kind, metadata.name) of each document, in order
MANIFEST_DOCUMENTS = {
    "flux.yaml": [
        ("image.toolkit.fluxcd.io/v1", "ImageRepository", "my-app"),
        ("image.toolkit.fluxcd.io/v1", "ImagePolicy", "my-app"),
    ],
    "rollout.yaml": [("kuberik.com/v1alpha1", "Rollout", "my-app")],
    "kustomization.yaml": [("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "my-app")],
    "deployment.yaml": [("apps/v1", "Deployment", "my-app")],
    "healthchecks.yaml": [
        ("kuberik.com/v1alpha1", "HealthCheck", "my-app-kustomization"),
        ("kuberik.com/v1alpha1", "HealthCheck", "my-app-error-rate"),
    ],
    "pinned-rollout.yaml": [("kuberik.com/v1alpha1", "Rollout", "my-app")],
    "openkruise.yaml": [
        ("rollouts.kruise.io/v1beta1", "Rollout", "my-app-canary"),
        ("rollout.kuberik.com/v1alpha1", "RolloutTest", "my-app-smoke"),
    ],
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``tidegate`` script, run from the repository root without colour."""
    return subprocess.run(
        [TIDEGATE, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )


def snapshot_path(name: str) -> Path:
    return SNAPSHOTS / f"{name}.facts.yaml"


def evaluate(name: str) -> dict[str, Any]:
    """The JSON EvaluationReport of ``tidegate eval --explain`` on one example snapshot."""
    result = run(
        "eval", "-p", "examples/policies", "--facts", str(snapshot_path(name)), "-o", "json",
        "--explain",
    )  # fmt: skip
    assert result.returncode == (0 if EXPECTED[name][0] == "Allowed" else 1), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def non_passing(candidate: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {
        rule["id"]: (rule["result"], rule["reason"], rule["message"], rule["nextChange"])
        for rule in candidate["rules"]
        if rule["result"] != "pass"
    }


def load_documents(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def test_every_example_snapshot_has_verified_expectations() -> None:
    assert sorted(p.name.removesuffix(".facts.yaml") for p in SNAPSHOTS.glob("*.yaml")) == sorted(
        EXPECTED
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_eval_of_each_snapshot_gives_the_verified_decision(name: str) -> None:
    decision, allowed, next_change, candidates = EXPECTED[name]
    report = evaluate(name)
    assert report["decision"] == decision
    assert report["allowedVersions"] == allowed
    assert report["nextChange"] == next_change
    assert [c["release"]["tag"] for c in report["candidates"]] == list(candidates)
    for candidate in report["candidates"]:
        tag = candidate["release"]["tag"]
        want_decision, want_next, want_rules = candidates[tag]
        assert candidate["decision"] == want_decision, tag
        assert candidate["nextChange"] == want_next, tag
        assert candidate["warnings"] == [], tag
        assert non_passing(candidate) == want_rules, tag
    assert report["diagnostics"] == []


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - {"checkout-prod"}))
def test_recorded_decision_block_matches_the_verified_decision(name: str) -> None:
    # replay compares per-candidate decisions only; this also pins nextChange,
    # allowedVersions and the recorded rule results.
    _, allowed, next_change, candidates = EXPECTED[name]
    (document,) = load_documents(snapshot_path(name))
    assert "digest" not in document
    recorded = document["decision"]
    assert recorded["allowedVersions"] == allowed
    assert recorded.get("nextChange") == next_change
    assert list(recorded["candidates"]) == list(candidates)
    for tag, (want_decision, want_next, want_rules) in candidates.items():
        entry = recorded["candidates"][tag]
        assert entry["decision"] == want_decision, tag
        assert entry.get("nextChange") == want_next, tag
        assert entry.get("rules", {}) == {rule: r[0] for rule, r in want_rules.items()}, tag


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - {"checkout-prod"}))
def test_each_snapshot_keeps_every_root_of_the_reference_snapshot(name: str) -> None:
    (reference,) = load_documents(snapshot_path("checkout-prod"))
    (document,) = load_documents(snapshot_path(name))
    assert set(reference) <= set(document)
    assert set(document["facts"]) == set(reference["facts"])


def test_replay_of_the_example_snapshots_reproduces_every_recorded_decision() -> None:
    result = run("replay", "examples/snapshots", "-p", "examples/policies")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 changed" in result.stdout


def test_text_explanation_of_the_alert_case_names_the_failing_check() -> None:
    result = run(
        "eval", "-p", "examples/policies", "--facts", str(snapshot_path("blocked-by-alert")),
        "--explain", "--color", "never",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "BLOCKED" in result.stdout
    assert "no-critical-alerts" in result.stdout
    assert "PlatformUnhealthy" in result.stdout


def test_text_explanation_of_the_alert_case_names_the_firing_alert() -> None:
    result = run(
        "eval", "-p", "examples/policies", "--facts", str(snapshot_path("blocked-by-alert")),
        "--explain", "--color", "never",
    )  # fmt: skip
    assert "CheckoutHighErrorRate" in result.stdout


def test_the_alert_snapshot_holds_a_firing_critical_alert() -> None:
    (document,) = load_documents(snapshot_path("blocked-by-alert"))
    (alert,) = document["facts"]["alerts"]
    assert alert["name"] == "CheckoutHighErrorRate"
    assert alert["state"] == "firing"
    assert alert["labels"]["severity"] == "critical"


@pytest.mark.parametrize("file", sorted(MANIFEST_DOCUMENTS))
def test_each_manifest_parses_with_the_expected_documents(file: str) -> None:
    documents = load_documents(MANIFESTS / file)
    for document in documents:
        assert isinstance(document, dict)
        assert isinstance(document["apiVersion"], str)
        assert isinstance(document["kind"], str)
        assert isinstance(document["metadata"]["name"], str)
    assert [
        (d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in documents
    ] == MANIFEST_DOCUMENTS[file]


def test_every_manifest_file_is_covered() -> None:
    assert sorted(p.name for p in MANIFESTS.glob("*.yaml")) == sorted(MANIFEST_DOCUMENTS)


def test_the_kustomization_substitutes_the_version_from_the_rollout() -> None:
    (kustomization,) = load_documents(MANIFESTS / "kustomization.yaml")
    annotations = kustomization["metadata"]["annotations"]
    assert annotations["rollout.kuberik.com/substitute.VERSION.from"] == "my-app"
    assert "VERSION" in kustomization["spec"]["postBuild"]["substitute"]


def test_the_deployment_image_tag_is_the_substituted_version() -> None:
    (deployment,) = load_documents(MANIFESTS / "deployment.yaml")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith(":${VERSION}")


def test_the_rollout_reads_releases_from_the_image_policy() -> None:
    (rollout,) = load_documents(MANIFESTS / "rollout.yaml")
    (_, policy) = load_documents(MANIFESTS / "flux.yaml")
    assert rollout["spec"]["releasesImagePolicy"] == {"name": policy["metadata"]["name"]}
    assert rollout["spec"]["bakeTime"] == "5m"
    assert "healthCheckSelector" in rollout["spec"]
    assert policy["spec"]["policy"] == {"semver": {"range": ">=0.1.0"}}


def test_the_pinned_rollout_sets_a_wanted_version() -> None:
    (rollout,) = load_documents(MANIFESTS / "pinned-rollout.yaml")
    assert isinstance(rollout["spec"]["wantedVersion"], str)


def test_the_health_checks_use_the_kustomization_and_prometheus_alert_classes() -> None:
    kustomization_check, alert_check = load_documents(MANIFESTS / "healthchecks.yaml")
    assert kustomization_check["spec"]["class"] == "kustomization"
    assert alert_check["spec"]["class"] == "prometheus-alert"
    annotations = alert_check["metadata"]["annotations"]
    assert annotations["healthcheck.kuberik.com/prometheus-url"].startswith("http")
    assert annotations["healthcheck.kuberik.com/prometheus-alert-labels"] == (
        "alertname=HighErrorRate,app=my-app"
    )


def test_the_openkruise_rollout_has_a_step_one_bake_time_and_a_rollout_test() -> None:
    kruise, rollout_test = load_documents(MANIFESTS / "openkruise.yaml")
    assert kruise["metadata"]["annotations"]["rollout.kuberik.io/step-1-bake-time"] == "10m"
    assert len(kruise["spec"]["strategy"]["canary"]["steps"]) >= 2
    assert rollout_test["spec"]["rolloutName"] == kruise["metadata"]["name"]
    assert rollout_test["spec"]["stepIndex"] == 1
    assert "template" in rollout_test["spec"]["jobTemplate"]


def test_the_readme_describes_every_example_file() -> None:
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        assert str(path.relative_to(EXAMPLES)) in readme, path
    for name in EXPECTED:
        assert f"--facts examples/snapshots/{name}.facts.yaml" in readme, name
