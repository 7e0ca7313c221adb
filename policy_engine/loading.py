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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from policy_engine.errors import Diagnostic, PolicyErrors, SourceLocation, cap
from policy_engine.model.paths import PathSyntaxError, parse_path
from policy_engine.model.policy import (
    PARAM_TYPES,
    Origin,
    Policy,
    PolicyDocument,
    infer_param_type,
)
from policy_engine.model.times import TimeSyntaxError, parse_duration, parse_timestamp
from policy_engine.model.yamlsource import (
    DocPath,
    YamlError,
    YamlSourceMap,
    did_you_mean,
    read_yaml_documents,
    schema_diagnostics,
)

POLICY_KINDS = ("RolloutPolicy", "ClusterRolloutPolicy")
BUILTIN_LABEL = "tidegate.dev/builtin"
_PARAM_KEYS = frozenset({"type", "default", "description"})
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RULE_PATH = re.compile(r"^spec\.rules\[(\d+)\]")
_NAMED_SECTIONS = (
    ("rules", "rule"),
    ("windows", "window"),
    ("variables", "variable"),
    ("matchConditions", "match condition"),
)


def load_policy_text(text: str, file: str, origin: Origin | None = None) -> list[Policy]:
    """Loads the policy documents of one YAML text; raises PolicyErrors with every problem.

    Args:
        text: YAML, possibly several documents; documents of other kinds are ignored.
        file: the name used in locations.
        origin: forced origin; ``None`` infers it from the kind (and the builtin label).
    """
    policies, problems = _load_text(text, file, origin)
    problems += _duplicate_policies(policies)
    if problems:
        raise PolicyErrors(problems)
    return policies


def load_policy_paths(paths: Sequence[str | Path], *, origin: Origin | None = None) -> list[Policy]:
    """Loads files and directories (recursive ``*.yaml``/``*.yml``, sorted).

    Problems of every file are collected into one PolicyErrors.
    """
    problems: list[Diagnostic] = []
    policies: list[Policy] = []
    for file in _policy_files(paths, problems):
        text = _read(file, problems)
        if text is not None:
            found, errors = _load_text(text, str(file), origin)
            policies += found
            problems += errors
    problems += _duplicate_policies(policies)
    if problems:
        raise PolicyErrors(problems)
    return policies


def load_builtin_policies() -> list[Policy]:
    """Loads ``policies/builtin/*.yaml`` from the installed ``policies`` package as BUILTIN."""
    folder = resources.files("policies").joinpath("builtin")
    if not folder.is_dir():
        return []
    problems: list[Diagnostic] = []
    policies: list[Policy] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")) and entry.is_file():
            text = entry.read_text(encoding="utf-8")
            found, errors = _load_text(text, f"policies/builtin/{entry.name}", Origin.BUILTIN)
            policies += found
            problems += errors
    problems += _duplicate_policies(policies)
    if problems:
        raise PolicyErrors(problems)
    return policies


