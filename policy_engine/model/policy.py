"""The policy documents: RolloutPolicy and ClusterRolloutPolicy, as validated data.

Callers: ``loading`` builds these from YAML; ``compiling`` reads them. This
module does no I/O and knows nothing about CEL beyond holding expression text.
Field names follow POLICY-FORMATS.md §2.2 (camelCase aliases).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

API_VERSION = "tidegate.dev/v1alpha1"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
REASON_PATTERN = r"^[A-Z][A-Za-z0-9]*$"
PARAM_TYPES = ("bool", "int", "double", "string", "duration", "timestamp", "list", "map")


class Strict(BaseModel):
    """Frozen, camelCase-aliased model that rejects unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Effect(StrEnum):
    BLOCK = "block"
    WARN = "warn"
    AUDIT = "audit"


class OnError(StrEnum):
    BLOCK = "block"
    PENDING = "pending"


class RuleKind(StrEnum):
    GATE = "gate"
    WINDOW = "window"
    DEPENDENCY = "dependency"
    HEALTH = "health"


class Origin(StrEnum):
    BUILTIN = "builtin"
    NAMESPACED = "namespaced"
    CLUSTER = "cluster"


class LabelSelectorRequirement(Strict):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()


class LabelSelector(Strict):
    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: tuple[LabelSelectorRequirement, ...] = Field(
        default=(), alias="matchExpressions"
    )


class TargetRef(Strict):
    kind: Literal["Rollout"]
    name: str
    namespace: str | None = None


class Targets(Strict):
    rollout_selector: LabelSelector | None = Field(default=None, alias="rolloutSelector")
    target_refs: tuple[TargetRef, ...] = Field(default=(), alias="targetRefs")
    namespace_selector: LabelSelector | None = Field(default=None, alias="namespaceSelector")


class ParamSpec(Strict):
    type: Literal["bool", "int", "double", "string", "duration", "timestamp", "list", "map"]
    default: Any = None
    description: str = ""


class Defaults(Strict):
    effect: Effect = Effect.BLOCK
    on_error: OnError = Field(default=OnError.BLOCK, alias="onError")


class MetricSpec(Strict):
    query: str | None = None
    query_expression: str | None = Field(default=None, alias="queryExpression")
    endpoint: str = "default"
    max_age: str = Field(default="5m", alias="maxAge")

    @model_validator(mode="after")
    def _one_query(self) -> MetricSpec:
        if (self.query is None) == (self.query_expression is None):
            raise ValueError("exactly one of 'query' and 'queryExpression' is required")
        return self


class FactRequirementsSpec(Strict):
    metrics: dict[str, MetricSpec] = Field(default_factory=dict)


class WindowEntrySpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    days: tuple[str, ...] | None = None
    between: str | None = None
    dates: str | None = None


class WindowSpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    timezone: str
    allow: tuple[WindowEntrySpec, ...] = ()
    deny: tuple[WindowEntrySpec, ...] = ()


class NamedExpression(Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    expression: str


class RuleSpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    kind: RuleKind = RuleKind.GATE
    when: str | None = None
    pending_when: str | None = Field(default=None, alias="pendingWhen")
    expression: str | None = None
    all: tuple[NamedExpression, ...] | None = None
    any: tuple[NamedExpression, ...] | None = None
    window: str | None = None
    effect: Effect | None = None
    on_error: OnError | None = Field(default=None, alias="onError")
    message: str | None = None
    message_expression: str | None = Field(default=None, alias="messageExpression")
    reason: str | None = Field(default=None, pattern=REASON_PATTERN)
    outputs: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    docs: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_body(self) -> RuleSpec:
        bodies = [b for b in ("expression", "all", "any", "window") if getattr(self, b) is not None]
        if len(bodies) != 1:
            found = ", ".join(bodies) or "none"
            raise ValueError(
                f"exactly one of expression, all, any, window is required (found: {found})"
            )
        return self

    @property
    def reason_or_default(self) -> str:
        if self.reason:
            return self.reason
        return "".join(part.capitalize() for part in self.name.split("-"))


class PolicySpec(Strict):
    description: str = ""
    targets: Targets | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    facts: FactRequirementsSpec = Field(default_factory=FactRequirementsSpec)
    windows: tuple[WindowSpec, ...] = ()
    variables: tuple[NamedExpression, ...] = ()
    match_conditions: tuple[NamedExpression, ...] = Field(default=(), alias="matchConditions")
    rules: tuple[RuleSpec, ...] = Field(min_length=1)

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any]) -> dict[str, Any]:
        return {name: normalise_param(name, raw) for name, raw in value.items()}


class Metadata(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    namespace: str | None = Field(default=None, pattern=NAME_PATTERN)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None


class PolicyDocument(Strict):
    api_version: Literal["tidegate.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["RolloutPolicy", "ClusterRolloutPolicy"]
    metadata: Metadata
    spec: PolicySpec


def normalise_param(name: str, raw: Any) -> ParamSpec:
    """Turns a param's shorthand value or full declaration into a ParamSpec."""
    if isinstance(raw, ParamSpec):
        return raw
    if isinstance(raw, dict) and "type" in raw and set(raw) <= {"type", "default", "description"}:
        return ParamSpec.model_validate(raw)
    return ParamSpec(type=infer_param_type(raw), default=raw)


def infer_param_type(
    value: Any,
) -> Literal["bool", "int", "double", "string", "duration", "timestamp", "list", "map"]:
    """Infers a param type from a YAML value (strings that parse as durations stay strings)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "map"
    return "string"


class SourceMap(Protocol):
    """Where each node of a loaded YAML document sits in its file.

    ``locate`` maps a document path (``('spec', 'rules', 0, 'expression')``)
    and a character offset inside that scalar's value (block scalars
    included) to the 1-based (line, column) in the file. Implemented by
    ``loading``.
    """

    file: str

    def locate(self, path: tuple[str | int, ...], offset: int = 0) -> tuple[int, int]: ...

    def line_text(self, line: int) -> str: ...


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy document with its origin and source positions."""

    document: PolicyDocument
    origin: Origin
    file: str
    source: SourceMap | None = None

    @property
    def name(self) -> str:
        return self.document.metadata.name

    @property
    def namespace(self) -> str | None:
        return self.document.metadata.namespace

    @property
    def spec(self) -> PolicySpec:
        return self.document.spec

    @property
    def ref(self) -> str:
        """``kuberik`` for builtins, ``name`` for cluster, ``ns/name`` for namespaced."""
        if self.origin is Origin.BUILTIN:
            return "kuberik"
        if self.origin is Origin.CLUSTER or not self.namespace:
            return self.name
        return f"{self.namespace}/{self.name}"

    def rule_id(self, rule: str) -> str:
        return f"{self.ref}/{rule}"
