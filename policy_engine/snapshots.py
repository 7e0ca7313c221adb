"""FactSnapshot files (YAML, JSON, NDJSON decision logs) <-> ``Snapshot``, and the canonical digest.

Callers: the CLI (``eval --facts``, ``check``, ``record``, ``replay``),
``testing`` (``facts: from``) and the controller's decision log (writing).
Reads files (this module's only I/O), parses YAML through
``model.yamlsource`` and normalises facts with ``model.facts``; every problem
of a file is raised as one ``InputErrors`` (``input.*``, ``fact.invalid``,
``yaml.*``) located at ``file:line:col``. The digest is sha256 over RFC 8785
canonical JSON of ``{now, target, facts, errors}`` (POLICY-FORMATS.md §7.1).
Must not evaluate, compile or read the clock.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML

from policy_engine.errors import Diagnostic, InputErrors
from policy_engine.model import schema
from policy_engine.model.facts import (
    FactError,
    FactSet,
    FactShapeError,
    ObjectRef,
    Provenance,
    normalise,
)
from policy_engine.model.paths import FactPath, PathSyntaxError, format_path, parse_path
from policy_engine.model.policy import API_VERSION, SourceMap
from policy_engine.model.times import TimeSyntaxError, format_seconds, format_timestamp, to_utc
from policy_engine.model.yamlschema import did_you_mean, schema_diagnostics
from policy_engine.model.yamlsource import (
    MAX_DEPTH,
    DocPath,
    YamlError,
    YamlSourceMap,
    decode_text,
    located,
    read_yaml_documents,
)

KIND = "FactSnapshot"
#: Documents of these kinds may share a file with snapshots; they are skipped.
OTHER_KINDS = (
    "FactFixture",
    "PolicyTest",
    "PolicyCheckTest",
    "RolloutPolicy",
    "ClusterRolloutPolicy",
)
_DIGEST = re.compile(r"^sha256:([0-9a-f]{8,64})$")
_CAMEL = {
    "api_version": "apiVersion",
    "resource_version": "resourceVersion",
    "observed_at": "observedAt",
    "evaluated_at": "evaluatedAt",
}
_NAIVE_HINT = "write RFC 3339 with 'Z' or an offset, e.g. 2026-03-04T09:30:12Z"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _Metadata(_Strict):
    name: str = ""
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class _RolloutRef(_Strict):
    namespace: str
    name: str


class _Target(_Strict):
    rollout: _RolloutRef


class _Ref(_Strict):
    kind: str
    name: str
    namespace: str | None = None
    api_version: str | None = Field(default=None, alias="apiVersion")
    uid: str | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")


class _Provenance(_Strict):
    source: str
    ref: _Ref | None = None
    endpoint: str | None = None
    query: str | None = None
    observed_at: str | None = Field(default=None, alias="observedAt")
    evaluated_at: str | None = Field(default=None, alias="evaluatedAt")


class _Error(_Strict):
    path: str
    code: Literal["fact.unavailable", "fact.stale", "fact.invalid"]
    message: str = ""


class SnapshotDocument(_Strict):
    """The top level of a FactSnapshot file (POLICY-FORMATS.md §7.1, §7.2)."""

    api_version: Literal["tidegate.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["FactSnapshot"]
    metadata: _Metadata = Field(default_factory=_Metadata)
    recorded_at: str | None = Field(default=None, alias="recordedAt")
    recorded_by: dict[str, Any] = Field(default_factory=dict, alias="recordedBy")
    now: str | None = None
    mixed_time: bool = Field(default=False, alias="mixedTime")
    target: _Target | None = None
    policies: list[dict[str, Any]] = Field(default_factory=list)
    engine: dict[str, Any] = Field(default_factory=dict)
    facts: dict[str, Any]
    provenance: dict[str, _Provenance] = Field(default_factory=dict)
    errors: list[_Error] = Field(default_factory=list)
    redacted: list[str] = Field(default_factory=list)
    digest: str | None = None
    decision: dict[str, Any] | None = None
    decision_id: str | None = Field(default=None, alias="decisionId")
    action: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One recorded FactSnapshot: the FactSet plus what was recorded around it."""

    name: str
    now: datetime
    recorded_at: datetime | None
    recorded_by: dict[str, Any]
    mixed_time: bool
    target: tuple[str, str] | None
    policies: list[dict[str, Any]]
    engine: dict[str, Any]
    facts: FactSet
    redacted: tuple[str, ...]
    digest: str
    decision: dict[str, Any] | None = None
    decision_id: str | None = None
    action: str | None = None
    source: tuple[str, int] = ("", 0)
    source_map: SourceMap | None = field(default=None, compare=False, repr=False)


