"""Stores: watch events and LISTs become resourceVersion-monotonic projections (ObjectReader)."""

from __future__ import annotations

import random
from typing import Any

from plainreader import PlainReader

from controller.api.actions import HEALTHCHECKS, IMAGEPOLICIES, ROLLOUTS
from controller.stores import (
    CHECKS_BY_KUSTOMIZATION,
    GATES_BY_ROLLOUT,
    KUSTOMIZATIONS_BY_ROLLOUT,
    LAST_APPLIED,
    POLICIES_BY_REPOSITORY,
    ROLLOUTS_BY_SELECTOR,
    SELECTS_HEALTH_CHECKS,
    SELECTS_NAMESPACES,
    Index,
    Stores,
    find,
    scan,
)
from evaluators.base import ObjectReader

GATES = "rolloutgates.kuberik.com"


def obj(
    name: str, rv: str, namespace: str | None = "shop", uid: str = "u1", **extra: Any
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "resourceVersion": rv, "uid": uid}
    if namespace:
        metadata["namespace"] = namespace
    metadata.update(extra)
    return {"apiVersion": "kuberik.com/v1alpha1", "kind": "RolloutGate", "metadata": metadata}


def test_an_added_object_is_stored_without_managed_fields_or_last_applied() -> None:
    stores = Stores()
    body = obj(
        "g",
        "5",
        managedFields=[{"manager": "kubectl"}],
        annotations={LAST_APPLIED: "{...}", "gate.kuberik.com/pretty-name": "G"},
    )
    change = stores.apply_event(GATES, "ADDED", body)
    stored = stores.get(GATES, "shop", "g")
    assert change is not None
    assert change.old is None
    assert change.new == stored
    assert stored is not None
    assert "managedFields" not in stored["metadata"]
    assert stored["metadata"]["annotations"] == {"gate.kuberik.com/pretty-name": "G"}
    assert body["metadata"]["managedFields"] == [{"manager": "kubectl"}]  # input untouched


def test_an_event_older_than_the_stored_version_is_ignored() -> None:
    stores = Stores()
    stores.apply_event(GATES, "MODIFIED", obj("g", "10", labels={"v": "new"}))
    assert stores.apply_event(GATES, "MODIFIED", obj("g", "9", labels={"v": "old"})) is None
    assert stores.apply_event(GATES, None, obj("g", "10", labels={"v": "new"})) is None
    stored = stores.get(GATES, "shop", "g")
    assert stored is not None
    assert stored["metadata"]["labels"] == {"v": "new"}


def test_a_newer_event_replaces_the_object_and_reports_both_versions() -> None:
    stores = Stores()
    stores.apply_event(GATES, "ADDED", obj("g", "9"))
    change = stores.apply_event(GATES, "MODIFIED", obj("g", "11"))
    assert change is not None
    assert change.old is not None
    assert change.new is not None
    assert change.old["metadata"]["resourceVersion"] == "9"
    assert change.new["metadata"]["resourceVersion"] == "11"


def test_deletion_removes_only_the_same_or_newer_incarnation() -> None:
    stores = Stores()
    stores.apply_event(GATES, "ADDED", obj("g", "20", uid="new"))
    assert stores.apply_event(GATES, "DELETED", obj("g", "15", uid="old")) is None
    assert stores.apply_event(GATES, "DELETED", obj("g", "21", uid="old")) is None
    assert stores.get(GATES, "shop", "g") is not None
    change = stores.apply_event(GATES, "DELETED", obj("g", "21", uid="new"))
    assert change is not None
    assert change.new is None
    assert stores.get(GATES, "shop", "g") is None
    assert stores.apply_event(GATES, "DELETED", obj("g", "22", uid="new")) is None


def test_listing_is_sorted_by_namespace_then_name_and_follows_changes() -> None:
    stores = Stores()
    for namespace, name, rv in (("b", "y", "1"), ("a", "z", "2"), ("b", "x", "3")):
        stores.apply_event(GATES, "ADDED", obj(name, rv, namespace=namespace))
    names = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in stores.list(GATES)]
    assert names == [("a", "z"), ("b", "x"), ("b", "y")]
    assert [o["metadata"]["name"] for o in stores.list(GATES, "b")] == ["x", "y"]
    stores.apply_event(GATES, "ADDED", obj("w", "4", namespace="b"))
    assert [o["metadata"]["name"] for o in stores.list(GATES, "b")] == ["w", "x", "y"]
    assert len(stores.list(GATES)) == 4
    assert stores.list(GATES, "nowhere") == ()
    assert stores.list("unknown.example.com") == ()


