"""Environments planning (KUBERIK-SEMANTICS.md §7, §10 items 37–41), table-driven.

Pure functions of ``controller.planning.environments``: mirroring plans applied
to an in-memory GitHub (same JSON shapes as the API), remote history read back
from it, promotion terms from Environment objects, allowed versions with soak
instants, the owned gate, and the ``environments`` facts evaluated in CEL.
Over 600 lines because it is one table per §10 scenario of one module; splitting it
would only scatter the shared fixtures (the in-memory GitHub, the Environment builders).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.api.actions import ROLLOUTS, ObjectKey
from controller.planning.environments import (
    Edge,
    EnvironmentTermsError,
    LinkedEnvironment,
    allowed_versions,
    environment_facts,
    environment_gate,
    linked_relations,
    promotion_terms,
    qualifies,
)
from controller.planning.facts import assemble
from controller.planning.mirroring import (
    CreateDeployment,
    PostStatus,
    deployment_payload,
    github_environment,
    mirror_plan,
    remote_history,
    status_for,
)
from evaluators.base import CollectedFact
from policy_engine import Decision, Options, compile_policies, evaluate
from policy_engine.cel.backend import CelBackend
from policy_engine.loading import load_policy_text
from policy_engine.model import facts as model

Obj = dict[str, Any]
S = datetime(2026, 3, 4, 8, 0, tzinfo=UTC)
STAGING_SPEC: Obj = {
    "rolloutRef": {"name": "r"},
    "name": "app",
    "environment": "staging",
    "backend": {"type": "github", "project": "acme/app"},
}


def at(offset: timedelta = timedelta(0)) -> str:
    return (S + offset).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry(
    ident: int | None, revision: str | None, bake: str | None, *, tag: str = "1.0.0",
    message: str | None = None, when: timedelta = timedelta(0), start: timedelta | None = None,
) -> Obj:  # fmt: skip
    made: Obj = {
        "id": ident,
        "version": {"tag": tag, "revision": revision},
        "timestamp": at(when),
        "message": "Automatic deployment",
        "triggeredBy": {"kind": "System", "name": "rollout-controller"},
        "bakeStatus": bake,
        "bakeStatusMessage": message,
        "bakeStartTime": None if start is None else at(start),
    }
    return {k: v for k, v in made.items() if v is not None}


def environment(
    name: str = "prod", *, relationship: Obj | None = None, annotations: Obj | None = None,
    backend: Obj | None = None,
) -> Obj:  # fmt: skip
    spec: Obj = {
        "rolloutRef": {"name": f"r-{name}"},
        "name": "app",
        "environment": name,
        "backend": backend or {"type": "github", "project": "acme/app"},
    }
    if relationship:
        spec["relationship"] = relationship
    return {
        "apiVersion": "environments.kuberik.com/v1alpha1",
        "kind": "Environment",
        "metadata": {
            "name": f"app-{name}",
            "namespace": "ns",
            "uid": f"uid-{name}",
            "annotations": annotations or {},
        },
        "spec": spec,
    }


class FakeGitHub:
    """Applies mirror plans with the API's JSON shapes; statuses kept newest first."""

    def __init__(self) -> None:
        self.pairs: list[tuple[Obj, list[Obj]]] = []
        self.next_id = 100
        self.clock = S

    def tick(self) -> str:
        self.clock += timedelta(seconds=1)
        self.next_id += 1
        return self.clock.strftime("%Y-%m-%dT%H:%M:%SZ")

    def deployment(self, body: Obj) -> Obj:
        stamp = self.tick()
        made = {**body, "id": self.next_id, "created_at": stamp, "updated_at": stamp}
        self.pairs.insert(0, (made, []))
        return made

    def status(self, deployment_id: int, body: Obj) -> None:
        statuses = next(s for d, s in self.pairs if d["id"] == deployment_id)
        stamp = self.tick()
        statuses.insert(0, {**body, "id": self.next_id, "created_at": stamp})

    def apply(self, plan: Sequence[CreateDeployment | PostStatus]) -> None:
        for operation in plan:
            if isinstance(operation, CreateDeployment):
                made = self.deployment(operation.request)
                self.status(made["id"], operation.status)
            else:
                self.status(operation.deployment_id, operation.request)


# ------------------------------------------------------------------ scenario 37: mirroring


