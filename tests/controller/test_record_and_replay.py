"""``tidegate record`` reproduces the controller's decision; ``replay`` of its decision log
reports what a tightened policy would change (issue 5: record / replay)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from clocks import ManualClock
from harness import ControllerHarness
from kubecluster import KubeCluster
from world import World

TIDEGATE = str(Path(sys.executable).parent / "tidegate")
FREEZE = """\
apiVersion: tidegate.dev/v1alpha1
kind: ClusterRolloutPolicy
metadata: {name: freeze-everything}
spec:
  targets: {rolloutSelector: {}, namespaceSelector: {}}
  rules:
    - {name: frozen, kind: gate, expression: "false", message: frozen}
"""


def tidegate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TIDEGATE, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_record_reproduces_the_decision_and_replay_reports_a_tightened_policy(
    kube: KubeCluster, namespace: str, world: World, tmp_path: Path
) -> None:
    log = tmp_path / "decisions.ndjson"
    world.rollout()
    with ControllerHarness(
        kube.admin_kubeconfig, ManualClock(), namespace, decision_log=log
    ) as run:
        world.observe("0.1.0")
        run.wait_until(lambda: world.tags() == ["0.1.0"], what="first deploy")
        world.gate("hold", passing=False)
        world.observe("0.2.0")
        run.wait_until(
            lambda: (world.status.get("decision") or {}).get("decision") == "Blocked",
            what="Blocked",
        )
    snapshot = tmp_path / "snapshot.yaml"
    recorded = tidegate(
        "record",
        "r",
        "-n",
        namespace,
        "--kubeconfig",
        str(kube.admin_kubeconfig),
        "-o",
        str(snapshot),
    )
    assert recorded.returncode == 0, recorded.stderr
    assert "rollout.annotations" in snapshot.read_text()
    evaluated = tidegate("eval", "--facts", str(snapshot), "-o", "json")
    assert evaluated.returncode == 1, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["decision"] == "Blocked"
    assert [c["release"]["tag"] for c in report["candidates"]] == ["0.2.0"]

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(line["action"] == "deploy 0.1.0" for line in lines)
    assert lines[-1]["decision"]["candidates"]["0.2.0"]["decision"] == "Blocked"
    unchanged = tidegate("replay", str(log))
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    policy = tmp_path / "freeze.yaml"
    policy.write_text(FREEZE)
    tightened = tidegate("replay", "-p", str(policy), str(log))
    assert tightened.returncode == 1, tightened.stdout + tightened.stderr
    assert "Allowed → Blocked" in tightened.stdout


def test_record_of_a_missing_rollout_exits_4(kube: KubeCluster, namespace: str) -> None:
    missing = tidegate(
        "record", "nothing", "-n", namespace, "--kubeconfig", str(kube.admin_kubeconfig)
    )
    assert missing.returncode == 4
    assert f"Rollout {namespace}/nothing not found" in missing.stderr
    assert "Traceback" not in missing.stderr
