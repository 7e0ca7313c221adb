"""Writer: runs a Plan's actions against the Kubernetes API (ARCHITECTURE §5).

Callers: ``reconciling`` (``Writer.apply``), ``main`` (credentials, the priming
LIST through ``list_objects``, inherited from ``apisession.ApiSession`` with
discovery, reads and the ``ApiError`` tree, re-exported here). It must not
decide: every action is executed exactly as planned, in order, stopping at the
first failure; 409 is ``ApplyConflict`` (re-plan now), permanent errors become
``Stalled``/``ApplyRejected`` upstream. Events are best effort: logged, never
failing a plan. Messages are capped and carry no secrets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from controller import patching
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
from controller.apisession import (
    ApiError,
    ApiSession,
    ApplyConflict,
    ApplyError,
    KindUnavailable,
    ResourceInfo,
    as_apply_error,
)
from evaluators.base import cap_message

LOG = logging.getLogger("tidegate.apply")
EVENT_MESSAGE_LIMIT = 1024
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
_KUSTOMIZATIONS = "kustomizations.kustomize.toolkit.fluxcd.io"
_OCIREPOSITORIES = "ocirepositories.source.toolkit.fluxcd.io"


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


# -- the writer ----------------------------------------------------------------------------------


class Writer(ApiSession):
    """Writes plans: runs each action in order, stops at the first failure."""

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
                error = as_apply_error(exc, action.key)
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


__all__ = [
    "ApiError",
    "ApplyConflict",
    "ApplyError",
    "ApplyOutcome",
    "KindUnavailable",
    "ResourceInfo",
    "Writer",
]