def test_scenario_37_one_deployment_with_the_bake_status_and_a_second_mirror_adds_nothing() -> None:
    history = [entry(7, "R1", "InProgress", message="Bake started, monitoring for errors.")]
    github = FakeGitHub()

    first = mirror_plan(history, github.pairs, spec=STAGING_SPEC)
    github.apply(first)
    second = mirror_plan(history, github.pairs, spec=STAGING_SPEC)

    [create] = first
    assert isinstance(create, CreateDeployment)
    request = create.request
    assert (request["ref"], request["task"], request["environment"]) == (
        "R1",
        "deploy:kuberik/app",
        "kuberik/app/staging",
    )
    assert request["payload"]["id"] == "7"
    assert request["payload"]["version"] == {"tag": "1.0.0", "revision": "R1"}
    assert request["production_environment"] is False
    assert (request["auto_merge"], request["required_contexts"]) == (False, [])
    assert request["description"] == "Automatic deployment"
    assert create.status == {
        "state": "in_progress",
        "description": "Baking in progress: Bake started, monitoring for errors.",
    }
    assert second == []
    assert len(github.pairs) == 1


def test_mirroring_goes_oldest_first_skips_unmirrorable_entries_and_posts_only_new_statuses() -> (
    None
):
    github = FakeGitHub()
    older = entry(1, "R1", "Succeeded", tag="1.0.0")
    history = [entry(3, None, "Deploying"), entry(2, "R2", "Deploying", tag="1.1.0"), older]
    history.append(entry(None, "R0", "Succeeded"))
    github.apply(mirror_plan(history, github.pairs, spec=STAGING_SPEC))
    history[1] = {**history[1], "bakeStatus": "Failed", "bakeStatusMessage": "hc down"}

    plan = mirror_plan(history, github.pairs, spec=STAGING_SPEC, environment_url="https://x")

    assert [d["ref"] for d, _ in reversed(github.pairs)] == ["R1", "R2"]
    [post] = plan
    assert isinstance(post, PostStatus)
    assert post.deployment_id == github.pairs[0][0]["id"]
    assert post.request == {
        "state": "failure",
        "description": "Bake failed: hc down",
        "environment_url": "https://x",
    }


@pytest.mark.parametrize(
    ("bake", "message", "expected"),
    [
        ("Succeeded", "ok", ("success", "Bake succeeded: ok")),
        ("Failed", None, ("failure", "Bake failed")),
        ("InProgress", None, ("in_progress", "Baking in progress")),
        ("Deploying", "waiting", ("in_progress", "Deploying: waiting")),
        ("Cancelled", "new version", ("inactive", "Bake cancelled: new version")),
        (None, None, ("pending", "Deploying")),
    ],
)
def test_status_table(bake: str | None, message: str | None, expected: tuple[str, str]) -> None:
    assert status_for(entry(1, "R1", bake, message=message)) == expected


def test_a_status_description_is_capped_at_140_characters_and_read_back() -> None:
    long = "HealthCheck 'hc' in namespace 'ns' is not healthy: " + "x" * 200
    state, description = status_for(entry(1, "R1", "Failed", message=long))
    github = FakeGitHub()
    history = [entry(1, "R1", "Failed", message=long)]
    github.apply(mirror_plan(history, github.pairs, spec=STAGING_SPEC))

    assert state == "failure"
    assert len(description) == 140
    assert description.startswith("Bake failed: HealthCheck 'hc'")
    assert description.endswith("…")
    assert mirror_plan(history, github.pairs, spec=STAGING_SPEC) == []
    [remote] = remote_history(github.pairs)
    assert remote["bakeStatus"] == "Failed"
    assert remote["bakeStatusMessage"] == description[len("Bake failed: ") :]


@pytest.mark.parametrize(
    "payload",
    [
        {"id": 7},
        json.dumps({"id": "7"}),
        base64.b64encode(json.dumps({"id": "7", "version": {"tag": "1.0.0"}}).encode()).decode(),
    ],
    ids=["json-int", "json-string", "base64-json"],
)
def test_payload_ids_match_as_json_or_base64_json(payload: Any) -> None:
    history = [entry(7, "R1", "Succeeded")]
    github = FakeGitHub()
    made = github.deployment(
        {"ref": "R1", "task": "deploy:kuberik/app", "environment": "kuberik/app/staging",
         "payload": payload}
    )  # fmt: skip
    github.status(made["id"], {"state": "success", "description": "Bake succeeded"})

    assert mirror_plan(history, github.pairs, spec=STAGING_SPEC) == []
    other = [entry(8, "R1", "Succeeded")]
    assert [type(op) for op in mirror_plan(other, github.pairs, spec=STAGING_SPEC)] == [
        CreateDeployment
    ]


