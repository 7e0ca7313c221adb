"""GitHub Deployments API client: list/create deployments and statuses over httpx.

Callers: the controller's Environment reconcile (mirroring history, reading
remote upstreams) with a client from ``evaluators._http.make_client`` and the
``Clock`` port. Must not decide anything, log, read the wall clock, follow a
link to another origin, or put the token into a URL, a message or ``repr``.

Behaviour: token auth (``Authorization: Bearer``); pagination through ``Link``
headers; conditional GETs (``If-None-Match``; a 304 reuses the cached body);
a rate-limited answer (403/429 with ``x-ratelimit-remaining: 0`` or
``retry-after``, or a secondary limit) waits until the reset; 5xx, timeouts and
connect errors are retried with exponential backoff. Every wait is bounded by
``max_wait`` and by the caller's ``deadline`` (an instant on the clock).

Errors (``evaluators.base`` tree)::

    FactUnavailable
    +-- GitHubUnavailable       5xx/timeouts after the retries, a wait past the deadline
    FactInvalid
    +-- GitHubRejected          other 4xx (409, 422): the request itself was refused
    FactSourceMisconfigured
    +-- GitHubMisconfigured     bad base URL or repository, 401, 403 (not a rate limit), 404
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from evaluators._http import MAX_RESPONSE_BYTES, Reply, TransportFailure, send_capped
from evaluators.base import (
    Clock,
    FactError,
    FactInvalid,
    FactSourceMisconfigured,
    FactUnavailable,
    cap_message,
)
from policy_engine.model.times import format_timestamp

DEFAULT_BASE_URL: Final = "https://api.github.com"
API_VERSION: Final = "2022-11-28"
PER_PAGE: Final = 100
SECONDARY_LIMIT_WAIT: Final = timedelta(seconds=60)
MAX_RATE_LIMIT_WAITS: Final = 3
_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")

Json = dict[str, Any]
DeploymentWithStatuses = tuple[Json, list[Json]]


class GitHubUnavailable(FactUnavailable):
    """GitHub did not answer usably in time; ``retry_at`` is when it may (rate limits)."""

    def __init__(self, message: str, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class GitHubRejected(FactInvalid):
    """GitHub refused the request (``status`` 409, 422, ...); retrying it unchanged fails."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class GitHubMisconfigured(FactSourceMisconfigured):
    """Base URL, repository or token is wrong (401, 403 without a rate limit, 404)."""


class _Transient(Exception):
    """One attempt failed in a way worth retrying (timeout, connect error)."""


