"""HealthCheck classes (KUBERIK-SEMANTICS §5): targets, verdicts and status writes.

Covers scenario 30 (kustomization) and the verdict half of scenario 31 (prometheus-alert).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.planning.healthchecks import (
    Verdict,
    alerts_selector,
    inventory_entries,
    kustomization_target,
    kustomization_verdict,
    parse_inventory_id,
    prometheus_alert_matchers,
    prometheus_alert_verdict,
    requeue_interval,
    status_changes,
    unavailable_verdict,
    validate_prometheus_url,
)

NOW = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
T1 = "2026-03-01T10:00:00Z"
T2 = "2026-03-01T11:00:00Z"
T3 = "2026-03-01T12:00:00Z"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def hc(annotations: dict[str, str] | None = None, namespace: str = "team") -> Any:
    meta: dict[str, Any] = {"name": "h", "namespace": namespace}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "kuberik.com/v1alpha1", "kind": "HealthCheck", "metadata": meta}


def cond(kind: str, status: str, reason: str = "", message: str = "", when: str = T1) -> Any:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": when,
    }


def kustomization(*conditions: Any, generation: int = 1, observed: int = 1) -> Any:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "app", "namespace": "flux", "generation": generation},
        "status": {
            "observedGeneration": observed,
            "conditions": list(conditions) or [cond("Ready", "True", "Succeeded", "Applied")],
            "inventory": {
                "entries": [
                    {"id": "ns_web_apps_Deployment", "v": "v1"},
                    {"id": "ns_cfg__ConfigMap", "v": "v1"},
                    {"v": "v1"},
                ]
            },
        },
    }


def deployment(name: str = "web", *conditions: Any, **status: Any) -> Any:
    base = {"replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}
    found = list(conditions) or [
        cond("Available", "True"),
        cond("Progressing", "True", "NewReplicaSetAvailable"),
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"replicas": 1, "progressDeadlineSeconds": 600},
        "status": {**base, "conditions": found, **status},
    }


def failed_deployment(name: str, *extra: Any) -> Any:
    deadline = cond("Progressing", "False", "ProgressDeadlineExceeded", "timed out", when=T2)
    return deployment(name, deadline, *extra)


CONFIG = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "ns"}}
KRUISE = {
    "apiVersion": "rollouts.kruise.io/v1beta1",
    "kind": "Rollout",
    "metadata": {"name": "web", "namespace": "ns", "generation": 2},
    "status": {
        "observedGeneration": 2,
        "conditions": [
            cond("Progressing", "True", "InRolling", when=T3),
            cond(
                "Stalled",
                "True",
                "RolloutTestFailed",
                "Rollout tests failed (test t, step 1)",
                when=T2,
            ),
        ],
    },
}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, 30),
        ("1s", 5),
        ("5s", 5),
        ("60s", 60),
        ("2m", 120),
        ("1h30m", 5400),
        ("0", 5),
        ("-10s", 5),
        ("soon", 30),
        ("", 30),
        ("10", 30),
        ("3000000h", 30),
    ],
)
def test_requeue_interval(value: str | None, seconds: int) -> None:
    annotations = {} if value is None else {"healthcheck.kuberik.com/requeue-interval": value}
    assert requeue_interval(hc(annotations)) == timedelta(seconds=seconds)


def test_requeue_interval_without_annotations() -> None:
    assert requeue_interval(hc(None)) == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        (None, "annotation healthcheck.kuberik.com/kustomization not found"),
        ({}, "annotation healthcheck.kuberik.com/kustomization not found"),
        ({"healthcheck.kuberik.com/kustomization": "app"}, ("team", "app")),
        ({"healthcheck.kuberik.com/kustomization": "flux/app"}, ("flux", "app")),
        (
            {"healthcheck.kuberik.com/kustomization": "a/b/c"},
            "invalid kustomization reference format: a/b/c",
        ),
        (
            {"healthcheck.kuberik.com/kustomization": "/app"},
            "invalid kustomization reference format: /app",
        ),
        ({"healthcheck.kuberik.com/kustomization": ""}, "invalid kustomization reference format: "),
    ],
)
def test_kustomization_target(annotations: dict[str, str] | None, expected: Any) -> None:
    assert kustomization_target(hc(annotations)) == expected


@pytest.mark.parametrize(
    ("entry_id", "expected"),
    [
        ("ns_web_apps_Deployment", ("ns", "web", "apps", "Deployment")),
        ("ns_cfg__ConfigMap", ("ns", "cfg", "", "ConfigMap")),
        ("_team__Namespace", ("", "team", "", "Namespace")),
        (
            "_system__controller_rbac.authorization.k8s.io_ClusterRole",
            ("", "system:controller", "rbac.authorization.k8s.io", "ClusterRole"),
        ),
        ("ns_web_rollouts.kruise.io_Rollout", ("ns", "web", "rollouts.kruise.io", "Rollout")),
    ],
)
def test_parse_inventory_id(entry_id: str, expected: tuple[str, str, str, str]) -> None:
    assert parse_inventory_id(entry_id) == expected


@pytest.mark.parametrize(
    ("entry_id", "problem"),
    [
        ("garbage", "unable to parse stored object metadata: garbage"),
        ("ns_Deployment", "unable to parse stored object metadata: ns_Deployment"),
        ("ns_a_b_apps_Deployment", "too many fields within: ns_a_b_apps_Deployment"),
        ("ns__apps_Deployment", "empty name or kind in: ns__apps_Deployment"),
        ("ns_web_apps_", "empty name or kind in: ns_web_apps_"),
    ],
)
def test_parse_inventory_id_rejects(entry_id: str, problem: str) -> None:
    with pytest.raises(ValueError, match="^" + problem.replace(".", r"\.") + "$"):
        parse_inventory_id(entry_id)


def test_inventory_entries() -> None:
    assert inventory_entries(kustomization()) == [
        ("ns_web_apps_Deployment", "v1"),
        ("ns_cfg__ConfigMap", "v1"),
    ]
    assert inventory_entries({"status": {"inventory": None}}) == []
    assert inventory_entries({}) == []


HEALTHY_INVENTORY = [("ns_web_apps_Deployment", deployment()), ("ns_cfg__ConfigMap", CONFIG)]

VERDICTS: list[tuple[str, Any, Any, Verdict]] = [
    (
        "kustomization not found",
        None,
        [],
        Verdict(
            "Unhealthy",
            'Kustomization not found: kustomizations.kustomize.toolkit.fluxcd.io "app" not found',
            NOW,
        ),
    ),
    (
        "kustomization read error",
        PermissionError("forbidden"),
        [],
        Verdict("Unhealthy", "Kustomization not found: forbidden", NOW),
    ),
    (
        "kustomization stalled",
        kustomization(
            cond("Ready", "False", "BuildFailed", "kustomize build failed", when=T3),
            cond("Stalled", "True", "BuildFailed", "build error", when=T2),
        ),
        HEALTHY_INVENTORY,
        Verdict(
            "Unhealthy", "Kustomization unhealthy: build error: kustomize build failed", at(T2)
        ),
    ),
    (
        "kustomization ready false",
        kustomization(cond("Ready", "False", "HealthCheckFailed", "timeout", when=T3)),
        HEALTHY_INVENTORY,
        Verdict("Unhealthy", "Kustomization unhealthy: timeout", at(T3)),
    ),
    (
        "read errors before unhealthy",
        kustomization(),
        [
            ("ns_web_apps_Deployment", failed_deployment("web")),
            ("ns_cfg__ConfigMap", TimeoutError("timed out")),
            ("bogus", CONFIG),
        ],
        Verdict(
            "Unhealthy",
            "Errors: ns/cfg (get error: timed out); "
            "bogus (parse error: unable to parse stored object metadata: bogus)",
            at(T2),
        ),
    ),
    (
        "read errors alone witness now",
        kustomization(),
        [("ns_cfg__ConfigMap", TimeoutError("timed out"))],
        Verdict("Unhealthy", "Errors: ns/cfg (get error: timed out)", NOW),
    ),
    (
        "failed deployment witness newest condition",
        kustomization(),
        [("ns_web_apps_Deployment", failed_deployment("web", cond("Available", "False", when=T1)))],
        Verdict("Unhealthy", "Unhealthy resources: ns/web (Progress deadline exceeded)", at(T2)),
    ),
    (
        "failed deployment witness stalled",
        kustomization(),
        [
            (
                "ns_web_apps_Deployment",
                failed_deployment("web", cond("Stalled", "True", "X", "stuck", when=T1)),
            )
        ],
        Verdict("Unhealthy", "Unhealthy resources: ns/web (stuck)", at(T1)),
    ),
    (
        "failed without condition times witness now",
        kustomization(),
        [
            (
                "ns_web_apps_Deployment",
                deployment("web", {"type": "Progressing", "reason": "ProgressDeadlineExceeded"}),
            )
        ],
        Verdict("Unhealthy", "Unhealthy resources: ns/web (Progress deadline exceeded)", NOW),
    ),
    (
        "newest witness across failing objects",
        kustomization(),
        [
            ("ns_a_apps_Deployment", failed_deployment("a", cond("Stalled", "True", when=T3))),
            ("ns_b_apps_Deployment", failed_deployment("b")),
            ("ns_c_apps_Deployment", deployment("c", updatedReplicas=0)),
        ],
        Verdict(
            "Unhealthy", "Unhealthy resources: ns/a (); ns/b (Progress deadline exceeded)", at(T3)
        ),
    ),
    (
        "kruise rollout stalled",
        kustomization(),
        [("ns_web_rollouts.kruise.io_Rollout", KRUISE), *HEALTHY_INVENTORY],
        Verdict(
            "Unhealthy",
            "Unhealthy resources: ns/web (Rollout tests failed (test t, step 1))",
            at(T2),
        ),
    ),
    (
        "unknown is unhealthy",
        kustomization(),
        [("_p_core_Pod", {"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Lost"}})],
        Verdict("Unhealthy", "Unhealthy resources: p (Unknown: unknown Pod phase 'Lost')", NOW),
    ),
    (
        "pending resources",
        kustomization(),
        [
            ("ns_web_apps_Deployment", deployment(updatedReplicas=0)),
            ("ns_cfg__ConfigMap", {**CONFIG, "metadata": {"deletionTimestamp": T1}}),
        ],
        Verdict("Pending", "Pending resources: ns/web (Updated: 0/1); ns/cfg (terminating)"),
    ),
    (
        "not found entries are skipped",
        kustomization(),
        [("ns_gone_apps_Deployment", None), *HEALTHY_INVENTORY],
        Verdict("Healthy", "Kustomization and all managed resources are healthy"),
    ),
    (
        "kustomization in progress",
        kustomization(cond("Ready", "True", "Succeeded", "Applied revision: v1"), generation=2),
        HEALTHY_INVENTORY,
        Verdict(
            "Pending",
            "Kustomization pending: Kustomization generation is 2, but latest observed "
            "generation is 1: Applied revision: v1",
        ),
    ),
    (
        "kustomization reconciling with empty inventory",
        kustomization(cond("Reconciling", "True", "Progressing", "Reconciliation in progress")),
        [],
        Verdict("Pending", "Kustomization pending: Reconciliation in progress"),
    ),
    (
        "empty inventory",
        kustomization(),
        [],
        Verdict("Pending", "Kustomization has no managed resources"),
    ),
    (
        "healthy",
        kustomization(),
        HEALTHY_INVENTORY,
        Verdict("Healthy", "Kustomization and all managed resources are healthy"),
    ),
]


@pytest.mark.parametrize(
    ("case", "found", "inventory", "expected"), VERDICTS, ids=[case[0] for case in VERDICTS]
)
def test_kustomization_verdict(case: str, found: Any, inventory: Any, expected: Verdict) -> None:
    assert kustomization_verdict(found, inventory, NOW, target=("flux", "app")) == expected, case


def test_missing_kustomization_without_a_target_still_says_not_found() -> None:
    verdict = kustomization_verdict(None, [], NOW)
    assert verdict.message == "Kustomization not found: not found"


def test_scenario_30_failed_deployment_writes_the_stall_time() -> None:
    stalled = failed_deployment("web", cond("Stalled", "True", "X", "stuck", when=T1))
    verdict = kustomization_verdict(kustomization(), [("ns_web_apps_Deployment", stalled)], NOW)
    previous = {"status": "Healthy", "message": "ok", "lastChangeTime": T1}
    assert status_changes(previous, verdict, NOW) == {
        "status": "Unhealthy",
        "message": "Unhealthy resources: ns/web (stuck)",
        "lastChangeTime": "2026-03-01T13:00:00Z",
        "lastErrorTime": "2026-03-01T10:00:00Z",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alertname=HighErrorRate,app=x", {"alertname": "HighErrorRate", "app": "x"}),
        (" alertname = A , app=x ", {"alertname": "A", "app": "x"}),
        ("url=a=b", {"url": "a=b"}),
        (
            None,
            "invalid prometheus-alert-labels: annotation "
            "healthcheck.kuberik.com/prometheus-alert-labels is missing or empty; "
            "expected k=v pairs such as alertname=HighErrorRate,app=x",
        ),
        (
            "  ",
            "invalid prometheus-alert-labels: annotation "
            "healthcheck.kuberik.com/prometheus-alert-labels is missing or empty; "
            "expected k=v pairs such as alertname=HighErrorRate,app=x",
        ),
        ("alertname", "invalid prometheus-alert-labels: 'alertname' is not k=v"),
        ("a=1,,b=2", "invalid prometheus-alert-labels: '' is not k=v"),
        ("app=", "invalid prometheus-alert-labels: 'app=' is not k=v"),
        ("1app=x", "invalid prometheus-alert-labels: '1app' is not a Prometheus label name"),
        ("a-b=x", "invalid prometheus-alert-labels: 'a-b' is not a Prometheus label name"),
        ("a=1,a=2", "invalid prometheus-alert-labels: label 'a' given twice"),
    ],
)
def test_prometheus_alert_matchers(value: str | None, expected: Any) -> None:
    annotations = (
        {} if value is None else {"healthcheck.kuberik.com/prometheus-alert-labels": value}
    )
    assert prometheus_alert_matchers(hc(annotations)) == expected


def test_alerts_selector_escapes_values() -> None:
    assert alerts_selector({"app": "x", "alertname": "A"}) == 'ALERTS{alertname="A",app="x"}'
    assert alerts_selector({"q": 'say "hi"\\\n'}) == 'ALERTS{q="say \\"hi\\"\\\\\\n"}'


def series(name: str, state: str) -> Any:
    return {"metric": {"__name__": "ALERTS", "alertname": name, "alertstate": state}, "values": []}


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        (
            [
                series("B", "firing"),
                series("A", "pending"),
                series("A", "firing"),
                series("B", "firing"),
            ],
            Verdict("Unhealthy", "firing: A, B", NOW),
        ),
        ([series("A", "pending")], Verdict("Pending", "pending: A")),
        ([], Verdict("Healthy", "no matching alerts firing or pending")),
        (
            [{"name": "A", "labels": {"alertname": "A"}, "state": "firing"}],
            Verdict("Unhealthy", "firing: A", NOW),
        ),
        ([{"labels": {}, "state": "pending"}], Verdict("Pending", "pending: <unnamed>")),
        ([{"metric": "junk"}], Verdict("Healthy", "no matching alerts firing or pending")),
    ],
    ids=["firing wins", "pending", "none", "alert records", "unnamed", "junk ignored"],
)
def test_prometheus_alert_verdict(samples: list[Any], expected: Verdict) -> None:
    assert prometheus_alert_verdict(samples, NOW) == expected


def test_scenario_31_firing_then_unavailable_then_none() -> None:
    status: dict[str, Any] = {"status": "Healthy", "message": "ok", "lastChangeTime": T1}
    firing = status_changes(status, prometheus_alert_verdict([series("A", "firing")], NOW), NOW)
    assert firing["lastErrorTime"] == "2026-03-01T13:00:00Z"
    status.update(firing)
    later = NOW + timedelta(minutes=1)
    down = unavailable_verdict("prometheus", "connect error")
    assert down == Verdict(
        "Unhealthy", "prometheus unavailable: connect error", None, keep_error_time=True
    )
    changes = status_changes(status, down, later)
    assert changes == {"message": "prometheus unavailable: connect error"}
    status.update(changes)
    healthy = status_changes(status, prometheus_alert_verdict([], later), later)
    assert healthy == {
        "status": "Healthy",
        "message": "no matching alerts firing or pending",
        "lastChangeTime": "2026-03-01T13:01:00Z",
    }


def test_unavailable_source_never_sets_a_first_error_time() -> None:
    changes = status_changes({"status": "Healthy"}, unavailable_verdict("kubernetes", "503"), NOW)
    assert changes == {
        "status": "Unhealthy",
        "message": "kubernetes unavailable: 503",
        "lastChangeTime": "2026-03-01T13:00:00Z",
    }


@pytest.mark.parametrize(
    ("url", "allowed", "problem"),
    [
        ("http://prometheus:9090", None, None),
        ("https://prom.example.com/prometheus/", None, None),
        ("ftp://prom", None, "prometheus URL must use http or https, got scheme 'ftp'"),
        ("prom:9090", None, "prometheus URL must use http or https, got scheme 'prom'"),
        (
            "http://user:pw@prom",
            None,
            "prometheus URL must not contain credentials (user:password@)",
        ),
        ("http://token@prom", None, "prometheus URL must not contain credentials (user:password@)"),
        ("http:///api", None, "prometheus URL has no host"),
        ("http://prom:99999", None, "prometheus URL is not a valid URL"),
        ("http://prom?x=1", None, "prometheus URL must not have a query or fragment"),
        ("http://prom:9090/x", ["http://prom:9090"], None),
        ("http://prom:9090", ["http://prom:9090"], None),
        ("http://prom:9090/x", ["http://prom:9090/"], None),
        (
            "http://prometheus-evil",
            ["http://prometheus"],
            "prometheus URL is not in the controller's allow-list",
        ),
        (
            "http://evil",
            ["http://prom", ""],
            "prometheus URL is not in the controller's allow-list",
        ),
        ("http://prom", [], "prometheus URL is not in the controller's allow-list"),
    ],
)
def test_validate_prometheus_url(url: str, allowed: list[str] | None, problem: str | None) -> None:
    assert validate_prometheus_url(url, allowed) == problem


STATUS_CASES: list[tuple[str, Any, Verdict, dict[str, Any]]] = [
    (
        "no status yet",
        None,
        Verdict("Pending", "wait"),
        {"status": "Pending", "message": "wait", "lastChangeTime": "2026-03-01T13:00:00Z"},
    ),
    (
        "unchanged",
        {"status": "Healthy", "message": "ok", "lastChangeTime": T1},
        Verdict("Healthy", "ok"),
        {},
    ),
    (
        "message only",
        {"status": "Pending", "message": "a", "lastChangeTime": T1},
        Verdict("Pending", "b"),
        {"message": "b"},
    ),
    (
        "unhealthy with witness",
        {"status": "Healthy", "message": "ok"},
        Verdict("Unhealthy", "bad", at(T2)),
        {
            "status": "Unhealthy",
            "message": "bad",
            "lastChangeTime": "2026-03-01T13:00:00Z",
            "lastErrorTime": "2026-03-01T11:00:00Z",
        },
    ),
    (
        "unhealthy without witness uses now",
        {"status": "Unhealthy", "message": "bad", "lastErrorTime": T1},
        Verdict("Unhealthy", "bad"),
        {"lastErrorTime": "2026-03-01T13:00:00Z"},
    ),
    (
        "same error instant in another spelling",
        {"status": "Unhealthy", "message": "bad", "lastErrorTime": "2026-03-01T12:00:00+01:00"},
        Verdict("Unhealthy", "bad", at(T2)),
        {},
    ),
    (
        "older witness still written",
        {"status": "Unhealthy", "message": "bad", "lastErrorTime": T3},
        Verdict("Unhealthy", "bad", at(T1)),
        {"lastErrorTime": "2026-03-01T10:00:00Z"},
    ),
    (
        "unparsable error time is rewritten",
        {"status": "Unhealthy", "message": "bad", "lastErrorTime": "junk"},
        Verdict("Unhealthy", "bad", at(T1)),
        {"lastErrorTime": "2026-03-01T10:00:00Z"},
    ),
    (
        "healthy never clears the error time",
        {"status": "Unhealthy", "message": "bad", "lastErrorTime": T1},
        Verdict("Healthy", "ok"),
        {"status": "Healthy", "message": "ok", "lastChangeTime": "2026-03-01T13:00:00Z"},
    ),
    (
        "empty status counts as a change",
        {"status": "", "message": "x"},
        Verdict("Pending", "x"),
        {"status": "Pending", "lastChangeTime": "2026-03-01T13:00:00Z"},
    ),
]


@pytest.mark.parametrize(
    ("case", "current", "verdict", "expected"), STATUS_CASES, ids=[case[0] for case in STATUS_CASES]
)
def test_status_changes(
    case: str, current: Any, verdict: Verdict, expected: dict[str, Any]
) -> None:
    assert status_changes(current, verdict, NOW) == expected, case
