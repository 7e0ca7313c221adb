"""Writer: runs a Plan's actions against the Kubernetes API and maps API errors (ARCHITECTURE §5).

Callers: ``reconciling`` (``Writer.apply``), ``main`` (credentials, the priming
LIST through ``list_objects``). It must not decide: every action is executed
exactly as planned, in order, stopping at the first failure. Events are best
effort: logged, never failing a plan. Messages are capped and carry no secrets.

Error tree::

    ApiError(Exception)            .status, .retryable, .retry_after, .kind
    +-- ApplyError                 a write failed; .action names it
    |   +-- ApplyConflict          409: the object changed under us; re-plan now
    +-- KindUnavailable            the kind is not served (its CRD is absent)

409 is a conflict; 401, 429, 5xx, timeouts and connection errors are
retryable; 400, 403, 404, 422 and the rest are permanent (``Stalled``/
``ApplyRejected`` upstream). This module is over 400 lines because discovery,
the error mapping and the six action kinds belong to one boundary.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import kopf

from controller import credentials, patching
from controller.api.actions import (
    FIELD_MANAGER,
    Action,
    ApplySubstitute,
    CreateObject,
    DeleteCollection,
    DeleteObject,
    JsonPatch,
    MergePatch,
    ObjectKey,
    PatchStatus,
    Plan,
    PostEvent,
    RemoveAnnotations,
    SetSourceTag,
    WriteStatus,
)
from controller.metrics import Metrics
from evaluators.base import Clock, ObjectReader, cap_message

LOG = logging.getLogger("tidegate.apply")
USER_AGENT = "tidegate/0.1.0"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
PAGE_SIZE = 500
LIST_RESTARTS = 3
"""A LIST whose continue token expired (410 Gone) starts again from the first page."""
EVENT_MESSAGE_LIMIT = 1024
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


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
class ApplyOutcome:
    """What ``Writer.apply`` did, action keys in plan order."""

    applied: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    """Actions with nothing left to do (one-shot annotations already consumed)."""
    failed_events: tuple[str, ...] = ()
    not_run: tuple[str, ...] = ()
    """Actions after the failing one."""
    error: ApplyError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


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


# -- the writer ----------------------------------------------------------------------------------


class Writer:
    """Writes plans through one ``httpx.AsyncClient``; discovery results are cached per kind."""

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
    ) -> Writer:
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
    ) -> Writer:
        """A Writer for ``context`` of the kubeconfig at ``path``."""
        info = credentials.from_kubeconfig(path, context)
        return cls.from_connection_info(info, clock, **options)

    async def aclose(self) -> None:
        """Closes the HTTP client."""
        await self._client.aclose()

    async def __aenter__(self) -> Writer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- plans ---------------------------------------------------------------------------------

    async def apply(self, plan: Plan) -> ApplyOutcome:
        """Runs ``plan.actions`` in order; stops at the first failure (events never fail)."""
        applied: list[str] = []
        skipped: list[str] = []
        failed_events: list[str] = []
        for index, action in enumerate(plan.actions):
            if isinstance(action, PostEvent):
                (applied if await self._post_event(action) else failed_events).append(action.key)
                continue
            try:
                done = await self._run(action)
            except ApiError as exc:
                error = _as_apply_error(exc, action.key)
                if self.metrics is not None:
                    self.metrics.count_apply_error(error.kind)
                LOG.warning("%s failed (%s): %s", action.key, error.kind, error.message)
                rest = tuple(a.key for a in plan.actions[index + 1 :])
                return ApplyOutcome(
                    tuple(applied), tuple(skipped), tuple(failed_events), rest, error
                )
            (applied if done else skipped).append(action.key)
        return ApplyOutcome(tuple(applied), tuple(skipped), tuple(failed_events))

    async def _run(self, action: Action) -> bool:
        if isinstance(action, WriteStatus):
            await self._write_status(action)
        elif isinstance(action, PatchStatus):
            await self._patch_status(action)
        elif isinstance(action, ApplySubstitute):
            await self._apply_substitute(action)
        elif isinstance(action, SetSourceTag):
            await self._set_source_tag(action)
        elif isinstance(action, RemoveAnnotations):
            return await self._remove_annotations(action)
        elif isinstance(action, CreateObject | MergePatch | DeleteObject):
            return await self._object_action(action)
        elif isinstance(action, JsonPatch | DeleteCollection):
            return await self._patch_or_delete_all(action)
        else:
            raise ApplyError(f"unknown action {type(action).__name__}", action=str(action))
        return True

    async def _object_action(self, action: CreateObject | MergePatch | DeleteObject) -> bool:
        """Create, merge-patch or delete a whole object (gates owned by schedules)."""
        if isinstance(action, CreateObject):
            path = (await self.resource(action.kind)).path(action.namespace)
            try:
                await self._request("POST", path, dict(action.body))
            except ApiError as exc:
                if exc.status == 409 and action.body.get("metadata", {}).get("name"):
                    return False  # already created by an earlier pass
                raise
            return True
        if isinstance(action, MergePatch):
            await self._request(
                "PATCH", await self._object_path(action.target), dict(action.patch), MERGE_PATCH
            )
            return True
        try:
            body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
            await self._request("DELETE", await self._object_path(action.target), body)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def _patch_or_delete_all(self, action: JsonPatch | DeleteCollection) -> bool:
        """A JSON patch (a failed ``test`` op: skipped) or a labelled collection delete."""
        if isinstance(action, DeleteCollection):
            request = patching.delete_collection(action)
            path = (await self.resource(action.kind)).path(action.namespace)
        else:
            request = patching.json_patch(action)
            path = await self._object_path(action.target, action.subresource)
        try:
            await self._request(
                request.method, path, request.body, request.content_type, request.params
            )
        except ApiError as exc:
            if isinstance(action, JsonPatch) and exc.status == 422 and patching.guarded(action):
                return False
            raise
        return True

    async def _write_status(self, action: WriteStatus) -> None:
        path = await self._object_path(action.target, "status")
        rv = action.resource_version
        patch = [
            {"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/status", "value": dict(action.status)},
        ]
        await self._request("PATCH", path, patch, JSON_PATCH)

    async def _patch_status(self, action: PatchStatus) -> None:
        path = await self._object_path(action.target, "status")
        body = {
            "metadata": {"resourceVersion": action.resource_version},
            "status": dict(action.changes),
        }
        await self._request("PATCH", path, body, MERGE_PATCH)

    async def _apply_substitute(self, action: ApplySubstitute) -> None:
        """SSA of one variable, under a field manager of its own.

        One manager per variable: an apply omitting a field its manager applied
        before deletes that field, so a shared manager would make two variables
        of one Kustomization erase each other.
        """
        spec = {"postBuild": {"substitute": {action.variable: action.value}}}
        key = ObjectKey(_KUSTOMIZATIONS, action.namespace, action.name)
        manager = f"{FIELD_MANAGER}-substitute-{action.variable}"[:128]
        await self._server_side_apply(key, spec, manager)

    async def _set_source_tag(self, action: SetSourceTag) -> None:
        key = ObjectKey(_OCIREPOSITORIES, action.namespace, action.name)
        await self._server_side_apply(key, {"ref": {"tag": action.tag}}, FIELD_MANAGER)

    async def _server_side_apply(self, key: ObjectKey, spec: dict[str, Any], manager: str) -> None:
        """Forced SSA of ``spec`` fields, never creating the object.

        ``metadata.uid`` (from the stores, else one GET) makes the apiserver refuse
        with 409 instead of creating an object that has gone.
        """
        info = await self.resource(key.kind)
        path = info.path(key.namespace, key.name)
        metadata = {"name": key.name, "namespace": key.namespace, "uid": await self._uid(key, path)}
        body = {"apiVersion": info.api_version, "kind": info.kind, "metadata": metadata}
        body["spec"] = spec
        params = {"fieldManager": manager, "force": "true"}
        await self._request("PATCH", path, body, APPLY_PATCH, params)

    async def _uid(self, key: ObjectKey, path: str) -> str:
        seen = self.reader.get(key.kind, key.namespace, key.name) if self.reader else None
        if seen is None and self.reader is None:
            seen = await self._request("GET", path)
        uid = ((seen or {}).get("metadata") or {}).get("uid")
        if not uid:
            raise ApiError(f"{key} is gone; not applying to it", status=404)
        return str(uid)

    async def _remove_annotations(self, action: RemoveAnnotations) -> bool:
        """Removes each key only if it still holds the value seen; False when none was left."""
        path = await self._object_path(action.target)
        removed = False
        for key, value in sorted(action.expected.items()):
            pointer = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
            patch = [
                {"op": "test", "path": pointer, "value": value},
                {"op": "remove", "path": pointer},
            ]
            try:
                await self._request("PATCH", path, patch, JSON_PATCH)
            except ApiError as exc:
                if exc.status != 422:  # a failed test or a missing key: already consumed
                    raise
                continue
            removed = True
        return removed

    async def _post_event(self, action: PostEvent) -> bool:
        try:
            info = await self.resource(action.target.kind)
            namespace = action.target.namespace if info.namespaced else None
            await self._request(
                "POST", f"/api/v1/namespaces/{namespace or 'default'}/events",
                self._event_body(action, info, namespace),
            )  # fmt: skip
        except ApiError as exc:
            if self.metrics is not None:
                self.metrics.count_apply_error(exc.kind)
            LOG.warning("event %s not posted: %s", action.key, exc.message)
            return False
        return True

    def _event_body(
        self, action: PostEvent, info: ResourceInfo, namespace: str | None
    ) -> dict[str, Any]:
        target = action.target
        involved: dict[str, Any] = {
            "apiVersion": info.api_version, "kind": info.kind, "name": target.name,
        }  # fmt: skip
        if namespace:
            involved["namespace"] = namespace
        seen = self.reader.get(target.kind, namespace, target.name) if self.reader else None
        meta = (seen or {}).get("metadata") or {}
        for field, source in (("uid", "uid"), ("resourceVersion", "resourceVersion")):
            if meta.get(source):
                involved[field] = meta[source]
        stamp = self._clock.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{target.name}.", "namespace": namespace or "default"},
            "involvedObject": involved,
            "type": action.type,
            "reason": action.reason,
            "message": cap_message(action.message, EVENT_MESSAGE_LIMIT),
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": self._instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }

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


_KUSTOMIZATIONS = "kustomizations.kustomize.toolkit.fluxcd.io"
_OCIREPOSITORIES = "ocirepositories.source.toolkit.fluxcd.io"


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


def _as_apply_error(error: ApiError, action: str) -> ApplyError:
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
