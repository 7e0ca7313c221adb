"""A RolloutPolicy over Prometheus facts (``alerts``, ``facts.metrics``) with a real Prometheus.

The controller runs with ``--prometheus-url``; a policy declaring a metric and
reading ``alerts`` holds a release while the test exporter's error ratio is high
and lets it through once it drops (re-judged every poll on the test's clock, no
watch event needed). Without a Prometheus the same policy blocks, naming the cause.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from urllib.request import urlopen

import pytest
from clocks import ManualClock
from harness import ControllerHarness, wait_until
from kubecluster import KubeCluster
from promserver import RATE_ALERT, PrometheusServer, prometheus_process
from world import World

from controller.reconciling.prometheus_facts import SHARE_FOR

POLICIES = "/apis/tidegate.dev/v1alpha1/namespaces/{ns}/rolloutpolicies"
NO_ALERT = f"!alerts.exists(a, a.name == '{RATE_ALERT}' && a.state == 'firing')"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[PrometheusServer]:
    yield from prometheus_process(tmp_path)


def create_policy(world: World) -> dict[str, Any]:
    body = {
        "apiVersion": "tidegate.dev/v1alpha1", "kind": "RolloutPolicy",
        "metadata": {"name": "slo", "namespace": world.ns},
        "spec": {
            "targets": {"rolloutSelector": {}},
            "params": {"maxRatio": {"type": "double", "default": 0.5}},
            "facts": {"metrics": {"errorRatio": {
                "queryExpression": "'max(tidegate_checkout_error_ratio)'", "maxAge": "10m"}}},
            "rules": [
                {"name": "error-ratio", "kind": "health", "reason": "ErrorBudget",
                 "expression": "metrics.errorRatio < params.maxRatio"},
                {"name": "no-alert", "kind": "health", "reason": "AlertFiring",
                 "expression": NO_ALERT},
            ],
        },
    }  # fmt: skip
    status, answer = world.kube.request("POST", POLICIES.format(ns=world.ns), body)
    assert status == 201, answer
    return body


def started(kube: KubeCluster, clock: ManualClock, namespace: str, url: str) -> ControllerHarness:
    harness = ControllerHarness(kube.admin_kubeconfig, clock, namespace)
    harness.config = dataclasses.replace(harness.config, prometheus_url=url)
    return harness


def poll(clock: ManualClock) -> None:
    """Moves the clock one Prometheus poll, but never more than a minute past real time.

    The real Prometheus answers at the instant asked; far past its newest sample (or
    before its first) there is no data.
    """
    if clock.now() - datetime.now(UTC) < timedelta(minutes=1):
        clock.advance(timedelta(seconds=30))


def ratio_in_prometheus(prometheus: PrometheusServer, wanted: float) -> bool:
    """True once Prometheus has scraped the exporter's ratio at ``wanted``."""
    query = quote("max(tidegate_checkout_error_ratio)")
    with urlopen(f"{prometheus.base_url}/api/v1/query?query={query}", timeout=5) as answer:
        result = json.load(answer)["data"]["result"]
    return bool(result) and float(result[0]["value"][1]) == wanted


def set_ratio(prometheus: PrometheusServer, clock: ManualClock, value: float) -> None:
    """The exporter's ratio, once scraped, and the clock past the shared collection."""
    prometheus.exporter.set("tidegate_checkout_error_ratio", value)
    wait_until(lambda: ratio_in_prometheus(prometheus, value), 30, f"ratio {value} scraped")
    clock.advance(SHARE_FOR + timedelta(seconds=1))


def failing_rules(world: World, clock: ManualClock) -> list[dict[str, Any]] | None:
    """The failing rules of the newest candidate, moving the clock one poll when none yet."""
    decision = world.status.get("decision") or {}
    candidates = decision.get("candidates") or []
    rules = list((candidates[0].get("rules") if candidates else []) or [])
    if rules:
        return rules
    poll(clock)
    return None


def deployed(world: World, clock: ManualClock, tag: str) -> bool:
    if world.tags()[:1] == [tag]:
        return True
    poll(clock)
    return False


def test_a_policy_over_prometheus_holds_a_release_while_the_error_ratio_is_high(
    kube: KubeCluster, namespace: str, world: World, prometheus: PrometheusServer
) -> None:
    clock = ManualClock(datetime.now(UTC))  # Prometheus' samples carry real time
    create_policy(world)
    world.rollout()
    with started(kube, clock, namespace, prometheus.base_url) as controller:
        world.observe("0.1.0")  # the ratio is 0.25: allowed once Prometheus has scraped it
        controller.wait_until(lambda: deployed(world, clock, "0.1.0"), timeout=90, what="0.1.0")
        set_ratio(prometheus, clock, 0.9)
        world.observe("0.2.0")
        rules = controller.wait_until(
            lambda: failing_rules(world, clock), timeout=60, what="0.2.0 held"
        )
        assert any(r["id"].endswith("/error-ratio") for r in rules), rules
        assert world.tags() == ["0.1.0"]
        set_ratio(prometheus, clock, 0.1)
        controller.wait_until(lambda: deployed(world, clock, "0.2.0"), timeout=90, what="0.2.0")


def test_without_prometheus_a_policy_reading_it_blocks_and_says_why(
    kube: KubeCluster, namespace: str, world: World
) -> None:
    clock = ManualClock()
    create_policy(world)
    world.rollout()
    with ControllerHarness(kube.admin_kubeconfig, clock, namespace) as controller:
        world.observe("0.1.0")
        rules = controller.wait_until(lambda: failing_rules(world, clock), what="0.1.0 held")
        assert {r["result"] for r in rules} == {"error"}
        assert all("--prometheus-url" in r["message"] for r in rules), rules
        assert "--prometheus-url" in world.condition("Ready")["message"]
        assert world.tags() == []


def test_record_collects_the_alerts_and_metrics_the_policies_declare(
    kube: KubeCluster, namespace: str, world: World, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    create_policy(world)
    world.rollout()
    wait_until(lambda: ratio_in_prometheus(prometheus, 0.25), 30, "the ratio scraped")
    snapshot = tmp_path / "snapshot.json"
    recorded = subprocess.run(
        [str(Path(sys.executable).parent / "tidegate"), "record", "r", "-n", namespace,
         "--kubeconfig", str(kube.admin_kubeconfig), "--prometheus-url", prometheus.base_url,
         "--format", "json", "-o", str(snapshot)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    facts = json.loads(snapshot.read_text())["facts"]
    assert facts["metrics"] == {"errorRatio": 0.25}
    assert facts["metricsMeta"]["errorRatio"]["query"] == "max(tidegate_checkout_error_ratio)"
    names = {alert["name"] for alert in facts["alerts"]}
    assert names, "the always-firing rule's alert is recorded"
    assert RATE_ALERT not in names  # 0.25 < 0.5
