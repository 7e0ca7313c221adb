"""The controller runtime on a real apiserver: start, feed, requeue, resync, late CRDs, shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from clocks import ManualClock
from faultproxy import FaultProxy
from harness import ControllerHarness, wait_until
from kubecluster import KubeCluster, free_port

from controller.stores import WATCHED_KINDS

ROLLOUTS_PATH = "/apis/kuberik.com/v1alpha1/namespaces/{ns}/rollouts"


def create_rollout(kube: KubeCluster, namespace: str, name: str = "web") -> None:
    manifest = {
        "apiVersion": "kuberik.com/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"releasesImagePolicy": {"name": name}},
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def ready_condition(kube: KubeCluster, namespace: str, name: str = "web") -> dict[str, Any] | None:
    status, body = kube.request("GET", f"{ROLLOUTS_PATH.format(ns=namespace)}/{name}")
    assert status == 200, body
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), None)


def test_a_rollout_created_while_running_is_reconciled(kube: KubeCluster, namespace: str) -> None:
    with ControllerHarness(kube.admin_kubeconfig, ManualClock(), namespace) as controller:
        create_rollout(kube, namespace)
        condition = controller.wait_until(
            lambda: ready_condition(kube, namespace), what="a Ready condition"
        )
    assert condition is not None
    assert condition["status"] in ("True", "False")


def test_rollouts_existing_before_start_are_reconciled_at_start(
    kube: KubeCluster, namespace: str
) -> None:
    create_rollout(kube, namespace, "early")
    assert ready_condition(kube, namespace, "early") is None
    with ControllerHarness(kube.admin_kubeconfig, ManualClock(), namespace) as controller:
        controller.wait_until(
            lambda: ready_condition(kube, namespace, "early"), what="the early Rollout reconciled"
        )


def test_dropped_watches_reconnect_and_later_changes_are_seen(
    kube: KubeCluster, fault_proxy: FaultProxy, namespace: str
) -> None:
    # Abrupt resets only: a clean drop_watches() leaves the proxy's own server transports
    # half-closed, which -W error reports as ResourceWarnings in a later test.
    kubeconfig = fault_proxy.kubeconfig("admin")
    with ControllerHarness(kubeconfig, ManualClock(), namespace) as controller:
        for name in ("after-first-reset", "after-second-reset"):
            controller.wait_until(lambda: fault_proxy.open_watches >= 3, what="kopf's watches")
            assert fault_proxy.drop_watches(abrupt=True) >= 3
            create_rollout(kube, namespace, name)
            controller.wait_until(
                partial(ready_condition, kube, namespace, name), what=f"{name} reconciled"
            )


def test_the_hourly_resync_lists_again_on_the_injected_clock(
    kube: KubeCluster, fault_proxy: FaultProxy, namespace: str
) -> None:
    clock = ManualClock()
    path = f"{ROLLOUTS_PATH.format(ns=namespace)}$"
    with ControllerHarness(fault_proxy.kubeconfig("admin"), clock, namespace) as controller:
        controller.wait_until(lambda: clock.sleepers >= 1, what="the resync timer")
        listed = len(fault_proxy.matching("GET", path, 200))
        clock.advance(timedelta(hours=1))
        controller.wait_until(
            lambda: len(fault_proxy.matching("GET", path, 200)) > listed, what="a second LIST"
        )


def test_a_kind_whose_crd_appears_after_start_is_listed_and_watched(
    kube: KubeCluster, namespace: str
) -> None:
    group = f"t{uuid.uuid4().hex[:8]}.tidegate-test.dev"
    kind = f"widgets.{group}"
    harness = ControllerHarness(
        kube.admin_kubeconfig,
        ManualClock(),
        namespace,
        metrics=True,
        kinds=(*WATCHED_KINDS, kind),
    )
    with harness as controller:
        assert controller.metric("tidegate_store_synced", kind=kind) == 0
        crd = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": kind},
            "spec": {
                "group": group,
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "scope": "Namespaced",
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": {"type": "object"}},
                    }
                ],
            },
        }
        kube.kubectl("apply", "-f", "-", input=json.dumps(crd))
        controller.wait_until(
            lambda: controller.metric("tidegate_store_synced", kind=kind) == 1,
            what="the late kind listed",
        )
        widget = {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "namespace": namespace},
        }
        kube.kubectl("apply", "-f", "-", input=json.dumps(widget))
        controller.wait_until(
            lambda: controller.metric("tidegate_store_objects", kind=kind) == 1,
            what="the late kind watched",
        )


def test_metrics_and_health_are_served_without_per_rollout_labels(
    kube: KubeCluster, namespace: str
) -> None:
    harness = ControllerHarness(kube.admin_kubeconfig, ManualClock(), namespace, metrics=True)
    with harness as controller:
        assert controller.scrape("/healthz") == (200, "ok\n")
        create_rollout(kube, namespace)
        controller.wait_until(
            lambda: (controller.metric("tidegate_reconciles_total", result="ok") or 0) >= 1,
            what="a counted reconcile",
        )
        text = controller.scrape()[1]
        assert controller.metric("tidegate_store_synced", kind="rollouts.kuberik.com") == 1
        assert controller.metric("tidegate_queue_depth") is not None
        assert "tidegate_reconcile_duration_seconds" in text
        assert namespace not in text
        assert controller.scrape("/nothing")[0] == 404


def test_tidegate_run_stops_gracefully_on_sigterm(
    kube: KubeCluster, namespace: str, tmp_path: Path
) -> None:
    port = free_port()
    code = (
        "import sys; from controller.cli import RUN; "
        "from policy_engine.cli.common import standard_streams; "
        "sys.exit(RUN(sys.argv[1:], standard_streams()))"
    )
    argv = [sys.executable, "-c", code, "--kubeconfig", str(kube.admin_kubeconfig)]
    argv += ["-n", namespace, "--metrics-port", str(port), "--workers", "2"]
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(argv, stderr=stderr, stdout=subprocess.DEVNULL, cwd=tmp_path)
        try:
            wait_until(lambda: _healthy(port), 60, "tidegate run /healthz", interval=0.1)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert lines, "no log lines"
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert any("SIGTERM" in line["message"] for line in lines)


def _healthy(port: int) -> bool:
    from urllib.error import URLError
    from urllib.request import urlopen

    try:
        with urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except (URLError, OSError):
        return False
