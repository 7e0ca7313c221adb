"""Dependents: each changed object wakes exactly the Rollouts whose reconcile reads it (§4.1)."""

from __future__ import annotations

from typing import Any

from plainreader import PlainReader

from controller import dependents as d
from controller.api.actions import HEALTHCHECKS, ROLLOUTS, ObjectKey
from controller.stores import Stores


def k8s(
    kind: str,
    name: str,
    namespace: str | None = "shop",
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "resourceVersion": "1", "uid": f"{kind}/{name}"}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    return {"kind": kind, "metadata": metadata, "spec": spec or {}}


def rollout(name: str, namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    labels = spec.pop("labels", None)
    return k8s("Rollout", name, namespace, labels=labels, spec=spec)


def key(name: str, namespace: str = "shop") -> ObjectKey:
    return ObjectKey(ROLLOUTS, namespace, name)


def stores_with(*objects: tuple[str, dict[str, Any]]) -> Stores:
    stores = Stores()
    for kind, body in objects:
        stores.apply_event(kind, "ADDED", body)
    return stores


def test_queue_keys_are_the_kinds_tidegate_reconciles() -> None:
    assert set(d.QUEUE_KINDS) == {
        ROLLOUTS, HEALTHCHECKS, d.SCHEDULES, d.CLUSTER_SCHEDULES,
        d.KRUISE_ROLLOUTS, d.ROLLOUTTESTS, d.ENVIRONMENTS,
    }  # fmt: skip


def test_a_rollout_wakes_itself() -> None:
    body = rollout("web")
    assert d.affected(ROLLOUTS, body, Stores()) == {key("web")}


def test_an_image_policy_wakes_the_rollouts_releasing_from_it_in_its_namespace() -> None:
    stores = stores_with(
        (ROLLOUTS, rollout("web", releasesImagePolicy={"name": "web"})),
        (ROLLOUTS, rollout("api", releasesImagePolicy={"name": "api"})),
        (ROLLOUTS, rollout("web", "other", releasesImagePolicy={"name": "web"})),
    )
    policy = k8s("ImagePolicy", "web")
    assert d.affected(d.IMAGEPOLICIES, policy, stores) == {key("web")}


def test_an_image_repository_wakes_through_its_image_policies() -> None:
    stores = stores_with(
        (ROLLOUTS, rollout("web", releasesImagePolicy={"name": "web"})),
        (d.IMAGEPOLICIES, k8s("ImagePolicy", "web", spec={"imageRepositoryRef": {"name": "r"}})),
        (d.IMAGEPOLICIES, k8s("ImagePolicy", "x", spec={"imageRepositoryRef": {"name": "s"}})),
    )
    repository = k8s("ImageRepository", "r")
    assert d.affected(d.IMAGEREPOSITORIES, repository, stores) == {key("web")}


def test_a_gate_wakes_the_rollout_it_references() -> None:
    gate = k8s("RolloutGate", "g", spec={"rolloutRef": {"name": "web"}})
    assert d.affected(d.ROLLOUTGATES, gate, Stores()) == {key("web")}


def test_a_health_check_wakes_every_rollout_that_selects_it() -> None:
    selector = {"selector": {"matchLabels": {"app": "web"}}}
    cross = {
        "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
        "namespaceSelector": {"matchLabels": {"team": "shop"}},
    }
    stores = stores_with(
        ("namespaces", k8s("Namespace", "shop", None, labels={"team": "shop"})),
        (ROLLOUTS, rollout("same-ns", healthCheckSelector=selector)),
        (ROLLOUTS, rollout("other-ns", "ops", healthCheckSelector=selector)),
        (ROLLOUTS, rollout("cross-ns", "ops", healthCheckSelector=cross)),
        (ROLLOUTS, rollout("no-selector", healthCheckSelector={})),
        (ROLLOUTS, rollout("other-app", healthCheckSelector={"selector": {"matchLabels": {}}})),
        (ROLLOUTS, rollout("no-health")),
    )
    check = k8s("HealthCheck", "hc", labels={"app": "web"})
    assert d.affected(HEALTHCHECKS, check, stores) == {
        ObjectKey(HEALTHCHECKS, "shop", "hc"),  # a queue key of its own: its class is polled
        key("same-ns"),
        key("cross-ns", "ops"),
        key("other-app"),  # an empty selector selects every HealthCheck of its namespace
    }


def test_relabelling_a_health_check_wakes_the_rollouts_of_both_labels() -> None:
    stores = stores_with(
        (ROLLOUTS, rollout("a", healthCheckSelector={"selector": {"matchLabels": {"app": "a"}}})),
        (ROLLOUTS, rollout("b", healthCheckSelector={"selector": {"matchLabels": {"app": "b"}}})),
    )
    old = k8s("HealthCheck", "hc", labels={"app": "a"})
    new = k8s("HealthCheck", "hc", labels={"app": "b"})
    own = ObjectKey(HEALTHCHECKS, "shop", "hc")
    assert d.affected_by_change(HEALTHCHECKS, old, new, stores) == {own, key("a"), key("b")}
    assert d.affected_by_change(HEALTHCHECKS, old, None, stores) == {own, key("a")}


def test_a_kustomization_wakes_every_rollout_its_substitute_annotations_name() -> None:
    kustomization = k8s(
        "Kustomization",
        "apps",
        annotations={
            "rollout.kuberik.com/substitute.VERSION.from": "web",
            "rollout.kuberik.com/substitute.API_TAG.from": "api",
            "rollout.kuberik.com/substitute.a.b.from": "not-a-match",
            "other.example.com/substitute": "ignored",
        },
    )
    assert d.affected(d.KUSTOMIZATIONS, kustomization, Stores()) == {key("web"), key("api")}


def test_a_kustomization_wakes_the_health_checks_that_watch_it() -> None:
    def check(name: str, namespace: str, target: str) -> dict[str, Any]:
        annotations = {"healthcheck.kuberik.com/kustomization": target}
        return k8s("HealthCheck", name, namespace, annotations=annotations)

    stores = stores_with(
        (HEALTHCHECKS, check("local", "shop", "apps")),
        (HEALTHCHECKS, check("remote", "ops", "shop/apps")),
        (HEALTHCHECKS, check("other", "shop", "infra")),
        (HEALTHCHECKS, check("elsewhere", "ops", "apps")),
    )
    assert d.affected(d.KUSTOMIZATIONS, k8s("Kustomization", "apps"), stores) == {
        ObjectKey(HEALTHCHECKS, "shop", "local"),
        ObjectKey(HEALTHCHECKS, "ops", "remote"),
    }


def test_an_oci_repository_wakes_the_rollout_it_is_annotated_with() -> None:
    source = k8s("OCIRepository", "web", annotations={"rollout.kuberik.com/rollout": "web"})
    linked = k8s(
        "OCIRepository",
        "kruise",
        annotations={"rollout.kuberik.com/name": "api", "rollout.kuberik.com/namespace": "ops"},
    )
    plain = k8s("OCIRepository", "plain", annotations={"example.com/x": "y"})
    assert d.affected(d.OCIREPOSITORIES, source, Stores()) == {key("web")}
    assert d.affected(d.OCIREPOSITORIES, linked, Stores()) == {key("api", "ops")}
    assert d.affected(d.OCIREPOSITORIES, plain, Stores()) == set()


def test_policies_wake_the_rollouts_in_their_scope() -> None:
    stores = stores_with(
        (ROLLOUTS, rollout("web")),
        (ROLLOUTS, rollout("api")),
        (ROLLOUTS, rollout("ops", "ops")),
    )
    namespaced = k8s("RolloutPolicy", "p")
    cluster = k8s("ClusterRolloutPolicy", "c", None)
    assert d.affected(d.POLICIES, namespaced, stores) == {key("web"), key("api")}
    assert d.affected(d.CLUSTER_POLICIES, cluster, stores) == {
        key("web"),
        key("api"),
        key("ops", "ops"),
    }


def test_schedules_wake_the_rollouts_they_select() -> None:
    stores = stores_with(
        ("namespaces", k8s("Namespace", "shop", None, labels={"env": "prod"})),
        ("namespaces", k8s("Namespace", "ops", None, labels={"env": "dev"})),
        (ROLLOUTS, rollout("web", labels={"tier": "front"})),
        (ROLLOUTS, rollout("db", labels={"tier": "data"})),
        (ROLLOUTS, rollout("web", "ops", labels={"tier": "front"})),
    )
    front = {"rolloutSelector": {"matchLabels": {"tier": "front"}}}
    schedule = k8s("RolloutSchedule", "s", spec=front)
    prod_only = k8s(
        "ClusterRolloutSchedule",
        "c",
        None,
        spec={**front, "namespaceSelector": {"matchLabels": {"env": "prod"}}},
    )
    everywhere = k8s("ClusterRolloutSchedule", "e", None, spec=front)
    own_s = ObjectKey(d.SCHEDULES, "shop", "s")
    own_c = ObjectKey(d.CLUSTER_SCHEDULES, None, "c")
    own_e = ObjectKey(d.CLUSTER_SCHEDULES, None, "e")
    assert d.affected(d.SCHEDULES, schedule, stores) == {own_s, key("web")}
    assert d.affected(d.CLUSTER_SCHEDULES, prod_only, stores) == {own_c, key("web")}
    assert d.affected(d.CLUSTER_SCHEDULES, everywhere, stores) == {
        own_e,
        key("web"),
        key("web", "ops"),
    }
    for kind, body in ((d.SCHEDULES, schedule), (d.CLUSTER_SCHEDULES, prod_only)):
        stores.apply_event(kind, "ADDED", body)
    stores.apply_event(d.CLUSTER_SCHEDULES, "ADDED", everywhere)
    web_ops = stores.get(ROLLOUTS, "ops", "web")
    db = stores.get(ROLLOUTS, "shop", "db")
    web = stores.get(ROLLOUTS, "shop", "web")
    assert web is not None
    assert web_ops is not None
    assert db is not None
    assert d.affected(ROLLOUTS, web, stores) == {key("web"), own_s, own_c, own_e}
    assert d.affected(ROLLOUTS, web_ops, stores) == {key("web", "ops"), own_e}
    assert d.affected(ROLLOUTS, db, stores) == {key("db")}


def test_a_schedule_gate_wakes_the_schedule_that_keeps_it() -> None:
    def gate(name: str, **labels: str) -> dict[str, Any]:
        return k8s("RolloutGate", name, labels=labels, spec={"rolloutRef": {"name": "web"}})

    namespaced = gate(
        "g1",
        **{
            "gate.kuberik.com/schedule-name": "night",
            "gate.kuberik.com/schedule-kind": "RolloutSchedule",
            "gate.kuberik.com/schedule-namespace": "shop",
        },
    )
    cluster = gate(
        "g2",
        **{
            "gate.kuberik.com/schedule-name": "freeze",
            "gate.kuberik.com/schedule-kind": "ClusterRolloutSchedule",
        },
    )
    assert d.affected(d.ROLLOUTGATES, namespaced, Stores()) == {
        key("web"),
        ObjectKey(d.SCHEDULES, "shop", "night"),
    }
    assert d.affected(d.ROLLOUTGATES, cluster, Stores()) == {
        key("web"),
        ObjectKey(d.CLUSTER_SCHEDULES, None, "freeze"),
    }


def test_an_environment_wakes_every_environment_of_its_app_and_their_rollouts() -> None:
    def environment(name: str, namespace: str, app: str, rollout_name: str) -> dict[str, Any]:
        spec = {"name": app, "environment": name, "rolloutRef": {"name": rollout_name}}
        return k8s("Environment", name, namespace, spec=spec)

    staging = environment("staging", "stage", "shop", "web")
    stores = stores_with(
        (d.ENVIRONMENTS, staging),
        (d.ENVIRONMENTS, environment("prod", "prod", "kuberik/shop", "web")),
        (d.ENVIRONMENTS, environment("prod", "prod", "other", "other")),
        (ROLLOUTS, rollout("web", "stage")),
    )
    environments = {
        ObjectKey(d.ENVIRONMENTS, "stage", "staging"), ObjectKey(d.ENVIRONMENTS, "prod", "prod")
    }  # fmt: skip
    linked = {key("web", "stage"), key("web", "prod"), *environments}
    assert d.affected(d.ENVIRONMENTS, staging, stores) == linked
    assert d.affected(ROLLOUTS, rollout("web", "stage"), stores) == linked


def test_a_kruise_rollout_and_its_tests_wake_the_rollout_behind_its_kustomization() -> None:
    stores = stores_with(
        (
            d.KUSTOMIZATIONS,
            k8s(
                "Kustomization",
                "apps",
                annotations={"rollout.kuberik.com/substitute.VERSION.from": "web"},
                spec={"sourceRef": {"kind": "OCIRepository", "name": "src"}},
            ),
        ),
        (
            d.OCIREPOSITORIES,
            k8s("OCIRepository", "src", annotations={"rollout.kuberik.com/name": "api"}),
        ),
        (
            d.KRUISE_ROLLOUTS,
            k8s("Rollout", "canary", labels={"kustomize.toolkit.fluxcd.io/name": "apps"}),
        ),
    )
    kruise = stores.get(d.KRUISE_ROLLOUTS, "shop", "canary")
    assert kruise is not None
    itself = ObjectKey(d.KRUISE_ROLLOUTS, "shop", "canary")
    assert d.affected(d.KRUISE_ROLLOUTS, kruise, stores) == {key("web"), key("api"), itself}
    test = k8s("RolloutTest", "smoke", spec={"rolloutName": "canary", "stepIndex": 1})
    stores.apply_event(d.ROLLOUTTESTS, "ADDED", test)
    own = ObjectKey(d.ROLLOUTTESTS, "shop", "smoke")
    assert d.affected(d.ROLLOUTTESTS, test, stores) == {key("web"), key("api"), itself, own}
    assert d.affected(d.KRUISE_ROLLOUTS, kruise, stores) == {key("web"), key("api"), itself, own}


def test_a_namespace_wakes_its_rollouts_and_those_selecting_namespaces() -> None:
    cross = {"selector": {}, "namespaceSelector": {"matchLabels": {"team": "x"}}}
    stores = stores_with(
        (ROLLOUTS, rollout("web")),
        (ROLLOUTS, rollout("cross", "ops", healthCheckSelector=cross)),
        (ROLLOUTS, rollout("local", "ops")),
    )
    stores.apply_event(d.CLUSTER_SCHEDULES, "ADDED", k8s("ClusterRolloutSchedule", "c", None))
    namespace = k8s("Namespace", "shop", None, labels={"team": "x"})
    assert d.affected(d.NAMESPACES, namespace, stores) == {
        key("web"),
        key("cross", "ops"),
        ObjectKey(d.CLUSTER_SCHEDULES, None, "c"),
    }


def test_an_unknown_kind_wakes_nothing() -> None:
    assert d.affected("widgets.example.com", k8s("Widget", "w"), Stores()) == set()


def test_any_object_reader_wakes_the_same_keys_as_the_indexed_stores() -> None:
    selector = {"selector": {"matchLabels": {"app": "web"}}}
    cross = {**selector, "namespaceSelector": {}}
    watching = {"healthcheck.kuberik.com/kustomization": "shop/apps"}
    stores = stores_with(
        (
            ROLLOUTS,
            rollout("web", releasesImagePolicy={"name": "web"}, healthCheckSelector=selector),
        ),
        (ROLLOUTS, rollout("web", "ops", releasesImagePolicy={"name": "web"})),
        (ROLLOUTS, rollout("cross", "ops", healthCheckSelector=cross)),
        (d.IMAGEPOLICIES, k8s("ImagePolicy", "web", spec={"imageRepositoryRef": {"name": "r"}})),
        (HEALTHCHECKS, k8s("HealthCheck", "hc", "ops", annotations=watching)),
    )
    probes = (
        (d.IMAGEPOLICIES, k8s("ImagePolicy", "web")),
        (d.IMAGEREPOSITORIES, k8s("ImageRepository", "r")),
        (HEALTHCHECKS, k8s("HealthCheck", "hc", labels={"app": "web"})),
        (d.KUSTOMIZATIONS, k8s("Kustomization", "apps")),
        (d.NAMESPACES, k8s("Namespace", "shop", None)),
    )
    for kind, body in probes:
        woken = d.affected(kind, body, stores)
        assert woken, kind
        assert d.affected(kind, body, PlainReader(stores)) == woken, kind
