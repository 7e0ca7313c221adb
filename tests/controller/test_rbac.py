"""The controller runs under the project's own least-privilege RBAC (deploy/rbac.yaml), enforced.

The apiserver runs with ``--authorization-mode=RBAC``; the controller authenticates
as ``system:serviceaccount:tidegate-system:tidegate``. With deploy/rbac.yaml applied,
a full deploy (status write, Flux server-side apply, annotation removal, events)
must succeed with no permission error.
"""

from __future__ import annotations

from pathlib import Path

from clocks import ManualClock
from harness import ControllerHarness
from kubecluster import KubeCluster
from world import FLUX_KUSTOMIZE, World

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"


def test_a_deploy_needs_no_more_than_the_shipped_rbac(kube: KubeCluster, namespace: str) -> None:
    applied = kube.kubectl("apply", "-f", str(RBAC))
    assert applied.returncode == 0, applied.stderr
    denied = kube.kubectl("auth", "can-i", "delete", "secrets", "-A", identity="controller")
    assert denied.stdout.strip() == "no"
    world = World(kube, namespace)
    world.kustomization("app", {"rollout.kuberik.com/substitute.APP.from": "r"}, {"APP": "0"})
    world.rollout()
    world.annotate(**{"rollout.kuberik.com/deploy-user": "stale"})
    with ControllerHarness(kube.controller_kubeconfig, ManualClock(), namespace) as controller:
        world.observe("0.1.0")

        def substitute() -> str:
            ks = world.get(FLUX_KUSTOMIZE, "kustomizations", "app")
            return str(ks["spec"]["postBuild"]["substitute"]["APP"])

        controller.wait_until(lambda: substitute() == "0.1.0", what="the Flux patch")
        controller.wait_until(
            lambda: "rollout.kuberik.com/deploy-user" not in world.annotations, what="annotations"
        )
        controller.wait_until(lambda: world.events("DeploymentSucceeded"), what="an event")
    assert world.tags() == ["0.1.0"]
