"""[T] The ``status.decision`` field: the engine's verdicts, explained per candidate and rule.

Callers: ``planning.deciding``. Pure. Non-pass rules only; ``evaluatedAt``
moves only when the rest of the decision changes, so an unchanged decision
never causes a status write (and no self-inflicted watch event).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from policy_engine.model.times import format_timestamp
from policy_engine.model.verdict import Evaluation, Outcome, RuleResult, Verdict


def decision_status(
    evaluation: Evaluation, previous: Mapping[str, Any], focus: str | None = None
) -> dict[str, Any]:
    """``{decision, allowedVersions, nextChange, evaluatedAt, policies, candidates}``.

    ``decision`` and ``nextChange`` are the engine's overall ones, or, with ``focus``
    (the candidate that must deploy next, e.g. the oldest under ``sequential``), that
    candidate's.
    """
    word, next_change = evaluation.decision, evaluation.next_change
    focused = evaluation.verdict_for(focus) if focus is not None else None
    if focused is not None:
        word, next_change = focused.decision, focused.next_change
    decision: dict[str, Any] = {
        "decision": str(word) if word else None,
        "allowedVersions": list(evaluation.allowed_versions),
        "policies": [{"name": p.ref, "digest": p.digest} for p in evaluation.policies],
        "candidates": [_candidate(v) for v in evaluation.verdicts],
    }
    _set_time(decision, "nextChange", next_change)
    earlier = dict(previous.get("decision") or {})
    stamp = earlier.pop("evaluatedAt", None)
    decision["evaluatedAt"] = (
        stamp if earlier == decision and stamp else format_timestamp(evaluation.now)
    )
    return {k: v for k, v in decision.items() if v is not None}


def _candidate(verdict: Verdict) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "tag": verdict.tag,
        "decision": str(verdict.decision),
        "rules": [_rule(r) for r in verdict.results if r.folded is not Outcome.PASS],
    }
    _set_time(entry, "nextChange", verdict.next_change)
    return entry


def _rule(result: RuleResult) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": result.rule_id,
        "result": str(result.outcome),
        "reason": result.reason,
        "message": _message(result),
    }
    _set_time(rule, "nextChange", result.next_change)
    return rule


def _message(result: RuleResult) -> str | None:
    """The rule's message; for an error, also the error (the cause an operator needs)."""
    if result.error is None:
        return result.message
    cause = f"{result.error.code}: {result.error.message}"
    return f"{result.message}: {cause}" if result.message else cause


def _set_time(target: dict[str, Any], key: str, value: datetime | None) -> None:
    if value is not None:
        target[key] = format_timestamp(value)


def facts_unavailable(evaluation: Evaluation) -> str | None:
    """ "Facts unavailable: …" naming the facts whose errors kept candidates from Allowed."""
    found: list[str] = []
    for verdict in evaluation.verdicts:
        for result in verdict.results:
            error = result.error
            if error is not None and error.code.startswith("fact.") and result.blocking:
                text = f"{error.code}: {error.message}"
                if text not in found:
                    found.append(text)
    return "Facts unavailable: " + "; ".join(found) if found else None
