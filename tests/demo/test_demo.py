"""``tidegate demo`` end to end: the real controller on the embedded API emulation tells the story.

Runs the console script as a subprocess with ``--output json --speed max`` and
checks the sequence of decisions and deployments (TESTING.md: "a small smoke
test runs the demo scenario on the emulation"). The demo uses a real
Prometheus when one is installed and says which alert source it used; both
paths must tell the same story. Wall time is not asserted. ``--keep`` leaves
the emulated API up: the ``kubernetes`` client lists the Rollouts through the
kubeconfig it writes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DEMO_TIMEOUT = 240.0
TIDEGATE = [sys.executable, "-m", "policy_engine.cli"]


def _tidegate() -> list[str]:
    script = Path(sys.executable).with_name("tidegate")
    return [str(script)] if script.exists() else TIDEGATE


def _run_demo(*args: str) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [*_tidegate(), "demo", "--output", "json", "--speed", "max", *args],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON on stdout (exit {done.returncode}): {done.stdout}{done.stderr}"
    return done.returncode, json.loads(lines[-1]), done.stderr


@pytest.fixture(scope="module")
def talk() -> dict[str, Any]:
    code, document, stderr = _run_demo()
    assert code == 0, f"demo failed: {document.get('error')} {stderr}"
    return document


def _of(timeline: list[dict[str, Any]], kind: str, **fields: Any) -> list[dict[str, Any]]:
    return [
        r for r in timeline if r["kind"] == kind and all(r.get(k) == v for k, v in fields.items())
    ]


def _index(timeline: list[dict[str, Any]], record: dict[str, Any]) -> int:
    return timeline.index(record)


def test_the_demo_says_it_runs_on_an_emulated_api_and_names_its_alert_source(
    talk: dict[str, Any],
) -> None:
    assert talk["ok"] is True
    assert talk["exitCode"] == 0
    assert "emulated Kubernetes API (kmock" in talk["api"]
    assert talk["alertSource"].startswith(("Prometheus (real server", "embedded alert source"))


def test_v1_1_0_waits_for_the_schedule_gate_then_deploys_at_the_reported_instant(
    talk: dict[str, Any],
) -> None:
    timeline = talk["timeline"]
    pending = _of(timeline, "decision", env="staging", tag="v1.1.0", decision="Pending")
    assert pending, "staging never reported v1.1.0 Pending behind the window"
    reported = pending[0]["nextChange"]
    assert any(r["id"] == "kuberik/deploy-windows" for r in pending[0]["rules"])
    closed = _of(timeline, "gate", env="staging", passing=False)
    opened = _of(timeline, "gate", env="staging", passing=True)
    assert closed
    assert opened
    assert _index(timeline, closed[0]) < _index(timeline, opened[0])
    assert opened[0]["at"] == reported
    deploy = _of(timeline, "deploy", env="staging", tag="v1.1.0")[0]
    assert deploy["deployedAt"] == reported
    assert _index(timeline, pending[0]) < _index(timeline, deploy)


def test_v1_1_0_bakes_in_staging_before_prod_deploys_it(talk: dict[str, Any]) -> None:
    timeline = talk["timeline"]
    baked = _of(timeline, "bake", env="staging", tag="v1.1.0", status="Succeeded")[0]
    prod = _of(timeline, "deploy", env="prod", tag="v1.1.0")[0]
    assert _index(timeline, baked) < _index(timeline, prod)
    assert prod["deployedAt"] >= baked["at"]
    assert _of(timeline, "bake", env="prod", tag="v1.1.0", status="Succeeded")


def test_v1_2_0_fails_its_bake_in_staging_on_the_firing_alert_and_never_reaches_prod(
    talk: dict[str, Any],
) -> None:
    timeline = talk["timeline"]
    firing = _of(timeline, "alert", env="staging", state="firing")[0]
    failed = _of(timeline, "bake", env="staging", tag="v1.2.0", status="Failed")[0]
    assert _index(timeline, firing) < _index(timeline, failed)
    assert not _of(timeline, "deploy", env="prod", tag="v1.2.0")
    assert "v1.2.0" not in talk["environments"]["prod"]["deployed"]
    blocked = _of(timeline, "decision", env="prod", tag="v1.2.0")
    assert blocked
    assert all(r["decision"] != "Allowed" for r in blocked)


def test_pin_and_force_deploy_bring_staging_back_to_v1_1_0(talk: dict[str, Any]) -> None:
    timeline = talk["timeline"]
    pin = _of(timeline, "step", action="pin", env="staging", tag="v1.1.0")[0]
    redeploys = _of(timeline, "deploy", env="staging", tag="v1.1.0")
    assert len(redeploys) == 2
    recovery = redeploys[1]
    assert _index(timeline, pin) < _index(timeline, recovery)
    assert recovery["triggeredBy"] == {"kind": "User", "name": "demo"}
    assert _of(timeline, "bake", env="staging", tag="v1.1.0", status="Succeeded")[-1]
    assert talk["environments"] == {
        "staging": {
            "version": "v1.1.0",
            "bake": "Succeeded",
            "deployed": ["v1.0.0", "v1.1.0", "v1.2.0", "v1.1.0"],
        },
        "prod": {"version": "v1.1.0", "bake": "Succeeded", "deployed": ["v1.0.0", "v1.1.0"]},
    }


def test_an_unknown_scenario_is_a_usage_error() -> None:
    done = subprocess.run(
        [*_tidegate(), "demo", "--scenario", "no-such-scenario"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no scenario 'no-such-scenario'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def kept(tmp_path: Path) -> Iterator[tuple[dict[str, Any], Path]]:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [*_tidegate(), "demo", "--output", "json", "--speed", "max", "--keep",
         "--scenario", "happy", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )  # fmt: skip
    try:
        line = _readline(process, DEMO_TIMEOUT)
        assert line.startswith("{"), f"no JSON from --keep: {line!r}"
        yield json.loads(line), kubeconfig
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        process.stderr.close()


def _readline(process: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line, or '' when the process ends or ``timeout`` passes first."""
    result: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return result[0] if result else ""


def test_keep_leaves_the_emulated_api_up_for_the_kubernetes_client(
    kept: tuple[dict[str, Any], Path],
) -> None:
    from kubernetes import client, config

    document, kubeconfig = kept
    assert document["ok"] is True
    assert document["kubeconfig"] == str(kubeconfig)
    api_client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        rollouts: Any = client.CustomObjectsApi(api_client).list_cluster_custom_object(
            "kuberik.com", "v1alpha1", "rollouts"
        )
    finally:
        api_client.close()
    running = {
        (r["metadata"]["namespace"], r["status"]["history"][0]["version"]["tag"])
        for r in rollouts["items"]
    }
    assert running == {("staging", "v1.1.0"), ("prod", "v1.1.0")}