def _policy_files(paths: Sequence[str | Path], problems: list[Diagnostic]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(
                Diagnostic(
                    "input.unknown_reference",
                    f"policy path {str(path)!r} does not exist",
                    SourceLocation(str(path)),
                )
            )
    return files


def _read(file: Path, problems: list[Diagnostic]) -> str | None:
    try:
        data = file.read_bytes()
    except OSError as exc:
        problems.append(
            Diagnostic(
                "yaml.syntax", cap(f"cannot read file: {exc.strerror}"), SourceLocation(str(file))
            )
        )
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        problems.append(
            Diagnostic(
                "yaml.syntax",
                f"file is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start}",
                SourceLocation(str(file), line, column),
                "save the file as UTF-8",
            )
        )
        return None


def _load_text(
    text: str, file: str, origin: Origin | None
) -> tuple[list[Policy], list[Diagnostic]]:
    try:
        documents = read_yaml_documents(text, file)
    except YamlError as exc:
        return [], list(exc.diagnostics)
    if all(raw is None for raw, _ in documents):
        return [], [
            Diagnostic(
                "policy.schema",
                "the file holds no YAML document",
                SourceLocation(file, 1, 1),
                "a policy file needs apiVersion, kind, metadata and spec",
            )
        ]
    policies: list[Policy] = []
    problems: list[Diagnostic] = []
    for raw, source in documents:
        if raw is None:
            continue
        if not isinstance(raw, dict):
            problems.append(
                source.diagnostic(
                    "policy.schema",
                    f"expected a policy document (a mapping with apiVersion, kind, "
                    f"metadata, spec), got a {type(raw).__name__}",
                    (),
                )
            )
            continue
        kind = raw.get("kind")
        if isinstance(kind, str) and kind not in POLICY_KINDS:
            hint = did_you_mean(kind, POLICY_KINDS)
            if hint is not None:  # a typo of a policy kind; other kinds are not ours to judge
                problems.append(
                    source.diagnostic(
                        "policy.schema", f"unknown kind {kind!r}", ("kind",), hint=hint
                    )
                )
            continue
        policy, found = _load_document(raw, source, file, origin)
        problems += found
        if policy is not None:
            policies.append(policy)
    return policies, problems


def _load_document(
    raw: dict[str, Any], source: YamlSourceMap, file: str, origin: Origin | None
) -> tuple[Policy | None, list[Diagnostic]]:
    problems: list[Diagnostic] = []
    bad: list[DocPath] = []
    document: PolicyDocument | None = None
    try:
        document = PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        bad = [tuple(e["loc"]) for e in exc.errors(include_url=False)]
        params = ("spec", "params")
        found = schema_diagnostics(
            exc, PolicyDocument, source, "policy.schema", skip_under=(params,)
        )
        problems += _with_rules(found, raw)
        bad = [loc for loc in bad if not (loc[:2] == params and len(loc) > 2)]

    def clean(path: DocPath) -> bool:
        return not any(loc[: len(path)] == path or path[: len(loc)] == loc for loc in bad)

    spec = raw.get("spec")
    resolved = _origin(raw, origin)
    if isinstance(spec, dict):
        report = _Reporter(source, spec, problems)
        _check_duplicates(spec, report)
        _check_window_references(spec, report)
        _check_targets(raw, spec, resolved, report, clean)
        _check_windows(spec, report, clean)
        _check_params(spec, report)
    if document is None and not problems:  # never drop a document without saying why
        problems.append(source.diagnostic("policy.schema", "invalid policy document", ()))
    if problems or document is None:
        return None, problems
    return Policy(document, resolved, file, source), []


def _origin(raw: Mapping[str, Any], origin: Origin | None) -> Origin:
    if origin is not None:
        return origin
    if raw.get("kind") == "ClusterRolloutPolicy":
        metadata = raw.get("metadata")
        labels = metadata.get("labels") if isinstance(metadata, dict) else None
        if isinstance(labels, dict) and labels.get(BUILTIN_LABEL) == "true":
            return Origin.BUILTIN
        return Origin.CLUSTER
    return Origin.NAMESPACED


class _Reporter:
    """Adds located ``policy.*`` diagnostics for paths inside ``spec``, naming the rule."""

    def __init__(self, source: YamlSourceMap, spec: dict[str, Any], out: list[Diagnostic]):
        self.source = source
        self.spec = spec
        self.out = out

    def __call__(
        self, code: str, message: str, path: DocPath, *, key: bool = False, hint: str | None = None
    ) -> None:
        full = ("spec", *path)
        self.out.append(
            self.source.diagnostic(code, message, full, key=key, hint=hint, rule=self.rule(full))
        )

    def rule(self, path: DocPath) -> str | None:
        if len(path) > 2 and path[1] == "rules" and isinstance(path[2], int):
            rules = _list(self.spec.get("rules"))
            rule = _dict(rules[path[2]]) if path[2] < len(rules) else {}
            name = rule.get("name")
            return name if isinstance(name, str) else None
        return None

    def line(self, path: DocPath) -> int:
        return self.source.locate(("spec", *path))[0]


def _named(items: Any) -> list[tuple[int, str]]:
    if not isinstance(items, list):
        return []
    return [
        (i, item["name"])
        for i, item in enumerate(items)
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    ]


def _check_duplicates(spec: dict[str, Any], report: _Reporter) -> None:
    groups: list[tuple[str, list[tuple[DocPath, str]]]] = []
    for section, what in _NAMED_SECTIONS:
        groups.append((what, [((section, i, "name"), n) for i, n in _named(spec.get(section))]))
    for i, rule in enumerate(_list(spec.get("rules"))):
        for body in ("all", "any"):
            checks = _named(_dict(rule).get(body))
            groups.append(("check", [(("rules", i, body, j, "name"), n) for j, n in checks]))
    for i, window in enumerate(_list(spec.get("windows"))):
        entries = [
            ((part, j, "name"), n)
            for part in ("allow", "deny")
            for j, n in _named(_dict(window).get(part))
        ]
        groups.append(("window entry", [(("windows", i, *p), n) for p, n in entries]))
    for what, names in groups:
        first: dict[str, DocPath] = {}
        for path, name in names:
            if name in first:
                report(
                    "policy.duplicate_id",
                    f"duplicate {what} name {name!r} (first on line {report.line(first[name])})",
                    path,
                    hint=f"{what} names must be unique in a policy",
                )
            first.setdefault(name, path)


def _check_window_references(spec: dict[str, Any], report: _Reporter) -> None:
    declared = [n for _, n in _named(spec.get("windows"))]
    rules = spec.get("rules")
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        name = rule.get("window") if isinstance(rule, dict) else None
        if isinstance(name, str) and name not in declared:
            hint = did_you_mean(name, declared) or "declare it under spec.windows"
            report(
                "policy.unknown_reference",
                f"rule window {name!r} names no window of this "
                f"policy (windows: {', '.join(declared) or 'none'})",
                ("rules", i, "window"),
                hint=hint,
            )


def _check_targets(
    raw: dict[str, Any],
    spec: dict[str, Any],
    origin: Origin,
    report: _Reporter,
    clean: Callable[[DocPath], bool],
) -> None:
    if origin is Origin.BUILTIN or not clean(("spec", "targets")):
        return
    targets = _dict(spec.get("targets"))
    where: DocPath = ("targets",) if "targets" in spec else ()
    kind = raw.get("kind")
    if kind == "ClusterRolloutPolicy" and targets.get("namespaceSelector") is None:
        report(
            "policy.target",
            "ClusterRolloutPolicy has no spec.targets.namespaceSelector",
            where,
            key=True,
            hint="use namespaceSelector: {} to select every namespace",
        )
    elif kind == "RolloutPolicy":
        if targets.get("rolloutSelector") is None and not targets.get("targetRefs"):
            report(
                "policy.target",
                "RolloutPolicy has neither spec.targets.rolloutSelector nor "
                "spec.targets.targetRefs",
                where,
                key=True,
                hint="use rolloutSelector: {} to attach to every Rollout of the namespace",
            )
        if targets.get("namespaceSelector") is not None:
            report(
                "policy.target",
                "namespaceSelector is only valid in a ClusterRolloutPolicy",
                ("targets", "namespaceSelector"),
                key=True,
            )


def _check_windows(
    spec: dict[str, Any], report: _Reporter, clean: Callable[[DocPath], bool]
) -> None:
    items = spec.get("windows")
    if not isinstance(items, list) or not items:
        return
    from policy_engine import windows  # written alongside; imported only when needed

    for i, raw in enumerate(items):
        if not isinstance(raw, dict) or not clean(("spec", "windows", i)):
            continue
        try:
            windows.parse_window(raw)
        except windows.WindowSyntaxError as exc:
            try:
                inner: DocPath = parse_path(exc.field) if exc.field else ()
            except PathSyntaxError:
                inner = ()
            report("policy.schema", str(exc), ("windows", i, *inner), hint=exc.hint)


def _check_params(spec: dict[str, Any], report: _Reporter) -> None:
    params = spec.get("params")
    for name, raw in params.items() if isinstance(params, dict) else ():
        path: DocPath = ("params", name)
        if not _IDENTIFIER.match(name):
            report(
                "policy.schema",
                f"param name {name!r} is not a CEL identifier",
                path,
                key=True,
                hint="use letters, digits and '_' (params.minSoak)",
            )
        full = isinstance(raw, dict) and "type" in raw
        if full and (set(raw) <= _PARAM_KEYS or raw["type"] in PARAM_TYPES):
            for key in sorted(set(raw) - _PARAM_KEYS):
                report(
                    "policy.schema",
                    f"unknown field {key!r} in spec.params.{name}",
                    (*path, key),
                    key=True,
                    hint=did_you_mean(key, sorted(_PARAM_KEYS)),
                )
            kind, value, where = raw["type"], raw.get("default"), (*path, "default")
            if kind not in PARAM_TYPES:
                report(
                    "policy.schema",
                    f"param {name!r}: unknown type {kind!r} (types: {', '.join(PARAM_TYPES)})",
                    (*path, "type"),
                    hint=did_you_mean(str(kind), PARAM_TYPES),
                )
                continue
            if not isinstance(raw.get("description", ""), str):
                report(
                    "policy.schema",
                    f"param {name!r}: description must be a string",
                    (*path, "description"),
                )
        else:
            kind, value, where = infer_param_type(raw), raw, path
        problem = _default_problem(kind, value)
        if problem is not None:
            report(
                "policy.schema",
                f"param {name!r}: default {value!r:.60} is not a valid {kind}: {problem}",
                where,
            )


def _default_problem(kind: str, value: Any) -> str | None:
    checks: dict[str, Callable[[Any], bool]] = {
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "list": lambda v: isinstance(v, list),
        "map": lambda v: isinstance(v, dict),
    }
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
    check = checks.get(kind)
    return None if check is None or check(value) else f"expected a {kind}"


def _duplicate_policies(policies: Sequence[Policy]) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    seen: dict[tuple[str, str | None, str], Policy] = {}
    for policy in policies:
        key = (policy.document.kind, policy.namespace, policy.name)
        first = seen.setdefault(key, policy)
        if first is policy or not isinstance(policy.source, YamlSourceMap):
            continue
        line = first.source.locate(("metadata", "name"))[0] if first.source else 0
        problems.append(
            policy.source.diagnostic(
                "policy.duplicate_id",
                f"{key[0]} {policy.ref!r} is already defined in {first.file}:{line}",
                ("metadata", "name"),
                hint="policy names must be unique per kind and namespace",
            )
        )
    return problems


def _with_rules(problems: list[Diagnostic], raw: Mapping[str, Any]) -> list[Diagnostic]:
    spec = raw.get("spec")
    rules = spec.get("rules") if isinstance(spec, dict) else None
    out: list[Diagnostic] = []
    for problem in problems:
        match = _RULE_PATH.match(problem.path or "")
        name = None
        if problem.rule is None and match and isinstance(rules, list):
            index = int(match.group(1))
            name = _dict(rules[index] if index < len(rules) else None).get("name")
        out.append(replace(problem, rule=name) if isinstance(name, str) else problem)
    return out


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
