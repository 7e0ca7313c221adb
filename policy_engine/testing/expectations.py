"""Comparing an evaluation with a case's ``expect``: every mismatch, as data.

Callers: ``testing.runner``. Rule references are resolved before anything
runs (``RuleIndex``); unknown or ambiguous references are input errors.
Pure: never evaluates.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from policy_engine.compiling import CompiledPolicy
from policy_engine.errors import EvalError
from policy_engine.model.times import TimeSyntaxError, format_timestamp, to_utc
from policy_engine.model.verdict import Evaluation, RuleResult, Verdict
from policy_engine.rendering.values import jsonable
from policy_engine.testing.documents import Expect, RuleExpect

UNSET = "<unset>"
OUTCOMES = ("pass", "fail", "pending", "skip", "error")


@dataclass(frozen=True, slots=True)
class Mismatch:
    path: str
    expected: Any
    actual: Any


class ReferenceError_(ValueError):
    """A rule reference that matches zero or several rules."""


class RuleIndex:
    """Resolves rule references: full ID, ``<policy>/<rule>`` or the bare name."""

    def __init__(self, policies: Sequence[CompiledPolicy]) -> None:
        self.ids = [r.rule_id for p in policies for r in p.rules]

    def resolve(self, ref: str) -> str:
        found = [i for i in self.ids if i == ref or i.endswith("/" + ref)]
        exact = [i for i in found if i == ref]
        if exact:
            return exact[0]
        if len(found) == 1:
            return found[0]
        if not found:
            names = {i.rsplit("/", 1)[-1]: i for i in self.ids}
            close = difflib.get_close_matches(ref.rsplit("/", 1)[-1], list(names), n=1)
            hint = f"; did you mean {names[close[0]]!r}?" if close else ""
            raise ReferenceError_(f"no rule {ref!r} among the {len(self.ids)} attached{hint}")
        raise ReferenceError_(f"rule reference {ref!r} is ambiguous: {', '.join(found)}")


def compare(
    expect: Expect,
    evaluation: Evaluation,
    verdict: Verdict | None,
    index: RuleIndex,
    *,
    strict: bool,
    recorded: Mapping[str, Any] | None = None,
) -> list[Mismatch]:
    """All mismatches between ``expect`` and the evaluation of the case's release."""
    found: list[Mismatch] = []
    decision = verdict.decision.value if verdict else None
    if expect.decision is not None:
        wanted = (
            _recorded_decision(recorded, verdict)
            if expect.decision == "recorded"
            else expect.decision
        )
        if wanted != decision:
            found.append(Mismatch("decision", wanted, decision))
    if expect.next_change != UNSET:
        _compare_instant(
            found, "nextChange", expect.next_change, verdict.next_change if verdict else None
        )
    if (
        expect.allowed_versions is not None
        and tuple(expect.allowed_versions) != evaluation.allowed_versions
    ):
        found.append(
            Mismatch(
                "allowedVersions", list(expect.allowed_versions), list(evaluation.allowed_versions)
            )
        )
    if expect.warnings is not None:
        wanted_ids = sorted(index.resolve(w) for w in expect.warnings)
        actual = sorted(verdict.warnings) if verdict else []
        if wanted_ids != actual:
            found.append(Mismatch("warnings", wanted_ids, actual))
    results = {r.rule_id: r for r in verdict.results} if verdict else {}
    expected_ids: set[str] = set()
    for ref, wanted in expect.rules.items():
        rule_id = index.resolve(ref)
        expected_ids.add(rule_id)
        found += compare_rule(rule_id, wanted, results.get(rule_id))
    if strict:
        for rule_id, result in results.items():
            if rule_id not in expected_ids and result.outcome.value not in ("pass", "skip"):
                found.append(
                    Mismatch(f"rules.{rule_id}", "pass or skip (strict)", result.outcome.value)
                )
    if not expect.message_error:
        for rule_id, result in results.items():
            if result.message_error is not None and not _expects_message_error(
                expect.rules, index, rule_id
            ):
                found.append(
                    Mismatch(f"rules.{rule_id}.messageError", None, str(result.message_error))
                )
    return found


def _expects_message_error(rules: Mapping[str, Any], index: RuleIndex, rule_id: str) -> bool:
    for ref, wanted in rules.items():
        if (
            isinstance(wanted, Mapping)
            and wanted.get("messageError")
            and index.resolve(ref) == rule_id
        ):
            return True
    return False