def snapshot_digest(
    now: datetime,
    target: tuple[str, str] | None,
    facts_json: Mapping[str, Any],
    errors_json: Sequence[Mapping[str, Any]],
) -> str:
    """``sha256:<hex>`` of RFC 8785 canonical JSON of ``{now, target, facts, errors}``.

    Errors are sorted by path, code and message, so their order never matters.
    Raises ``rfc8785.CanonicalizationError`` for non-finite floats or huge ints.
    """
    errors = sorted(
        errors_json, key=lambda e: (str(e.get("path")), str(e.get("code")), str(e.get("message")))
    )
    document = {
        "now": format_timestamp(now),
        "target": _target_json(target),
        "facts": dict(facts_json),
        "errors": [dict(e) for e in errors],
    }
    return "sha256:" + hashlib.sha256(rfc8785.dumps(document)).hexdigest()


def facts_to_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON form of fact values: UTC ``Z`` timestamps, ``"Ns"`` durations.

    Null keys inside records are left out (reading fills them back).
    """
    return {
        root: _json(value, schema.SNAPSHOT_ROOTS.get(root, schema.RAW))
        for root, value in values.items()
    }


def errors_to_json(errors: Sequence[FactError]) -> list[dict[str, Any]]:
    return [{"path": format_path(e.path), "code": e.code, "message": e.message} for e in errors]


def _json(value: Any, declared: schema.FactType) -> Any:
    if isinstance(declared, schema.Record) and isinstance(value, Mapping):
        return {
            key: _json(item, declared.fields.get(key, schema.RAW))
            for key, item in value.items()
            if item is not None
        }
    if isinstance(declared, schema.ListOf) and isinstance(value, list | tuple):
        return [_json(item, declared.item) for item in value]
    if isinstance(declared, schema.MapOf) and isinstance(value, Mapping):
        return {str(key): _json(item, declared.value) for key, item in value.items()}
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, timedelta):
        return format_seconds(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _target_json(target: tuple[str, str] | None) -> dict[str, Any] | None:
    return None if target is None else {"rollout": {"namespace": target[0], "name": target[1]}}


def load_snapshot_path(path: str | Path) -> list[Snapshot]:
    """Reads a snapshot file (YAML, JSON or NDJSON); raises InputErrors."""
    file = str(path)
    try:
        return load_snapshot_text(decode_text(Path(path).read_bytes(), file), file)
    except YamlError as exc:
        raise InputErrors(exc.diagnostics) from exc
    except OSError as exc:
        message = f"cannot read facts file: {exc.strerror}"
        raise InputErrors([located("input.unknown_reference", message, file)]) from exc


def load_snapshot_text(text: str, file: str) -> list[Snapshot]:
    """Reads the FactSnapshots of a YAML stream, a JSON document or NDJSON lines.

    Documents of other tidegate kinds (``OTHER_KINDS``) are skipped. Raises
    InputErrors with every problem of every document.
    """
    problems: list[Diagnostic] = []
    snapshots: list[Snapshot] = []
    documents = _documents(text, file, problems)
    if not problems and all(raw is None for raw, _ in documents):
        message = "the file holds no FactSnapshot document"
        problems.append(located("input.schema", message, file, 1, 1))
    for raw, source in documents:
        if raw is None:
            continue
        kind = raw.get("kind") if isinstance(raw, dict) else None
        if kind in OTHER_KINDS:
            continue
        if not isinstance(raw, dict):
            message = f"expected a FactSnapshot mapping, got a {type(raw).__name__}"
            problems.append(source().diagnostic("input.schema", message, ()))
            continue
        snapshot, found = _snapshot(raw, source, file)
        problems += found
        if snapshot is not None:
            snapshots.append(snapshot)
    if problems:
        raise InputErrors(problems)
    return snapshots


def _documents(text: str, file: str, problems: list[Diagnostic]) -> list[tuple[Any, _Source]]:
    if text.lstrip().startswith("{"):
        try:
            return [(_load_json(text), _Source(file, 1, text))]
        except json.JSONDecodeError as exc:
            if exc.msg == "Extra data":
                return _ndjson(text, file, problems)
    try:
        documents = read_yaml_documents(text, file)
    except YamlError as exc:
        problems += exc.diagnostics
        return []
    return [(raw, _Source(file, source.locate(())[0], built=source)) for raw, source in documents]


def _ndjson(text: str, file: str, problems: list[Diagnostic]) -> list[tuple[Any, _Source]]:
    out: list[tuple[Any, _Source]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            if line.strip():
                out.append((_load_json(line), _Source(file, number, line)))
        except json.JSONDecodeError as exc:
            message = f"invalid JSON line: {exc.msg}"
            extra = {"hint": "each line of a decision log is one JSON object", "source_line": line}
            problems.append(located("yaml.syntax", message, file, number, exc.colno, **extra))
    return out


def _load_json(text: str) -> Any:
    """``json.loads`` that refuses nesting deeper than YAML allows (JSONDecodeError)."""
    deep = json.JSONDecodeError(f"nesting deeper than {MAX_DEPTH} levels", text, 0)
    try:
        value = json.loads(text)
    except RecursionError:
        raise deep from None
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise deep
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        stack += [(child, depth + 1) for child in children]
    return value


class _Source:
    """A document's source map; for JSON it is built from the text only when first asked."""

    __slots__ = ("_map", "_text", "file", "line")

    def __init__(
        self, file: str, line: int, text: str = "", built: YamlSourceMap | None = None
    ) -> None:
        self.file = file
        self.line = line
        self._text = text
        self._map = built

    def __call__(self) -> YamlSourceMap:
        if self._map is None:
            padded = "\n" * (self.line - 1)
            try:
                self._map = read_yaml_documents(padded + self._text, self.file)[0][1]
            except (YamlError, IndexError):  # not YAML after all: point at the line
                self._map = read_yaml_documents(padded + "null", self.file)[0][1]
        return self._map

    def locate(self, path: tuple[str | int, ...], offset: int = 0) -> tuple[int, int]:
        return self().locate(path, offset)

    def line_text(self, line: int) -> str:
        return self().line_text(line)


