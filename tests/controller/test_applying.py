"""Writer against a real kube-apiserver: preconditions, SSA ownership, one-shot removal, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from clocks import ManualClock
from faultproxy import FaultProxy
from kubecluster import KubeCluster
from kubernetes import client

from controller.api.actions import (
    ROLLOUTS,
    ApplySubstitute,
    ObjectKey,
    Plan,
    PostEvent,
    RemoveAnnotations,
    SetSourceTag,
    WriteStatus,
)
from controller.applying import ApiError, ApplyConflict, ApplyOutcome, KindUnavailable, Writer
from controller.stores import Stores

T = TypeVar("T")
KUSTOMIZATIONS = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
OCIREPOSITORIES = ("source.toolkit.fluxcd.io", "v1", "ocirepositories")
ROLLOUT = ("kuberik.com", "v1alpha1", "rollouts")


def run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(asyncio.wait_for(work(), timeout=60))


def apply_plan(kubeconfig: Path, *actions: Any, stores: Stores | None = None) -> ApplyOutcome:
    async def work() -> ApplyOutcome:
        async with Writer.from_kubeconfig(kubeconfig, ManualClock(), reader=stores) as writer:
            return await writer.apply(Plan(actions=tuple(actions)))

    return run(work)


class Objects:
    """Creates and reads custom objects in one namespace as the admin."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace

    def create(self, kind: tuple[str, str, str], name: str, **fields: Any) -> dict[str, Any]:
        group, version, plural = kind
        body = {
            "apiVersion": f"{group}/{version}",
            "kind": {"rollouts": "Rollout", "kustomizations": "Kustomization"}.get(
                plural, "OCIRepository"
            ),
            "metadata": {"name": name, **fields.pop("metadata", {})},
            **fields,
        }
        created = self.custom.create_namespaced_custom_object(
            group, version, self.namespace, plural, body
        )
        return cast(dict[str, Any], created)

    def get(self, kind: tuple[str, str, str], name: str) -> dict[str, Any]:
        group, version, plural = kind
        found = self.custom.get_namespaced_custom_object(
            group, version, self.namespace, plural, name
        )
        return cast(dict[str, Any], found)

    def rollout(self, name: str = "web", annotations: dict[str, str] | None = None) -> Any:
        metadata = {"annotations": annotations} if annotations else {}
        spec = {"releasesImagePolicy": {"name": name}}
        return self.create(ROLLOUT, name, metadata=metadata, spec=spec)


@pytest.fixture
def objects(kube_api: client.ApiClient, namespace: str) -> Objects:
    return Objects(kube_api, namespace)


def rollout_key(namespace: str, name: str = "web") -> ObjectKey:
    return ObjectKey(ROLLOUTS, namespace, name)


def test_status_is_written_only_under_the_observed_resource_version(
    kube: KubeCluster, objects: Objects, namespace: str
) -> None:
    seen = objects.rollout()
    rv = seen["metadata"]["resourceVersion"]
    status: dict[str, list[Any]] = {"history": [], "conditions": []}
    first = apply_plan(kube.admin_kubeconfig, WriteStatus(rollout_key(namespace), rv, status))
    assert first.ok
    assert first.applied == (f"status {rollout_key(namespace)}",)
    written = objects.get(ROLLOUT, "web")
    assert written["status"] == status
    assert written["metadata"]["resourceVersion"] != rv

    stale = WriteStatus(rollout_key(namespace), rv, {"history": [{"id": 9}]})
    later = SetSourceTag(namespace, "source", "2.0.0")
    outcome = apply_plan(kube.admin_kubeconfig, stale, later)
    assert isinstance(outcome.error, ApplyConflict)
    assert outcome.error.retryable
    assert outcome.error.kind == "conflict"
    assert outcome.error.action == stale.key
    assert outcome.not_run == (later.key,)
    assert objects.get(ROLLOUT, "web")["status"] == status


