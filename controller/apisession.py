"""ApiSession: one HTTP client to the Kubernetes API — discovery, reads, paged LISTs, errors.

Callers: ``applying.Writer`` (which adds the writes of a Plan), ``main`` and
``record`` (the priming LISTs), the HealthCheck reconcile (inventory reads).
Maps every failure to the ``ApiError`` tree; never decides anything.

Error tree::

    ApiError(Exception)            .status, .retryable, .retry_after, .kind
    +-- ApplyError                 a write failed; .action names it
    |   +-- ApplyConflict          409: the object changed under us; re-plan now
    +-- KindUnavailable            the kind is not served (its CRD is absent)

409 is a conflict; 401, 429, 5xx, timeouts and connection errors are
retryable; 400, 403, 404, 422 and the rest are permanent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import httpx
import kopf

from controller import credentials
from controller.api.actions import ObjectKey
from controller.metrics import Metrics
from evaluators.base import Clock, ObjectReader, cap_message

USER_AGENT = "tidegate/0.1.0"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
PAGE_SIZE = 500
LIST_RESTARTS = 3
"""A LIST whose continue token expired (410 Gone) starts again from the first page."""


class ApiError(Exception):
    """A Kubernetes API request failed; ``retryable`` says whether trying again can help."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.message = cap_message(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(self.message)

    @property
    def kind(self) -> str:
        """``conflict``, ``retryable`` or ``permanent`` (the metrics label)."""
        if self.status == 409:
            return "conflict"
        return "retryable" if self.retryable else "permanent"