def _snapshot(
    raw: dict[str, Any], locator: _Source, file: str
) -> tuple[Snapshot | None, list[Diagnostic]]:
    problems: list[Diagnostic] = []

    def report(
        code: str, message: str, path: DocPath, key: bool = False, hint: str | None = None
    ) -> None:
        problems.append(locator().diagnostic(code, message, path, key=key, hint=hint))

    document: SnapshotDocument | None = None
    try:
        document = SnapshotDocument.model_validate(raw)
    except ValidationError as exc:
        problems += schema_diagnostics(exc, SnapshotDocument, locator(), "input.schema")
    values = _normalise_facts(raw.get("facts"), report)
    if document is None:
        return None, problems
    doc = document
    if doc.now is None and doc.recorded_at is None:
        report("input.schema", "missing required field 'now' (or 'recordedAt')", ())
    now = _instant(doc.now or doc.recorded_at, ("now",) if doc.now else ("recordedAt",), report)
    recorded_at = _instant(doc.recorded_at, ("recordedAt",), report)
    errors = _errors(doc, report)
    provenance = _provenance(doc, report)
    for i, text in enumerate(doc.redacted):
        _path(text, ("redacted", i), report)
    for error in errors:
        _remove(values, error.path)
    target = (doc.target.rollout.namespace, doc.target.rollout.name) if doc.target else None
    digest = ""
    if now is not None:
        try:
            digest = snapshot_digest(now, target, facts_to_json(values), errors_to_json(errors))
        except rfc8785.CanonicalizationError as exc:
            report("fact.invalid", f"facts hold a number JSON cannot represent: {exc}", ("facts",))
    _check_digest(doc.digest, digest, report)
    if problems or now is None:
        return None, problems
    facts = FactSet(now, values, "snapshot", target, tuple(errors), provenance, digest)
    name = doc.metadata.name or doc.decision_id or f"{Path(file).name}:{locator.line}"
    return Snapshot(
        name,
        now,
        recorded_at,
        dict(doc.recorded_by),
        doc.mixed_time,
        target,
        [dict(p) for p in doc.policies],
        dict(doc.engine),
        facts,
        tuple(doc.redacted),
        digest,
        doc.decision,
        doc.decision_id,
        doc.action,
        (file, locator.line),
        locator,
    ), []


