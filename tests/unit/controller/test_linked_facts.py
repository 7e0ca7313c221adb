"""The ``flux``, ``kruise`` and ``environments`` roots: projections, links, provenance, fail-closed.

Objects go into a real ``Stores`` (the controller's watch-fed reader); facts come out
through ``observe`` → ``prepare`` → ``facts_of``, and policies are judged by the engine,
so a missing linked object or an unsynced kind is shown to fail closed end to end.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from controller.planning import observe, prepare
from controller.planning.facts import facts_of
from controller.stores import WATCHED_KINDS, Stores
from evaluators.kuberik import flux_object_record, kruise_record
from policy_engine import (
    Decision,
    FactSet,
    Options,
    compile_policies,
    evaluate,
    load_policy_text,
    select_backend,
)

NOW = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)
NS = "shop"
ROLLOUTS = "rollouts.kuberik.com"
KUSTOMIZATIONS = "kustomizations.kustomize.toolkit.fluxcd.io"
OCI = "ocirepositories.source.toolkit.fluxcd.io"
POLICIES = "imagepolicies.image.toolkit.fluxcd.io"
KRUISE = "rollouts.rollouts.kruise.io"
TESTS = "rollouttests.rollout.kuberik.com"
ENVIRONMENTS = "environments.environments.kuberik.com"


def obj(api: str, kind: str, name: str, ns: str = NS, **body: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": ns, "resourceVersion": "7", "generation": 1}
    meta |= body.pop("metadata", {})
    return {"apiVersion": api, "kind": kind, "metadata": meta, **body}


def ready(status: str = "True", **extra: Any) -> dict[str, Any]:
    condition = {"type": "Ready", "status": status, "reason": "Done", "message": "applied"}
    return {"conditions": [condition], **extra}


def kustomization(name: str = "app", **status: Any) -> dict[str, Any]:
    return obj(
        "kustomize.toolkit.fluxcd.io/v1", "Kustomization", name,
        metadata={"annotations": {"rollout.kuberik.com/substitute.APP.from": "checkout"}},
        spec={"sourceRef": {"kind": "OCIRepository", "name": "app"}},
        status=ready(lastAppliedRevision="1.4.1@sha256:5d2e", **status),
    )  # fmt: skip


def entry(tag: str, bake: str = "Succeeded", n: int = 1) -> dict[str, Any]:
    return {
        "id": n, "version": {"tag": tag, "revision": f"rev-{tag}"}, "bakeStatus": bake,
        "timestamp": "2026-03-03T08:02:00Z", "bakeStartTime": "2026-03-03T08:10:00Z",
    }  # fmt: skip


def rollout(name: str = "checkout", ns: str = NS, history: list[Any] | None = None) -> Any:
    return obj(
        "kuberik.com/v1alpha1", "Rollout", name, ns,
        spec={"releasesImagePolicy": {"name": "p"}},
        status={"history": history or [entry("1.4.1")]},
    )  # fmt: skip


def environment(name: str, ns: str, env: str, upstream: str | None = None, **extra: Any) -> Any:
    spec: dict[str, Any] = {
        "rolloutRef": {"name": "checkout"}, "name": "checkout", "environment": env,
        "backend": {"type": "kubernetes"},
    }  # fmt: skip
    if upstream:
        spec["relationship"] = {"environment": upstream, "type": "After"}
    return obj("environments.kuberik.com/v1alpha1", "Environment", name, ns, spec=spec, **extra)


def stores(*objects: dict[str, Any], skip: tuple[str, ...] = ()) -> Stores:
    """A synced ``Stores`` holding ``objects`` (every watched kind but ``skip`` is listed)."""
    store = Stores()
    by_kind: dict[str, list[dict[str, Any]]] = {k: [] for k in WATCHED_KINDS if k not in skip}
    plural = {
        "Rollout": ROLLOUTS, "Kustomization": KUSTOMIZATIONS, "OCIRepository": OCI,
        "ImagePolicy": POLICIES, "RolloutTest": TESTS, "Environment": ENVIRONMENTS,
    }  # fmt: skip
    for item in objects:
        kind = (
            KRUISE if item["apiVersion"].startswith("rollouts.kruise.io") else plural[item["kind"]]
        )
        by_kind[kind].append(item)
    for kind, items in by_kind.items():
        store.replace_all(kind, items, "1")
    return store


def facts_for(store: Stores, name: str = "checkout") -> FactSet:
    observed = observe(store, store.get(ROLLOUTS, NS, name) or {})
    return facts_of(observed, prepare(observed, NOW), NOW)


def decision(facts: FactSet, expression: str) -> tuple[Decision, list[str]]:
    """The decision of a one-rule policy over ``facts`` for candidate 1.4.2, and error codes."""
    text = (
        "apiVersion: tidegate.dev/v1alpha1\nkind: RolloutPolicy\n"
        f"metadata: {{name: p, namespace: {NS}}}\n"
        "spec:\n  targets: {rolloutSelector: {}}\n"
        f"  rules:\n    - name: r\n      expression: {expression!r}\n"
    )
    backend = select_backend().backend
    policies = compile_policies(load_policy_text(text, "p.yaml"), backend)
    options = Options(candidates=[{"tag": "1.4.2"}], check_attachment=False)
    [verdict] = evaluate(policies, facts, backend, options).verdicts
    return verdict.decision, [r.error.code for r in verdict.results if r.error is not None]


# --- projections ---------------------------------------------------------------------------------


def test_a_ready_kustomization_is_ready_with_its_applied_revision() -> None:
    record = flux_object_record(kustomization(), ("Current", "Resource is Ready"))
    assert record["ready"] is True
    assert record["revision"] == "1.4.1@sha256:5d2e"
    assert record["conditions"]["Ready"] == {
        "status": "True", "reason": "Done", "message": "applied",
    }  # fmt: skip
    assert record["suspended"] is False


def test_a_ready_condition_that_kstatus_does_not_call_current_is_not_ready() -> None:
    record = flux_object_record(kustomization(), ("InProgress", "generation is 2, observed 1"))
    assert record["ready"] is False
    assert record["message"] == "InProgress: generation is 2, observed 1"


def test_no_ready_condition_means_ready_unknown() -> None:
    record = flux_object_record(obj("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "new"))
    assert "ready" not in record  # normalised to null: reading it as a bool is an error


@pytest.mark.parametrize(
    ("kind", "status", "revision"),
    [
        ("OCIRepository", {"artifact": {"revision": "1.4.1@sha256:ab"}}, "1.4.1@sha256:ab"),
        ("ImagePolicy", {"latestRef": {"name": "reg/app", "tag": "1.4.3"}}, "1.4.3"),
        ("ImagePolicy", {"latestImage": "reg:5000/app:1.4.2"}, "1.4.2"),
        ("ImagePolicy", {"latestImage": "reg:5000/app"}, None),
    ],
)
def test_each_flux_kind_reports_its_own_revision(
    kind: str, status: dict[str, Any], revision: str | None
) -> None:
    record = flux_object_record(obj("x/v1", kind, "a", status=status, spec={"suspend": True}))
    assert record.get("revision") == revision
    assert record["suspended"] is True


def test_a_kruise_rollout_reads_its_canary_status_and_tests() -> None:
    kruise = obj(
        "rollouts.kruise.io/v1beta1", "Rollout", "web",
        spec={"strategy": {"paused": True}},
        status={"phase": "Progressing", "canaryStatus": {
            "currentStepIndex": 2, "currentStepState": "StepPaused", "canaryRevision": "c1",
            "stableRevision": "s0"}, "conditions": [{"type": "Progressing", "status": "True"}]},
    )  # fmt: skip
    test = obj(
        "rollout.kuberik.com/v1alpha1", "RolloutTest", "smoke",
        spec={"stepIndex": 2, "rolloutName": "web"}, status={"phase": "Running"},
    )  # fmt: skip
    assert kruise_record(kruise, [test]) == {
        "name": "web", "phase": "Progressing", "currentStepIndex": 2,
        "currentStepState": "StepPaused", "canaryRevision": "c1", "stableRevision": "s0",
        "paused": True, "conditions": {"Progressing": {"status": "True"}},
        "tests": [{"name": "smoke", "stepIndex": 2, "phase": "Running"}],
    }  # fmt: skip


# --- the roots of a Rollout ----------------------------------------------------------------------


def test_flux_holds_the_namespace_objects_with_per_object_provenance() -> None:
    image_policy = obj("image.toolkit.fluxcd.io/v1", "ImagePolicy", "p",
                       status={"latestRef": {"tag": "1.4.3"}})  # fmt: skip
    facts = facts_for(stores(rollout(), kustomization(), image_policy))
    flux = facts.values["flux"]
    assert flux["kustomizations"]["app"]["ready"] is True
    assert flux["imagePolicies"]["p"]["revision"] == "1.4.3"
    assert flux["ociRepositories"] == {}
    where = facts.provenance_of(("flux", "kustomizations", "app", "ready"))
    assert where is not None
    assert where.ref is not None
    assert (where.source, where.ref.kind, where.ref.resource_version) == (
        "kubernetes", "Kustomization", "7",
    )  # fmt: skip
    assert where.observed_at == NOW


def test_helm_releases_are_unavailable_because_they_are_not_watched() -> None:
    facts = facts_for(stores(rollout(), kustomization()))
    [error] = [e for e in facts.errors if e.path[0] == "flux"]
    assert (error.path, error.code) == (("flux", "helmReleases"), "fact.unavailable")
    assert decision(facts, "flux.kustomizations.all(k, flux.kustomizations[k].ready)") == (
        Decision.ALLOWED, [],
    )  # fmt: skip
    assert decision(facts, "size(flux.helmReleases) == 0") == (
        Decision.BLOCKED, ["fact.unavailable"],
    )  # fmt: skip


def test_a_rule_naming_a_missing_kustomization_fails_closed() -> None:
    facts = facts_for(stores(rollout(), kustomization()))
    assert decision(facts, "flux.kustomizations['gone'].ready") == (
        Decision.BLOCKED, ["eval.no_such_key"],
    )  # fmt: skip


def test_a_not_ready_kustomization_blocks_a_flux_ready_rule() -> None:
    lagging = facts_for(stores(rollout(), kustomization(observedGeneration=0)))
    assert lagging.values["flux"]["kustomizations"]["app"]["ready"] is False
    assert decision(lagging, "flux.kustomizations.all(k, flux.kustomizations[k].ready)") == (
        Decision.BLOCKED, [],
    )  # fmt: skip
    stalled = kustomization()
    stalled["status"]["conditions"].append({"type": "Stalled", "status": "True"})
    facts = facts_for(stores(rollout(), stalled))
    assert facts.values["flux"]["kustomizations"]["app"]["ready"] is False
    result = decision(facts, "flux.kustomizations.all(k, flux.kustomizations[k].ready)")
    assert result == (Decision.BLOCKED, [])


def kruise_for(kustomization_name: str) -> dict[str, Any]:
    marks = {"kustomize.toolkit.fluxcd.io/name": kustomization_name,
             "kustomize.toolkit.fluxcd.io/namespace": NS}  # fmt: skip
    return obj("rollouts.kruise.io/v1beta1", "Rollout", "web", metadata={"labels": marks},
               status={"phase": "Healthy"})  # fmt: skip


def test_kruise_holds_only_the_rollouts_linked_to_this_rollout() -> None:
    other = kustomization("other")
    other["metadata"]["annotations"] = {"rollout.kuberik.com/substitute.APP.from": "payments"}
    unlinked = kruise_for("other")
    unlinked["metadata"]["name"] = "api"
    store = stores(rollout(), rollout("payments"), kustomization(), other, kruise_for("app"),
                   unlinked)  # fmt: skip
    facts = facts_for(store)
    assert list(facts.values["kruise"]) == ["web"]
    assert facts.values["kruise"]["web"]["phase"] == "Healthy"
    assert list(facts_for(store, "payments").values["kruise"]) == ["api"]
    where = facts.provenance_of(("kruise", "web"))
    assert where is not None
    assert where.ref is not None
    assert where.ref.name == "web"


def test_an_unsynced_kruise_kind_makes_the_root_unavailable_not_empty() -> None:
    facts = facts_for(stores(rollout(), kustomization(), skip=(KRUISE,)))
    assert "kruise" not in facts.values
    assert decision(facts, "kruise.all(k, kruise[k].phase == 'Healthy')") == (
        Decision.BLOCKED, ["fact.unavailable"],
    )  # fmt: skip


def test_without_an_environment_the_root_is_empty_and_a_named_upstream_fails_closed() -> None:
    facts = facts_for(stores(rollout()))
    assert facts.values["environments"] == {}
    assert decision(facts, "environments['staging'].healthy") == (
        Decision.BLOCKED, ["eval.no_such_key"],
    )  # fmt: skip


def test_environments_link_same_cluster_upstreams_through_their_rollouts() -> None:
    staging_rollout = rollout(ns="shop-staging", history=[entry("1.4.2", "InProgress", 3)])
    store = stores(
        rollout(),
        staging_rollout,
        environment("prod", NS, "prod", upstream="staging"),
        environment("staging", "shop-staging", "staging"),
    )
    facts = facts_for(store)
    assert facts.values["rollout"]["environment"] == "prod"
    staging = facts.values["environments"]["staging"]
    assert (staging["relation"], staging["source"], staging["tag"]) == (
        "upstream", "cluster", "1.4.2",
    )  # fmt: skip
    assert staging["healthy"] is True
    assert staging["healthySince"] == datetime(2026, 3, 3, 8, 10, tzinfo=UTC)
    assert facts.values["environments"]["prod"]["relation"] == "self"
    where = facts.provenance_of(("environments", "staging", "tag"))
    assert where is not None
    assert where.ref is not None
    assert (where.ref.kind, where.ref.namespace, where.ref.name) == (
        "Rollout", "shop-staging", "checkout",
    )  # fmt: skip
    assert decision(facts, "environments['staging'].tag == release.tag") == (
        Decision.ALLOWED, [],
    )  # fmt: skip


def test_remote_upstreams_come_from_the_environment_infos() -> None:
    infos = [{"environment": "staging", "history": [entry("1.4.2")]}]
    own = environment("prod", NS, "prod", upstream="staging", status={"environmentInfos": infos})
    own["spec"]["backend"] = {"type": "github", "project": "org/shop"}
    facts = facts_for(stores(rollout(), own))
    staging = facts.values["environments"]["staging"]
    assert (staging["relation"], staging["source"], staging["bakeStatus"]) == (
        "upstream", "github", "Succeeded",
    )  # fmt: skip
    where = facts.provenance_of(("environments", "staging"))
    assert where is not None
    assert where.source == "github"


def test_bad_environment_terms_make_the_root_invalid() -> None:
    notes = {"tidegate.dev/upstreams-mode": "some"}
    own = environment("prod", NS, "prod", upstream="staging", metadata={"annotations": notes})
    facts = facts_for(stores(rollout(), own))
    [error] = [e for e in facts.errors if e.path == ("environments",)]
    assert error.code == "fact.invalid"
    assert "upstreams-mode" in error.message
