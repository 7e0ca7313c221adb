"""Environments promotion planning (KUBERIK-SEMANTICS.md §7, §10 items 38–41), table-driven.

Pure functions of ``controller.planning.environments``: promotion terms from
Environment objects, allowed versions with soak instants (also through a GitHub
upstream mirrored into an in-memory GitHub), the owned gate, links, and the
``environments`` facts evaluated in CEL. Mirroring itself: test_mirroring.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from environment_world import STAGING_SPEC, FakeGitHub, Obj, S, entry, environment

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
    mirror_plan,
    remote_history,
)
from evaluators.base import CollectedFact
from policy_engine import Decision, Options, compile_policies, evaluate
from policy_engine.cel.backend import CelBackend
from policy_engine.loading import load_policy_text
from policy_engine.model import facts as model

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
