"""Request shapes of the Writer's JSON-patch and collection-delete actions (pure).

Callers: ``applying.Writer`` turns ``JsonPatch`` and ``DeleteCollection`` into
one API request each with these functions, then sends them and maps errors.
Pure: it must not do I/O or decide; it only spells the request bodies
(kept out of ``applying`` so the HTTP boundary stays one readable module).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.api.actions import DeleteCollection, JsonPatch

JSON_PATCH = "application/json-patch+json"
BACKGROUND = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}


@dataclass(frozen=True, slots=True)
class Request:
    """One API request: method, body, content type and query parameters (the path is the
    caller's: it resolves kinds through discovery)."""

    method: str
    body: object
    content_type: str = "application/json"
    params: Mapping[str, str] | None = None


def json_patch(action: JsonPatch) -> Request:
    """The PATCH; a ``resource_version`` becomes a leading ``replace`` of
    ``metadata.resourceVersion``, which the apiserver checks like an update's."""
    ops: list[dict[str, Any]] = [dict(op) for op in action.ops]
    if action.resource_version is not None:
        rv = {
            "op": "replace",
            "path": "/metadata/resourceVersion",
            "value": action.resource_version,
        }
        ops.insert(0, rv)
    return Request("PATCH", ops, JSON_PATCH)


def guarded(action: JsonPatch) -> bool:
    """Whether a 422 means "a ``test`` op failed": the precondition is gone, skip the action."""
    return any(op.get("op") == "test" for op in action.ops)


def delete_collection(action: DeleteCollection) -> Request:
    """DELETE of the collection by label selector, propagation Background."""
    selector = ",".join(f"{k}={v}" for k, v in sorted(action.labels.items()))
    return Request("DELETE", dict(BACKGROUND), params={"labelSelector": selector})


def annotation_pointer(key: str) -> str:
    """The JSON pointer of annotation ``key`` (RFC 6901 escapes)."""
    return "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
