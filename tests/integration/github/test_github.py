"""The production GitHub Deployments client against the loopback double.

Black-box through ``evaluators.github.GitHubDeployments`` with a real httpx
client from ``evaluators._http.make_client``. Waits go through a jumping
``Clock`` (``sleep_until`` moves it), so rate-limit resets and backoffs are
checked as instants, not measured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from githubdouble import DEFAULT_TOKEN as TOKEN
from githubdouble import GitHubDouble

from controller.planning.mirroring import (
    CreateDeployment,
    MirrorOperation,
    mirror_plan,
    remote_history,
)
from evaluators._http import make_client
from evaluators.base import FactInvalid, FactSourceMisconfigured, FactUnavailable
from evaluators.github import (
    GitHubDeployments,
    GitHubMisconfigured,
    GitHubRejected,
    GitHubUnavailable,
)

T = TypeVar("T")
START = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
TASK = "deploy:kuberik/app"
ENV = "kuberik/app/staging"


class JumpClock:
    """A Clock whose ``sleep_until`` jumps to the instant and records it."""

    def __init__(self, start: datetime = START) -> None:
        self.at = start
        self.sleeps: list[datetime] = []

    def now(self) -> datetime:
        return self.at

    async def sleep_until(self, when: datetime) -> None:
        self.sleeps.append(when)
        self.at = max(self.at, when)


def run(
    double: GitHubDouble,
    work: Callable[[GitHubDeployments], Awaitable[T]],
    *,
    clock: JumpClock | None = None,
    token: str = TOKEN,
    repository: str = "acme/app",
    timeout: float = 5.0,
) -> T:
    """Runs ``work`` with a fresh client; the same client when ``work`` calls twice."""

    async def main() -> T:
        async with make_client(timeout=timeout) as http:
            github = GitHubDeployments(
                http,
                repository=repository,
                token=token,
                clock=clock or JumpClock(),
                base_url=double.base_url,
            )
            return await work(github)

    return asyncio.run(main())


def deployment_body(ref: str = "R1", entry_id: str = "7") -> dict[str, Any]:
    return {
        "ref": ref,
        "task": TASK,
        "environment": ENV,
        "description": "Automatic deployment",
        "production_environment": False,
        "auto_merge": False,
        "required_contexts": [],
        "payload": {"id": entry_id, "version": {"tag": "1.0.0", "revision": ref}},
    }


def test_create_then_list_deployments_and_statuses_in_githubs_shapes(
    github_double: GitHubDouble,
) -> None:
    async def work(gh: GitHubDeployments) -> Any:
        created = await gh.create_deployment(deployment_body())
        await gh.create_deployment(deployment_body("R2", "8") | {"environment": "kuberik/app/prod"})
        await gh.create_status(created["id"], {"state": "in_progress", "description": "Deploying"})
        await gh.create_status(created["id"], {"state": "success", "description": "Bake succeeded"})
        listed = await gh.list_deployments(ref="R1", task=TASK, environment=ENV)
        statuses = await gh.list_statuses(created["id"])
        both = await gh.deployments_with_statuses(task=TASK)
        return created, listed, statuses, both

    created, listed, statuses, both = run(github_double, work)

    assert [d["id"] for d in listed] == [created["id"]]
    deployment = listed[0]
    assert (deployment["ref"], deployment["task"], deployment["environment"]) == ("R1", TASK, ENV)
    assert deployment["payload"] == {"id": "7", "version": {"tag": "1.0.0", "revision": "R1"}}
    assert deployment["production_environment"] is False
    assert isinstance(deployment["created_at"], str)
    assert [s["state"] for s in statuses] == ["success", "in_progress"]
    assert statuses[0]["description"] == "Bake succeeded"
    assert statuses[0]["environment"] == ENV
    assert [d["environment"] for d, _ in both] == ["kuberik/app/prod", ENV]
    assert [[s["state"] for s in st] for _, st in both] == [[], ["success", "in_progress"]]


def test_pagination_follows_link_headers_newest_first(github_double: GitHubDouble) -> None:
    ids = [github_double.add_deployment(deployment_body(f"R{i}", str(i))) for i in range(230)]

    everything = run(github_double, lambda gh: gh.list_deployments(task=TASK))
    pages = [r for r in github_double.requests if r.path.endswith("/deployments")]
    limited = run(github_double, lambda gh: gh.list_deployments(task=TASK, limit=120))

    assert [d["id"] for d in everything] == list(reversed(ids))
    assert [r.query.get("page", "1") for r in pages] == ["1", "2", "3"]
    assert {r.query["per_page"] for r in pages} == {"100"}
    assert [d["id"] for d in limited] == list(reversed(ids))[:120]
    assert len([r for r in github_double.requests if r.path.endswith("/deployments")]) == 5


def test_etag_304_reuses_the_cached_answer_and_sees_changes(github_double: GitHubDouble) -> None:
    github_double.add_deployment(deployment_body())

    async def work(gh: GitHubDeployments) -> list[list[dict[str, Any]]]:
        first = await gh.list_deployments(environment=ENV)
        second = await gh.list_deployments(environment=ENV)
        github_double.add_deployment(deployment_body("R2", "8"))
        third = await gh.list_deployments(environment=ENV)
        return [first, second, third]

    first, second, third = run(github_double, work)

    log = github_double.requests
    assert [(r.conditional, r.status) for r in log] == [(False, 200), (True, 304), (True, 200)]
    assert second == first
    assert [d["ref"] for d in third] == ["R2", "R1"]


def test_primary_rate_limit_waits_until_the_reset_then_succeeds(
    github_double: GitHubDouble,
) -> None:
    clock = JumpClock()
    reset = int(START.timestamp()) + 42
    github_double.rate_limit(2, reset=reset)

    listed = run(github_double, lambda gh: gh.list_deployments(), clock=clock)

    assert listed == []
    assert [r.status for r in github_double.requests] == [403, 403, 200]
    assert clock.sleeps == [datetime.fromtimestamp(reset, UTC)] * 2


def test_429_with_retry_after_and_a_secondary_limit_both_wait(github_double: GitHubDouble) -> None:
    clock = JumpClock()
    github_double.rate_limit(1, reset=0, retry_after=7, status=429)
    github_double.secondary_rate_limit(1)

    run(github_double, lambda gh: gh.list_deployments(), clock=clock)

    assert [r.status for r in github_double.requests] == [429, 403, 200]
    assert clock.sleeps == [START + timedelta(seconds=7), START + timedelta(seconds=67)]


def test_a_rate_limit_reset_past_the_deadline_is_unavailable_at_once(
    github_double: GitHubDouble,
) -> None:
    clock = JumpClock()
    reset = int(START.timestamp()) + 600
    github_double.rate_limit(5, reset=reset)

    with pytest.raises(GitHubUnavailable) as caught:
        run(
            github_double,
            lambda gh: gh.list_deployments(deadline=START + timedelta(seconds=30)),
            clock=clock,
        )

    assert isinstance(caught.value, FactUnavailable)
    assert caught.value.message.startswith("github acme/app: GET /repos/acme/app/deployments")
    assert "rate limited" in caught.value.message
    assert "past the deadline" in caught.value.message
    assert caught.value.retry_at == datetime.fromtimestamp(reset, UTC)
    assert clock.sleeps == []
    assert len(github_double.requests) == 1


def test_5xx_is_retried_with_backoff_then_succeeds(github_double: GitHubDouble) -> None:
    clock = JumpClock()
    github_double.fail(2, status=502)

    created = run(github_double, lambda gh: gh.create_deployment(deployment_body()), clock=clock)

    assert created["ref"] == "R1"
    assert [r.status for r in github_double.requests] == [502, 502, 201]
    assert clock.sleeps == [START + timedelta(seconds=1), START + timedelta(seconds=3)]


def test_5xx_past_the_retries_is_unavailable(github_double: GitHubDouble) -> None:
    github_double.fail(10, status=503)

    with pytest.raises(GitHubUnavailable, match=r"HTTP 503 after 4 attempts"):
        run(github_double, lambda gh: gh.list_deployments())

    assert len(github_double.requests) == 4


def test_a_slow_answer_times_out_and_is_retried(github_double: GitHubDouble) -> None:
    github_double.slow(2.0, times=1)

    listed = run(github_double, lambda gh: gh.list_deployments(), timeout=0.3)

    assert listed == []
    assert any(r.status == 200 for r in github_double.requests)


@pytest.mark.parametrize(
    ("setup", "token", "repository", "expected"),
    [
        (lambda d: d.forbid(), TOKEN, "acme/app", "HTTP 403 (forbidden): Resource not accessible"),
        (lambda d: None, "ghp_wrong-token", "acme/app", "HTTP 401 (bad credentials)"),
        (lambda d: None, TOKEN, "acme/other", "HTTP 404"),
    ],
)
def test_forbidden_bad_credentials_and_unknown_repository_are_misconfigured(
    github_double: GitHubDouble,
    setup: Callable[[GitHubDouble], None],
    token: str,
    repository: str,
    expected: str,
) -> None:
    setup(github_double)

    with pytest.raises(GitHubMisconfigured) as caught:
        run(github_double, lambda gh: gh.list_deployments(), token=token, repository=repository)

    assert isinstance(caught.value, FactSourceMisconfigured)
    assert expected in caught.value.message
    assert caught.value.message.startswith(f"github {repository}:")
    assert len(github_double.requests) == 1


def test_a_too_long_status_description_is_rejected(github_double: GitHubDouble) -> None:
    ident = github_double.add_deployment(deployment_body())

    with pytest.raises(GitHubRejected) as caught:
        run(
            github_double,
            lambda gh: gh.create_status(ident, {"state": "success", "description": "x" * 141}),
        )

    assert caught.value.status == 422
    assert isinstance(caught.value, FactInvalid)
    assert "Validation Failed" in caught.value.message


def test_bad_configuration_is_refused_before_any_request(github_double: GitHubDouble) -> None:
    for kwargs in (
        {"repository": "acme"},
        {"base_url": "ftp://example.com"},
        {"base_url": "https://user:pw@example.com"},
        {"token": ""},
    ):
        arguments: dict[str, Any] = {"repository": "acme/app", "token": TOKEN, **kwargs}
        with pytest.raises(GitHubMisconfigured, match=r"^github"):
            GitHubDeployments(httpx.AsyncClient(), clock=JumpClock(), **arguments)
    assert github_double.requests == []


def test_no_message_or_repr_ever_contains_the_token(github_double: GitHubDouble) -> None:
    messages: list[str] = []
    scenarios: list[Callable[[GitHubDouble], None]] = [
        lambda d: d.forbid(times=1),
        lambda d: d.fail(10),
        lambda d: d.rate_limit(5, reset=int(START.timestamp()) + 9999),
        lambda d: d.slow(1.0, times=10),
    ]
    for scenario in scenarios:
        github_double.clear_faults()
        scenario(github_double)
        try:
            run(
                github_double,
                lambda gh: gh.list_deployments(deadline=START + timedelta(seconds=5)),
                timeout=0.2,
            )
        except (FactUnavailable, FactInvalid, FactSourceMisconfigured) as exc:
            messages.extend([str(exc), repr(exc), exc.message])
    client = run(github_double, lambda gh: asyncio.sleep(0, result=gh))
    messages.append(repr(client))

    assert len(messages) == 13
    assert all(TOKEN not in text for text in messages)
    assert all(r.authorized for r in github_double.requests)


async def apply_plan(gh: GitHubDeployments, plan: list[MirrorOperation]) -> None:
    """What the controller does with a mirror plan (oldest first)."""
    for operation in plan:
        if isinstance(operation, CreateDeployment):
            created = await gh.create_deployment(operation.request)
            await gh.create_status(created["id"], operation.status)
        else:
            await gh.create_status(operation.deployment_id, operation.request)


def test_scenario_37_mirroring_through_the_client_then_a_second_pass_adds_nothing(
    github_double: GitHubDouble,
) -> None:
    spec = {"name": "app", "environment": "staging", "rolloutRef": {"name": "r"}}
    history = [
        {
            "id": 7,
            "version": {"tag": "1.0.0", "revision": "R1"},
            "timestamp": "2026-03-04T09:00:00Z",
            "message": "Automatic deployment",
            "bakeStatus": "InProgress",
            "bakeStatusMessage": "Bake started, monitoring for errors.",
        }
    ]

    async def mirror(gh: GitHubDeployments) -> list[MirrorOperation]:
        pairs = await gh.deployments_with_statuses(task=TASK, environment=ENV)
        plan = mirror_plan(history, pairs, spec=spec)
        await apply_plan(gh, plan)
        return plan

    async def twice(gh: GitHubDeployments) -> tuple[int, int]:
        return len(await mirror(gh)), len(await mirror(gh))

    assert run(github_double, twice) == (1, 0)
    [deployment] = github_double.deployments()
    assert (deployment["ref"], deployment["task"], deployment["environment"]) == ("R1", TASK, ENV)
    assert deployment["payload"]["id"] == "7"
    assert [(s["state"], s["description"]) for s in deployment["statuses"]] == [
        ("in_progress", "Baking in progress: Bake started, monitoring for errors.")
    ]


def test_remote_history_skips_githubs_auto_inactive_status(github_double: GitHubDouble) -> None:
    spec = {"name": "app", "environment": "staging", "rolloutRef": {"name": "r"}}

    def entry(ident: int, revision: str) -> dict[str, Any]:
        return {
            "id": ident,
            "version": {"tag": f"1.0.{ident}", "revision": revision},
            "timestamp": "2026-03-04T09:00:00Z",
            "bakeStatus": "Succeeded",
        }

    async def work(gh: GitHubDeployments) -> list[dict[str, Any]]:
        for history in ([entry(1, "R1")], [entry(2, "R2"), entry(1, "R1")]):
            pairs = await gh.deployments_with_statuses(task=TASK, environment=ENV)
            await apply_plan(gh, mirror_plan(history, pairs, spec=spec))
        return remote_history(await gh.deployments_with_statuses(task=TASK, environment=ENV))

    remote = run(github_double, work)

    first = github_double.deployments()[-1]
    assert [s["state"] for s in first["statuses"]] == ["inactive", "success"]
    assert [(e["id"], e["bakeStatus"]) for e in remote] == [(2, "Succeeded"), (1, "Succeeded")]
