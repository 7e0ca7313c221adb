"""GitHub side of the Environment reconcile: the token, mirroring, remote upstreams (§7).

Callers: ``reconciling.environments`` only. Reads the token Secret live and talks
to GitHub through ``evaluators.github`` (deadline = now: a rate limit or a 5xx
never sleeps on the clock; it is noted in ``Reads`` and retried on the next pass).
Plans come from ``planning.mirroring``; nothing here decides promotion.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from controller.applying import ApiError
from controller.planning import environments as envs
from controller.planning import mirroring
from controller.reconciling.runtime import Runtime
from evaluators.base import FactError, Object
from evaluators.github import GitHubDeployments, GitHubMisconfigured, GitHubUnavailable

TOKEN_KEY: Final = "token"
MIRROR_MARGIN: Final = 20
REMOTE_LIMIT: Final = 30
MAX_REMOTE: Final = 16
MAX_CLIENTS: Final = 64


@dataclass
class Reads:
    """What one pass learned about the linked environments, and what went wrong."""

    histories: dict[str, list[Any]] = field(default_factory=dict)
    relationships: dict[str, Any] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)
    problems: list[tuple[str, str]] = field(default_factory=list)
    retry_at: datetime | None = None

    def fail(self, reason: str, message: str, retry_at: datetime | None = None) -> None:
        self.problems.append((reason, message))
        if retry_at is not None:
            self.retry_at = max(retry_at, self.retry_at or retry_at)


async def github_client(environment: Object, rt: Runtime, reads: Reads) -> GitHubDeployments | None:
    """The client for the backend project with the Secret's token; None (noted) if unusable."""
    spec, namespace = environment["spec"], environment["metadata"].get("namespace")
    backend = spec.get("backend") or {}
    project, secret_name = str(backend.get("project") or ""), backend.get("secret")
    secret_name = str(secret_name or "github-token")
    where = f"Secret {namespace}/{secret_name}"
    try:
        secret = await rt.writer.get("secrets", namespace, secret_name)
    except ApiError as exc:
        reads.fail("TokenUnavailable", f"{where}: {exc.message}")
        return None
    encoded = ((secret or {}).get("data") or {}).get(TOKEN_KEY)
    if secret is None or not encoded:
        missing = "not found" if secret is None else f"has no key {TOKEN_KEY!r}"
        reads.fail("TokenUnavailable", f"{where} {missing}")
        return None
    try:
        token = _decode(encoded)
        cache_key = (rt.github_api_url, project, hashlib.sha256(token.encode()).hexdigest())
        client = rt.github_clients.get(cache_key)
        if client is None:
            if rt.http is None:
                raise GitHubMisconfigured("github: the controller has no HTTP client")
            client = GitHubDeployments(
                rt.http, repository=project, token=token, clock=rt.clock,
                base_url=rt.github_api_url, max_retries=0,
            )  # fmt: skip
            if len(rt.github_clients) >= MAX_CLIENTS:
                rt.github_clients.pop(next(iter(rt.github_clients)))
            rt.github_clients[cache_key] = client
    except (FactError, ValueError, binascii.Error) as exc:
        reads.fail("GitHubMisconfigured", f"{where}: {exc}")
        return None
    return client


def _decode(encoded: str) -> str:
    return base64.b64decode(encoded, validate=True).decode("utf-8")


def _github_failure(reads: Reads, what: str, exc: FactError) -> None:
    if isinstance(exc, GitHubUnavailable) and exc.retry_at is not None:
        reads.fail("GitHubRateLimited", f"{what}: {exc}", exc.retry_at)
    elif isinstance(exc, GitHubUnavailable):
        reads.fail("GitHubUnavailable", f"{what}: {exc}")
    elif isinstance(exc, GitHubMisconfigured):
        reads.fail("GitHubMisconfigured", f"{what}: {exc}")
    else:
        reads.fail("GitHubRejected", f"{what}: {exc}")


async def mirror(
    github: GitHubDeployments,
    environment: Object,
    history: Sequence[Any],
    now: datetime,
    reads: Reads,
    url: str | None,
) -> None:
    """Creates the missing deployments and statuses of this environment's history, oldest first.

    ``url`` is the statuses' ``environment_url`` (annotation or dashboard), if any.
    """
    spec = environment["spec"]
    try:
        pairs = await github.deployments_with_statuses(
            environment=mirroring.github_environment(spec), task=mirroring.deployment_task(spec),
            limit=len(history) + MIRROR_MARGIN, deadline=now,
        )  # fmt: skip
        plan = mirroring.mirror_plan(
            history, pairs, spec=spec, relationship=spec.get("relationship"), environment_url=url
        )
        for step in plan:
            if isinstance(step, mirroring.CreateDeployment):
                made = await github.create_deployment(step.request, deadline=now)
                await github.create_status(int(made["id"]), step.status, deadline=now)
            else:
                await github.create_status(step.deployment_id, step.request, deadline=now)
    except envs.EnvironmentTermsError as exc:
        reads.fail("InvalidSpec", str(exc))
    except FactError as exc:
        _github_failure(reads, "mirroring", exc)


async def read_remote(
    github: GitHubDeployments,
    environment: Object,
    linked: Mapping[str, Object],
    now: datetime,
    reads: Reads,
) -> None:
    """Histories of upstreams outside the cluster, followed through payload relationships."""
    app = envs.app_name(environment["spec"])
    task = f"deploy:{app}"
    todo = [name for name in _upstream_names(environment, linked) if name not in linked]
    seen: set[str] = set()
    while todo and len(seen) < MAX_REMOTE:
        name = todo.pop(0)
        if name in seen or name in linked:
            continue
        seen.add(name)
        try:
            pairs = await github.deployments_with_statuses(
                environment=f"{app}/{name}", task=task, limit=REMOTE_LIMIT, deadline=now
            )
        except FactError as exc:
            _github_failure(reads, f"reading {name}", exc)
            continue
        reads.histories[name] = mirroring.remote_history(pairs)
        relationship = _payload_relationship(pairs)
        reads.relationships[name] = relationship
        if relationship is not None:
            todo.append(relationship["environment"])


def _upstream_names(environment: Object, linked: Mapping[str, Object]) -> list[str]:
    names: list[str] = []
    for each in [environment, *linked.values()]:
        try:
            names += [n for n in envs.promotion_terms(each).edges if n not in names]
        except envs.EnvironmentTermsError:
            continue
    return names


def _payload_relationship(pairs: Sequence[mirroring.Pair]) -> dict[str, str] | None:
    for deployment, _ in pairs:
        payload = mirroring.payload_object(deployment.get("payload")) or {}
        relationship = payload.get("relationship")
        if isinstance(relationship, dict) and relationship.get("environment"):
            kind = "Parallel" if relationship.get("type") == "Parallel" else "After"
            return {"environment": str(relationship["environment"]), "type": kind}
        return None
    return None


__all__ = ["Reads", "github_client", "mirror", "read_remote"]