def test_names_payload_and_production_flag() -> None:
    prod = {**STAGING_SPEC, "name": "kuberik/app", "environment": "production"}
    relationship = {"environment": "staging", "type": "After"}
    when = datetime(2026, 3, 1, tzinfo=UTC)
    e = {**entry(5, "R5", None), "version": {"tag": "2.0.0", "revision": "R5", "created": when}}

    [create] = mirror_plan([e], [], spec=prod, relationship=relationship)

    assert github_environment(prod) == "kuberik/app/production"
    assert isinstance(create, CreateDeployment)
    assert create.request["production_environment"] is True
    assert create.request["payload"] == deployment_payload(e, relationship)
    assert create.request["payload"] == {
        "id": "5",
        "relationship": {"environment": "staging", "type": "After"},
        "version": {"tag": "2.0.0", "revision": "R5", "created": "2026-03-01T00:00:00Z"},
    }
    with pytest.raises(EnvironmentTermsError, match=r"spec\.environment"):
        github_environment({"name": "app"})


# ------------------------------------------------------------------ remote history


def test_remote_history_reads_statuses_back_and_skips_githubs_inactive() -> None:
    github = FakeGitHub()
    history = [entry(1, "R1", "Deploying")]
    github.apply(mirror_plan(history, github.pairs, spec=STAGING_SPEC))
    history = [entry(1, "R1", "InProgress", message="Bake started, monitoring for errors.")]
    github.apply(mirror_plan(history, github.pairs, spec=STAGING_SPEC))
    baking = github.clock
    history = [entry(1, "R1", "Succeeded", message="done")]
    github.apply(mirror_plan(history, github.pairs, spec=STAGING_SPEC))
    done = github.clock
    github.status(github.pairs[0][0]["id"], {"state": "inactive", "description": ""})
    cancelled = [entry(2, "R2", "Cancelled", message="new version", tag="1.1.0")]
    github.apply(mirror_plan(cancelled, github.pairs, spec=STAGING_SPEC))
    github.deployment({"ref": "R9", "payload": {"note": "not ours"}})

    newest, oldest = remote_history(github.pairs)

    assert (newest["id"], newest["bakeStatus"], newest["bakeStatusMessage"]) == (
        2,
        "Cancelled",
        "new version",
    )
    assert oldest["id"] == 1
    assert oldest["version"] == {"tag": "1.0.0", "revision": "R1"}
    assert (oldest["bakeStatus"], oldest["bakeStatusMessage"]) == ("Succeeded", "done")
    assert oldest["bakeStartTime"] == baking
    assert oldest["bakeEndTime"] == done
    assert oldest["message"] == "Automatic deployment"
    assert oldest["timestamp"] < newest["timestamp"]


def test_remote_history_skips_deployments_it_cannot_read() -> None:
    github = FakeGitHub()
    github.apply(mirror_plan([entry(1, "R1", "Succeeded")], github.pairs, spec=STAGING_SPEC))
    good = github.pairs[0]
    bad_time = ({**good[0], "created_at": "yesterday"}, good[1])
    no_version = ({**good[0], "payload": {"id": "2"}}, good[1])
    junk: tuple[Obj, list[Obj]] = (
        {**good[0], "payload": {"id": "3", "version": {"tag": "1", "extra": "x"}}},
        [],
    )

    remote = remote_history([bad_time, no_version, junk, good])

    assert [(e["id"], e["version"]) for e in remote] == [
        (3, {"tag": "1"}),
        (1, {"tag": "1.0.0", "revision": "R1"}),
    ]


def test_remote_bake_start_falls_back_to_the_success_status() -> None:
    github = FakeGitHub()
    github.apply(mirror_plan([entry(1, "R1", "Succeeded")], github.pairs, spec=STAGING_SPEC))

    [remote] = remote_history(github.pairs)

    assert remote["bakeStartTime"] == remote["bakeEndTime"] == github.clock


# ------------------------------------------------------------------ scenarios 38–41: promotion

PROD_AFTER = environment(relationship={"environment": "staging", "type": "After"})
PROD_PARALLEL = environment(relationship={"environment": "staging", "type": "Parallel"})
PROD_PARALLEL_AFTER = environment(
    relationship={"environment": "staging", "type": "Parallel"},
    annotations={"tidegate.dev/parallel-mode": "after"},
)
CANDIDATES = [{"tag": "T", "revision": "R1"}, {"tag": "U"}, {"tag": "V", "revision": "R9"}]