class GitHubDeployments:
    """One repository's deployments, seen with one token; keep it to reuse its ETag cache."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        repository: str,
        token: str,
        clock: Clock,
        base_url: str = DEFAULT_BASE_URL,
        max_retries: int = 3,
        backoff: timedelta = timedelta(seconds=1),
        max_wait: timedelta = timedelta(minutes=5),
        max_pages: int = 20,
        cache_entries: int = 256,
    ) -> None:
        if not _REPOSITORY.match(repository):
            raise GitHubMisconfigured(
                f"github: repository must be owner/repo, got {cap_message(repository, 80)!r}"
            )
        token = token.strip()  # Secrets written with `echo` end in a newline
        if not token:
            raise GitHubMisconfigured(f"github {repository}: the token is empty")
        self.repository = repository
        self.base_url = _validated_base_url(base_url)
        self.where = f"github {repository}"
        self._client = client
        self._token = token
        self._clock = clock
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_wait = max_wait
        self._max_pages = max_pages
        self._cache: OrderedDict[str, tuple[str, Reply]] = OrderedDict()
        self._cache_entries = cache_entries

    def __repr__(self) -> str:
        return f"GitHubDeployments({self.base_url!r}, repository={self.repository!r})"

    async def list_deployments(
        self,
        *,
        ref: str | None = None,
        task: str | None = None,
        environment: str | None = None,
        limit: int | None = None,
        deadline: datetime | None = None,
    ) -> list[Json]:
        """Deployments newest first (GitHub's order), filtered; at most ``limit`` when given."""
        wanted = {"ref": ref, "task": task, "environment": environment}
        params = {key: value for key, value in wanted.items() if value is not None}
        return await self._pages(f"/repos/{self.repository}/deployments", params, limit, deadline)

    async def create_deployment(
        self, body: Mapping[str, Any], *, deadline: datetime | None = None
    ) -> Json:
        """POSTs a deployment; the created deployment (201)."""
        return await self._post(f"/repos/{self.repository}/deployments", body, deadline)

    async def list_statuses(
        self, deployment_id: int, *, limit: int | None = None, deadline: datetime | None = None
    ) -> list[Json]:
        """The deployment's statuses, latest first."""
        path = f"/repos/{self.repository}/deployments/{int(deployment_id)}/statuses"
        statuses = await self._pages(path, {}, limit, deadline)
        return sorted(statuses, key=lambda s: (str(s.get("created_at", "")), s["id"]), reverse=True)

    async def create_status(
        self, deployment_id: int, body: Mapping[str, Any], *, deadline: datetime | None = None
    ) -> Json:
        """POSTs a status on the deployment; the created status (201)."""
        path = f"/repos/{self.repository}/deployments/{int(deployment_id)}/statuses"
        return await self._post(path, body, deadline)

    async def deployments_with_statuses(
        self,
        *,
        ref: str | None = None,
        task: str | None = None,
        environment: str | None = None,
        limit: int | None = None,
        deadline: datetime | None = None,
        concurrency: int = 4,
    ) -> list[DeploymentWithStatuses]:
        """Each listed deployment with its statuses (latest first), ``concurrency`` at a time."""
        deployments = await self.list_deployments(
            ref=ref, task=task, environment=environment, limit=limit, deadline=deadline
        )
        gate = asyncio.Semaphore(concurrency)

        async def statuses(deployment: Json) -> list[Json]:
            async with gate:
                return await self.list_statuses(deployment["id"], deadline=deadline)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(statuses(d)) for d in deployments]
        except ExceptionGroup as failed:
            first = _first_fact_error(failed)
            if first is None:
                raise
            raise first from None
        return [(d, task.result()) for d, task in zip(deployments, tasks, strict=True)]

    async def _pages(
        self, path: str, params: Mapping[str, str], limit: int | None, deadline: datetime | None
    ) -> list[Json]:
        url: str | None = self.base_url + path
        query: Mapping[str, str] | None = {**params, "per_page": str(PER_PAGE)}
        items: list[Json] = []
        for _ in range(self._max_pages):
            if url is None or (limit is not None and len(items) >= limit):
                return items[:limit]
            reply = await self._call("GET", url, query, None, deadline)
            items.extend(self._objects(reply, path))
            url, query = self._next_page(reply, path), None
        if url is None or (limit is not None and len(items) >= limit):
            return items[:limit]
        raise FactInvalid(f"{self.where}: GET {path}: more than {self._max_pages} pages")

    async def _post(self, path: str, body: Mapping[str, Any], deadline: datetime | None) -> Json:
        reply = await self._call("POST", self.base_url + path, None, dict(body), deadline)
        document = self._json(reply, path)
        if reply.status != 201 or not isinstance(document, dict) or "id" not in document:
            raise GitHubUnavailable(f"{self.where}: POST {path}: HTTP {reply.status}, not created")
        return document

    async def _call(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        body: Json | None,
        deadline: datetime | None,
    ) -> Reply:
        """One request with rate-limit waits and bounded retries; a settled 2xx/304 reply."""
        what = f"{self.where}: {method} {urlsplit(url).path}"
        key = str(httpx.URL(url, params=params)) if method == "GET" else ""
        cached = self._cache.get(key) if key else None
        failures = rate_waits = 0
        while True:
            try:
                reply = await self._send(method, url, params, body, cached)
            except _Transient as exc:
                failure = str(exc)
            else:
                wake = _rate_limit_wake(reply, self._clock.now())
                if wake is not None:
                    rate_waits += 1
                    if rate_waits > MAX_RATE_LIMIT_WAITS:
                        raise GitHubUnavailable(f"{what}: still rate limited", retry_at=wake)
                    await self._pause(wake, deadline, f"{what}: rate limited")
                    continue
                if reply.status < 500:
                    return self._settle(reply, what, key, cached)
                failure = f"HTTP {reply.status}"
            failures += 1
            if failures > self._max_retries:
                raise GitHubUnavailable(f"{what}: {failure} after {failures} attempts")
            delay = self._backoff * (2 ** (failures - 1))
            await self._pause(self._clock.now() + delay, deadline, f"{what}: {failure}")

    async def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        body: Json | None,
        cached: tuple[str, Reply] | None,
    ) -> Reply:
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self._token}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "tidegate",
        }
        if cached is not None:
            headers["If-None-Match"] = cached[0]
        try:
            return await send_capped(
                self._client,
                method,
                url,
                where=self.where,
                headers=headers,
                params=params,
                json=body,
                limit=MAX_RESPONSE_BYTES,
            )
        except TransportFailure as exc:
            raise _Transient(self._scrub(exc.detail, 160)) from exc

    async def _pause(self, wake: datetime, deadline: datetime | None, why: str) -> None:
        now = self._clock.now()
        if deadline is not None and wake > deadline:
            raise GitHubUnavailable(
                f"{why}; the next attempt at {format_timestamp(wake)} is past the deadline",
                retry_at=wake,
            )
        if wake - now > self._max_wait:
            raise GitHubUnavailable(
                f"{why}; the next attempt at {format_timestamp(wake)} is over the "
                f"{self._max_wait} bound",
                retry_at=wake,
            )
        await self._clock.sleep_until(wake)

    def _settle(self, reply: Reply, what: str, key: str, cached: tuple[str, Reply] | None) -> Reply:
        if reply.status == 304:
            if cached is None:
                raise FactInvalid(f"{what}: HTTP 304 for a request without a cached answer")
            self._cache.move_to_end(key)
            return cached[1]
        if 200 <= reply.status < 300:
            etag = reply.headers.get("etag")
            if key and etag:
                self._remember(key, etag, reply)
            return reply
        detail = self._detail(reply)
        if reply.status == 401:
            raise GitHubMisconfigured(f"{what}: HTTP 401 (bad credentials){detail}")
        if reply.status == 403:
            raise GitHubMisconfigured(f"{what}: HTTP 403 (forbidden){detail}")
        if reply.status == 404:
            raise GitHubMisconfigured(
                f"{what}: HTTP 404 (no such repository or deployment, or the token cannot see it)"
            )
        if 400 <= reply.status < 500:
            raise GitHubRejected(f"{what}: HTTP {reply.status}{detail}", reply.status)
        raise FactInvalid(f"{what}: unexpected HTTP {reply.status}")

    def _remember(self, key: str, etag: str, reply: Reply) -> None:
        self._cache[key] = (etag, reply)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)

    def _objects(self, reply: Reply, path: str) -> list[Json]:
        document = self._json(reply, path)
        if not isinstance(document, list) or not all(
            isinstance(item, dict) and isinstance(item.get("id"), int) for item in document
        ):
            raise FactInvalid(f"{self.where}: GET {path}: expected a list of objects with ids")
        return document

    def _json(self, reply: Reply, path: str) -> Any:
        try:
            return json.loads(reply.body)
        except ValueError as exc:
            raise FactInvalid(
                f"{self.where}: {path}: malformed JSON (HTTP {reply.status})"
            ) from exc

    def _next_page(self, reply: Reply, path: str) -> str | None:
        links: dict[str, str] = {
            rel: url for url, rel in _LINK.findall(reply.headers.get("link", ""))
        }
        following = links.get("next")
        if following is None:
            return None
        base, there = urlsplit(self.base_url), urlsplit(following)
        same_origin = (there.scheme, there.netloc) == (base.scheme, base.netloc)
        if not same_origin or not there.path.startswith(base.path):
            raise FactInvalid(f"{self.where}: GET {path}: next-page link leaves {self.base_url}")
        return following

    def _detail(self, reply: Reply) -> str:
        try:
            message = json.loads(reply.body).get("message")
        except (ValueError, AttributeError):
            return ""
        return f": {self._scrub(str(message), 120)}" if message else ""

    def _scrub(self, text: str, limit: int) -> str:
        return cap_message(text.replace(self._token, "***"), limit)


