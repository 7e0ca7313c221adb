"""The test file formats as data: PolicyTest, FactFixture, PolicyCheckTest (POLICY-FORMATS.md §8).

Callers: ``testing.discovery`` validates documents into these models;
``testing.runner`` reads them. Pure pydantic models; no I/O.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

API_VERSION = "tidegate.dev/v1alpha1"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Meta(Strict):
    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class FactsSpec(Strict):
    from_: str | None = Field(default=None, alias="from")
    use: tuple[str, ...] = ()
    patch: dict[str, Any] | None = None
    set: dict[str, Any] | None = None


class SweepSpec(Strict):
    from_: str = Field(alias="from")
    to: str
    step: str


class RuleExpect(Strict):
    result: Literal["pass", "fail", "pending", "skip", "error"] | None = None
    reason: str | None = None
    code: str | None = None
    message: Any = None
    outputs: dict[str, Any] | None = None
    checks: dict[str, Any] | None = None
    next_change: Any = Field(default="<unset>", alias="nextChange")
    message_error: bool | None = Field(default=None, alias="messageError")


class TransitionSpec(Strict):
    at: str
    to: str
    rule: str | None = None


class Expect(Strict):
    decision: str | None = None
    next_change: Any = Field(default="<unset>", alias="nextChange")
    allowed_versions: tuple[str, ...] | None = Field(default=None, alias="allowedVersions")
    warnings: tuple[str, ...] | None = None
    health: str | None = None
    rules: dict[str, Any] = Field(default_factory=dict)
    initial: Any = None
    transitions: tuple[TransitionSpec, ...] | None = None
    message_error: bool | None = Field(default=None, alias="messageError")


class CaseSpec(Strict):
    name: str
    now: Any = None
    release: str | None = None
    facts: FactsSpec | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    expect: Expect | None = None
    matrix: dict[str, list[Any]] | None = None
    sweep: SweepSpec | None = None
    rules: tuple[str, ...] = ()
    skip: bool = False
    skip_reason: str | None = Field(default=None, alias="skipReason")
    todo: bool = False
    strict: bool | None = None
    tags: tuple[str, ...] = ()
    description: str = ""

    @model_validator(mode="after")
    def _skip_reason(self) -> CaseSpec:
        if self.skip and not self.skip_reason:
            raise ValueError("skip: true needs a skipReason")
        if not self.todo and not self.skip and self.expect is None:
            raise ValueError("a case needs 'expect' (or todo: true)")
        return self


class DefaultsSpec(Strict):
    now: Any = None
    release: str | None = None
    facts: FactsSpec | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    expect: Expect | None = None
    strict: bool | None = None


class TargetSpec(Strict):
    rollout: str | None = None
    health_check: str | None = Field(default=None, alias="healthCheck")


class PolicyTestDocument(Strict):
    api_version: Literal["tidegate.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["PolicyTest"]
    metadata: Meta
    policies: tuple[str, ...] = ()
    builtins: bool | tuple[str, ...] = True
    target: TargetSpec | None = None
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec)
    fixtures: dict[str, dict[str, Any]] = Field(default_factory=dict)
    strict: bool = False
    cases: tuple[CaseSpec, ...] = Field(min_length=1)


class FactFixtureDocument(Strict):
    api_version: Literal["tidegate.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["FactFixture"]
    metadata: Meta
    facts: dict[str, Any]


class DiagnosticExpect(Strict):
    code: str
    at: str | None = None
    path: str | None = None
    message: Any = None


class CheckExpect(Strict):
    valid: bool | None = None
    errors: tuple[DiagnosticExpect, ...] = ()
    warnings: tuple[DiagnosticExpect, ...] = ()


class CheckCaseSpec(Strict):
    name: str
    policy: str | None = None
    policies: tuple[str, ...] = ()
    expect: CheckExpect
    allow_other_errors: bool = Field(default=False, alias="allowOtherErrors")
    skip: bool = False
    skip_reason: str | None = Field(default=None, alias="skipReason")
    todo: bool = False
    tags: tuple[str, ...] = ()


class PolicyCheckTestDocument(Strict):
    api_version: Literal["tidegate.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["PolicyCheckTest"]
    metadata: Meta
    cases: tuple[CheckCaseSpec, ...] = Field(min_length=1)
