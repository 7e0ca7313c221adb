"""Results of evaluation: RuleResult per rule, Verdict per candidate, Evaluation per target.

Callers: evaluation produces them; explaining, rendering, testing, replaying
and the controller read them. Pure data; no computation beyond folding
helpers that restate POLICY-FORMATS.md §5.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from policy_engine.errors import Diagnostic, EvalError, SourceLocation
from policy_engine.model.paths import FactPath
from policy_engine.model.policy import Effect, OnError, RuleKind


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    PENDING = "pending"
    SKIP = "skip"
    ERROR = "error"


class Decision(StrEnum):
    ALLOWED = "Allowed"
    PENDING = "Pending"
    BLOCKED = "Blocked"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One named check of an ``all``/``any`` body: True, False or an EvalError."""

    name: str
    value: bool | EvalError


@dataclass(frozen=True, slots=True)
class RuleResult:
    """The result of one rule for one candidate."""

    policy: str
    rule: str
    rule_id: str
    kind: RuleKind
    outcome: Outcome
    effect: Effect
    on_error: OnError
    reason: str
    message: str = ""
    error: EvalError | None = None
    next_change: datetime | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    output_errors: Mapping[str, EvalError] = field(default_factory=dict)
    message_error: EvalError | None = None
    checks: tuple[CheckResult, ...] = ()
    reads: frozenset[FactPath] = frozenset()
    location: SourceLocation | None = None
    duration_ns: int = 0
    time_dependent: bool = False
    opaque_time: bool = False

    @property
    def blocking(self) -> bool:
        """Whether this result keeps the candidate from being Allowed."""
        return self.effect is Effect.BLOCK and self.folded is not Outcome.PASS

    @property
    def folded(self) -> Outcome:
        """Outcome after ``onError``: an error counts as fail or pending."""
        if self.outcome is Outcome.ERROR:
            return Outcome.FAIL if self.on_error is OnError.BLOCK else Outcome.PENDING
        if self.outcome is Outcome.SKIP:
            return Outcome.PASS
        return self.outcome


def fold(results: tuple[RuleResult, ...]) -> Decision:
    """POLICY-FORMATS.md §5.3: first match wins, nothing lets an error allow."""
    return fold_outcomes([(r.effect, r.on_error, r.outcome) for r in results])


def fold_outcomes(outcomes: list[tuple[Effect, OnError, Outcome]]) -> Decision:
    """§5.3 over bare outcomes: errors folded by onError, skips count as passes."""
    pending = False
    for effect, on_error, outcome in outcomes:
        if effect is not Effect.BLOCK:
            continue
        folded = outcome
        if outcome is Outcome.ERROR:
            folded = Outcome.FAIL if on_error is OnError.BLOCK else Outcome.PENDING
        if folded is Outcome.FAIL:
            return Decision.BLOCKED
        pending = pending or folded is Outcome.PENDING
    return Decision.PENDING if pending else Decision.ALLOWED


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision for one (target, candidate)."""

    candidate: Mapping[str, Any]
    decision: Decision
    results: tuple[RuleResult, ...]
    now: datetime
    next_change: datetime | None = None
    hypothetical: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def tag(self) -> str:
        return str(self.candidate.get("tag") or "")


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """An attached policy as reported: reference, origin, file and digest."""

    ref: str
    builtin: bool
    digest: str
    file: str | None = None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """All verdicts of one target at one ``now``, newest candidate first."""

    now: datetime
    now_source: str
    verdicts: tuple[Verdict, ...]
    policies: tuple[PolicyRef, ...]
    backend: str
    facts_digest: str | None = None
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def allowed_versions(self) -> tuple[str, ...]:
        return tuple(v.tag for v in self.verdicts if v.decision is Decision.ALLOWED)

    @property
    def decision(self) -> Decision | None:
        """Allowed if any candidate is, else Pending if any is, else Blocked; None if none."""
        if not self.verdicts:
            return None
        decisions = {v.decision for v in self.verdicts}
        for wanted in (Decision.ALLOWED, Decision.PENDING):
            if wanted in decisions:
                return wanted
        return Decision.BLOCKED

    @property
    def next_change(self) -> datetime | None:
        changes = [v.next_change for v in self.verdicts if v.next_change is not None]
        return min(changes) if changes else None

    def verdict_for(self, tag: str) -> Verdict | None:
        return next((v for v in self.verdicts if v.tag == tag), None)
