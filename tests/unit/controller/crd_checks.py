"""Validation of objects against the generated CRDs, the way a kube-apiserver would.

The openAPIV3Schema is checked with ``jsonschema`` (after turning OpenAPI's
``nullable`` into JSON Schema), ``x-kubernetes-validations`` rules with celpy
(an independent CEL implementation), and ``pruned`` lists the fields the
apiserver would silently drop. Used by test_crds.py and test_crd_validation.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from celpy.adapter import json_to_cel

ROOT = Path(__file__).resolve().parents[3]


def load_crds() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted((ROOT / "crds").glob("*_*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        found[crd["spec"]["names"]["kind"]] = crd
    return found


CRDS = load_crds()


def schema_of(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def node_at(kind: str, path: str) -> tuple[dict[str, Any], bool]:
    """The schema node at ``a.b[].c`` and whether its parent requires it."""
    node, required = schema_of(kind), False
    for part in path.split("."):
        name, items = part.removesuffix("[]"), part.count("[]")
        assert name in node.get("properties", {}), f"{kind}: {path} has no {name!r}"
        required = name in node.get("required", ())
        node = node["properties"][name]
        for _ in range(items):
            node = node["items"]
    return node, required


def json_schema(node: Any) -> Any:
    """OpenAPI v3 (nullable, int-or-string) as plain JSON Schema."""
    if isinstance(node, list):
        return [json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: json_schema(v) for k, v in node.items() if k != "default"}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    return out


def cel_errors(schema: Mapping[str, Any], value: Any, path: str) -> Iterator[str]:
    if value is None:
        return
    env = celpy.Environment()
    for rule in schema.get("x-kubernetes-validations", ()):
        program = env.program(env.compile(rule["rule"]))
        try:
            passed = program.evaluate({"self": json_to_cel(value)}) == celpy.celtypes.BoolType(True)
        except Exception:  # an evaluation error rejects, as on the apiserver
            passed = False
        if not passed:
            yield f"{path}: {rule['message']}"
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            yield from cel_errors(sub, value.get(name), f"{path}.{name}")
        if isinstance(schema.get("additionalProperties"), dict):
            for key, sub_value in value.items():
                yield from cel_errors(schema["additionalProperties"], sub_value, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from cel_errors(schema["items"], item, f"{path}[{i}]")


def errors(obj: Mapping[str, Any]) -> list[str]:
    """What the apiserver would reject in ``obj`` (schema and CEL rules)."""
    schema = schema_of(obj["kind"])
    validator = jsonschema.Draft4Validator(json_schema(schema))
    found = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)
    ]
    return found or list(cel_errors(schema, obj, ""))


def pruned(schema: Mapping[str, Any], value: Any, path: str = "") -> Iterator[str]:
    """Fields the apiserver would silently drop."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or path == ".metadata":
        return
    if isinstance(value, dict):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, sub in value.items():
            if key in props:
                yield from pruned(props[key], sub, f"{path}.{key}")
            elif isinstance(extra, dict):
                yield from pruned(extra, sub, f"{path}.{key}")
            else:
                yield f"{path}.{key}"
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from pruned(schema["items"], item, f"{path}[{i}]")


def walk(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}.*")