def _rate_limit_wake(reply: Reply, now: datetime) -> datetime | None:
    """When a rate-limited reply says to try again; None when it is not rate limited."""
    if reply.status not in (403, 429):
        return None
    headers = reply.headers
    retry_after = headers.get("retry-after", "").strip()
    if retry_after.isdigit():
        return now + timedelta(seconds=int(retry_after))
    reset = headers.get("x-ratelimit-reset", "").strip()
    if headers.get("x-ratelimit-remaining", "").strip() == "0" and reset.isdigit():
        return max(now, datetime.fromtimestamp(int(reset), UTC))
    if reply.status == 429 or b"secondary rate limit" in reply.body.lower():
        return now + SECONDARY_LIMIT_WAIT
    return None


def _first_fact_error(group: BaseExceptionGroup[Any]) -> FactError | None:
    for exc in group.exceptions:
        if isinstance(exc, FactError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            nested = _first_fact_error(exc)
            if nested is not None:
                return nested
    return None


def _validated_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash; GitHubMisconfigured unless plain http(s)."""
    try:
        parts = urlsplit(base_url)
        _ = parts.port
    except ValueError as exc:
        raise GitHubMisconfigured("github: base URL is not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GitHubMisconfigured(
            f"github: base URL must be http(s)://host[:port][/path], got scheme "
            f"{parts.scheme[:20]!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise GitHubMisconfigured("github: base URL must not contain credentials (user:password@)")
    if parts.query or parts.fragment:
        raise GitHubMisconfigured("github: base URL must not have a query or fragment")
    return base_url.rstrip("/")


__all__ = [
    "DEFAULT_BASE_URL",
    "DeploymentWithStatuses",
    "GitHubDeployments",
    "GitHubMisconfigured",
    "GitHubRejected",
    "GitHubUnavailable",
]
