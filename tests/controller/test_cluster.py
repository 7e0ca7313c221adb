"""Proves the controller-test fixtures: real apiserver, CRDs, RBAC, SSA, fault proxy, examples.

Callers: pytest. Everything goes through the public Kubernetes API (kubernetes client, kubectl,
plain HTTP through the proxy); nothing here reaches into fixture internals.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy
from kubecluster import KubeCluster, new_api_client
from kubernetes import client
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "manifests"
IMAGE_GROUP = "image.toolkit.fluxcd.io"
KS_GROUP = "kustomize.toolkit.fluxcd.io"


def _custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


@pytest.fixture
def proxy_api(fault_proxy: FaultProxy) -> Iterator[client.ApiClient]:
    """An admin ApiClient that goes through the fault proxy."""
    api = new_api_client(fault_proxy.kubeconfig("admin"))
    try:
        yield api
    finally:
        api.close()  # type: ignore[no-untyped-call]


def test_apiserver_answers_with_the_pinned_version(
    kube: KubeCluster, kube_api: client.ApiClient
) -> None:
    pinned = (REPO / "tests" / "cluster" / "KUBE_VERSION").read_text().strip()
    assert client.VersionApi(kube_api).get_code().git_version == pinned
    assert kube.request("GET", "/readyz") == (200, "ok")


def test_imagepolicy_written_at_v1_reads_back_at_v1beta2(
    kube_api: client.ApiClient, namespace: str
) -> None:
    api = _custom(kube_api)
    body = {
        "apiVersion": f"{IMAGE_GROUP}/v1",
        "kind": "ImagePolicy",
        "metadata": {"name": "app"},
        "spec": {
            "imageRepositoryRef": {"name": "app"},
            "policy": {"semver": {"range": ">=1.0.0"}},
            "filterTags": {"pattern": "^v(?P<v>.*)$", "extract": "$v"},
        },
    }
    api.create_namespaced_custom_object(IMAGE_GROUP, "v1", namespace, "imagepolicies", body)
    status = {"latestRef": {"name": "ghcr.io/x/app", "tag": "1.2.3", "digest": "sha256:ab"}}
    api.patch_namespaced_custom_object_status(
        IMAGE_GROUP, "v1", namespace, "imagepolicies", "app", {"status": status}
    )
    got: dict[str, Any] = api.get_namespaced_custom_object(  # type: ignore[assignment]
        IMAGE_GROUP, "v1beta2", namespace, "imagepolicies", "app"
    )
    assert got["apiVersion"] == f"{IMAGE_GROUP}/v1beta2"
    assert got["spec"] == body["spec"]
    assert got["status"]["latestRef"] == status["latestRef"]


def test_third_party_schemas_are_enforced(kube_api: client.ApiClient, namespace: str) -> None:
    body = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "OCIRepository",
        "metadata": {"name": "bad"},
        "spec": {"url": "https://not-oci.example", "ref": {"tag": 7}},
    }
    with pytest.raises(ApiException) as caught:
        _custom(kube_api).create_namespaced_custom_object(
            "source.toolkit.fluxcd.io", "v1", namespace, "ocirepositories", body
        )
    assert caught.value.status == 422
    assert "spec.url" in str(caught.value.body)
    assert "spec.ref.tag" in str(caught.value.body)


def test_rbac_forbids_the_controller_what_no_role_grants(
    kube_api: client.ApiClient, controller_kube_api: client.ApiClient, kube: KubeCluster
) -> None:
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(controller_kube_api).list_secret_for_all_namespaces()
    assert caught.value.status == 403
    assert "system:serviceaccount:tidegate-system:tidegate" in str(caught.value.body)
    client.CoreV1Api(kube_api).list_secret_for_all_namespaces()
    can_i = kube.kubectl("auth", "can-i", "list", "secrets", "-A", identity="controller")
    assert can_i.stdout.strip() == "no"


def _apply_kustomization(
    api: client.ApiClient, namespace: str, substitute: dict[str, str], manager: str
) -> dict[str, Any]:
    body = {
        "apiVersion": f"{KS_GROUP}/v1",
        "kind": "Kustomization",
        "metadata": {"name": "app", "namespace": namespace},
        "spec": {"postBuild": {"substitute": substitute}},
    }
    result: dict[str, Any] = _custom(api).patch_namespaced_custom_object(  # type: ignore[assignment]
        KS_GROUP,
        "v1",
        namespace,
        "kustomizations",
        "app",
        body,
        field_manager=manager,
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    return result


def _owned_keys(obj: dict[str, Any], manager: str) -> set[str]:
    for entry in obj["metadata"]["managedFields"]:
        if entry["manager"] == manager:
            substitute = entry["fieldsV1"]["f:spec"]["f:postBuild"]["f:substitute"]
            return {key.removeprefix("f:") for key in substitute}
    return set()


def test_ssa_of_one_substitute_key_keeps_other_managers_keys(
    kube_api: client.ApiClient, namespace: str
) -> None:
    _apply_kustomization(kube_api, namespace, {"VERSION": "0.1.0", "REGION": "eu"}, "flux-user")
    got = _apply_kustomization(kube_api, namespace, {"VERSION": "0.2.0"}, "tidegate")
    assert got["spec"]["postBuild"]["substitute"] == {"VERSION": "0.2.0", "REGION": "eu"}
    assert _owned_keys(got, "tidegate") == {"VERSION"}
    assert _owned_keys(got, "flux-user") == {"REGION"}


def _configmap(api: client.ApiClient, namespace: str, name: str) -> client.V1ConfigMap:
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"k": "v"})
    created: client.V1ConfigMap = client.CoreV1Api(api).create_namespaced_config_map(
        namespace, body
    )
    return created


def test_fault_proxy_injects_conflict_and_server_error_once_then_passes(
    kube_api: client.ApiClient, proxy_api: client.ApiClient, fault_proxy: FaultProxy, namespace: str
) -> None:
    _configmap(kube_api, namespace, "cm")
    path = rf"/namespaces/{namespace}/configmaps/cm$"
    fault_proxy.fail("PATCH", path, 409)
    fault_proxy.fail("PATCH", path, 500)
    core = client.CoreV1Api(proxy_api)
    for expected in (409, 500):
        with pytest.raises(ApiException) as caught:
            core.patch_namespaced_config_map("cm", namespace, {"data": {"k": "w"}})
        assert caught.value.status == expected
    assert core.patch_namespaced_config_map("cm", namespace, {"data": {"k": "w"}}).data == {
        "k": "w"
    }
    assert [r.status for r in fault_proxy.matching("PATCH", path)] == [409, 500, 200]


def test_fault_proxy_answers_429_with_retry_after(
    kube: KubeCluster, proxy_api: client.ApiClient, fault_proxy: FaultProxy, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    fault_proxy.fail("GET", f"{path}$", 429, times=2, retry_after=1)
    request = urllib.request.Request(fault_proxy.url + path)
    request.add_header("Authorization", f"Bearer {kube.tokens['admin']}")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 429
    assert caught.value.headers["Retry-After"] == "1"
    status = json.loads(caught.value.read())
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "TooManyRequests", 429)
    # The kubernetes client (urllib3) honours Retry-After and retries by itself.
    client.CoreV1Api(proxy_api).list_namespaced_config_map(namespace)
    assert [r.status for r in fault_proxy.matching("GET", f"{path}$")] == [429, 429, 200]


def test_fault_proxy_delays_a_request_before_forwarding_it(
    kube_api: client.ApiClient, proxy_api: client.ApiClient, fault_proxy: FaultProxy, namespace: str
) -> None:
    _configmap(kube_api, namespace, "slow")
    fault_proxy.delay("GET", r"/configmaps/slow$", 3.0)
    read: list[dict[str, str] | None] = []
    reader = threading.Thread(
        target=lambda: read.append(
            client.CoreV1Api(proxy_api).read_namespaced_config_map("slow", namespace).data
        )
    )
    reader.start()
    _wait("the GET to be held", lambda: fault_proxy.held == 1)
    # While the proxy holds the GET, a write goes straight to the apiserver ...
    client.CoreV1Api(kube_api).patch_namespaced_config_map(
        "slow", namespace, {"data": {"k": "written-meanwhile"}}
    )
    reader.join(timeout=30)
    # ... so the held GET, forwarded only after the delay, sees it.
    assert read == [{"k": "written-meanwhile"}]
    assert fault_proxy.held == 0


def _wait(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class _WatchReader:
    """Reads a raw watch stream in a thread, recording lines and how the stream ended."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.lines: list[bytes] = []
        self.ended: str | None = None
        self._response: Any = client.CoreV1Api(api).list_namespaced_config_map(
            namespace, watch=True, timeout_seconds=300, _preload_content=False
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for chunk in self._response.stream(None):
                self.lines.append(chunk)
            self.ended = "eof"
        except Exception as err:
            self.ended = type(err).__name__
        finally:
            self._response.release_conn()


@pytest.mark.parametrize("abrupt", [False, True], ids=["clean-end", "connection-reset"])
def test_drop_watches_ends_an_open_watch(
    kube_api: client.ApiClient,
    proxy_api: client.ApiClient,
    fault_proxy: FaultProxy,
    namespace: str,
    abrupt: bool,
) -> None:
    reader = _WatchReader(proxy_api, namespace)
    _wait("the watch to open", lambda: fault_proxy.open_watches == 1)
    _configmap(kube_api, namespace, "seen")
    _wait("the ADDED event", lambda: b'"seen"' in b"".join(reader.lines))
    assert reader.ended is None
    assert fault_proxy.drop_watches(abrupt=abrupt) == 1
    _wait("the watch to end", lambda: reader.ended is not None)
    assert (reader.ended == "eof") is not abrupt
    assert fault_proxy.open_watches == 0


def test_kubectl_applies_the_examples(kube: KubeCluster) -> None:
    ns = kube.kubectl("create", "namespace", "my-app", "--dry-run=client", "-o", "yaml")
    assert kube.kubectl("apply", "-f", "-", input=ns.stdout).returncode == 0
    applied = kube.kubectl("apply", "-f", str(EXAMPLES))
    assert applied.returncode == 0, applied.stderr
    listed = kube.kubectl(
        "get",
        "-n",
        "my-app",
        "-o",
        "name",
        "imagepolicies.image.toolkit.fluxcd.io,imagerepositories.image.toolkit.fluxcd.io,"
        "kustomizations.kustomize.toolkit.fluxcd.io,rollouts.rollouts.kruise.io,"
        "rollouts.kuberik.com,healthchecks.kuberik.com,rollouttests.rollout.kuberik.com",
    )
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == {
        "imagepolicy.image.toolkit.fluxcd.io/my-app",
        "imagerepository.image.toolkit.fluxcd.io/my-app",
        "kustomization.kustomize.toolkit.fluxcd.io/my-app",
        "rollout.rollouts.kruise.io/my-app-canary",
        "rollout.kuberik.com/my-app",
        "healthcheck.kuberik.com/my-app-kustomization",
        "healthcheck.kuberik.com/my-app-error-rate",
        "rollouttest.rollout.kuberik.com/my-app-smoke",
    }
