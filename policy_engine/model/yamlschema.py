"""Pydantic validation errors of YAML documents as located diagnostics with "did you mean".

Callers: ``loading`` and ``snapshots``. Translates a ``ValidationError`` into
``Diagnostic`` values positioned by a ``YamlSourceMap``; validates nothing
itself.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from policy_engine.errors import Diagnostic
from policy_engine.model.yamlsource import DocPath, YamlSourceMap, format_doc_path


def schema_diagnostics(
    exc: ValidationError,
    model: type[BaseModel],
    source: YamlSourceMap,
    code: str,
    *,
    prefix: DocPath = (),
    skip_under: Sequence[DocPath] = (),
) -> list[Diagnostic]:
    """Located diagnostics for a pydantic error of ``model`` validated at ``prefix``.

    Unknown fields point at the key (hint: the closest field name), missing
    fields at the parent mapping, other errors at the value. Errors strictly
    below a path of ``skip_under`` are left to the caller.
    """
    out: list[Diagnostic] = []
    errors = exc.errors(include_url=False)
    locs = [tuple(e["loc"]) for e in errors]
    for error, loc in zip(errors, locs, strict=True):
        kind = error["type"]
        if kind == "too_short" and any(len(o) > len(loc) and o[: len(loc)] == loc for o in locs):
            continue  # a list whose items all failed: the items say why
        if any(len(loc) > len(s) and loc[: len(s)] == tuple(s) for s in skip_under):
            continue
        path = (*prefix, *loc)
        where = format_doc_path(path) or "the document"
        if kind == "extra_forbidden":
            name = str(loc[-1])
            parent = format_doc_path(path[:-1]) or "the document"
            hint = did_you_mean(name, _fields_at(model, loc[:-1]))
            message = f"unknown field {name!r} in {parent}"
            out.append(source.diagnostic(code, message, path, key=True, hint=hint))
        elif kind == "missing":
            parent = format_doc_path(path[:-1]) or "the document"
            keyed = bool(path[:-1]) and isinstance(path[-2], str)
            message = f"missing required field {loc[-1]!r} in {parent}"
            out.append(source.diagnostic(code, message, path[:-1], key=keyed))
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            value = error.get("input")
            if isinstance(value, str | int | float | bool) or value is None:
                message += f" (got {value!r:.80})"
            expected = str((error.get("ctx") or {}).get("expected", ""))
            hint = did_you_mean(str(value), re.findall(r"'([^']*)'", expected))
            out.append(source.diagnostic(code, f"{where}: {message}", path, hint=hint))
    return out


def did_you_mean(name: str, choices: Sequence[str]) -> str | None:
    """``did you mean 'x'?`` for the closest choice, or None."""
    found = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"did you mean {found[0]!r}?" if found else None


def _fields_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    current: Any = model
    for segment in loc:
        current = _member(_unwrap(current), segment)
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _member(kind: Any, segment: Any) -> Any:
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        for name, info in kind.model_fields.items():
            if segment in (name, info.alias):
                return info.annotation
        return None
    args = get_args(kind)
    if get_origin(kind) in (dict, Mapping) and len(args) == 2:
        return args[1]
    if get_origin(kind) in (tuple, list, Sequence) and args and isinstance(segment, int):
        return args[0]
    return None


def _unwrap(kind: Any) -> Any:
    if get_origin(kind) is Annotated:
        return _unwrap(get_args(kind)[0])
    if get_origin(kind) in (Union, types.UnionType):
        members = [a for a in get_args(kind) if a is not type(None)]
        return _unwrap(members[0]) if len(members) == 1 else None
    return kind