Report = Callable[..., None]


def _normalise_facts(raw: Any, report: Report) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for root, value in raw.items() if isinstance(raw, dict) else ():
        declared = schema.SNAPSHOT_ROOTS.get(root)
        if declared is None:
            known = schema.root_type(root) or root in schema.POLICY_ROOTS
            message = f"fact root {root!r} is not recorded in snapshots"
            message = message if known else f"unknown fact root {root!r}"
            hint = did_you_mean(root, list(schema.SNAPSHOT_ROOTS))
            report("fact.invalid", message, ("facts", root), key=True, hint=hint)
            continue
        values[root] = _normalise_root(root, value, declared, report)
    return values


def _normalise_root(root: str, value: Any, declared: schema.FactType, report: Report) -> Any:
    """Normalises one root, reporting a problem per bad list item or map entry."""
    if isinstance(declared, schema.ListOf) and isinstance(value, list):
        return [
            _normalise_item(item, declared.item, (root, i), report) for i, item in enumerate(value)
        ]
    if isinstance(declared, schema.MapOf) and isinstance(value, dict):
        return {
            str(k): _normalise_item(item, declared.value, (root, str(k)), report)
            for k, item in value.items()
        }
    return _normalise_item(value, declared, (root,), report)


def _normalise_item(value: Any, declared: schema.FactType, path: FactPath, report: Report) -> Any:
    try:
        return normalise(value, declared, path)
    except FactShapeError as exc:
        _shape_problem(exc, report)
        return None


def _shape_problem(exc: FactShapeError, report: Report) -> None:
    key = exc.detail.startswith("unknown key")
    hint = _NAIVE_HINT if exc.code == "input.naive_time" else None
    if key and isinstance(exc.path[-1], str):
        keys = exc.detail.partition("(keys: ")[2].rstrip(")").split(", ")
        hint = did_you_mean(exc.path[-1], keys)
    code = exc.code if exc.code in ("input.naive_time", "fact.invalid") else "fact.invalid"
    report(code, f"{format_path(exc.path)}: {exc.detail}", ("facts", *exc.path), key=key, hint=hint)


def _instant(text: str | None, path: DocPath, report: Report) -> datetime | None:
    if text is None:
        return None
    try:
        return to_utc(text)
    except TimeSyntaxError as exc:
        hint = _NAIVE_HINT if exc.code == "input.naive_time" else None
        report(exc.code, f"{path[-1]}: {exc}", path, hint=hint)
        return None


def _path(text: str, where: DocPath, report: Report) -> FactPath | None:
    try:
        return parse_path(text)
    except PathSyntaxError as exc:
        report("input.schema", f"bad fact path: {exc}", where)
        return None


def _errors(doc: SnapshotDocument, report: Report) -> list[FactError]:
    out: list[FactError] = []
    for i, error in enumerate(doc.errors):
        path = _path(error.path, ("errors", i, "path"), report)
        if path is not None:
            out.append(FactError(path, error.code, error.message))
    return out


