"""Compiled policies: the frozen results of compiling, and param value coercion.

Callers: everything downstream of ``compiling`` (evaluation, explaining, testing,
replaying, the controller's policy cache) reads these types; ``compiling.building``
creates them. Pure data and value conversion: must not compile or evaluate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from policy_engine import windows
from policy_engine.cel import environment
from policy_engine.cel.backend import CelEnv, Program
from policy_engine.cel.parsing.timing import TimeSite
from policy_engine.errors import Diagnostic, SourceLocation
from policy_engine.model.paths import FactPath
from policy_engine.model.policy import Effect, MetricSpec, OnError, ParamSpec, Policy, RuleKind
from policy_engine.model.times import parse_duration, parse_timestamp

ENGINE_VERSION = "0.1.0"
DocPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class CompiledExpr:
    """One checked expression and where it sits in its file."""

    checked: environment.Checked
    path: DocPath
    location: SourceLocation | None

    @property
    def source(self) -> str:
        return self.checked.source


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    rule_id: str
    kind: RuleKind
    effect: Effect
    on_error: OnError
    reason: str
    message: str
    location: SourceLocation | None
    body: CompiledExpr | None = None
    checks: tuple[tuple[str, CompiledExpr], ...] = ()
    mode: str = "expression"  # expression | all | any
    when: CompiledExpr | None = None
    pending_when: CompiledExpr | None = None
    message_expression: CompiledExpr | None = None
    outputs: tuple[tuple[str, CompiledExpr], ...] = ()
    window: str | None = None
    description: str = ""
    docs: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    reads: frozenset[FactPath] = frozenset()
    reads_now: bool = False
    reads_release: bool = False
    time_sites: tuple[TimeSite, ...] = ()
    #: the result may differ between candidates: an expression of the rule, a variable
    #: it reads or a matchCondition of its policy reads ``release`` (True when unsure)
    per_candidate: bool = True
    #: when/pendingWhen/body (or checks) as one program (``cel.fusing``); None: part by part
    fused: Program | None = None
    #: ``fused`` mapped over every candidate (per-candidate rules only); None: one by one
    batched: Program | None = None
    #: the time edges may differ between candidates (a site or a variable reads ``release``)
    edges_per_candidate: bool = True

    def parts(self) -> tuple[CompiledExpr, ...]:
        found = [self.when, self.pending_when, self.body, *(c for _, c in self.checks)]
        return tuple(p for p in found if p is not None)


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    policy: Policy
    digest: str
    backend: str
    env: CelEnv
    params: Mapping[str, Any]
    param_types: Mapping[str, str]
    variables: tuple[tuple[str, CompiledExpr], ...]
    match_conditions: tuple[tuple[str, CompiledExpr], ...]
    rules: tuple[CompiledRule, ...]
    metrics: Mapping[str, MetricSpec]
    windows: Mapping[str, windows.Window]
    warnings: tuple[Diagnostic, ...] = ()
    #: some variable reads ``release`` / ``now`` (directly or through another variable)
    variables_per_candidate: bool = True
    variables_read_now: bool = True
    matches_per_candidate: bool = True
    #: ``policy.ref``, worked out once (evaluation reads it for every result)
    ref: str = ""
    #: ``facts.metrics.<name>.queryExpression``, checked as string expressions
    metric_queries: Mapping[str, CompiledExpr] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.ref:
            object.__setattr__(self, "ref", self.policy.ref)

    @property
    def name(self) -> str:
        return self.policy.name


def typed_param(spec: ParamSpec) -> Any:
    """A param's default as the value CEL sees (durations and timestamps parsed)."""
    return coerce_param(spec.type, spec.default)


def coerce_param(kind: str, value: Any) -> Any:
    """Converts a param value to its declared type; raises ValueError/TypeError."""
    if value is None:
        return None
    if kind == "duration":
        return value if isinstance(value, timedelta) else parse_duration(str(value))
    if kind == "timestamp":
        return value if isinstance(value, datetime) else parse_timestamp(str(value))
    if kind == "double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an int, got {value!r}")
        return value
    if kind == "bool" and not isinstance(value, bool):
        raise TypeError(f"expected a bool, got {value!r}")
    if kind == "string" and not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value