def test_server_side_apply_sets_only_the_named_fields(
    kube: KubeCluster, objects: Objects, namespace: str
) -> None:
    objects.create(
        KUSTOMIZATIONS,
        "apps",
        spec={
            "interval": "1m",
            "path": "./",
            "prune": True,
            "sourceRef": {"kind": "OCIRepository", "name": "source"},
            "postBuild": {"substitute": {"OTHER": "kept", "VERSION": "1.0.0"}},
        },
    )
    objects.create(
        OCIREPOSITORIES,
        "source",
        spec={
            "interval": "1m",
            "url": "oci://registry.example.com/app",
            "ref": {"tag": "1.0.0", "semverFilter": ".*-rc"},
        },
    )
    outcome = apply_plan(
        kube.admin_kubeconfig,
        ApplySubstitute(namespace, "apps", "VERSION", "1.2.3"),
        ApplySubstitute(namespace, "apps", "IMAGE_TAG", "1.2.3"),
        SetSourceTag(namespace, "source", "1.2.3"),
    )
    assert outcome.ok, outcome.error
    substitute = objects.get(KUSTOMIZATIONS, "apps")["spec"]["postBuild"]["substitute"]
    assert substitute == {"OTHER": "kept", "VERSION": "1.2.3", "IMAGE_TAG": "1.2.3"}
    source = objects.get(OCIREPOSITORIES, "source")["spec"]
    assert source["ref"] == {"tag": "1.2.3", "semverFilter": ".*-rc"}
    assert source["url"] == "oci://registry.example.com/app"

    again = apply_plan(
        kube.admin_kubeconfig, ApplySubstitute(namespace, "apps", "VERSION", "1.3.0")
    )
    assert again.ok
    substitute = objects.get(KUSTOMIZATIONS, "apps")["spec"]["postBuild"]["substitute"]
    assert substitute == {"OTHER": "kept", "VERSION": "1.3.0", "IMAGE_TAG": "1.2.3"}


def test_one_shot_annotations_are_removed_only_while_they_hold_the_value_seen(
    kube: KubeCluster, objects: Objects, namespace: str
) -> None:
    objects.rollout(
        annotations={
            "rollout.kuberik.com/force-deploy": "1.2.3",
            "rollout.kuberik.com/deploy-message": "changed since",
            "example.com/keep": "yes",
        }
    )
    remove = RemoveAnnotations(
        rollout_key(namespace),
        {
            "rollout.kuberik.com/force-deploy": "1.2.3",
            "rollout.kuberik.com/deploy-message": "hello",
            "rollout.kuberik.com/deploy-user": "already-gone",
        },
    )
    outcome = apply_plan(kube.admin_kubeconfig, remove)
    assert outcome.ok, outcome.error
    assert outcome.applied == (remove.key,)
    annotations = objects.get(ROLLOUT, "web")["metadata"]["annotations"]
    assert annotations == {
        "rollout.kuberik.com/deploy-message": "changed since",
        "example.com/keep": "yes",
    }
    consumed = apply_plan(kube.admin_kubeconfig, remove)
    assert consumed.ok
    assert consumed.skipped == (remove.key,)


def test_server_errors_are_retryable(
    fault_proxy: FaultProxy, objects: Objects, namespace: str
) -> None:
    seen = objects.rollout()
    action = WriteStatus(rollout_key(namespace), seen["metadata"]["resourceVersion"], {})
    fault_proxy.fail("PATCH", r"/rollouts/web/status$", 500)
    outcome = apply_plan(fault_proxy.kubeconfig("admin"), action)
    assert outcome.error is not None
    assert not isinstance(outcome.error, ApplyConflict)
    assert outcome.error.retryable
    assert outcome.error.status == 500
    assert outcome.error.kind == "retryable"

    fault_proxy.fail("PATCH", r"/rollouts/web/status$", 429, retry_after=7)
    throttled = apply_plan(fault_proxy.kubeconfig("admin"), action)
    assert throttled.error is not None
    assert throttled.error.retryable
    assert throttled.error.retry_after == 7


def test_an_unreachable_api_is_retryable(tmp_path: Path, kube: KubeCluster) -> None:
    fault = tmp_path / "closed.kubeconfig"
    text = kube.admin_kubeconfig.read_text().replace(kube.server, "http://127.0.0.1:9")
    fault.write_text(text)
    outcome = apply_plan(fault, SetSourceTag("default", "source", "1.0.0"))
    assert outcome.error is not None
    assert outcome.error.retryable
    assert outcome.error.status is None


def test_forbidden_and_missing_targets_are_permanent(
    kube: KubeCluster, objects: Objects, namespace: str
) -> None:
    seen = objects.rollout()
    action = WriteStatus(rollout_key(namespace), seen["metadata"]["resourceVersion"], {})
    forbidden = apply_plan(kube.controller_kubeconfig, action)
    assert forbidden.error is not None
    assert forbidden.error.status == 403
    assert not forbidden.error.retryable
    assert forbidden.error.kind == "permanent"
    assert "token" not in forbidden.error.message.lower()

    gone = WriteStatus(rollout_key(namespace, "nope"), "1", {})
    missing = apply_plan(kube.admin_kubeconfig, gone)
    assert missing.error is not None
    assert missing.error.status == 404
    assert not missing.error.retryable


