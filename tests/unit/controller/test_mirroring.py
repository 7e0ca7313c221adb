"""GitHub mirroring and remote history (KUBERIK-SEMANTICS.md §7, §10 item 37), table-driven.

Pure functions of ``controller.planning.mirroring``: mirror plans applied to an
in-memory GitHub (same JSON shapes as the API), status descriptions and payload ids,
and the remote history read back from it.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from environment_world import STAGING_SPEC, FakeGitHub, Obj, entry

from controller.planning.environments import EnvironmentTermsError
from controller.planning.mirroring import (
    CreateDeployment,
    PostStatus,
    deployment_payload,
    github_environment,
    mirror_plan,
    remote_history,
    status_for,
)

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
