"""Crash safety and API faults (issue 4 item 4–5): nothing deployed twice, nothing lost.

A real ``tidegate run`` process is SIGKILLed after it recorded a deploy in status
but before Flux was patched; a fresh process finishes the job without a second
history entry. In-process runs go through the fault proxy: a 409 on the status
write, a 500 on the server-side apply and dropped watches all converge to exactly
one deploy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from clocks import ManualClock
from faultproxy import FaultProxy
from harness import ControllerHarness, wait_until
from kubecluster import KubeCluster
from world import FLUX_KUSTOMIZE, World

SUBSTITUTE = {"rollout.kuberik.com/substitute.APP.from": "r"}
RUN = (
    "import sys; from controller.cli import RUN; "
    "from policy_engine.cli.common import standard_streams; "
    "sys.exit(RUN(sys.argv[1:], standard_streams()))"
)


def substitute(world: World) -> str:
    ks = world.get(FLUX_KUSTOMIZE, "kustomizations", "app")
    return str(ks["spec"]["postBuild"]["substitute"].get("APP"))


def start_run(kubeconfig: Path, namespace: str, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-c", RUN, "--kubeconfig", str(kubeconfig), "-n", namespace]
    argv += ["--metrics-port", "0", "--workers", "2"]
    with log.open("a") as stderr:
        return subprocess.Popen(argv, stderr=stderr, stdout=subprocess.DEVNULL, cwd=log.parent)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def test_a_controller_killed_between_status_and_patch_resumes_without_a_second_deploy(
    kube: KubeCluster,
    namespace: str,
    world: World,
    fault_proxy: FaultProxy,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    world.kustomization("app", SUBSTITUTE, {"APP": "0"})
    world.rollout()
    world.observe("0.1.0")
    fault_proxy.fail("PATCH", r"/kustomizations/app$", 500, times=None)
    first = start_run(fault_proxy.kubeconfig("admin"), namespace, tmp_path / "first.log")
    processes.append(first)
    wait_until(lambda: world.tags() == ["0.1.0"], 60, "the deploy recorded in status")
    fault_proxy.wait_for("PATCH", r"/kustomizations/app$", status=500)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert substitute(world) == "0"
    second = start_run(kube.admin_kubeconfig, namespace, tmp_path / "second.log")
    processes.append(second)
    wait_until(lambda: substitute(world) == "0.1.0", 60, "the patch finished by the new process")
    history = world.status["history"]
    assert [(e["id"], e["version"]["tag"]) for e in history] == [(1, "0.1.0")]


def test_a_conflict_on_the_status_write_is_replanned_into_one_deploy(
    kube: KubeCluster, namespace: str, world: World, fault_proxy: FaultProxy
) -> None:
    world.kustomization("app", SUBSTITUTE, {"APP": "0"})
    world.rollout()
    fault_proxy.fail("PATCH", r"/rollouts/r/status$", 409, times=1)
    with ControllerHarness(fault_proxy.kubeconfig("admin"), ManualClock(), namespace) as controller:
        world.observe("0.1.0")
        controller.wait_until(lambda: substitute(world) == "0.1.0", what="deployed after the 409")
    assert fault_proxy.matching("PATCH", r"/rollouts/r/status$", status=409)
    assert [e["id"] for e in world.status["history"]] == [1]


def test_a_server_error_on_the_flux_patch_is_retried(
    kube: KubeCluster, namespace: str, world: World, fault_proxy: FaultProxy
) -> None:
    world.kustomization("app", SUBSTITUTE, {"APP": "0"})
    world.rollout()
    fault_proxy.fail("PATCH", r"/kustomizations/app$", 500, times=2)
    with ControllerHarness(fault_proxy.kubeconfig("admin"), ManualClock(), namespace) as controller:
        world.observe("0.1.0")
        controller.wait_until(lambda: substitute(world) == "0.1.0", timeout=60, what="patched")
    assert len(fault_proxy.matching("PATCH", r"/kustomizations/app$", status=500)) == 2
    assert [e["id"] for e in world.status["history"]] == [1]


def test_dropped_watches_lose_no_release(
    kube: KubeCluster, namespace: str, world: World, fault_proxy: FaultProxy
) -> None:
    world.rollout()
    with ControllerHarness(fault_proxy.kubeconfig("admin"), ManualClock(), namespace) as controller:
        world.observe("0.1.0")
        controller.wait_until(lambda: world.tags() == ["0.1.0"], what="first deploy")
        assert fault_proxy.drop_watches(abrupt=True) > 0
        world.observe("0.2.0")
        controller.wait_until(lambda: world.tags() == ["0.2.0", "0.1.0"], timeout=60, what="second")
