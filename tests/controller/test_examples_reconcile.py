"""The talk's manifests, applied unchanged with kubectl, reconcile into a recorded deployment."""

from __future__ import annotations

from pathlib import Path

from clocks import ManualClock
from harness import ControllerHarness
from kubecluster import KubeCluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "manifests"
MY_APP = "/apis/kuberik.com/v1alpha1/namespaces/my-app/rollouts/my-app"
POLICY = "/apis/image.toolkit.fluxcd.io/v1/namespaces/my-app/imagepolicies/my-app/status"
KUSTOMIZATION = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/my-app/kustomizations/my-app"


def test_the_example_manifests_deploy_a_new_release(kube: KubeCluster) -> None:
    kube.kubectl("create", "namespace", "my-app")
    applied = kube.kubectl("apply", "-f", str(EXAMPLES))
    assert applied.returncode == 0, applied.stderr
    with ControllerHarness(kube.admin_kubeconfig, ManualClock(), "my-app") as controller:
        released = {"status": {"latestRef": {"name": "ghcr.io/example/my-app", "tag": "0.2.0"}}}
        merge = "application/merge-patch+json"
        status, body = kube.request("PATCH", POLICY, released, content_type=merge)
        assert status == 200, body

        def history() -> list[dict[str, object]]:
            found: list[dict[str, object]] = (
                kube.request("GET", MY_APP)[1].get("status") or {}
            ).get("history") or []
            return found

        def substitute() -> object:
            return kube.request("GET", KUSTOMIZATION)[1]["spec"]["postBuild"]["substitute"][
                "VERSION"
            ]

        controller.wait_until(history, what="a deployment in history")
        controller.wait_until(lambda: substitute() == "0.2.0", what="VERSION substituted")
    [entry] = history()
    assert entry["version"] == {"tag": "0.2.0"}
    assert entry["bakeStatus"] == "Deploying"
    assert entry["message"] == "Automatic deployment"