def test_cluster_scoped_objects_are_stored_without_a_namespace() -> None:
    stores = Stores()
    stores.apply_event("namespaces", "ADDED", obj("shop", "1", namespace=None))
    assert stores.get("namespaces", None, "shop") is not None
    assert [o["metadata"]["name"] for o in stores.list("namespaces")] == ["shop"]


def test_a_kind_is_synced_only_after_a_complete_list() -> None:
    stores = Stores()
    stores.apply_event(GATES, "ADDED", obj("g", "1"))
    assert not stores.synced(GATES)
    stores.replace_all(GATES, [obj("g", "1")], resource_version="1")
    assert stores.synced(GATES)
    assert not stores.synced("healthchecks.kuberik.com")
    assert stores.kinds() == {GATES: True}


def test_a_list_drops_vanished_objects_but_keeps_newer_watched_ones() -> None:
    stores = Stores()
    stores.apply_event(GATES, "ADDED", obj("gone", "3"))
    stores.apply_event(GATES, "ADDED", obj("kept", "9", labels={"v": "watched"}))
    stores.apply_event(GATES, "ADDED", obj("fresh", "12"))
    changes = stores.replace_all(
        GATES,
        [obj("kept", "8", labels={"v": "listed"}), obj("added", "7")],
        resource_version="10",
    )
    assert sorted(o["metadata"]["name"] for o in stores.list(GATES)) == ["added", "fresh", "kept"]
    kept = stores.get(GATES, "shop", "kept")
    assert kept is not None
    assert kept["metadata"]["labels"] == {"v": "watched"}
    summary = sorted(
        ((c.old or c.new or {})["metadata"]["name"], c.old is None, c.new is None) for c in changes
    )
    assert summary == [("added", True, False), ("gone", False, True)]


def test_stores_are_an_object_reader() -> None:
    reader: ObjectReader = Stores()
    assert reader.get(GATES, "shop", "g") is None
    assert reader.list(GATES) == ()
    assert not reader.synced(GATES)


def test_without_resource_versions_only_a_different_content_is_a_change() -> None:
    stores = Stores()
    body = {"metadata": {"name": "g", "namespace": "shop"}, "spec": {"passing": True}}
    assert stores.apply_event(GATES, "ADDED", body) is not None
    assert stores.apply_event(GATES, "MODIFIED", body) is None
    changed = {**body, "spec": {"passing": False}}
    assert stores.apply_event(GATES, "MODIFIED", changed) is not None


# -- secondary indexes ---------------------------------------------------------------------------

KUSTOMIZATIONS = "kustomizations.kustomize.toolkit.fluxcd.io"
SUBSTITUTE = "rollout.kuberik.com/substitute.{}.from"


def kustomization(name: str, rv: str, *rollouts: str, namespace: str = "shop") -> dict[str, Any]:
    annotations = {SUBSTITUTE.format(f"V{i}"): r for i, r in enumerate(rollouts)}
    annotations["unrelated"] = "web"
    return {
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv, "uid": name,
                     "annotations": annotations},
    }  # fmt: skip


def gate(name: str, rv: str, rollout: str | None, namespace: str = "shop") -> dict[str, Any]:
    body = obj(name, rv, namespace=namespace, uid=name)
    body["spec"] = {"rolloutRef": {"name": rollout}} if rollout else {}
    return body


def found(reader: ObjectReader, index: Index, namespace: str | None, value: str) -> list[str]:
    return [f"{o['metadata'].get('namespace')}/{o['metadata']['name']}" for o in
            find(reader, index, namespace, value)]  # fmt: skip