def allowed(
    env: Obj, upstreams: Mapping[str, Sequence[Obj]], now: datetime = S, blocked: Sequence[str] = ()
) -> tuple[list[str], datetime | None]:
    terms = promotion_terms(env)
    return allowed_versions(
        CANDIDATES, upstreams, terms.mode, edges=terms.edges, now=now, blocked=blocked
    )


@pytest.mark.parametrize(
    ("env", "bake", "expected"),
    [
        (PROD_AFTER, "Succeeded", ["T"]),
        (PROD_AFTER, "InProgress", []),
        (PROD_AFTER, "Deploying", []),
        (PROD_PARALLEL, "Deploying", ["T"]),
        (PROD_PARALLEL, "InProgress", ["T"]),
        (PROD_PARALLEL, "Succeeded", ["T"]),
        (PROD_PARALLEL, "Failed", []),
        (PROD_PARALLEL, "Cancelled", []),
        (PROD_PARALLEL, None, []),
        (PROD_PARALLEL_AFTER, "Deploying", []),
        (PROD_PARALLEL_AFTER, "InProgress", []),
        (PROD_PARALLEL_AFTER, "Succeeded", ["T"]),
    ],
)
def test_scenarios_38_39_after_and_parallel(
    env: Obj, bake: str | None, expected: list[str]
) -> None:
    assert allowed(env, {"staging": [entry(1, "R1", bake)]}) == (expected, None)


def test_scenario_38_through_github_and_the_gate() -> None:
    github = FakeGitHub()
    github.apply(mirror_plan([entry(1, "R1", "Succeeded")], github.pairs, spec=STAGING_SPEC))

    versions, _ = allowed(PROD_AFTER, {"staging": remote_history(github.pairs)})
    gate = environment_gate(PROD_AFTER, versions)
    none, _ = allowed(PROD_AFTER, {"staging": []})

    assert versions == ["T"]
    assert none == []
    assert gate["apiVersion"] == "kuberik.com/v1alpha1"
    assert gate["kind"] == "RolloutGate"
    assert gate["metadata"]["generateName"] == "ghd-"
    assert gate["metadata"]["namespace"] == "ns"
    assert gate["metadata"]["ownerReferences"] == [
        {"apiVersion": "environments.kuberik.com/v1alpha1", "kind": "Environment",
         "name": "app-prod", "uid": "uid-prod", "controller": True, "blockOwnerDeletion": True}
    ]  # fmt: skip
    assert gate["metadata"]["annotations"] == {
        "gate.kuberik.com/pretty-name": "Relationship not ready yet",
        "gate.kuberik.com/description": "This gate is passing only for those versions that have "
        "been successfully deployed after the staging environment.",
    }
    assert gate["spec"] == {"rolloutRef": {"name": "r-prod"}, "allowedVersions": ["T"]}
    assert environment_gate(PROD_AFTER, [])["spec"]["allowedVersions"] == []


def test_the_gate_text_for_parallel_several_upstreams_and_none() -> None:
    parallel = environment_gate(PROD_PARALLEL, ["T"])["metadata"]["annotations"]
    several = environment(annotations={"tidegate.dev/upstreams": "eu,us"})
    anyone = environment(
        annotations={"tidegate.dev/upstreams": "eu,us", "tidegate.dev/upstreams-mode": "any"}
    )
    first = environment("staging")

    assert parallel["gate.kuberik.com/description"].endswith(
        "successfully deployed in parallel with the staging environment."
    )
    assert environment_gate(several, [])["metadata"]["annotations"][
        "gate.kuberik.com/description"
    ].endswith("deployed after the eu and us environments.")
    assert environment_gate(anyone, [])["metadata"]["annotations"][
        "gate.kuberik.com/description"
    ].endswith("deployed after the eu or us environments.")
    unrestricted = environment_gate(first, None)
    assert "allowedVersions" not in unrestricted["spec"]
    assert "gate.kuberik.com/description" not in unrestricted["metadata"]["annotations"]


SOAKED = environment(
    relationship={"environment": "staging", "type": "After"},
    annotations={"tidegate.dev/soak": "24h"},
)
R1_BAKED = entry(1, "R1", "Succeeded", start=timedelta(0))


