"""The result of one rule for one candidate (POLICY-FORMATS.md §5.2).

Callers: ``evaluation`` (at ``now`` and at time edges). Errors are values:
a failing expression yields an ``error`` outcome whose code names the cause,
with fact errors (``fact.*``) taking precedence when the rule read an
unavailable fact. Never raises for rule or fact problems.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policy_engine.cel import fusing
from policy_engine.cel.backend import CelBackend
from policy_engine.compiling import CompiledExpr, CompiledRule
from policy_engine.errors import EvalError, cap
from policy_engine.evaluation.binding import PolicyBinding
from policy_engine.model import schema
from policy_engine.model.facts import FactSet
from policy_engine.model.verdict import CheckResult, Outcome


@dataclass(frozen=True, slots=True)
class RawResult:
    """A rule's outcome before time edges and presentation are added."""

    outcome: Outcome
    reason: str | None = None
    error: EvalError | None = None
    checks: tuple[CheckResult, ...] = ()


@dataclass(frozen=True, slots=True)
class Presentation:
    message: str
    message_error: EvalError | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    output_errors: Mapping[str, EvalError] = field(default_factory=dict)


NOT_APPLICABLE = "NotApplicable"


class RuleRunner:
    """Evaluates rules of one policy binding, mapping errors to fact errors."""

    def __init__(self, backend: CelBackend, facts: FactSet) -> None:
        self.backend = backend
        self.facts = facts
        self._lost: dict[int, bool] = {}
        self._unfused: set[int] = set()

    def shortcuts(self, rule: CompiledRule) -> bool:
        """Whether fused and batched programs are worth trying for ``rule``.

        Not when it reads an unavailable fact (it would fail, or need the has()
        retry, and be evaluated part by part anyway), nor once its fused program
        gave no result in this evaluation (the same failure tends to recur at
        every time edge): each costs at most one call more than part by part.
        """
        lost = self._lost.get(id(rule))
        if lost is None:
            lost = bool(self.facts.errors) and self.facts.error_for(tuple(rule.reads)) is not None
            self._lost[id(rule)] = lost
        return not lost and id(rule) not in self._unfused

    def value(self, expr: CompiledExpr, binding: PolicyBinding) -> object | EvalError:
        result = self.backend.evaluate(expr.checked.program, binding.bound)
        if isinstance(result, EvalError):
            tested = self.tested_only(expr)
            if tested:
                # has() on an unavailable root is false (§3): bind it empty, only for an
                # expression that never reads it as a whole (so every other read errors)
                empty = self.backend.bind({key: {} for key in tested}, base=binding.bound)
                retried = self.backend.evaluate(expr.checked.program, empty)
                if not isinstance(retried, EvalError):
                    return retried
            return self.explain_error(result, expr, binding)
        return result

    def tested_only(self, expr: CompiledExpr) -> list[str]:
        """Unavailable map/record roots that ``expr`` reads only by key or inside has()."""
        lost = {str(e.path[0]) for e in self.facts.errors if len(e.path) == 1}
        return sorted(
            root
            for root in expr.checked.analysis.empty_safe & lost
            if isinstance(schema.root_type(root), schema.MapOf | schema.Record)
        )

    def explain_error(
        self, error: EvalError, expr: CompiledExpr, binding: PolicyBinding
    ) -> EvalError:
        """Replaces a generic error by the fact or variable error that caused it."""
        reads = tuple(expr.checked.analysis.reads)
        fact_error = self.facts.error_for(reads)
        if fact_error is not None:
            return EvalError(fact_error.code, cap(fact_error.message), error.span)
        for path in reads:
            if path[:1] == ("variables",) and len(path) > 1:
                failed = binding.variable_errors.get(str(path[1]))
                if failed is not None:
                    return EvalError(failed.code, f"variable {path[1]}: {failed.message}")
        return error

    def boolean(self, expr: CompiledExpr, binding: PolicyBinding) -> bool | EvalError:
        result = self.value(expr, binding)
        if isinstance(result, EvalError | bool):
            return result
        return EvalError("eval.type_error", f"expected bool, got {type(result).__name__}")

    def raw(self, rule: CompiledRule, binding: PolicyBinding) -> RawResult:
        """when → pendingWhen → body, as §5.2 orders them: fused when it can be, else stepwise."""
        if rule.fused is not None and self.shortcuts(rule):
            found = decode_fused(rule, self.backend.evaluate(rule.fused, binding.bound))
            if found is not None:
                return found
            self._unfused.add(id(rule))
        return self.stepwise(rule, binding)

    def stepwise(self, rule: CompiledRule, binding: PolicyBinding) -> RawResult:
        """Each part on its own, so an error is reported by the part that raised it."""
        if rule.when is not None:
            when = self.boolean(rule.when, binding)
            if isinstance(when, EvalError):
                return RawResult(Outcome.ERROR, error=when)
            if not when:
                return RawResult(Outcome.SKIP, reason=NOT_APPLICABLE)
        pending = False
        if rule.pending_when is not None:
            pending_value = self.boolean(rule.pending_when, binding)
            if isinstance(pending_value, EvalError):
                return RawResult(Outcome.ERROR, error=pending_value)
            pending = pending_value
        body, checks = self.body(rule, binding)
        if pending:
            return RawResult(Outcome.PENDING, checks=checks)
        if isinstance(body, EvalError):
            return RawResult(Outcome.ERROR, error=body, checks=checks)
        return RawResult(Outcome.PASS if body else Outcome.FAIL, checks=checks)

    def body(
        self, rule: CompiledRule, binding: PolicyBinding
    ) -> tuple[bool | EvalError, tuple[CheckResult, ...]]:
        if rule.body is not None:
            return self.boolean(rule.body, binding), ()
        checks = tuple(CheckResult(name, self.boolean(expr, binding)) for name, expr in rule.checks)
        return fold_checks(rule.mode, checks), checks

    def present(self, rule: CompiledRule, binding: PolicyBinding, outcome: Outcome) -> Presentation:
        """Message for non-pass results, outputs for non-skip results."""
        message = rule.message
        message_error: EvalError | None = None
        if outcome in (Outcome.FAIL, Outcome.PENDING) and rule.message_expression is not None:
            value = self.value(rule.message_expression, binding)
            if isinstance(value, str) and value:
                message = value
            else:
                message_error = (
                    value
                    if isinstance(value, EvalError)
                    else EvalError(
                        "eval.type_error", "messageExpression gave an empty or non-string value"
                    )
                )
        outputs: dict[str, Any] = {}
        output_errors: dict[str, EvalError] = {}
        if outcome is not Outcome.SKIP:
            for name, expr in rule.outputs:
                value = self.value(expr, binding)
                if isinstance(value, EvalError):
                    output_errors[name] = value
                else:
                    outputs[name] = value
        return Presentation(message, message_error, outputs, output_errors)


