"""Policy files -> validated ``Policy`` objects with source positions, reporting every problem.

Callers: the CLI verbs, ``testing`` and the controller (builtins). Reads files
(this module's only I/O), parses YAML through ``model.yamlsource``, validates
with the pydantic models of ``model.policy`` and runs the checks that need no
CEL: duplicate names, targets, window references, window literals (through
``windows.parse_window``) and param defaults. All problems of all files are
collected and raised as one ``PolicyErrors``; bad input never raises anything
else. Must not compile CEL: ``compiling`` does that.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from policy_engine.errors import Diagnostic, PolicyErrors
from policy_engine.model.paths import PathSyntaxError, parse_path
from policy_engine.model.policy import (
    PARAM_TYPES,
    Origin,
    Policy,
    PolicyDocument,
    infer_param_type,
)
from policy_engine.model.times import TimeSyntaxError, parse_duration, parse_timestamp
from policy_engine.model.yamlschema import did_you_mean, schema_diagnostics
from policy_engine.model.yamlsource import (
    DocPath,
    YamlError,
    YamlSourceMap,
    decode_text,
    located,
    read_yaml_documents,
)

POLICY_KINDS = ("RolloutPolicy", "ClusterRolloutPolicy")
BUILTIN_LABEL = "tidegate.dev/builtin"
_PARAMS: DocPath = ("spec", "params")
_PARAM_KEYS = ("default", "description", "type")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RULE_PATH = re.compile(r"^spec\.rules\[(\d+)\]")
_NAMED = {
    "rules": "rule",
    "windows": "window",
    "variables": "variable",
    "matchConditions": "match condition",
}
_DEFAULT_TYPES: dict[str, Callable[[Any], bool]] = {
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "list": lambda v: isinstance(v, list),
    "map": lambda v: isinstance(v, dict),
}


def load_policy_text(text: str, file: str, origin: Origin | None = None) -> list[Policy]:
    """Loads the policy documents of one YAML text; raises PolicyErrors with every problem.

    Args:
        text: YAML, possibly several documents; documents of other kinds are ignored.
        file: the name used in locations.
        origin: forced origin; ``None`` infers it from the kind (and the builtin label).
    """
    return _load_all([(text, file)], origin, [])


def load_policy_paths(paths: Sequence[str | Path], *, origin: Origin | None = None) -> list[Policy]:
    """Loads files and directories (recursive ``*.yaml``/``*.yml``, sorted).

    Problems of every file are collected into one PolicyErrors.
    """
    problems: list[Diagnostic] = []
    texts: list[tuple[str, str]] = []
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        elif path.is_file():
            files = [path]
        else:
            message = f"policy path {str(path)!r} does not exist"
            problems.append(located("input.unknown_reference", message, str(path)))
            continue
        for file in files:
            try:
                texts.append((decode_text(file.read_bytes(), str(file)), str(file)))
            except YamlError as exc:
                problems += exc.diagnostics
            except OSError as exc:
                problems.append(located("yaml.syntax", f"cannot read: {exc.strerror}", str(file)))
    return _load_all(texts, origin, problems)


def load_builtin_policies() -> list[Policy]:
    """Loads ``policies/builtin/*.yaml`` from the installed ``policies`` package as BUILTIN."""
    folder = resources.files("policies").joinpath("builtin")
    entries = sorted(folder.iterdir(), key=lambda e: e.name) if folder.is_dir() else []
    texts = [
        (e.read_text(encoding="utf-8"), f"policies/builtin/{e.name}")
        for e in entries
        if e.name.endswith((".yaml", ".yml"))
    ]
    return _load_all(texts, Origin.BUILTIN, [])


def library_path(name: str = "") -> Path:
    """The installed ``policies/common`` folder (opt-in gates), or one file of it."""
    folder = Path(str(resources.files("policies").joinpath("common")))
    return folder / f"{name}.yaml" if name else folder


def _load_all(
    texts: Iterable[tuple[str, str]], origin: Origin | None, problems: list[Diagnostic]
) -> list[Policy]:
    policies: list[Policy] = []
    for text, file in texts:
        policies += _load_text(text, file, origin, problems)
    seen: dict[tuple[str, str | None, str], Policy] = {}
    for policy in policies:
        first = seen.setdefault((policy.document.kind, policy.namespace, policy.name), policy)
        if first is not policy and isinstance(policy.source, YamlSourceMap) and first.source:
            where = f"{first.file}:{first.source.locate(('metadata', 'name'))[0]}"
            message = f"{policy.document.kind} {policy.ref!r} is already defined in {where}"
            hint = "policy names must be unique per kind and namespace"
            path = ("metadata", "name")
            problems.append(
                policy.source.diagnostic("policy.duplicate_id", message, path, hint=hint)
            )
    if problems:
        raise PolicyErrors(problems, loaded=policies)
    return policies


def _load_text(
    text: str, file: str, origin: Origin | None, problems: list[Diagnostic]
) -> list[Policy]:
    try:
        documents = read_yaml_documents(text, file)
    except YamlError as exc:
        problems += exc.diagnostics
        return []
    if all(raw is None for raw, _ in documents):
        hint = "a policy file needs apiVersion, kind, metadata and spec"
        message = "the file holds no YAML document"
        problems.append(located("policy.schema", message, file, 1, 1, hint=hint))
    policies: list[Policy] = []
    for raw, source in documents:
        kind = raw.get("kind") if isinstance(raw, dict) else None
        if raw is None or (isinstance(kind, str) and kind not in POLICY_KINDS):
            typo = did_you_mean(kind, POLICY_KINDS) if isinstance(kind, str) else None
            if typo is not None:  # a typo of a policy kind; other kinds are not ours to judge
                message = f"unknown kind {kind!r}"
                problems.append(source.diagnostic("policy.schema", message, ("kind",), hint=typo))
        elif not isinstance(raw, dict):
            message = "expected a policy document (a mapping with apiVersion, kind, metadata, "
            message += f"spec), got a {type(raw).__name__}"
            problems.append(source.diagnostic("policy.schema", message, ()))
        else:
            policy, found = _load_document(raw, source, file, origin)
            problems += _with_rules(found, raw)
            policies += [policy] if policy is not None else []
    return policies


def _load_document(
    raw: dict[str, Any], source: YamlSourceMap, file: str, origin: Origin | None
) -> tuple[Policy | None, list[Diagnostic]]:
    problems: list[Diagnostic] = []
    bad: list[DocPath] = []
    document: PolicyDocument | None = None
    try:
        document = PolicyDocument.model_validate(raw)
    except ValidationError as exc:  # params are checked below, per param
        problems += schema_diagnostics(
            exc, PolicyDocument, source, "policy.schema", skip_under=(_PARAMS,)
        )
        bad = [tuple(e["loc"]) for e in exc.errors(include_url=False)]
        bad = [loc for loc in bad if not (loc[:2] == _PARAMS and len(loc) > 2)]
    resolved = _origin(raw, origin)
    if isinstance(raw.get("spec"), dict):
        _Checks(source, raw["spec"], problems, bad).run(raw.get("kind"), resolved)
    if document is None and not problems:  # never drop a document without saying why
        problems.append(source.diagnostic("policy.schema", "invalid policy document", ()))
    if problems or document is None:
        return None, problems
    return Policy(document, resolved, file, source), []


def _origin(raw: Mapping[str, Any], origin: Origin | None) -> Origin:
    if origin is not None:
        return origin
    if raw.get("kind") != "ClusterRolloutPolicy":
        return Origin.NAMESPACED
    labels = _dict(_dict(raw.get("metadata")).get("labels"))
    return Origin.BUILTIN if labels.get(BUILTIN_LABEL) == "true" else Origin.CLUSTER


@dataclass(slots=True)
class _Checks:
    """The checks of one ``spec`` that need no CEL; paths are relative to ``spec``."""

    source: YamlSourceMap
    spec: dict[str, Any]
    problems: list[Diagnostic]
    bad: list[DocPath]  # pydantic already reported these; checks stay away from them

    def run(self, kind: Any, origin: Origin) -> None:
        self.duplicates()
        self.window_references()
        if origin is not Origin.BUILTIN and self.clean(("targets",)):
            self.targets(kind)
        self.windows()
        self.params()

    def report(self, code: str, message: str, path: DocPath, **extra: Any) -> None:
        self.problems.append(self.source.diagnostic(code, message, ("spec", *path), **extra))

    def clean(self, path: DocPath) -> bool:
        full = ("spec", *path)
        return not any(loc[: len(full)] == full or full[: len(loc)] == loc for loc in self.bad)

    def duplicates(self) -> None:
        groups: list[tuple[str, list[tuple[DocPath, str]]]] = [
            (what, [((key, i, "name"), n) for i, n in _named(self.spec.get(key))])
            for key, what in _NAMED.items()
        ]
        for i, rule in enumerate(_list(self.spec.get("rules"))):
            for body in ("all", "any"):
                checks = _named(_dict(rule).get(body))
                groups.append(("check", [(("rules", i, body, j, "name"), n) for j, n in checks]))
        for i, window in enumerate(_list(self.spec.get("windows"))):
            entries: list[tuple[DocPath, str]] = [
                (("windows", i, part, j, "name"), n)
                for part in ("allow", "deny")
                for j, n in _named(_dict(window).get(part))
            ]
            groups.append(("window entry", entries))
        for what, names in groups:
            first: dict[str, DocPath] = {}
            for path, name in names:
                if name in first:
                    line = self.source.locate(("spec", *first[name]))[0]
                    message = f"duplicate {what} name {name!r} (first on line {line})"
                    hint = f"{what} names must be unique in a policy"
                    self.report("policy.duplicate_id", message, path, hint=hint)
                first.setdefault(name, path)

    def window_references(self) -> None:
        declared = list(dict.fromkeys(n for _, n in _named(self.spec.get("windows"))))
        for i, rule in enumerate(_list(self.spec.get("rules"))):
            name = _dict(rule).get("window")
            if isinstance(name, str) and name not in declared:
                listed = ", ".join(declared) or "none"
                message = f"rule window {name!r} names no window of this policy ({listed})"
                hint = did_you_mean(name, declared) or "declare it under spec.windows"
                self.report("policy.unknown_reference", message, ("rules", i, "window"), hint=hint)

    def targets(self, kind: Any) -> None:
        targets = _dict(self.spec.get("targets"))
        where: DocPath = ("targets",) if "targets" in self.spec else ()
        if kind == "ClusterRolloutPolicy" and targets.get("namespaceSelector") is None:
            message = "ClusterRolloutPolicy has no spec.targets.namespaceSelector"
            hint = "use namespaceSelector: {} to select every namespace"
            self.report("policy.target", message, where, key=True, hint=hint)
        if targets.get("rolloutSelector") is None and not targets.get("targetRefs"):
            message = f"{kind} has neither targets.rolloutSelector nor targets.targetRefs"
            hint = "use rolloutSelector: {} to attach to every Rollout in scope"
            self.report("policy.target", message, where, key=True, hint=hint)
        if kind == "RolloutPolicy" and targets.get("namespaceSelector") is not None:
            message = "namespaceSelector is only valid in a ClusterRolloutPolicy"
            self.report("policy.target", message, ("targets", "namespaceSelector"), key=True)

    def windows(self) -> None:
        items = _list(self.spec.get("windows"))
        if not items:
            return
        from policy_engine import windows  # imported only when a policy declares windows

        for i, raw in enumerate(items):
            if not isinstance(raw, dict) or not self.clean(("windows", i)):
                continue
            try:
                windows.parse_window(raw)
            except windows.WindowSyntaxError as exc:
                try:
                    inner: DocPath = parse_path(exc.field) if exc.field else ()
                except PathSyntaxError:
                    inner = ()
                self.report("policy.schema", str(exc), ("windows", i, *inner), hint=exc.hint)

    def params(self) -> None:
        for name, raw in _dict(self.spec.get("params")).items():
            path: DocPath = ("params", name)
            if not _IDENTIFIER.match(name):
                hint = "use letters, digits and '_' (params.minSoak)"
                message = f"param name {name!r} is not a CEL identifier"
                self.report("policy.schema", message, path, key=True, hint=hint)
            declared = isinstance(raw, dict) and "type" in raw
            if declared and (set(raw) <= set(_PARAM_KEYS) or raw["type"] in PARAM_TYPES):
                if not self.param_declaration(name, raw):
                    continue
                kind, value, where = raw["type"], raw.get("default"), (*path, "default")
            else:
                kind, value, where = infer_param_type(raw), raw, path
            problem = _default_problem(kind, value)
            if problem is not None:
                message = f"param {name!r}: default {value!r:.60} is not a valid {kind}: {problem}"
                self.report("policy.schema", message, where)

    def param_declaration(self, name: str, raw: dict[str, Any]) -> bool:
        """Checks ``{type, default, description}``; False when the type is unknown."""
        path: DocPath = ("params", name)
        for key in sorted(set(raw) - set(_PARAM_KEYS)):
            message = f"unknown field {key!r} in spec.params.{name}"
            self.report(
                "policy.schema",
                message,
                (*path, key),
                key=True,
                hint=did_you_mean(key, _PARAM_KEYS),
            )
        if not isinstance(raw.get("description", ""), str):
            message = f"param {name!r}: description must be a string"
            self.report("policy.schema", message, (*path, "description"))
        if raw["type"] in PARAM_TYPES:
            return True
        message = f"param {name!r}: unknown type {raw['type']!r} ({', '.join(PARAM_TYPES)})"
        hint = did_you_mean(str(raw["type"]), PARAM_TYPES)
        self.report("policy.schema", message, (*path, "type"), hint=hint)
        return False


def _default_problem(kind: str, value: Any) -> str | None:
    """Why a param default does not fit its type (as ``compiling`` will coerce it), or None."""
    if value is None:
        return None
    if kind in ("duration", "timestamp"):
        if isinstance(value, bool | list | dict):
            return f"expected a {kind} string"
        try:
            (parse_duration if kind == "duration" else parse_timestamp)(str(value))
        except TimeSyntaxError as exc:
            return str(exc)
        return None
    check = _DEFAULT_TYPES.get(kind)
    return None if check is None or check(value) else f"expected a {kind}"


def _with_rules(problems: list[Diagnostic], raw: Mapping[str, Any]) -> list[Diagnostic]:
    """Names the rule of every diagnostic inside ``spec.rules[i]``."""
    rules = _list(_dict(raw.get("spec")).get("rules"))
    out: list[Diagnostic] = []
    for problem in problems:
        match = _RULE_PATH.match(problem.path or "")
        name = None
        if problem.rule is None and match and int(match.group(1)) < len(rules):
            name = _dict(rules[int(match.group(1))]).get("name")
        out.append(replace(problem, rule=name) if isinstance(name, str) else problem)
    return out


def _named(items: Any) -> list[tuple[int, str]]:
    return [
        (i, item["name"])
        for i, item in enumerate(_list(items))
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    ]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


__all__ = [
    "BUILTIN_LABEL",
    "POLICY_KINDS",
    "load_builtin_policies",
    "load_policy_paths",
    "load_policy_text",
]
