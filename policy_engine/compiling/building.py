"""Policy → CompiledPolicy: every expression checked and compiled once, with a digest.

Callers: ``compile_policies`` is re-exported by ``policy_engine.compiling`` for the CLI
verbs, ``testing``, ``replaying`` and the controller's policy cache (keyed by digest).
Collects every problem of every policy into one ``PolicyErrors``. Must not evaluate
anything against facts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from policy_engine import windows
from policy_engine.cel import environment, fusing
from policy_engine.cel.backend import CelBackend, CelCompileError, CelEnv, Program
from policy_engine.cel.parsing import reads as variables
from policy_engine.cel.parsing.timing import TimeSite, find_sites
from policy_engine.cel.types import CelType
from policy_engine.compiling.compiled import (
    ENGINE_VERSION,
    CompiledExpr,
    CompiledPolicy,
    CompiledRule,
    DocPath,
    typed_param,
)
from policy_engine.errors import Diagnostic, PolicyErrors, Severity, SourceLocation
from policy_engine.model import schema
from policy_engine.model.paths import FactPath
from policy_engine.model.policy import Policy, RuleSpec
from policy_engine.model.times import TimeSyntaxError


def compile_policies(policies: Sequence[Policy], backend: CelBackend) -> list[CompiledPolicy]:
    """Compiles all policies; raises one PolicyErrors with every problem found."""
    compiled: list[CompiledPolicy] = []
    problems: list[Diagnostic] = []
    envs: dict[tuple[tuple[str, windows.Window], ...], CelEnv] = {}
    for policy in policies:
        builder = _Builder(policy, backend, envs)
        result = builder.build()
        problems.extend(builder.errors)
        if result is not None:
            compiled.append(result)
    if problems:
        raise PolicyErrors(problems)
    return compiled


def policy_digest(policy: Policy, backend: CelBackend) -> str:
    document = policy.document.model_dump(mode="json", by_alias=True, exclude_none=True)
    canonical = json.dumps(
        {
            "policy": document,
            "origin": policy.origin.value,
            "engine": ENGINE_VERSION,
            "backend": f"{backend.name} {backend.version}",
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


class _Builder:
    def __init__(
        self,
        policy: Policy,
        backend: CelBackend,
        envs: dict[tuple[tuple[str, windows.Window], ...], CelEnv],
    ) -> None:
        self.policy = policy
        self.backend = backend
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        spec = policy.spec
        self.windows = self._windows()
        # policies with the same window table share one environment (and activations)
        key = tuple(sorted(self.windows.items()))
        if key not in envs:
            envs[key] = environment.make_env(
                self.windows, name=policy.ref, extra_roots=(fusing.RELEASES,)
            )
        self.env = envs[key]
        self.params = self._params(spec.params)
        self.scope = variables.Scope(
            params=frozenset(spec.params), metrics=frozenset(spec.facts.metrics)
        )
        self.variable_exprs: dict[str, CompiledExpr] = {}
        self.candidate_variables: set[str] = set()
        self.matches_per_candidate = False

    def build(self) -> CompiledPolicy | None:
        spec = self.policy.spec
        variables_ = self._variables()
        matches = tuple(
            (m.name, expr)
            for i, m in enumerate(spec.match_conditions)
            if (
                expr := self.expr(
                    m.expression, ("spec", "matchConditions", i, "expression"), CelType.BOOL
                )
            )
            is not None
        )
        self.matches_per_candidate = any(self.per_candidate(e) for _, e in matches)
        metric_queries: dict[str, CompiledExpr] = {}
        for name, metric in spec.facts.metrics.items():
            if metric.query_expression is not None:
                query = self.expr(
                    metric.query_expression,
                    ("spec", "facts", "metrics", name, "queryExpression"),
                    CelType.STRING,
                )
                if query is not None:
                    metric_queries[name] = query
        rules = tuple(r for i, rule in enumerate(spec.rules) if (r := self.rule(i, rule)))
        if self.errors:
            return None
        return CompiledPolicy(
            self.policy,
            policy_digest(self.policy, self.backend),
            self.backend.name,
            self.env,
            self.params,
            {n: p.type for n, p in spec.params.items()},
            variables_,
            matches,
            rules,
            dict(spec.facts.metrics),
            self.windows,
            tuple(self.warnings),
            variables_per_candidate=bool(self.candidate_variables),
            variables_read_now=any(e.checked.analysis.reads_now for _, e in variables_),
            matches_per_candidate=self.matches_per_candidate,
            metric_queries=metric_queries,
        )

    def _windows(self) -> dict[str, windows.Window]:
        table: dict[str, windows.Window] = {}
        for i, spec in enumerate(self.policy.spec.windows):
            try:
                table[spec.name] = windows.window_from_spec(spec)
            except windows.WindowSyntaxError as exc:
                self.error("cel.invalid_argument", str(exc), ("spec", "windows", i), exc.hint)
        return table

    def _params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        typed: dict[str, Any] = {}
        for name, spec in params.items():
            try:
                typed[name] = typed_param(spec)
            except (TimeSyntaxError, ValueError, TypeError) as exc:
                self.error("policy.schema", f"param {name!r}: {exc}", ("spec", "params", name))
        return typed

    def _variables(self) -> tuple[tuple[str, CompiledExpr], ...]:
        out: list[tuple[str, CompiledExpr]] = []
        declared: dict[str, tuple[schema.FactType | None, frozenset[FactPath]]] = {}
        for i, var in enumerate(self.policy.spec.variables):
            expr = self.expr(var.expression, ("spec", "variables", i, "expression"))
            if expr is not None:
                analysis = expr.checked.analysis
                declared[var.name] = (analysis.chain_type, analysis.reads)
                out.append((var.name, expr))
                self.variable_exprs[var.name] = expr
                if self.per_candidate(expr):
                    self.candidate_variables.add(var.name)
            else:
                declared[var.name] = (None, frozenset())
            self.scope = variables.Scope(self.scope.params, self.scope.metrics, dict(declared))
        return tuple(out)

    def rule_body(
        self, rule: RuleSpec, base: DocPath
    ) -> tuple[CompiledExpr | None, tuple[tuple[str, CompiledExpr], ...], str] | None:
        """(body, checks, mode); None for a window rule naming an unusable window."""
        if rule.window is not None:
            if rule.window not in self.windows:
                if rule.window not in {w.name for w in self.policy.spec.windows}:
                    self.error(
                        "policy.unknown_reference",
                        f"rule {rule.name!r}: no window {rule.window!r} in spec.windows",
                        (*base, "window"),
                        rule=rule.name,
                    )
                return None
            body = self.expr(
                f"inWindow(now, '{rule.window}')",
                (*base, "window"),
                CelType.BOOL,
                rule=rule.name,
                synthetic=True,
            )
            return body, (), "expression"
        if rule.expression is not None:
            body = self.expr(rule.expression, (*base, "expression"), CelType.BOOL, rule=rule.name)
            return body, (), "expression"
        mode = "all" if rule.all is not None else "any"
        items = rule.all if rule.all is not None else rule.any or ()
        checks = tuple(
            (c.name, e)
            for j, c in enumerate(items)
            if (
                e := self.expr(
                    c.expression, (*base, mode, j, "expression"), CelType.BOOL, rule=rule.name
                )
            )
            is not None
        )
        return None, checks, mode

    def rule(self, index: int, rule: RuleSpec) -> CompiledRule | None:
        base: DocPath = ("spec", "rules", index)
        defaults = self.policy.spec.defaults
        found = self.rule_body(rule, base)
        if found is None:
            return None
        body, checks, mode = found
        when = self.optional(rule.when, (*base, "when"), CelType.BOOL, rule.name)
        pending = self.optional(rule.pending_when, (*base, "pendingWhen"), CelType.BOOL, rule.name)
        message = self.optional(
            rule.message_expression, (*base, "messageExpression"), CelType.STRING, rule.name
        )
        outputs = tuple(
            (name, e)
            for name, text in rule.outputs.items()
            if (e := self.expr(text, (*base, "outputs", name), rule=rule.name)) is not None
        )
        if body is None and not checks:
            return None
        parts = [p for p in (when, pending, body, *(c for _, c in checks)) if p]
        reads = frozenset().union(*(p.checked.analysis.reads for p in parts))
        parts += [
            self.variable_exprs[str(path[1])]
            for path in sorted(reads, key=str)
            if path[0] == "variables" and len(path) > 1 and str(path[1]) in self.variable_exprs
        ]
        sites = self.rule_sites(rule.name, parts, base)
        per_candidate = self.matches_per_candidate or any(
            self.per_candidate(e) for e in (*parts, message, *(e for _, e in outputs)) if e
        )
        fused = _fused_source(when, pending, body, checks)
        return CompiledRule(
            name=rule.name,
            rule_id=self.policy.rule_id(rule.name),
            kind=rule.kind,
            effect=rule.effect or defaults.effect,
            on_error=rule.on_error or defaults.on_error,
            reason=rule.reason_or_default,
            message=rule.message or rule.name,
            location=self.location((*base, "name")),
            body=body,
            checks=checks,
            mode=mode,
            when=when,
            pending_when=pending,
            message_expression=message,
            outputs=outputs,
            window=rule.window,
            description=rule.description,
            docs=rule.docs,
            metadata=dict(rule.metadata),
            reads=reads,
            reads_now=any(p.checked.analysis.reads_now for p in parts),
            reads_release=any(
                path[:1] == ("release",) or path[:1] == ("variables",) for path in reads
            ),
            time_sites=sites,
            per_candidate=per_candidate,
            fused=self.program(fused),
            batched=self.program(fusing.batched_source(fused)) if per_candidate else None,
            edges_per_candidate=per_candidate
            and (bool(self.candidate_variables) or any(s.reads_release for s in sites)),
        )

    def rule_sites(
        self, name: str, parts: list[CompiledExpr], base: DocPath
    ) -> tuple[TimeSite, ...]:
        """The time sites of a rule's parts; a use of now they cannot solve is a warning."""
        sites = tuple(s for p in parts for s in self.sites(p))
        for site in sites:
            if site.kind == "opaque":
                self.error(
                    "time.opaque_now",
                    f"rule {name!r} reads now in {site.text!r}; its nextChange cannot be computed",
                    (*base, "name"),
                    "compare now or since(x) with a value, or use inWindow",
                    rule=name,
                    severity=Severity.WARNING,
                )
        return sites

    def per_candidate(self, expr: CompiledExpr) -> bool:
        """Whether ``expr`` reads ``release``, all variables, or a variable that reads it."""
        return any(
            path[0] == "release"
            or (path[0] == "variables" and (len(path) == 1 or path[1] in self.candidate_variables))
            for path in expr.checked.analysis.reads
        )

    def program(self, text: str) -> Program | None:
        """A program the engine composed from checked parts; None if the backend refuses it."""
        try:
            return self.backend.compile(text, self.env)
        except CelCompileError:
            return None

    def sites(self, expr: CompiledExpr) -> tuple[TimeSite, ...]:
        def compile_part(text: str) -> Program | None:
            try:
                return environment.compile_checked(self.backend, text, self.env, self.scope).program
            except environment.CompileProblems:
                return None

        return find_sites(expr.checked.node, compile_part)

    def optional(
        self, text: str | None, path: DocPath, expect: CelType, rule: str
    ) -> CompiledExpr | None:
        return None if text is None else self.expr(text, path, expect, rule=rule)

    def expr(
        self,
        text: str,
        path: DocPath,
        expect: CelType | None = None,
        *,
        rule: str | None = None,
        synthetic: bool = False,
    ) -> CompiledExpr | None:
        try:
            checked = environment.compile_checked(
                self.backend, text, self.env, self.scope, expect=expect
            )
        except environment.CompileProblems as exc:
            for problem in exc.problems:
                offset = 0 if synthetic else problem.start
                width = 0 if synthetic else problem.end - problem.start
                self.error(problem.code, problem.message, path, problem.hint, offset, width, rule)
            return None
        for warning in checked.warnings:
            self.error(
                warning.code,
                warning.message,
                path,
                warning.hint,
                warning.start,
                warning.end - warning.start,
                rule,
                Severity.WARNING,
            )
        location = self.location(path)
        return CompiledExpr(checked, path, location)

    def location(self, path: DocPath, offset: int = 0, width: int = 0) -> SourceLocation:
        source = self.policy.source
        if source is None:
            return SourceLocation(self.policy.file)
        try:
            line, column = source.locate(path, offset)
        except (KeyError, IndexError, ValueError):
            return SourceLocation(self.policy.file)
        end = column + width if width > 0 else None
        return SourceLocation(self.policy.file, line, column, end)

    def error(
        self,
        code: str,
        message: str,
        path: DocPath,
        hint: str | None = None,
        offset: int = 0,
        width: int = 0,
        rule: str | None = None,
        severity: Severity = Severity.ERROR,
    ) -> None:
        location = self.location(path, offset, width)
        source = self.policy.source
        line_text = source.line_text(location.line) if source and location.line else None
        diagnostic = Diagnostic(
            code, message, location, hint, _path_text(path), rule, severity, line_text
        )
        (self.errors if severity is Severity.ERROR else self.warnings).append(diagnostic)


def _fused_source(
    when: CompiledExpr | None,
    pending: CompiledExpr | None,
    body: CompiledExpr | None,
    checks: tuple[tuple[str, CompiledExpr], ...],
) -> str:
    def source(expr: CompiledExpr) -> str:
        return str(expr.checked.program.source)  # after compiled_as rewriting

    return fusing.fused_source(
        source(when) if when else None,
        source(pending) if pending else None,
        source(body) if body else None,
        [source(c) for _, c in checks],
    )


def _path_text(path: DocPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
