"""Stores: watch events and LISTs become resourceVersion-monotonic projections (ObjectReader)."""

from __future__ import annotations

from typing import Any

from controller.stores import LAST_APPLIED, Stores
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