@pytest.mark.parametrize(
    ("upstream", "now", "blocked", "expected"),
    [
        ([R1_BAKED], S + timedelta(hours=23, minutes=59, seconds=59), (),
         ([], S + timedelta(hours=24))),
        ([R1_BAKED], S + timedelta(hours=24), (), (["T"], None)),
        ([R1_BAKED], S + timedelta(hours=30), ("staging",), ([], None)),
        ([entry(2, "R2", "Succeeded", tag="2", when=timedelta(hours=10)), R1_BAKED],
         S + timedelta(days=3), (), ([], None)),
        ([entry(2, "R2", "Succeeded", tag="2", when=timedelta(hours=25)), R1_BAKED],
         S + timedelta(hours=25), ("staging",), (["T"], None)),
        ([entry(1, "R1", "InProgress", start=timedelta(0))], S + timedelta(days=3), (), ([], None)),
    ],
    ids=["refused-1s-early", "allowed-at-24h", "blocked", "moved-on-at-10h", "moved-on-at-25h",
         "not-succeeded"],
)  # fmt: skip
def test_scenario_40_soak(
    upstream: list[Obj], now: datetime, blocked: Sequence[str], expected: tuple[list[str], Any]
) -> None:
    assert allowed(SOAKED, {"staging": upstream}, now, blocked) == expected


def test_scenario_40_soak_on_a_github_upstream_counts_from_baking_in_progress() -> None:
    github = FakeGitHub()
    github.apply(mirror_plan([entry(1, "R1", "Deploying")], github.pairs, spec=STAGING_SPEC))
    github.apply(mirror_plan([entry(1, "R1", "InProgress")], github.pairs, spec=STAGING_SPEC))
    baking = github.clock
    github.clock += timedelta(hours=2)
    github.apply(mirror_plan([entry(1, "R1", "Succeeded")], github.pairs, spec=STAGING_SPEC))
    remote = {"staging": remote_history(github.pairs)}

    assert allowed(SOAKED, remote, baking + timedelta(hours=23)) == (
        [],
        baking + timedelta(hours=24),
    )
    assert allowed(SOAKED, remote, baking + timedelta(hours=24)) == (["T"], None)


def test_a_per_edge_soak_overrides_the_general_one() -> None:
    env = environment(
        relationship={"environment": "staging", "type": "After"},
        annotations={"tidegate.dev/soak": "24h", "tidegate.dev/soak.staging": "1h"},
    )

    assert promotion_terms(env).edges == {"staging": Edge("After", None, timedelta(hours=1))}
    assert allowed(env, {"staging": [R1_BAKED]}, S + timedelta(hours=1)) == (["T"], None)
    none = environment(
        relationship={"environment": "staging", "type": "Parallel"},
        annotations={"tidegate.dev/soak": "24h", "tidegate.dev/soak.staging": "0s"},
    )
    assert promotion_terms(none).edges["staging"].soak is None
    assert allowed(none, {"staging": [entry(1, "R1", "Deploying")]}) == (["T"], None)


EU_US = {"tidegate.dev/upstreams": "eu,us", "tidegate.dev/soak": "1h"}


@pytest.mark.parametrize(
    ("mode", "eu", "us", "expected"),
    [
        ("all", "Succeeded", "Succeeded", (["T"], None)),
        ("all", "Succeeded", "InProgress", ([], None)),
        ("any", "Succeeded", "InProgress", (["T"], None)),
        ("any", "Failed", "InProgress", ([], None)),
        ("all", "soaking-2h", "soaking-3h", ([], S + timedelta(hours=3))),
        ("any", "soaking-2h", "soaking-3h", ([], S + timedelta(hours=2))),
        ("all", "soaking-2h", "Failed", ([], None)),
    ],
)
def test_scenario_41_upstreams_all_and_any(
    mode: str, eu: str, us: str, expected: tuple[list[str], Any]
) -> None:
    def history(state: str) -> list[Obj]:
        if state.startswith("soaking-"):
            hours = int(state.removeprefix("soaking-").removesuffix("h"))
            return [entry(1, "R1", "Succeeded", start=timedelta(hours=hours - 1))]
        return [entry(1, "R1", state, start=timedelta(hours=-5))]

    env = environment(annotations={**EU_US, "tidegate.dev/upstreams-mode": mode})

    assert allowed(env, {"eu": history(eu), "us": history(us)}, S + timedelta(minutes=30)) == (
        expected
    )