_BY_CODE = {
    fusing.SKIPPED: RawResult(Outcome.SKIP, reason=NOT_APPLICABLE),
    fusing.PENDING: RawResult(Outcome.PENDING),
    fusing.PASSED: RawResult(Outcome.PASS),
    fusing.FAILED: RawResult(Outcome.FAIL),
}


def decode_fused(rule: CompiledRule, value: object) -> RawResult | None:
    """The result a fused program's value stands for; None when the parts must be run."""
    if rule.body is not None:
        return _BY_CODE.get(value) if type(value) is int else None
    if type(value) is not list:
        return None
    if not value:
        return _BY_CODE[fusing.SKIPPED] if rule.when is not None else None
    if len(value) != len(rule.checks) + 1 or any(type(v) is not bool for v in value):
        return None
    checks = tuple(
        CheckResult(name, v) for (name, _), v in zip(rule.checks, value[1:], strict=True)
    )
    if value[0]:
        return RawResult(Outcome.PENDING, checks=checks)
    return RawResult(
        Outcome.PASS if fold_checks(rule.mode, checks) else Outcome.FAIL, checks=checks
    )


def evaluates_presentation(rule: CompiledRule, outcome: Outcome) -> bool:
    """Whether ``present`` evaluates anything (else its message is ``rule.message``)."""
    if rule.outputs and outcome is not Outcome.SKIP:
        return True
    return rule.message_expression is not None and outcome in (Outcome.FAIL, Outcome.PENDING)


def fold_checks(mode: str, checks: tuple[CheckResult, ...]) -> bool | EvalError:
    """``all``: any false → false, else any error → error, else true; ``any`` mirrors."""
    decisive = mode != "all"
    if any(c.value is decisive for c in checks):
        return decisive
    errors = [c.value for c in checks if isinstance(c.value, EvalError)]
    if errors:
        first = errors[0]
        assert isinstance(first, EvalError)
        return first
    return not decisive