def test_an_index_finds_objects_under_every_key_they_name_in_listing_order() -> None:
    stores = Stores()
    stores.apply_event(KUSTOMIZATIONS, "ADDED", kustomization("b", "1", "web", "api"))
    stores.apply_event(KUSTOMIZATIONS, "ADDED", kustomization("a", "2", "web"))
    stores.apply_event(KUSTOMIZATIONS, "ADDED", kustomization("c", "3", "web", namespace="other"))
    for reader in (stores, PlainReader(stores)):
        assert found(reader, KUSTOMIZATIONS_BY_ROLLOUT, "shop", "web") == ["shop/a", "shop/b"]
        assert found(reader, KUSTOMIZATIONS_BY_ROLLOUT, "shop", "api") == ["shop/b"]
        assert found(reader, KUSTOMIZATIONS_BY_ROLLOUT, "other", "web") == ["other/c"]
        assert found(reader, KUSTOMIZATIONS_BY_ROLLOUT, "shop", "unrelated") == []


def test_an_object_whose_reference_changes_moves_to_its_new_key() -> None:
    stores = Stores()
    stores.apply_event(GATES, "ADDED", gate("g", "1", "web"))
    stores.apply_event(GATES, "MODIFIED", gate("g", "2", "api"))
    assert found(stores, GATES_BY_ROLLOUT, "shop", "web") == []
    assert found(stores, GATES_BY_ROLLOUT, "shop", "api") == ["shop/g"]
    stores.apply_event(GATES, "MODIFIED", gate("g", "3", None))
    assert found(stores, GATES_BY_ROLLOUT, "shop", "api") == []
    stores.apply_event(KUSTOMIZATIONS, "ADDED", kustomization("k", "4", "web", "api"))
    stores.apply_event(KUSTOMIZATIONS, "MODIFIED", kustomization("k", "5", "api"))
    assert found(stores, KUSTOMIZATIONS_BY_ROLLOUT, "shop", "web") == []
    assert found(stores, KUSTOMIZATIONS_BY_ROLLOUT, "shop", "api") == ["shop/k"]


def test_an_index_returns_the_stored_version_of_the_object() -> None:
    stores = Stores()
    stores.apply_event(GATES, "ADDED", gate("g", "1", "web"))
    stores.apply_event(GATES, "MODIFIED", {**gate("g", "2", "web"), "status": {"passing": True}})
    (current,) = find(stores, GATES_BY_ROLLOUT, "shop", "web")
    assert current["metadata"]["resourceVersion"] == "2"
    assert current["status"] == {"passing": True}


def test_a_stale_event_does_not_move_an_object_between_keys() -> None:
    stores = Stores()
    stores.apply_event(GATES, "ADDED", gate("g", "10", "api"))
    assert stores.apply_event(GATES, "MODIFIED", gate("g", "9", "web")) is None
    assert found(stores, GATES_BY_ROLLOUT, "shop", "web") == []
    assert found(stores, GATES_BY_ROLLOUT, "shop", "api") == ["shop/g"]


def test_deletion_unindexes_only_the_stored_incarnation() -> None:
    stores = Stores()
    stores.apply_event(GATES, "ADDED", gate("g", "20", "web"))
    stale = {**gate("g", "21", "web"), "metadata": {**gate("g", "21", "web")["metadata"],
                                                     "uid": "an-older-g"}}  # fmt: skip
    assert stores.apply_event(GATES, "DELETED", stale) is None
    assert found(stores, GATES_BY_ROLLOUT, "shop", "web") == ["shop/g"]
    assert stores.apply_event(GATES, "DELETED", gate("g", "19", "web")) is None
    assert found(stores, GATES_BY_ROLLOUT, "shop", "web") == ["shop/g"]
    assert stores.apply_event(GATES, "DELETED", gate("g", "21", "web")) is not None
    assert found(stores, GATES_BY_ROLLOUT, "shop", "web") == []


def test_a_list_reindexes_changed_and_vanished_objects_and_keeps_newer_ones() -> None:
    stores = Stores()
    stores.apply_event(GATES, "ADDED", gate("gone", "3", "web"))
    stores.apply_event(GATES, "ADDED", gate("moved", "4", "web"))
    stores.apply_event(GATES, "ADDED", gate("watched", "12", "web"))
    listed = [gate("moved", "8", "api"), gate("watched", "7", "api")]
    stores.replace_all(GATES, listed, resource_version="10")
    assert found(stores, GATES_BY_ROLLOUT, "shop", "web") == ["shop/watched"]
    assert found(stores, GATES_BY_ROLLOUT, "shop", "api") == ["shop/moved"]