def rule_expect_problem(wanted: Any) -> str | None:
    """Why a rule expectation is malformed (checked before anything runs), else None."""
    if isinstance(wanted, str):
        if wanted not in OUTCOMES:
            return f"{wanted!r} is not a result (use {', '.join(OUTCOMES)})"
        return None
    try:
        RuleExpect.model_validate(wanted)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where + ': ' if where else ''}{first['msg']}"
    return None


def compare_rule(rule_id: str, wanted: Any, result: RuleResult | None) -> list[Mismatch]:
    path = f"rules.{rule_id}"
    if result is None:
        return [Mismatch(path, wanted, "not evaluated for this release")]
    if isinstance(wanted, str):
        wanted = {"result": wanted}
    spec = RuleExpect.model_validate(wanted)
    found: list[Mismatch] = []
    if spec.result is not None and spec.result != result.outcome.value:
        found.append(Mismatch(f"{path}.result", spec.result, result.outcome.value))
    if spec.reason is not None and spec.reason != result.reason:
        found.append(Mismatch(f"{path}.reason", spec.reason, result.reason))
    if spec.code is not None:
        actual = result.error.code if result.error else None
        if spec.code != actual:
            found.append(Mismatch(f"{path}.code", spec.code, actual))
    if spec.message is not None and not text_matches(spec.message, result.message):
        found.append(Mismatch(f"{path}.message", spec.message, result.message))
    if spec.outputs is not None:
        for name, value in spec.outputs.items():
            actual_value = jsonable(result.outputs.get(name))
            if not _same(value, actual_value):
                found.append(Mismatch(f"{path}.outputs.{name}", value, actual_value))
    if spec.checks is not None:
        checks = {c.name: c.value for c in result.checks}
        for name, value in spec.checks.items():
            actual_check = checks.get(name, "missing")
            shown = "error" if isinstance(actual_check, EvalError) else actual_check
            if shown != value:
                found.append(Mismatch(f"{path}.checks.{name}", value, shown))
    if spec.next_change != UNSET:
        _compare_instant(found, f"{path}.nextChange", spec.next_change, result.next_change)
    if spec.message_error and result.message_error is None:
        found.append(Mismatch(f"{path}.messageError", True, None))
    return found


def text_matches(wanted: Any, actual: str) -> bool:
    """A message matcher: a string (equals), ``{contains}`` or ``{matches}`` (regex)."""
    if isinstance(wanted, str):
        return wanted == actual
    if isinstance(wanted, Mapping):
        if "contains" in wanted:
            return str(wanted["contains"]) in actual
        if "matches" in wanted:
            return re.search(str(wanted["matches"]), actual) is not None
    return False


def _compare_instant(
    found: list[Mismatch], path: str, wanted: Any, actual: datetime | None
) -> None:
    if wanted is None:
        if actual is not None:
            found.append(Mismatch(path, None, format_timestamp(actual)))
        return
    try:
        instant = to_utc(wanted)
    except (TimeSyntaxError, TypeError) as exc:
        found.append(Mismatch(path, wanted, f"(expected value is not a timestamp: {exc})"))
        return
    if actual != instant:
        found.append(
            Mismatch(path, format_timestamp(instant), format_timestamp(actual) if actual else None)
        )


def _same(wanted: Any, actual: Any) -> bool:
    if (
        isinstance(wanted, int | float)
        and isinstance(actual, int | float)
        and not isinstance(wanted, bool)
    ):
        return float(wanted) == float(actual)
    return bool(wanted == actual)


def _recorded_decision(recorded: Mapping[str, Any] | None, verdict: Verdict | None) -> Any:
    if not recorded or verdict is None:
        return "(no recorded decision)"
    candidates = recorded.get("candidates") or {}
    entry = candidates.get(verdict.tag) if isinstance(candidates, Mapping) else None
    return (entry or {}).get("decision", "(not recorded for this release)")


def recorded_release(recorded: Mapping[str, Any] | None) -> str | None:
    candidates = (recorded or {}).get("candidates") or {}
    return next(iter(candidates), None) if isinstance(candidates, Mapping) else None


def unresolved(refs: Iterable[str], index: RuleIndex) -> list[str]:
    """Messages for references that do not resolve to exactly one rule."""
    problems: list[str] = []
    for ref in refs:
        try:
            index.resolve(ref)
        except ReferenceError_ as exc:
            problems.append(str(exc))
    return problems
