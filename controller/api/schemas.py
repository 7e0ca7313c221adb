"""Translation of pydantic JSON schemas into Kubernetes structural (OpenAPI v3) schemas.

Callers: ``controller.api.crds`` (CRD generation) and its reference docs.
Pure: no I/O. It must never emit what a kube-apiserver rejects in a CRD:
``$ref``, ``anyOf``/``oneOf``, JSON-Schema-2020 keywords, untyped nodes
outside open content, ``additionalProperties`` next to ``properties``, or
defaults that are ``null``. Anything it cannot translate is a
``SchemaError`` naming the path, so a model change fails generation, not
the cluster.

Translation: ``$ref`` is inlined (the field's own description wins over the
class docstring); ``X | None`` becomes ``X`` with ``nullable: true``;
``const`` becomes a one-value ``enum``; titles, ``additionalProperties:
false`` and empty defaults (``[]``, ``{}``, ``""``) are dropped, as is every
default below ``status``; ``dict[str, Any]`` is allowed only at the paths
the caller declares open, where it keeps its values with
``x-kubernetes-preserve-unknown-fields``.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

OPEN_KEY = "x-kubernetes-preserve-unknown-fields"
KEYWORDS = frozenset(
    {
        "type",
        "format",
        "description",
        "default",
        "enum",
        "nullable",
        "pattern",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "properties",
        "required",
        "items",
        "additionalProperties",
    }
)
DROPPED = frozenset({"title", "$defs"})


class SchemaError(ValueError):
    """A model whose JSON schema has no structural-schema equivalent."""


@dataclass(frozen=True)
class Translation:
    """Inputs of one translation: the model's ``$defs`` and caller-declared exceptions."""

    defs: Mapping[str, Any]
    open_paths: Collection[str] = ()
    descriptions: Mapping[str, str] = field(default_factory=dict)


def structural(
    model: type[BaseModel],
    root: str,
    *,
    open_paths: Collection[str] = (),
    descriptions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The structural schema of ``model`` placed at ``root`` (``spec`` or ``status``).

    Args:
        model: the pydantic model of the subtree.
        root: its path in the object; paths below are ``root.a.b``, ``root.list[]``,
            ``root.map.*``.
        open_paths: paths of ``dict[str, Any]`` fields whose values stay open.
        descriptions: description overrides by path (for models without them).
    """
    raw = model.model_json_schema(by_alias=True, mode="validation")
    job = Translation(raw.get("$defs", {}), frozenset(open_paths), descriptions or {})
    return _node(raw, root, job)


def _node(schema: Mapping[str, Any], path: str, job: Translation) -> dict[str, Any]:
    node = _inline(schema, path, job)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED or (key == "additionalProperties" and value is False):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "default":
            if _keeps_default(value, path):
                out["default"] = value
        elif key == "properties":
            out["properties"] = {
                name: _node(sub, f"{path}.{name}", job) for name, sub in value.items()
            }
        elif key == "items":
            out["items"] = _node(value, f"{path}[]", job)
        elif key == "additionalProperties":
            out.update(_additional(value, node, path, job))
        elif key in KEYWORDS or key.startswith("x-kubernetes-"):
            out[key] = copy.deepcopy(value)
        else:
            raise SchemaError(f"{path}: keyword {key!r} has no structural-schema equivalent")
    if path in job.descriptions:
        out["description"] = job.descriptions[path]
    _check(out, path)
    return out


def _inline(schema: Mapping[str, Any], path: str, job: Translation) -> dict[str, Any]:
    """Resolves ``$ref``/single ``allOf`` and ``X | None`` into one flat node."""
    node = dict(schema)
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        if name not in job.defs:
            raise SchemaError(f"{path}: unresolved $ref {name!r}")
        node = {**_inline(job.defs[name], path, job), **node}
    if "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1:
            raise SchemaError(f"{path}: allOf with {len(parts)} parts")
        node = {**_inline(parts[0], path, job), **node}
    if "anyOf" in node or "oneOf" in node:
        branches = node.pop("anyOf", None) or node.pop("oneOf")
        typed = [b for b in branches if b != {"type": "null"}]
        if len(typed) != 1 or len(branches) != 2:
            raise SchemaError(f"{path}: unions other than 'X | None' are not structural")
        node = {**_inline(typed[0], path, job), **node, "nullable": True}
        if node.get("default", 0) is None:
            del node["default"]
    if not node.get("type") and not node.get(OPEN_KEY) and not node.get("enum"):
        if path not in job.open_paths:
            raise SchemaError(f"{path}: untyped value (declare the path open or give it a type)")
        node[OPEN_KEY] = True
    if node.get("enum") and "type" not in node:
        node["type"] = _enum_type(node["enum"], path)
    return node


def _additional(value: Any, node: Mapping[str, Any], path: str, job: Translation) -> dict[str, Any]:
    if isinstance(value, dict):
        return {"additionalProperties": _node(value, f"{path}.*", job)}
    if node.get(OPEN_KEY):
        return {}
    if path in job.open_paths:
        return {"additionalProperties": {OPEN_KEY: True}}
    raise SchemaError(f"{path}: a map of untyped values (declare the path open)")


def _keeps_default(value: Any, path: str) -> bool:
    if path == "status" or path.startswith(("status.", "status[")):
        return False
    return value not in (None, "", [], {})


def _enum_type(values: list[Any], path: str) -> str:
    kinds = {type(v) for v in values}
    if kinds == {str}:
        return "string"
    if kinds == {bool}:
        return "boolean"
    if kinds == {int}:
        return "integer"
    raise SchemaError(f"{path}: enum of mixed or unsupported types {sorted(map(str, kinds))}")


def _check(node: Mapping[str, Any], path: str) -> None:
    if "properties" in node and "additionalProperties" in node:
        raise SchemaError(f"{path}: properties and additionalProperties are mutually exclusive")
    if "type" not in node and not node.get(OPEN_KEY) and not node.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"{path}: no type")
    if node.get("type") == "object" and node.get("default") is not None:
        unknown = set(node["default"]) - set(node.get("properties", {}))
        if "properties" in node and unknown:
            raise SchemaError(f"{path}: default has undeclared fields {sorted(unknown)}")