def test_cross_namespace_references_are_found_through_their_target_namespace() -> None:
    stores = Stores()
    check = obj("hc", "1", namespace="checks", uid="hc")
    check["metadata"]["annotations"] = {"healthcheck.kuberik.com/kustomization": "shop/k"}
    local = obj("local", "2", namespace="shop", uid="local")
    local["metadata"]["annotations"] = {"healthcheck.kuberik.com/kustomization": "k"}
    stores.apply_event(HEALTHCHECKS, "ADDED", check)
    stores.apply_event(HEALTHCHECKS, "ADDED", local)
    policy = obj("p", "3", namespace="apps", uid="p")
    policy["spec"] = {"imageRepositoryRef": {"name": "repo", "namespace": "images"}}
    stores.apply_event(IMAGEPOLICIES, "ADDED", policy)
    for reader in (stores, PlainReader(stores)):
        assert found(reader, CHECKS_BY_KUSTOMIZATION, "shop", "k") == ["checks/hc", "shop/local"]
        assert found(reader, POLICIES_BY_REPOSITORY, "images", "repo") == ["apps/p"]
        assert found(reader, POLICIES_BY_REPOSITORY, "apps", "repo") == []


def test_rollouts_are_indexed_by_the_health_check_selectors_they_carry() -> None:
    stores = Stores()
    plain = {"metadata": {"name": "plain", "namespace": "shop", "resourceVersion": "1"}}
    local = {"metadata": {"name": "local", "namespace": "shop", "resourceVersion": "2"},
             "spec": {"healthCheckSelector": {"selector": {}}}}  # fmt: skip
    wide = {"metadata": {"name": "wide", "namespace": "ops", "resourceVersion": "3"},
            "spec": {"healthCheckSelector": {"selector": {}, "namespaceSelector": {}}}}  # fmt: skip
    for body in (plain, local, wide):
        stores.apply_event(ROLLOUTS, "ADDED", body)
    assert found(stores, ROLLOUTS_BY_SELECTOR, "shop", SELECTS_HEALTH_CHECKS) == ["shop/local"]
    assert found(stores, ROLLOUTS_BY_SELECTOR, None, SELECTS_NAMESPACES) == ["ops/wide"]
    assert found(PlainReader(stores), ROLLOUTS_BY_SELECTOR, None, SELECTS_NAMESPACES) == [
        "ops/wide"
    ]


def test_random_changes_keep_every_index_equal_to_a_scan() -> None:
    rng = random.Random(7)
    stores = Stores()
    rollouts, namespaces = ["web", "api", "db", ""], ["shop", "other"]
    for version in range(1, 601):
        namespace, name = rng.choice(namespaces), f"o{rng.randrange(12)}"
        rv = str(version - rng.choice((0, 0, 0, 5)))  # sometimes stale
        targets = rng.sample(rollouts, rng.randrange(3))
        event = rng.choice(("ADDED", "MODIFIED", "MODIFIED", "DELETED"))
        stores.apply_event(GATES, event, gate(name, rv, targets[0] if targets else None, namespace))
        stores.apply_event(
            KUSTOMIZATIONS, event, kustomization(name, rv, *targets, namespace=namespace)
        )
        if rng.random() < 0.02:
            stores.replace_all(GATES, stores.list(GATES)[::2], str(version))
    for index in (GATES_BY_ROLLOUT, KUSTOMIZATIONS_BY_ROLLOUT):
        for namespace in namespaces:
            for rollout in rollouts:
                key = (namespace, rollout)
                assert stores.indexed(index, key) == scan(stores, index, key), key
    assert stores.count(GATES) > 0


def test_an_index_the_stores_do_not_keep_is_answered_by_a_scan() -> None:
    stores = Stores(indexes=())
    stores.apply_event(GATES, "ADDED", gate("g", "1", "web"))
    assert found(stores, GATES_BY_ROLLOUT, "shop", "web") == ["shop/g"]
    assert found(Stores(), GATES_BY_ROLLOUT, "shop", "web") == []