def test_upstreams_add_to_the_relationship_and_missing_upstream_data_blocks() -> None:
    env = environment(
        relationship={"environment": "staging", "type": "Parallel"},
        annotations={"tidegate.dev/upstreams": "eu, staging"},
    )

    terms = promotion_terms(env)

    assert list(terms.edges) == ["staging", "eu"]
    assert {e.relation for e in terms.edges.values()} == {"Parallel"}
    assert allowed(env, {"staging": [entry(1, "R1", "Deploying")]}) == ([], None)


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"tidegate.dev/soak": "a day"}, "tidegate.dev/soak: invalid duration 'a day'"),
        ({"tidegate.dev/soak.staging": "-1h"}, "must not be negative"),
        ({"tidegate.dev/upstreams-mode": "most"}, "upstreams-mode must be all or any"),
        ({"tidegate.dev/parallel-mode": "before"}, "parallel-mode must be 'after'"),
    ],
)
def test_bad_annotations_are_errors_naming_the_key(annotations: Obj, message: str) -> None:
    env = environment(
        relationship={"environment": "staging", "type": "After"}, annotations=annotations
    )
    with pytest.raises(EnvironmentTermsError, match=message):
        promotion_terms(env)


def test_qualifies_directly_matches_by_revision_and_needs_one() -> None:
    upstream = [entry(1, "R1", "Succeeded")]
    assert qualifies(upstream, "R1", "After", None, None, S) == (True, None)
    assert qualifies(upstream, "R2", "After", None, None, S) == (False, None)
    assert qualifies(upstream, "", "After", None, None, S) == (False, None)
    with pytest.raises(EnvironmentTermsError, match="at least one upstream"):
        allowed_versions(CANDIDATES, {}, "all", edges={}, now=S)


# ------------------------------------------------------------------ links and facts


def test_linked_relations_follow_upstreams_transitively() -> None:
    dev = environment("dev")
    staging = environment("staging", relationship={"environment": "dev", "type": "After"})
    prod = environment("prod", relationship={"environment": "staging", "type": "After"})
    sandbox = environment("sandbox", relationship={"environment": "dev", "type": "After"})
    elsewhere = environment("qa", backend={"type": "github", "project": "acme/other"})
    in_cluster = environment("perf", backend={"type": "kubernetes"})

    relations = linked_relations(staging, [dev, staging, prod, sandbox, elsewhere, in_cluster])

    assert relations == {
        "dev": "upstream",
        "staging": "self",
        "prod": "downstream",
        "sandbox": "other",
        "perf": "other",
    }


def test_environment_facts_normalise_to_the_environment_record() -> None:
    linked = [
        LinkedEnvironment("staging", "upstream", "github", [R1_BAKED]),
        LinkedEnvironment("prod", "self", "cluster", []),
        LinkedEnvironment("dev", "upstream", "cluster", [entry(1, "R0", "Failed")]),
    ]

    normalised = model.normalise_root("environments", environment_facts(linked))

    assert normalised["staging"] == {
        "name": "staging", "tag": "1.0.0", "revision": "R1", "relation": "upstream",
        "bakeStatus": "Succeeded", "deployedAt": S, "bakeStartTime": S, "bakeEndTime": None,
        "healthy": True, "healthySince": S, "source": "github",
    }  # fmt: skip
    assert normalised["prod"]["healthy"] is False
    assert normalised["prod"]["tag"] is None
    assert (normalised["dev"]["healthy"], normalised["dev"]["healthySince"]) == (False, None)


POLICY = """
apiVersion: tidegate.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: staging-soak, namespace: ns}
spec:
  targets: {rolloutSelector: {}}
  rules:
    - name: staging-soaked
      kind: dependency
      expression: >-
        environments.staging.revision == release.revision && environments.staging.healthy &&
        since(environments.staging.healthySince) >= duration('24h')
      message: Release has not soaked in staging
"""


@pytest.mark.parametrize(("hours", "decision"), [(23, Decision.PENDING), (24, Decision.ALLOWED)])
def test_a_cel_soak_rule_reads_the_environments_facts(
    backend: CelBackend, hours: int, decision: Decision
) -> None:
    now = S + timedelta(hours=hours)
    linked = [LinkedEnvironment("staging", "upstream", "github", [R1_BAKED])]
    provenance = model.Provenance("github", observed_at=now)
    collected = [
        CollectedFact(("environments",), environment_facts(linked), None, provenance),
        CollectedFact(("candidates",), [{"tag": "T", "revision": "R1"}], None, provenance),
        CollectedFact(("rollout",), {"namespace": "ns", "name": "r"}, None, provenance),
    ]
    facts = assemble(collected, now, ObjectKey(ROLLOUTS, "ns", "r"))
    policies = compile_policies(load_policy_text(POLICY, "soak.yaml"), backend)

    result = evaluate(policies, facts, backend, Options(check_attachment=False))

    assert result.decision is decision
