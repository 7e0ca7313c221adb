"""What a write does to a stored object: patches, preconditions, generation, label selectors.

Callers: ``demo.emulation`` (the in-process API) for every create, patch, replace
and list. Pure functions over JSON dicts, no I/O and no clock: the emulation
passes the resourceVersion and timestamps in. It must not know about HTTP;
errors are ``ApiProblem`` values with the status code the apiserver would send.

Server-side apply is emulated as a merge of the applied fields (the controller
applies only leaf fields it owns, forced, so field ownership never decides an
outcome here); ``metadata.uid`` in an apply body is a precondition, as on the
apiserver.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

import jsonpatch
import jsonpointer
import yaml

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
Obj = dict[str, Any]


class ApiProblem(Exception):
    """A request the apiserver would refuse: HTTP ``status``, ``reason`` and a message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def conflict(name: str, wanted: object, current: object) -> ApiProblem:
    return ApiProblem(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on "{name}": the object has been modified; please apply'
        f" your changes to the latest version and try again (wanted {wanted}, is {current})",
    )


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge, null deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: Obj = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


def decode(body: bytes, content_type: str) -> Any:
    """The request body as JSON (apply bodies may be YAML); 400 when it cannot be read."""
    try:
        if content_type.startswith(APPLY_PATCH):
            return yaml.safe_load(body.decode() or "null")
        return json.loads(body.decode() or "null")
    except (ValueError, yaml.YAMLError) as exc:
        raise ApiProblem(400, "BadRequest", f"cannot decode the body: {exc}") from exc


def patched(current: Obj, patch: Any, content_type: str) -> Obj:
    """``current`` after ``patch`` (by content type), preconditions checked.

    Raises:
        ApiProblem: 422 for a failed ``test`` op or a bad pointer, 409 for a stale
            ``metadata.resourceVersion`` or a ``metadata.uid`` that is not this object's,
            415 for an unknown patch type.
    """
    name = str(current.get("metadata", {}).get("name"))
    if content_type.startswith(JSON_PATCH):
        try:
            result: Obj = jsonpatch.apply_patch(copy.deepcopy(current), patch)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise ApiProblem(422, "Invalid", f"the test operation failed: {exc}") from exc
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise ApiProblem(422, "Invalid", f"the JSON patch cannot be applied: {exc}") from exc
    elif content_type.startswith((MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)):
        if not isinstance(patch, Mapping):
            raise ApiProblem(400, "BadRequest", "a merge patch must be a JSON object")
        result = merge(current, patch)
        uid = (patch.get("metadata") or {}).get("uid")
        if uid is not None and uid != current["metadata"].get("uid"):
            raise conflict(name, f"uid {uid}", f"uid {current['metadata'].get('uid')}")
    else:
        raise ApiProblem(415, "UnsupportedMediaType", f"patch type {content_type!r} unsupported")
    check_version(current, result.get("metadata", {}).get("resourceVersion"))
    return result


def check_version(current: Obj, wanted: object) -> None:
    """409 unless ``wanted`` (a precondition, may be absent) is ``current``'s resourceVersion."""
    have = current.get("metadata", {}).get("resourceVersion")
    if wanted not in (None, "") and str(wanted) != str(have):
        raise conflict(str(current.get("metadata", {}).get("name")), wanted, have)


def updated(current: Obj, proposed: Obj, *, subresource: str | None, has_status: bool) -> Obj:
    """What is stored after a write of ``proposed`` over ``current`` (same resourceVersion).

    The status subresource changes only ``status``; the main resource never does
    (for kinds that have the subresource). Identity fields are kept; ``generation``
    moves when anything but metadata and status changed.
    """
    if subresource == "status":
        result = copy.deepcopy(current)
        if "status" in proposed:
            result["status"] = copy.deepcopy(proposed["status"])
        else:
            result.pop("status", None)
        return result
    if subresource:
        raise ApiProblem(404, "NotFound", f"subresource {subresource!r} is not served")
    result = copy.deepcopy(proposed)
    meta, old = result.setdefault("metadata", {}), current["metadata"]
    for key in ("name", "namespace", "uid", "creationTimestamp", "resourceVersion"):
        if key in old:
            meta[key] = old[key]
        else:
            meta.pop(key, None)
    meta["generation"] = old.get("generation", 1)
    if has_status:
        if "status" in current:
            result["status"] = copy.deepcopy(current["status"])
        else:
            result.pop("status", None)
    if _spec_of(result) != _spec_of(current):
        meta["generation"] = int(old.get("generation", 1)) + 1
    return result


def _spec_of(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


_REQUIREMENT = re.compile(
    r"\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9._/-]+)\s*"
    r"(?:(?P<op>==|=|!=|\s+in\s+|\s+notin\s+)\s*(?P<value>\([^)]*\)|[A-Za-z0-9._-]*))?\s*"
)


def selector_matcher(selector: str | None) -> Any:
    """A predicate over label dicts for a label selector string (``k=v,k!=v,k in (a,b),!k``).

    Raises:
        ApiProblem: 400 for a selector that cannot be parsed.
    """
    requirements = []
    for part in _split(selector or ""):
        match = _REQUIREMENT.fullmatch(part)
        if match is None:
            raise ApiProblem(400, "BadRequest", f"unable to parse requirement {part!r}")
        op = (match["op"] or "").strip()
        raw = (match["value"] or "").strip("()")
        values = {v.strip() for v in raw.split(",")} if op in ("in", "notin") else {raw}
        requirements.append((bool(match["neg"]), match["key"], op, values))

    def matches(labels: Mapping[str, str]) -> bool:
        for negated, key, op, values in requirements:
            if not op:
                ok = (key in labels) != negated
            elif op in ("=", "==", "in"):
                ok = labels.get(key) in values
            else:
                ok = labels.get(key) not in values
            if not ok:
                return False
        return True

    return matches


def _split(selector: str) -> list[str]:
    """Splits on commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(selector):
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append(selector[start:index])
            start = index + 1
    parts.append(selector[start:])
    return [p for p in parts if p.strip()]