def _provenance(doc: SnapshotDocument, report: Report) -> dict[FactPath, Provenance]:
    out: dict[FactPath, Provenance] = {}
    for key, item in doc.provenance.items():
        path = _path(key, ("provenance", key), report)
        r, ref = item.ref, None
        if r is not None:
            ref = ObjectRef(r.kind, r.name, r.namespace, r.api_version, r.uid, r.resource_version)
        observed = _instant(item.observed_at, ("provenance", key, "observedAt"), report)
        evaluated = _instant(item.evaluated_at, ("provenance", key, "evaluatedAt"), report)
        if path is not None:
            out[path] = Provenance(item.source, ref, item.endpoint, item.query, observed, evaluated)
    return out


def _remove(values: dict[str, Any], path: FactPath) -> None:
    """Deletes ``path`` when present, creating nothing on the way."""
    parent: Any = values
    for segment in path[:-1]:
        try:
            parent = parent[segment]
        except (KeyError, IndexError, TypeError):
            return
    last = path[-1]
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        del parent[last]


def _check_digest(recorded: str | None, actual: str, report: Report) -> None:
    if recorded is None or not actual:
        return
    match = _DIGEST.match(recorded.strip().lower())
    if match is None:
        message = f"digest {recorded!r} is not 'sha256:' and 8 to 64 hex digits"
        report("input.schema", message, ("digest",), hint=f"the facts hash to {actual}")
    elif not actual.startswith("sha256:" + match.group(1)):
        message = f"digest mismatch: the file records {recorded}, its facts hash to {actual}"
        hint = "the facts changed after recording; restore them or update the digest"
        report("input.digest_mismatch", message, ("digest",), hint=hint)


def snapshot_document(snapshot: Snapshot) -> dict[str, Any]:
    """The JSON-ready FactSnapshot document of ``snapshot`` (digest recomputed, nulls left out)."""
    facts = snapshot.facts
    facts_json = facts_to_json(facts.values)
    errors = errors_to_json(facts.errors)
    recorded = snapshot.recorded_at
    doc = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": snapshot.name},
        "recordedAt": format_timestamp(recorded) if recorded is not None else None,
        "recordedBy": _plain(snapshot.recorded_by) or None,
        "now": format_timestamp(snapshot.now),
        "mixedTime": snapshot.mixed_time,
        "target": _target_json(snapshot.target),
        "policies": _plain(snapshot.policies) or None,
        "engine": _plain(snapshot.engine) or None,
        "facts": facts_json,
        "provenance": {format_path(p): _camel(v) for p, v in facts.provenance.items()} or None,
        "errors": errors or None,
        "redacted": list(snapshot.redacted) or None,
        "digest": snapshot_digest(snapshot.now, snapshot.target, facts_json, errors),
        "decision": _plain(snapshot.decision),
        "decisionId": snapshot.decision_id,
        "action": snapshot.action,
    }
    return {key: value for key, value in doc.items() if value is not None}


def _camel(value: Any) -> dict[str, Any]:
    """A Provenance or ObjectRef as JSON: camelCase keys, no nulls."""
    items = ((f.name, getattr(value, f.name)) for f in fields(value))
    return {
        _CAMEL.get(k, k): _camel(v) if is_dataclass(v) else _plain(v)
        for k, v in items
        if v is not None
    }


def dump_snapshot(snapshot: Snapshot, fmt: Literal["yaml", "json", "ndjson"]) -> str:
    """Writes ``snapshot`` as YAML, indented JSON or one compact NDJSON line (all end in "\\n")."""
    doc = snapshot_document(snapshot)
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt == "ndjson":
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n"
    yaml = YAML(typ="rt", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096
    yaml.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


__all__ = [
    "KIND",
    "Snapshot",
    "SnapshotDocument",
    "dump_snapshot",
    "errors_to_json",
    "facts_to_json",
    "load_snapshot_path",
    "load_snapshot_text",
    "snapshot_digest",
    "snapshot_document",
]
