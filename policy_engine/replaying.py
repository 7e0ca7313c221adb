"""Replays: recorded snapshots re-evaluated under (new) policies; every changed decision.

Callers: ``tidegate replay`` and the bench. Snapshots come from files or a
decision log; each recorded ``decision`` is compared per candidate with the
decision the given policies reach now. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from policy_engine import evaluation
from policy_engine.cel.backend import CelBackend
from policy_engine.compiling import CompiledPolicy
from policy_engine.model.facts import FactSet
from policy_engine.model.verdict import Verdict


@dataclass(frozen=True, slots=True)
class ReplayInput:
    """One snapshot to replay: its facts, its recorded decision, where it came from."""

    facts: FactSet
    recorded: Mapping[str, Any] | None
    source: str
    line: int = 0
    decision_id: str | None = None


@dataclass(frozen=True, slots=True)
class RuleChange:
    rule_id: str
    recorded: str
    now: str


@dataclass(frozen=True, slots=True)
class Change:
    source: str
    line: int
    decision_id: str | None
    rollout: str
    release: str
    recorded: str
    now: str
    at: datetime
    rules: tuple[RuleChange, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplayReport:
    changes: tuple[Change, ...]
    snapshots: int
    candidates: int
    no_recorded_decision: int
    skipped: int = 0
    lines: int = 0
    notes: tuple[str, ...] = field(default=())


def replay(
    inputs: Iterable[ReplayInput],
    policies: Sequence[CompiledPolicy],
    backend: CelBackend,
    at: datetime | None = None,
) -> ReplayReport:
    """Evaluates each snapshot (at its own ``now`` unless ``at``) and lists changed decisions."""
    changes: list[Change] = []
    count = candidates = missing = 0
    for item in inputs:
        count += 1
        if not item.recorded:
            missing += 1
            continue
        facts = item.facts if at is None else item.facts.with_now(at, "flag")
        result = evaluation.evaluate(policies, facts, backend)
        recorded = item.recorded.get("candidates") or {}
        for verdict in result.verdicts:
            entry = recorded.get(verdict.tag) if isinstance(recorded, Mapping) else None
            if not isinstance(entry, Mapping) or "decision" not in entry:
                continue
            candidates += 1
            if entry["decision"] != verdict.decision.value:
                changes.append(_change(item, facts, verdict, entry))
    return ReplayReport(tuple(changes), count, candidates, missing)


def _change(
    item: ReplayInput, facts: FactSet, verdict: Verdict, entry: Mapping[str, Any]
) -> Change:
    recorded_rules = entry.get("rules") or {}
    now_rules = {r.rule_id: r.outcome.value for r in verdict.results}
    rules = tuple(
        RuleChange(rule_id, str(recorded_rules.get(rule_id, "pass")), outcome)
        for rule_id, outcome in sorted(now_rules.items())
        if str(recorded_rules.get(rule_id, "pass")) != outcome
        and not (outcome == "skip" and rule_id not in recorded_rules)
    )
    target = facts.target or ("?", "?")
    return Change(
        item.source,
        item.line,
        item.decision_id,
        f"{target[0]}/{target[1]}",
        verdict.tag,
        str(entry["decision"]),
        verdict.decision.value,
        facts.now,
        rules,
    )