def test_events_are_posted_about_the_target_and_never_fail_the_plan(
    kube_api: client.ApiClient,
    fault_proxy: FaultProxy,
    kube: KubeCluster,
    objects: Objects,
    namespace: str,
) -> None:
    seen = objects.rollout()
    stores = Stores()
    stores.apply_event(ROLLOUTS, "ADDED", seen)
    event = PostEvent(rollout_key(namespace), "Warning", "BakeTimeFailed", "bake failed: x" * 200)
    outcome = apply_plan(kube.admin_kubeconfig, event, stores=stores)
    assert outcome.ok
    assert outcome.applied == (event.key,)
    events = client.CoreV1Api(kube_api).list_namespaced_event(namespace).items
    posted = [e for e in events if e.reason == "BakeTimeFailed"]
    assert len(posted) == 1
    assert posted[0].type == "Warning"
    assert posted[0].reporting_component == "tidegate"
    assert posted[0].involved_object.kind == "Rollout"
    assert posted[0].involved_object.uid == seen["metadata"]["uid"]
    assert 0 < len(posted[0].message or "") <= 1024

    fault_proxy.fail("POST", r"/events$", 500)
    tag = SetSourceTag(namespace, "missing-source", "1.0.0")
    failing = apply_plan(fault_proxy.kubeconfig("admin"), event, tag)
    assert failing.failed_events == (event.key,)
    assert failing.error is not None  # the SetSourceTag after the failed event still ran
    assert failing.error.action == tag.key
    assert failing.error.status == 404  # and created nothing


def test_listing_returns_typed_objects_and_names_unserved_kinds(
    kube: KubeCluster, objects: Objects, namespace: str
) -> None:
    objects.rollout("a")
    objects.rollout("b")

    async def work() -> tuple[list[dict[str, Any]], str | None, bool]:
        async with Writer.from_kubeconfig(kube.admin_kubeconfig, ManualClock()) as writer:
            items, version = await writer.list_objects(ROLLOUTS, namespace)
            try:
                await writer.list_objects("widgets.example.com")
            except KindUnavailable:
                return items, version, True
            return items, version, False

    items, version, unserved = run(work)
    assert sorted(i["metadata"]["name"] for i in items) == ["a", "b"]
    assert {(i["apiVersion"], i["kind"]) for i in items} == {("kuberik.com/v1alpha1", "Rollout")}
    assert version
    assert unserved


@pytest.mark.parametrize(("gone", "listed"), [(1, True), (4, False)])
def test_a_list_whose_continue_token_expired_starts_again(
    fault_proxy: FaultProxy, objects: Objects, namespace: str, gone: int, listed: bool
) -> None:
    objects.rollout("a")
    fault_proxy.fail("GET", rf"/namespaces/{namespace}/rollouts$", 410, times=gone)

    async def work() -> list[dict[str, Any]] | int:
        kubeconfig = fault_proxy.kubeconfig("admin")
        async with Writer.from_kubeconfig(kubeconfig, ManualClock()) as writer:
            try:
                return (await writer.list_objects(ROLLOUTS, namespace))[0]
            except ApiError as exc:
                return exc.status

    found = run(work)
    if listed:
        assert isinstance(found, list)
        assert [i["metadata"]["name"] for i in found] == ["a"]
    else:
        assert found == 410


def test_objects_are_read_by_their_inventory_coordinates(
    kube: KubeCluster, objects: Objects, namespace: str
) -> None:
    objects.rollout("a")

    async def work() -> list[Any]:
        async with Writer.from_kubeconfig(kube.admin_kubeconfig, ManualClock()) as writer:
            found: list[Any] = [
                await writer.get_by_kind("kuberik.com", "v1alpha1", "Rollout", namespace, "a"),
                await writer.get_by_kind("", "v1", "Namespace", None, namespace),
                await writer.get_by_kind("", "v1", "ConfigMap", namespace, "absent"),
            ]
            try:
                await writer.get_by_kind("kuberik.com", "v1alpha1", "Gizmo", namespace, "x")
            except KindUnavailable as exc:
                found.append(exc)
            return found

    rollout, own_namespace, absent, unserved = run(work)
    assert rollout["metadata"]["uid"] == objects.get(ROLLOUT, "a")["metadata"]["uid"]
    assert own_namespace["metadata"]["name"] == namespace
    assert absent is None
    assert isinstance(unserved, KindUnavailable)