class ApplyError(ApiError):
    """A planned write failed; ``action`` is the failing action's key."""

    def __init__(self, message: str, *, action: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.action = action


class ApplyConflict(ApplyError):
    """409: the object changed since it was observed; re-plan now."""


class KindUnavailable(ApiError):
    """The API does not serve this kind (its CRD is not installed)."""


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """How the API serves one kind: group, version, plural, Kind and scope."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return base + (f"/{quote(name, safe='')}" if name else "")


class ApiSession:
    """Reads through one ``httpx.AsyncClient``; discovery results are cached per kind."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        clock: Clock,
        *,
        reader: ObjectReader | None = None,
        metrics: Metrics | None = None,
        instance: str = "tidegate",
    ) -> None:
        self._client = client
        self._clock = clock
        self.reader = reader
        self.metrics = metrics
        self._instance = instance
        self._resources: dict[str, ResourceInfo] = {}

    @classmethod
    def from_connection_info(
        cls,
        info: kopf.ConnectionInfo,
        clock: Clock,
        *,
        token_path: Path | None = None,
        **options: Any,
    ) -> Self:
        """A Writer using the same server and credentials as kopf's ``info``.

        With ``token_path`` the bearer token is re-read from that file whenever it
        changes (rotated service-account tokens).
        """
        headers = {"User-Agent": USER_AGENT, **info.as_http_headers()}
        if token_path is not None:
            headers.pop("Authorization", None)
        client = httpx.AsyncClient(
            base_url=info.server,
            verify=info.as_ssl_context(),
            headers=headers,
            auth=credentials.TokenFileAuth(token_path) if token_path is not None else None,
            timeout=TIMEOUT,
        )
        return cls(client, clock, **options)

    @classmethod
    def from_kubeconfig(
        cls, path: Path, clock: Clock, context: str | None = None, **options: Any
    ) -> Self:
        """A Writer for ``context`` of the kubeconfig at ``path``."""
        info = credentials.from_kubeconfig(path, context)
        return cls.from_connection_info(info, clock, **options)

    async def aclose(self) -> None:
        """Closes the HTTP client."""
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- reads ---------------------------------------------------------------------------------

    async def list_objects(
        self, kind: str, namespace: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Every object of ``kind`` (in ``namespace``), paged; with the LIST's resourceVersion.

        Raises:
            KindUnavailable: the kind is not served.
            ApiError: the LIST failed (403 without RBAC, 5xx, …).
        """
        info = await self.resource(kind)
        for attempt in range(LIST_RESTARTS + 1):
            try:
                return await self._list_pages(info, namespace)
            except ApiError as exc:  # 410: the continue token expired between pages
                if exc.status != 410 or attempt == LIST_RESTARTS:
                    raise
        raise AssertionError("unreachable")

    async def _list_pages(
        self, info: ResourceInfo, namespace: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": str(PAGE_SIZE)}
        while True:
            page = await self._request("GET", info.path(namespace), params=params)
            for item in page.get("items") or []:
                item.setdefault("apiVersion", info.api_version)
                item.setdefault("kind", info.kind)
                items.append(item)
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return items, meta.get("resourceVersion")
            params = {"limit": str(PAGE_SIZE), "continue": str(meta["continue"])}

    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object from the API, or None when it does not exist."""
        return await self._get(await self.resource(kind), namespace, name)

    async def get_by_kind(
        self, group: str, version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """An object named by inventory coordinates (``group``, ``version``, ``Kind``), or None.

        Raises:
            KindUnavailable: ``group/version`` does not serve ``kind``.
            ApiError: the read failed (403 without RBAC, 5xx, …).
        """
        key = f"{kind}.{version}.{group}"
        info = self._resources.get(key)
        if info is None:
            info = _find(await self._listing(group, version, key), group, version, kind=kind)
            self._resources[key] = info
        return await self._get(info, namespace, name)

    async def _get(
        self, info: ResourceInfo, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        try:
            return await self._request("GET", info.path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def resource(self, kind: str) -> ResourceInfo:
        """How ``kind`` (``<plural>.<group>`` or core ``<plural>``) is served; cached.

        Raises:
            KindUnavailable: the group or the resource is not served.
        """
        known = self._resources.get(kind)
        if known is not None:
            return known
        plural, _, group = kind.partition(".")
        version = "v1"
        if group:
            discovered = await self._discovery(f"/apis/{group}", kind)
            version = str((discovered.get("preferredVersion") or {}).get("version") or "")
        info = _find(await self._listing(group, version, kind), group, version, plural=plural)
        self._resources[kind] = info
        return info

    async def _listing(self, group: str, version: str, what: str) -> dict[str, Any]:
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        return await self._discovery(path, what)

    async def _discovery(self, path: str, what: str) -> dict[str, Any]:
        try:
            return await self._request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                raise KindUnavailable(f"{what} is not served by the API", status=404) from exc
            raise

    async def _object_path(self, key: ObjectKey, subresource: str | None = None) -> str:
        path = (await self.resource(key.kind)).path(key.namespace, key.name)
        return f"{path}/{subresource}" if subresource else path

    async def _request(
        self,
        method: str,
        path: str,
        body: object | None = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            content, headers["Content-Type"] = json.dumps(body).encode(), content_type
        try:
            response = await self._client.request(
                method, path, content=content, headers=headers, params=params
            )
        except httpx.TimeoutException as exc:
            raise ApiError(f"{method} {path}: timed out", retryable=True) from exc
        except httpx.TransportError as exc:
            raise ApiError(f"{method} {path}: {type(exc).__name__}", retryable=True) from exc
        if response.is_success:
            return dict(response.json()) if response.content else {}
        raise _error_of(method, path, response)


def _find(
    listing: Mapping[str, Any],
    group: str,
    version: str,
    *,
    plural: str | None = None,
    kind: str | None = None,
) -> ResourceInfo:
    """The resource named ``plural`` (or of ``kind``) in an API discovery listing."""
    for resource in listing.get("resources") or []:
        name = str(resource.get("name") or "")
        if "/" not in name and (name == plural or resource.get("kind") == kind):
            return ResourceInfo(
                group, version, name, str(resource.get("kind")), bool(resource.get("namespaced"))
            )
    wanted = plural or kind
    raise KindUnavailable(f"{wanted} is not served by {group or 'core'}/{version}")


def _error_of(method: str, path: str, response: httpx.Response) -> ApiError:
    status = response.status_code
    try:
        message = str(response.json().get("message") or response.reason_phrase)
    except (ValueError, AttributeError):
        message = response.reason_phrase or f"HTTP {status}"
    text = f"{method} {path}: {status} {message}"
    retry_after = _retry_after(response.headers.get("Retry-After"))
    if status == 409:
        return ApplyConflict(text, status=status, retryable=True, retry_after=retry_after)
    retryable = status in (401, 429) or status >= 500
    return ApiError(text, status=status, retryable=retryable, retry_after=retry_after)


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def as_apply_error(error: ApiError, action: str) -> ApplyError:
    if isinstance(error, ApplyError):
        error.action = action
        return error
    converted = ApplyError(
        error.message,
        action=action,
        status=error.status,
        retryable=error.retryable,
        retry_after=error.retry_after,
    )
    converted.__cause__ = error
    return converted
