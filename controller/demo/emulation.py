"""The demo's Kubernetes API: kmock's stateful emulator plus the glue the controller needs.

Callers: ``demo.running`` (starts it on loopback with ``serve``), ``demo.flux`` and
``demo.driver`` (in-process reads and writes through ``create``/``patch``/``get``).
kmock (``kmock.KubernetesEmulator``) provides the HTTP server, request parsing,
API discovery (``/api``, ``/apis``, group and version listings from
``resources``), the object store with its history (``objects``) and the
per-resource event buses. It keeps objects as plain merged dicts, so this
module adds what the controller relies on: resourceVersions and generations,
409 on stale preconditions, the ``status`` subresource, JSON / merge / apply
patches, label selectors on LIST, WATCH and DELETE-collection, watches that
resume from a resourceVersion without gaps, ``generateName`` and the namespace
paths kmock's parser cannot read. It must not decide anything for the
controller; it serves whatever is written. No authentication (loopback only).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp.web
import kmock
from kmock._internal import enums, rendering

from controller.demo import objects
from controller.demo.objects import ApiProblem, Obj
from controller.demo.resources import Served, served
from evaluators.base import Clock
from policy_engine.model.times import format_timestamp

_NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(?:/(?P<name>[^/]+))?/?$")
Key = tuple[kmock.resource, str | None, str]


class EmulatedApi(kmock.KubernetesEmulator):
    """An in-memory Kubernetes API serving ``resources.served()`` (no auth, loopback)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.kinds: dict[kmock.resource, Served] = {}
        self.by_key: dict[str, Served] = {}
        for kind in served():
            res = kmock.resource(kind.group, kind.version, kind.plural)
            self.kinds[res], self.by_key[kind.key] = kind, kind
            self.resources[res] = kmock.ResourceInfo(
                kind=kind.kind,
                singular=kind.kind.lower(),
                namespaced=kind.namespaced,
                shortnames=kind.short_names,
                verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
                subresources={"status"} if kind.status else set(),
            )
        self.version = 0
        self.writes = 0
        self.inflight = 0
        self.requests = 0
        self._names = itertools.count(1)
        self._log: dict[kmock.resource, list[tuple[int, Obj]]] = {}
        self._changed = asyncio.Event()
        self.listeners: list[Callable[[str, Obj], None]] = []
        """Called with (kind key, event) for every change, in order (the demo's recorder)."""

    # -- in-process access (simulated Flux, the scenario driver) --------------------------------

    def get_object(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        """A copy of the stored object, or None."""
        res = self._res(kind)
        found = self._find((res, namespace if self.kinds[res].namespaced else None, name))
        return copy.deepcopy(found) if found is not None else None

    def list_objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        """Copies of every stored object of ``kind`` (in ``namespace``)."""
        res = self._res(kind)
        return [copy.deepcopy(o) for o in self._select(res, namespace, None)]

    async def create_object(self, kind: str, body: Obj) -> Obj:
        """Creates ``body`` as ``kind`` (status too, as the object's own controller would)."""
        res = self._res(kind)
        created = await self._create(res, body.get("metadata", {}).get("namespace"), body)
        if "status" in body and self.kinds[res].status:
            return await self.patch_object(kind, created, {"status": body["status"]}, "status")
        return created

    async def patch_object(
        self, kind: str, target: Obj, patch: Obj, subresource: str | None = None
    ) -> Obj:
        """A merge patch of ``target`` (an object or its metadata's name/namespace)."""
        meta = target.get("metadata", target)
        res = self._res(kind)
        return await self._patch(
            res, meta.get("namespace"), meta["name"], subresource, patch, objects.MERGE_PATCH
        )

    async def changed(self, timeout: float) -> None:
        """Returns at the next write, or after ``timeout`` seconds."""
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return

    def touch(self) -> None:
        """Counts a request served elsewhere in the demo (registry, alerts) as activity."""
        self.requests += 1

    def _res(self, kind: str) -> kmock.resource:
        info = self.by_key[kind]
        return kmock.resource(info.group, info.version, info.plural)

    # -- HTTP ---------------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """kmock reads ``/api/v1/namespaces[/<name>]`` as a namespace, not a resource: those
        requests are parsed here; everything else goes through kmock."""
        match = _NAMESPACE_PATH.match(raw_request.path)
        if match is None:
            return await super().__call__(raw_request)
        name = match["name"]
        method = enums.method(raw_request.method)
        action = enums.action.WATCH if raw_request.query.get("watch") == "true" else None
        request = rendering.Request(
            method=raw_request.method,
            url=raw_request.url,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            body=await raw_request.read(),
            action=action
            or (enums.action.FETCH if name and method == enums.method.GET else None)
            or (enums.action.LIST if method == enums.method.GET else None),
            resource=kmock.resource("", "v1", "namespaces"),
            name=name,
            raw_request=raw_request,
        )
        return await self._handle(request)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        self.requests += 1
        res = request.resource
        if res is None or res not in self.kinds:
            return await kmock.RawHandler._handle(self, request)  # discovery, unknown paths
        if request.action == enums.action.WATCH:
            return await kmock.RawHandler._handle(self, request)  # streamed by _serve_watch
        try:
            async with self._busy():
                status, body = await self._serve(res, request)
        except ApiProblem as problem:
            status, body = problem.status, _status_of(problem)
        return aiohttp.web.json_response(body, status=status)

    async def _serve(self, res: kmock.resource, request: rendering.Request) -> tuple[int, Obj]:
        method, name, params = str(request.method.value).upper(), request.name, request.params
        namespace = request.namespace if self.kinds[res].namespaced else None
        content_type = request.headers.get("Content-Type", "application/json")
        if method == "GET" and name:
            found = self._find((res, namespace, name))
            if found is None:
                raise _not_found(res, name)
            return 200, found
        if method == "GET":
            return 200, self._list_body(res, namespace, params)
        body = objects.decode(request.body, content_type) if request.body else None
        if method == "POST" and not name:
            return 201, await self._create(res, namespace, _object(body))
        if method == "PATCH" and name:
            patched = await self._patch(
                res, namespace, name, request.subresource, body, content_type
            )
            return 200, patched
        if method == "PUT" and name:
            return 200, await self._replace(res, namespace, name, request.subresource, body)
        if method == "DELETE" and name:
            return 200, await self._delete(res, namespace, name)
        if method == "DELETE":
            selector = objects.selector_matcher(params.get("labelSelector"))
            matching = list(self._select(res, namespace, selector))
            for obj in matching:
                await self._delete(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            return 200, self._list_body(res, namespace, params)
        raise ApiProblem(405, "MethodNotAllowed", f"{method} is not supported here")

    @asynccontextmanager
    async def _busy(self) -> AsyncIterator[None]:
        self.inflight += 1
        try:
            yield
        finally:
            self.inflight -= 1

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        """kmock's listing, with the core group's ``groupVersion`` spelled ``v1``."""
        listing = await super()._serve_version(request)
        if isinstance(listing, dict) and listing.get("groupVersion") == "/v1":
            listing["groupVersion"] = "v1"
        return listing

    # -- writes ---------------------------------------------------------------------------------

    async def _create(self, res: kmock.resource, namespace: str | None, body: Obj) -> Obj:
        info = self.kinds[res]
        meta = dict(body.get("metadata") or {})
        namespace = (namespace or meta.get("namespace") or "default") if info.namespaced else None
        name = meta.get("name") or (
            f"{meta['generateName']}{next(self._names):05d}" if meta.get("generateName") else None
        )
        if not name:
            raise ApiProblem(422, "Invalid", "metadata.name or metadata.generateName is required")
        async with self._lock:
            if self._find((res, namespace, name)) is not None:
                raise ApiProblem(409, "AlreadyExists", f'{info.plural} "{name}" already exists')
            obj = copy.deepcopy(body)
            obj["apiVersion"], obj["kind"] = info.api_version, info.kind
            meta.update(name=name, uid=str(uuid.uuid4()), generation=1)
            meta["creationTimestamp"] = format_timestamp(self.clock.now().replace(microsecond=0))
            if namespace is not None:
                meta["namespace"] = namespace
            obj["metadata"] = meta
            if info.status:
                obj.pop("status", None)
            return await self._store(res, (res, namespace, name), obj, "ADDED")

    async def _patch(
        self,
        res: kmock.resource,
        namespace: str | None,
        name: str,
        subresource: str | None,
        patch: Any,
        content_type: str,
    ) -> Obj:
        def change(current: Obj) -> Obj:
            return objects.patched(current, patch, content_type)

        return await self._update(res, (res, namespace, name), subresource, change)

    async def _replace(
        self, res: kmock.resource, namespace: str | None, name: str, sub: str | None, body: Any
    ) -> Obj:
        def change(current: Obj) -> Obj:
            proposed = _object(body)
            objects.check_version(current, proposed.get("metadata", {}).get("resourceVersion"))
            return proposed

        return await self._update(res, (res, namespace, name), sub, change)

    async def _update(
        self, res: kmock.resource, key: Key, sub: str | None, change: Callable[[Obj], Obj]
    ) -> Obj:
        async with self._lock:
            current = self._find(key)
            if current is None:
                raise _not_found(res, key[2])
            proposed = change(current)
            has_status = self.kinds[res].status
            new = objects.updated(current, proposed, subresource=sub, has_status=has_status)
            if new == current:
                return current
            meta = new["metadata"]
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                return await self._remove(res, key, new)
            return await self._store(res, key, new, "MODIFIED")

    async def _delete(self, res: kmock.resource, namespace: str | None, name: str) -> Obj:
        key = (res, namespace, name)
        async with self._lock:
            current = self._find(key)
            if current is None:
                raise _not_found(res, name)
            if current["metadata"].get("finalizers"):
                current["metadata"].setdefault("deletionTimestamp", format_timestamp(
                    self.clock.now().replace(microsecond=0)
                ))  # fmt: skip
                return await self._store(res, key, current, "MODIFIED")
            return await self._remove(res, key, current)

    async def _store(self, res: kmock.resource, key: Key, obj: Obj, kind: str) -> Obj:
        """Stores ``obj`` under a new resourceVersion and tells the watchers (lock held)."""
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        if key in self.objects and not self.objects[key].deleted:
            self.objects[key].history.append(obj)
        else:
            self.objects[key] = obj
        await self._publish(res, kind, obj)
        return copy.deepcopy(obj)

    async def _remove(self, res: kmock.resource, key: Key, obj: Obj) -> Obj:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[key].delete()
        await self._publish(res, "DELETED", obj)
        return copy.deepcopy(obj)

    async def _publish(self, res: kmock.resource, kind: str, obj: Obj) -> None:
        event = {"type": kind, "object": copy.deepcopy(obj)}
        self._log.setdefault(res, []).append((self.version, event))
        await self._buses[res].put(event)
        for listener in self.listeners:
            listener(self.kinds[res].key, event)
        self.writes += 1
        self._changed.set()
        self._changed = asyncio.Event()

    # -- reads ----------------------------------------------------------------------------------

    def _find(self, key: Key) -> Obj | None:
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def _select(
        self, res: kmock.resource, namespace: str | None, selector: Callable[..., bool] | None
    ) -> list[Obj]:
        found = []
        for (r, ns, _name), obj in self.objects.items():
            if r != res or obj.deleted or (namespace is not None and ns != namespace):
                continue
            raw = obj.raw
            if selector is None or selector(raw.get("metadata", {}).get("labels") or {}):
                found.append(raw)
        return sorted(
            found, key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"])
        )

    def _list_body(
        self, res: kmock.resource, namespace: str | None, params: Mapping[str, str]
    ) -> Obj:
        info = self.kinds[res]
        selector = objects.selector_matcher(params.get("labelSelector"))
        names = _field_names(params.get("fieldSelector"))
        items = [
            copy.deepcopy(o)
            for o in self._select(res, namespace, selector)
            if names is None or o["metadata"]["name"] in names
        ]
        return {
            "apiVersion": info.api_version,
            "kind": f"{info.kind}List",
            "metadata": {"resourceVersion": str(self.version)},
            "items": items,
        }

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        """Events after the requested resourceVersion (else every object as ADDED), then live."""
        yield b""
        res = request.resource
        assert res is not None
        info = self.kinds[res]
        namespace = request.namespace if info.namespaced else None
        selector = objects.selector_matcher(request.params.get("labelSelector"))
        since = request.params.get("resourceVersion") or "0"
        async with self._lock:
            log = self._log.get(res, [])
            if since.isdigit() and int(since) > 0 and (not log or log[0][0] <= int(since) + 1):
                backlog = [copy.deepcopy(e) for v, e in log if v > int(since)]
            else:
                current = self._select(res, namespace, None)
                backlog = [{"type": "ADDED", "object": copy.deepcopy(o)} for o in current]
            mark = await self._buses[res].mark()
        try:
            for event in backlog:
                if _wanted(event, namespace, selector):
                    yield event
            async for event in self._buses[res].stream(since=mark):
                if _wanted(event, namespace, selector):
                    yield event
        finally:
            await self._buses[res].unmark(mark)


def _wanted(event: Obj, namespace: str | None, selector: Callable[..., bool]) -> bool:
    meta = event.get("object", {}).get("metadata", {})
    if namespace is not None and meta.get("namespace") != namespace:
        return False
    return bool(selector(meta.get("labels") or {}))


def _field_names(selector: str | None) -> set[str] | None:
    """``metadata.name=<n>`` field selectors (the only kind kubectl and the clients send)."""
    if not selector:
        return None
    names = set()
    for part in selector.split(","):
        field, _, value = part.partition("=")
        if field.strip() == "metadata.name":
            names.add(value.strip("= "))
    return names or None


def _object(body: Any) -> Obj:
    if not isinstance(body, dict):
        raise ApiProblem(400, "BadRequest", "the body must be a JSON object")
    return body


def _not_found(res: kmock.resource, name: str) -> ApiProblem:
    return ApiProblem(404, "NotFound", f'{res.plural}.{res.group} "{name}" not found')


def _status_of(problem: ApiProblem) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": problem.status,
        "reason": problem.reason,
        "message": problem.message,
    }
