"""KUBERIK-SEMANTICS.md §10 acceptance scenarios, pass by pass, on the pure planner.

Each test drives ``prepare`` → engine → ``decide`` through the in-memory
``kuberik_sim`` and checks status, events and Flux patches. The same scenarios
run on a real kube-apiserver in tests/controller. Over 600 lines because it follows
the §10 list in order, one test per scenario, on one shared ``Sim``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from kuberik_sim import KUSTOMIZATIONS, OCI_REPOSITORIES, T0, Sim

from controller.policies import PolicyEngine
from policy_engine.cel.environment import select_backend
from policy_engine.model.times import format_timestamp


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine(select_backend("cel-expr-python").backend)


def kustomization(
    sim: Sim, name: str, annotations: dict[str, str], substitute: dict[str, str]
) -> None:
    sim.put(
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "ns", "annotations": annotations},
            "spec": {"postBuild": {"substitute": dict(substitute)}},
        }
    )


def at(seconds: float) -> str:
    return format_timestamp(T0 + timedelta(seconds=seconds))


# --- Releases and Flux ---------------------------------------------------------------------


def test_first_release_deploys_and_patches_only_its_substitute(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    kustomization(
        sim, "app", {"rollout.kuberik.com/substitute.APP.from": "r"}, {"APP": "0", "OTHER": "x"}
    )
    sim.observe("0.1.0")
    [entry] = sim.history
    assert entry["id"] == 1
    assert entry["version"]["tag"] == "0.1.0"
    assert entry["bakeStatus"] == "Succeeded"
    assert (
        entry["bakeStatusMessage"] == "No bake time configured, deployment completed immediately."
    )
    assert entry["message"] == "Automatic deployment"
    assert entry["triggeredBy"] == {"kind": "System", "name": "rollout-controller"}
    ready = sim.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("True", "RolloutSucceeded")
    substitute = sim.store.mutable(KUSTOMIZATIONS, "ns", "app")["spec"]["postBuild"]["substitute"]
    assert substitute == {"APP": "0.1.0", "OTHER": "x"}
    assert "DeploymentSucceeded" in sim.reasons()


def test_first_deploy_ignores_closed_gates_and_unhealthy_checks(engine: PolicyEngine) -> None:
    sim = Sim(engine, healthCheckSelector={"selector": {"matchLabels": {"app": "r"}}})
    sim.gate("closed", passing=False)
    sim.health_check("Unhealthy", message="boom", changed=T0 - timedelta(hours=1))
    sim.rollout["status"] = {"availableReleases": [{"tag": "0.1.0"}]}
    sim.observe("0.2.0")
    assert sim.tags() == ["0.2.0"]


def test_first_deploy_prefers_what_gates_allow(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    sim.gate("only-old", allowed=["0.1.0"])
    sim.rollout["status"] = {"availableReleases": [{"tag": "0.1.0"}]}
    sim.observe("0.2.0")
    assert sim.tags() == ["0.1.0"]


def test_one_in_flight_then_newest_candidate_at_bake_end(engine: PolicyEngine) -> None:
    sim = Sim(engine, bakeTime="1h")
    sim.observe("0.1.0")
    sim.settle()
    assert sim.history[0]["bakeStatus"] == "InProgress"
    sim.observe("0.2.0", "0.3.0")
    assert sim.tags() == ["0.1.0"]
    assert [c["tag"] for c in sim.status["releaseCandidates"]] == ["0.3.0", "0.2.0"]
    plan = sim.reconcile()
    assert plan.requeue_at == T0 + timedelta(hours=1)
    sim.reconcile(T0 + timedelta(hours=1))
    assert sim.tags() == ["0.3.0", "0.1.0"]
    assert sim.history[1]["bakeStatus"] == "Succeeded"


def test_only_the_rollouts_own_flux_objects_change(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    for name, owner in (("a", "r"), ("b", "other")):
        sim.put(
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "OCIRepository",
                "metadata": {
                    "name": name,
                    "namespace": "ns",
                    "annotations": {"rollout.kuberik.com/rollout": owner},
                },
                "spec": {"ref": {"tag": "0.0.1", "semver": ""}, "url": "oci://x"},
            }
        )
    owners = {"A": "r", "B": "s"}
    annotations = {f"rollout.kuberik.com/substitute.{v}.from": o for v, o in owners.items()}
    kustomization(sim, "k", annotations, {"A": "0", "B": "0"})
    sim.observe("0.2.0")
    assert sim.store.mutable(OCI_REPOSITORIES, "ns", "a")["spec"]["ref"] == {
        "tag": "0.2.0",
        "semver": "",
    }
    assert sim.store.mutable(OCI_REPOSITORIES, "ns", "b")["spec"]["ref"]["tag"] == "0.0.1"
    assert sim.store.mutable(KUSTOMIZATIONS, "ns", "k")["spec"]["postBuild"]["substitute"] == {
        "A": "0.2.0",
        "B": "0",
    }


def test_unrankable_pin_freezes_automation_and_the_decision_says_why(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    sim.set_spec(wantedVersion="custom-1")
    sim.observe("0.4.0")
    assert sim.tags() == ["custom-1"]
    sim.set_spec(wantedVersion=None)
    sim.observe("0.5.0")
    assert sim.tags() == ["custom-1"]
    assert sim.status["releaseCandidates"] == []


def test_policy_order_never_downgrades_but_observed_order_does(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    sim.observe("1.10.0")
    sim.observe("1.9.0")
    assert sim.tags() == ["1.10.0"]
    kuberik = Sim(engine)
    kuberik.annotate(**{"tidegate.dev/candidate-order": "observed"})
    kuberik.observe("1.10.0")
    kuberik.observe("1.9.0")
    assert kuberik.tags() == ["1.9.0", "1.10.0"]


def test_removed_pin_to_a_real_version_stays_upgradable(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    sim.observe("1.2.0", reconcile=False)
    sim.set_spec(wantedVersion="1.2.3")
    sim.reconcile()
    sim.set_spec(wantedVersion=None)
    sim.observe("1.3.0")
    assert sim.tags() == ["1.3.0", "1.2.3"]


def test_sequential_ships_every_version_in_order(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    sim.annotate(**{"tidegate.dev/sequential": "true"})
    sim.observe("1.0.0")
    sim.gate("hold", passing=False)
    sim.observe("1.1.0", "1.2.0")
    assert sim.tags() == ["1.0.0"]
    sim.gate("hold", passing=True)
    sim.reconcile()
    assert sim.tags() == ["1.1.0", "1.0.0"]
    sim.settle()
    assert sim.tags() == ["1.2.0", "1.1.0", "1.0.0"]


def test_sequential_waits_when_the_oldest_is_not_allowed(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    sim.annotate(**{"tidegate.dev/sequential": "true"})
    sim.observe("1.0.0")
    sim.gate("only-new", allowed=["1.2.0"])
    sim.observe("1.1.0", "1.2.0")
    sim.settle()
    assert sim.tags() == ["1.0.0"]
    rules = {c["tag"]: [r["id"] for r in c["rules"]] for c in sim.status["decision"]["candidates"]}
    assert any("rollout-gates" in rule for rule in rules["1.1.0"])


# --- Gates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gates", "expected"),
    [
        ([["0.2.0"]], "0.2.0"),
        ([["0.2.0", "0.3.0"], ["0.2.0"]], "0.2.0"),
        ([["0.3.0"], ["0.2.0"]], None),
    ],
)
def test_allowed_versions_intersect(
    engine: PolicyEngine, gates: list[list[str]], expected: str | None
) -> None:
    sim = Sim(engine)
    sim.observe("0.1.0")
    for index, allowed in enumerate(gates):
        sim.gate(f"g{index}", allowed=allowed)
    sim.observe("0.2.0", "0.3.0")
    sim.settle()
    if expected is None:
        assert sim.tags() == ["0.1.0"]
        condition = sim.condition("GatesPassing")
        assert (condition["status"], condition["reason"]) == ("False", "NoAllowedVersions")
    else:
        assert sim.tags()[0] == expected


def test_closed_gate_blocks_and_is_summarised(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    sim.observe("0.1.0")
    sim.gate("closed", passing=False)
    sim.observe("0.2.0")
    assert sim.tags() == ["0.1.0"]
    condition = sim.condition("GatesPassing")
    assert (condition["status"], condition["reason"]) == ("False", "SomeGatesBlocking")
    assert sim.status["gates"][0] == {
        "name": "closed", "passing": False, "allowedVersions": [],
        "message": "Gate is not passing", "bypassGates": False,
    }  # fmt: skip
    sim.gate("closed", allowed=["9.9.9"])
    sim.reconcile()
    assert sim.status["gates"][0]["message"] == "Gate does not allow any release candidate"


def test_bypass_gates_deploys_the_named_candidate_once(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    sim.observe("0.1.0")
    sim.gate("closed", passing=False)
    sim.annotate(**{"rollout.kuberik.com/bypass-gates": "9.9.9"})
    sim.observe("0.2.0", "0.3.0")
    assert sim.tags() == ["0.1.0"]
    sim.annotate(**{"rollout.kuberik.com/bypass-gates": "0.3.0"})
    sim.reconcile()
    assert sim.tags() == ["0.3.0", "0.1.0"]
    assert sim.history[0]["message"] == "Automatic deployment, with gate bypass"
    assert "rollout.kuberik.com/bypass-gates" not in sim.rollout["metadata"]["annotations"]


def test_up_to_date_is_not_an_alarm(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    sim.observe("0.1.0")
    sim.settle()
    sim.reconcile()
    condition = sim.condition("GatesPassing")
    assert (condition["status"], condition["reason"]) == ("True", "UpToDate")
    assert not [r for r in sim.reasons() if r in ("NoAllowedVersions", "SomeGatesBlocking")]


# --- Health and manual ---------------------------------------------------------------------


def test_unhealthy_check_blocks_with_one_event(engine: PolicyEngine) -> None:
    sim = Sim(engine, healthCheckSelector={"selector": {"matchLabels": {"app": "r"}}})
    sim.observe("0.1.0")
    sim.health_check("Healthy", changed=sim.advance(seconds=1))
    sim.settle()
    sim.health_check("Unhealthy", message="boom", changed=sim.advance(seconds=1), error=sim.now)
    sim.observe("0.2.0")
    sim.reconcile()
    assert sim.tags()[0] == "0.1.0"
    blocked = sim.condition("DeploymentBlocked")
    assert blocked["status"] == "True"
    assert (
        blocked["message"]
        == "HealthCheck 'hc' in namespace 'ns' is not healthy (status: Unhealthy): boom"
    )
    assert sim.reasons().count("HealthCheckBlocking") == 1
    sim.health_check("Pending", changed=sim.advance(seconds=1))
    sim.reconcile()
    assert sim.tags()[0] == "0.2.0"


def test_pin_ignores_gates_health_and_failed_bake(engine: PolicyEngine) -> None:
    sim = Sim(
        engine, deployTimeout="1m", healthCheckSelector={"selector": {"matchLabels": {"app": "r"}}}
    )
    sim.health_check("Unhealthy", changed=T0)
    sim.rollout["status"] = {"availableReleases": [{"tag": "0.1.0"}]}
    sim.observe("0.2.0")
    sim.reconcile(T0 + timedelta(minutes=2))
    assert sim.history[0]["bakeStatus"] == "Failed"
    sim.gate("closed", passing=False)
    sim.set_spec(wantedVersion="0.1.0")
    sim.reconcile()
    assert sim.tags()[0] == "0.1.0"
    assert sim.history[0]["message"] == "Manual deployment"
    assert sim.condition("DeploymentBlocked")["reason"] == "ManualDeployment"
    assert sim.condition("BakeFailureDisabled")["reason"] == "PreviousBakeFailed"
    sim.set_spec(wantedVersion="9.9.9")
    sim.reconcile()
    assert sim.tags()[0] == "9.9.9"


def test_force_deploy_of_an_unknown_version_fails(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    sim.observe("1.0.0", "2.0.0")
    sim.annotate(**{"rollout.kuberik.com/force-deploy": "3.0.0"})
    sim.reconcile()
    ready = sim.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RolloutFailed")
    assert "force deploy version 3.0.0 is not in available releases" in ready["message"]


def test_force_deploy_cancels_and_records_message_and_user(engine: PolicyEngine) -> None:
    sim = Sim(engine, bakeTime="1h")
    sim.observe("0.1.0")
    sim.settle()
    sim.reconcile(T0 + timedelta(hours=1))
    sim.observe("0.2.0")
    sim.settle()
    assert sim.history[0]["bakeStatus"] == "InProgress"
    sim.annotate(**{
        "rollout.kuberik.com/force-deploy": "0.1.0",
        "rollout.kuberik.com/deploy-message": "hotfix",
        "rollout.kuberik.com/deploy-user": "alice",
    })  # fmt: skip
    sim.reconcile()
    assert sim.tags()[:2] == ["0.1.0", "0.2.0"]
    assert sim.history[1]["bakeStatus"] == "Cancelled"
    assert sim.history[0]["message"] == "hotfix, with force deploy"
    assert sim.history[0]["triggeredBy"] == {"kind": "User", "name": "alice"}
    annotations = sim.rollout["metadata"]["annotations"]
    assert not {k for k in annotations if k.startswith("rollout.kuberik.com/")}
    assert sim.condition("BakeFailureDisabled")["reason"] == "PreviousBakeFailed"


def test_stale_deploy_user_is_ignored_by_automatic_deploys(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    sim.annotate(**{"rollout.kuberik.com/deploy-user": "bob"})
    sim.observe("0.1.0")
    assert sim.history[0]["triggeredBy"] == {"kind": "System", "name": "rollout-controller"}
    assert "rollout.kuberik.com/deploy-user" not in sim.rollout["metadata"]["annotations"]


def test_force_deploy_of_the_current_tag_is_cleared(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    sim.observe("0.2.0")
    sim.annotate(**{"rollout.kuberik.com/force-deploy": "0.2.0"})
    sim.reconcile()
    assert sim.tags() == ["0.2.0"]
    assert "ForceDeployIgnored" in sim.reasons()
    assert "rollout.kuberik.com/force-deploy" not in sim.rollout["metadata"]["annotations"]
    sim.reconcile()
    assert sim.condition("DeploymentBlocked")["reason"] != "ManualDeployment"


# --- Bake ----------------------------------------------------------------------------------


def test_bake_starts_on_fresh_health_and_ends_exactly(engine: PolicyEngine) -> None:
    sim = Sim(
        engine, bakeTime="5m", healthCheckSelector={"selector": {"matchLabels": {"app": "r"}}}
    )
    sim.health_check("Healthy", changed=T0 - timedelta(hours=1))
    sim.observe("0.1.0")
    assert sim.history[0]["bakeStatus"] == "Deploying"
    assert sim.hc_status()["status"] == "Pending"
    assert sim.hc_status()["message"] == "Health check reset due to new deployment"
    sim.reconcile()
    assert sim.history[0]["bakeStatus"] == "Deploying"
    sim.health_check("Healthy", changed=sim.advance(seconds=1))
    plan = sim.reconcile()
    assert sim.history[0]["bakeStatus"] == "InProgress"
    assert plan.requeue_at == T0 + timedelta(seconds=1, minutes=5)
    sim.reconcile(T0 + timedelta(seconds=1, minutes=5))
    entry = sim.history[0]
    assert entry["bakeStatus"] == "Succeeded"
    assert entry["bakeEndTime"] == at(301)
    assert sim.condition("Ready")["reason"] == "BakeTimePassed"


def test_error_at_bake_start_fails_but_earlier_errors_do_not(engine: PolicyEngine) -> None:
    sim = Sim(
        engine, bakeTime="5m", healthCheckSelector={"selector": {"matchLabels": {"app": "r"}}}
    )
    sim.observe("0.1.0")
    sim.health_check("Healthy", changed=sim.advance(seconds=1), error=T0 - timedelta(seconds=1))
    sim.reconcile()
    assert sim.history[0]["bakeStatus"] == "InProgress"
    start = sim.now
    sim.health_check("Unhealthy", message="5xx", changed=start, error=start)
    sim.reconcile()
    entry = sim.history[0]
    assert entry["bakeStatus"] == "Failed"
    assert entry["bakeStatusMessage"] == "A HealthCheck reported an error after bake started."
    assert entry["failedHealthChecks"] == [{"name": "hc", "namespace": "ns", "message": "5xx"}]
    assert sim.condition("Ready")["reason"] == "BakeTimeFailed"


def test_deploy_timeout_fails_exactly_after_the_deadline(engine: PolicyEngine) -> None:
    sim = Sim(
        engine, deployTimeout="10m", healthCheckSelector={"selector": {"matchLabels": {"app": "r"}}}
    )
    sim.observe("0.1.0")
    sim.health_check("Pending", changed=sim.advance(seconds=1))
    plan = sim.reconcile()
    assert plan.requeue_at == T0 + timedelta(minutes=10)
    sim.reconcile(T0 + timedelta(minutes=10))
    assert sim.history[0]["bakeStatus"] == "Deploying"
    sim.reconcile(T0 + timedelta(minutes=10, seconds=1))
    entry = sim.history[0]
    assert entry["bakeStatus"] == "Failed"
    assert entry["failedHealthChecks"][0]["name"] == "hc"


def test_failed_bake_blocks_until_unblocked(engine: PolicyEngine) -> None:
    sim = Sim(
        engine, deployTimeout="1m", healthCheckSelector={"selector": {"matchLabels": {"app": "r"}}}
    )
    sim.observe("0.1.0")
    sim.reconcile(T0 + timedelta(minutes=2))
    assert sim.history[0]["bakeStatus"] == "Failed"
    sim.observe("0.2.0")
    assert sim.tags() == ["0.1.0"]
    sim.annotate(**{"rollout.kuberik.com/unblock-failed": "true"})
    sim.reconcile()
    assert sim.tags() == ["0.2.0", "0.1.0"]
    assert sim.history[0]["message"] == "Automatic deployment, with failed bake unblock"
    assert sim.condition("Ready")["message"].startswith(
        "Release deployed successfully with failed bake unblock."
    )
    assert "rollout.kuberik.com/unblock-failed" not in sim.rollout["metadata"]["annotations"]
    assert sim.condition("BakeFailureDisabled")["reason"] == "PreviousBakeFailed"


def test_retry_resets_the_same_entry_with_a_new_cutoff(engine: PolicyEngine) -> None:
    sim = Sim(
        engine,
        bakeTime="1h",
        deployTimeout="1m",
        healthCheckSelector={"selector": {"matchLabels": {"app": "r"}}},
    )
    sim.health_check("Pending", changed=T0)
    sim.observe("0.1.0")
    sim.reconcile(T0 + timedelta(minutes=2))
    entry_id = sim.history[0]["id"]
    retry_at = sim.advance(minutes=1)
    sim.annotate(**{"rollout.kuberik.com/retry": "x"})
    sim.reconcile()
    entry = sim.history[0]
    assert (entry["id"], entry["bakeStatus"]) == (entry_id, "Deploying")
    assert entry["lastRetryTimestamp"] == format_timestamp(retry_at)
    assert "failedHealthChecks" not in entry
    assert "bakeStatusMessage" not in entry
    assert "RetryRequested" in sim.reasons()
    assert "rollout.kuberik.com/retry" not in sim.rollout["metadata"]["annotations"]
    sim.health_check(
        "Healthy", changed=retry_at - timedelta(minutes=1), error=retry_at - timedelta(minutes=1)
    )
    sim.reconcile()
    assert sim.history[0]["bakeStatus"] == "Deploying"
    sim.health_check("Healthy", changed=sim.advance(seconds=1))
    sim.reconcile()
    assert sim.history[0]["bakeStatus"] == "InProgress"


def test_history_is_capped_and_ids_continue(engine: PolicyEngine) -> None:
    sim = Sim(engine, versionHistoryLimit=3)
    for minor in range(1, 6):
        sim.observe(f"0.{minor}.0")
    assert [e["id"] for e in sim.history] == [5, 4, 3]


def test_selector_without_matching_checks_completes_on_the_next_pass(engine: PolicyEngine) -> None:
    sim = Sim(engine, healthCheckSelector={"selector": {"matchLabels": {"app": "nothing"}}})
    sim.observe("0.1.0")
    assert sim.history[0]["bakeStatus"] == "Deploying"
    sim.reconcile()
    assert sim.history[0]["bakeStatus"] == "Succeeded"
    assert sim.history[0]["bakeStatusMessage"] == "Bake completed (no bake time configured)."


def test_automatic_rollback_skips_the_bad_tag(engine: PolicyEngine) -> None:
    sim = Sim(
        engine, deployTimeout="1m", healthCheckSelector={"selector": {"matchLabels": {"app": "r"}}}
    )
    sim.annotate(**{"tidegate.dev/rollback-on-failure": "true"})
    sim.observe("0.2.0")
    sim.health_check("Healthy", changed=sim.advance(seconds=1))
    sim.settle()
    assert sim.history[0]["bakeStatus"] == "Succeeded"
    sim.health_check("Pending", changed=sim.now)
    sim.observe("0.3.0")
    sim.reconcile(sim.advance(minutes=2))
    assert sim.tags()[:2] == ["0.2.0", "0.3.0"]
    assert sim.history[0]["message"] == "Automatic rollback after failed bake of 0.3.0"
    assert sim.history[0]["rollbackOf"] == "0.3.0"
    assert "AutomaticRollback" in sim.reasons()
    sim.health_check("Healthy", changed=sim.advance(seconds=1))
    sim.settle()
    assert sim.tags()[0] == "0.2.0"
    sim.observe("0.4.0")
    sim.settle()
    assert sim.tags()[0] == "0.4.0"


def test_mark_successful_resumes_automation(engine: PolicyEngine) -> None:
    sim = Sim(
        engine, deployTimeout="1m", healthCheckSelector={"selector": {"matchLabels": {"app": "r"}}}
    )
    sim.observe("0.1.0")
    sim.reconcile(T0 + timedelta(minutes=2))
    sim.annotate(**{"tidegate.dev/mark-successful": "ok"})
    sim.reconcile()
    assert sim.history[0]["bakeStatus"] == "Succeeded"
    assert (
        sim.history[0]["bakeStatusMessage"]
        == "Deployment manually marked as successful by user: ok"
    )
    assert sim.condition("Ready")["reason"] == "DeploymentMarkedSuccessful"
    sim.health_check("Healthy", changed=sim.now)
    sim.observe("0.2.0")
    assert sim.tags()[0] == "0.2.0"


def test_an_unchanged_pass_writes_nothing(engine: PolicyEngine) -> None:
    sim = Sim(engine, bakeTime="1h")
    sim.observe("0.1.0")
    sim.settle()
    sim.observe("0.2.0")
    sim.settle()
    plan = sim.reconcile(sim.advance(seconds=30))
    assert plan.actions == ()


# --- Schedules -----------------------------------------------------------------------------


def test_deny_window_holds_the_release_until_it_opens_to_the_second(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    sim.rollout["metadata"]["labels"] = {"app": "r"}
    sim.observe("0.1.0")
    sim.put(
        {
            "apiVersion": "kuberik.com/v1alpha1",
            "kind": "RolloutSchedule",
            "metadata": {"name": "night", "namespace": "ns", "uid": "u1"},
            "spec": {
                "rolloutSelector": {"matchLabels": {"app": "r"}},
                "timezone": "UTC",
                "action": "Deny",
                "rules": [{"name": "night", "timeRange": {"start": "00:00", "end": "09:00"}}],
            },
        }
    )
    plan = sim.reconcile(T0.replace(hour=7))
    sim.observe("0.2.0", reconcile=False)
    plan = sim.reconcile()
    assert sim.tags() == ["0.1.0"]
    decision = sim.status["decision"]
    assert decision["decision"] == "Pending"
    assert decision["nextChange"] == format_timestamp(T0.replace(hour=9))
    assert plan.requeue_at == T0.replace(hour=9)
    sim.reconcile(T0.replace(hour=9))
    assert sim.tags() == ["0.2.0", "0.1.0"]


def test_a_lost_health_check_reset_is_planned_again(engine: PolicyEngine) -> None:
    sim = Sim(
        engine, bakeTime="5m", healthCheckSelector={"selector": {"matchLabels": {"app": "r"}}}
    )
    sim.observe("0.1.0")
    assert sim.hc_status_or_none() is None
    sim.health_check("Healthy", changed=T0 - timedelta(hours=1))  # the reset never landed
    sim.reconcile()
    assert sim.hc_status()["status"] == "Pending"
    assert sim.hc_status()["message"] == "Health check reset due to new deployment"
    assert sim.history[0]["bakeStatus"] == "Deploying"


def test_an_approval_gate_waits_for_an_explicit_approval(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    sim.observe("0.1.0")
    sim.gate("qa", **{"tidegate.dev/approval": "true"})
    sim.observe("0.2.0")
    assert sim.tags() == ["0.1.0"]
    sim.annotate(**{"tidegate.dev/approve": "0.2.0"})
    sim.settle()
    gate = sim.store.get("rolloutgates.kuberik.com", "ns", "qa")
    assert gate is not None
    assert gate["spec"]["allowedVersions"] == ["0.2.0"]
    assert "tidegate.dev/approve" not in sim.rollout["metadata"]["annotations"]
    assert "ApprovalRecorded" in sim.reasons()
    assert sim.tags() == ["0.2.0", "0.1.0"]


def test_without_the_approval_mark_a_gate_without_a_list_passes(engine: PolicyEngine) -> None:
    sim = Sim(engine)
    sim.observe("0.1.0")
    sim.gate("plain")
    sim.annotate(**{"tidegate.dev/approve": "0.2.0"})
    sim.observe("0.2.0")
    assert sim.tags() == ["0.2.0", "0.1.0"]
    assert "ApprovalIgnored" in sim.reasons()
