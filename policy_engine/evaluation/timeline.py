"""How one candidate's results change as ``now`` moves: rule and decision nextChange.

Callers: ``evaluation`` only. Implements POLICY-FORMATS.md §5.4: facts are
frozen, only ``now`` moves up to the horizon; edges are tried in ascending
order and the first where the result (or decision) differs is reported.
A time-dependent ``fail`` that passes at a later edge is ``pending``.
Raw results come from the evaluation's ``Raws`` (memoised across
candidates); edges that do not depend on the candidate
(``edges_per_candidate`` False) are computed once per evaluation
(``SharedEdges``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from policy_engine.compiling import CompiledPolicy, CompiledRule
from policy_engine.evaluation import edges
from policy_engine.evaluation.binding import CandidateContext
from policy_engine.evaluation.rules import RawResult, RuleRunner
from policy_engine.evaluation.sharing import Raws, RuleKey
from policy_engine.model.policy import Effect
from policy_engine.model.verdict import Decision, Outcome, fold_outcomes

#: edges of candidate-independent rules, shared by every candidate's timeline
SharedEdges = dict[RuleKey, "LazyEdges | None"]


class Member(NamedTuple):
    """A rule taking part in the decision, with its outcome at ``now``."""

    policy: CompiledPolicy
    rule: CompiledRule
    outcome: Outcome
    dynamic: bool


class Timeline:
    """Lazily evaluates a candidate's time-dependent rules at their edges."""

    def __init__(
        self,
        raws: Raws,
        index: int,
        context: CandidateContext,
        facts: Mapping[str, Any],
        horizon: datetime,
        shared_edges: SharedEdges | None = None,
    ) -> None:
        self.raws = raws
        self.index = index
        self.runner: RuleRunner = raws.runner
        self.context = context
        self.facts = facts
        self.horizon = horizon
        # a decision at an edge t looks for openings up to t + the horizon's span
        self.span = horizon - context.now
        self._contexts: dict[datetime, CandidateContext] = {}
        self._raw: dict[tuple[RuleKey, datetime], RawResult] = {}
        self._edges: dict[RuleKey, LazyEdges | None] = {}
        self._shared_edges: SharedEdges = {} if shared_edges is None else shared_edges

    def raw_at(self, policy: CompiledPolicy, rule: CompiledRule, instant: datetime) -> RawResult:
        key = ((id(policy), rule.name), instant)
        found = self._raw.get(key)
        if found is None:
            context = self.context if instant == self.context.now else self._contexts.get(instant)
            if context is None:
                context = self.context.at(instant)
                self._contexts[instant] = context
            found = self.raws.raw(policy, rule, context, self.index)
            self._raw[key] = found
        return found

    def edges_of(self, policy: CompiledPolicy, rule: CompiledRule) -> LazyEdges | None:
        """The edges of a rule within the horizon, computed on demand; None when opaque."""
        key = (id(policy), rule.name)
        store = self._edges if rule.edges_per_candidate else self._shared_edges
        if key not in store:
            store[key] = self._compute_edges(policy, rule)
        return store[key]

    def _compute_edges(self, policy: CompiledPolicy, rule: CompiledRule) -> LazyEdges | None:
        binding = self.context.for_policy(policy)
        now = self.context.now
        try:
            sources = [
                edges.site_edges(
                    site,
                    policy,
                    self.runner.backend,
                    binding.bound,
                    self.facts,
                    now,
                    self.horizon + self.span,
                )
                for site in rule.time_sites
            ]
        except edges.OpaqueTime:
            return None
        return LazyEdges(edges.merged(sources, now))

    def first_edge(
        self,
        policy: CompiledPolicy,
        rule: CompiledRule,
        after: datetime,
        predicate: Callable[[RawResult], bool],
    ) -> datetime | None:
        """The first edge in ``(after, after + span]`` where ``predicate`` holds."""
        limit = after + self.span
        for instant in self.edges_of(policy, rule) or ():
            if instant > limit:
                return None
            if instant > after and predicate(self.raw_at(policy, rule, instant)):
                return instant
        return None

    def outcome_at(self, policy: CompiledPolicy, rule: CompiledRule, instant: datetime) -> Outcome:
        """The rule's outcome at ``instant`` with the fail → pending rule applied.

        A raw result changes only at the rule's own edges, so it is read at the
        rule's last edge at or before ``instant`` (``now`` when there is none):
        another rule's edge never costs this rule an evaluation.
        """
        anchor = self._anchor(policy, rule, instant)
        raw = self.raw_at(policy, rule, anchor).outcome
        if raw is Outcome.FAIL and self.first_edge(policy, rule, instant, _passes) is not None:
            return Outcome.PENDING
        return raw

    def _anchor(self, policy: CompiledPolicy, rule: CompiledRule, instant: datetime) -> datetime:
        """The rule's last edge at or before ``instant``, else ``now``; ``instant`` if unsure."""
        found = self.edges_of(policy, rule)
        if found is None:
            return instant
        anchor = self.context.now
        for edge in found:
            if edge > instant:
                return anchor
            anchor = edge
        # the edges ran out: all of them, or cut short (then evaluate at the instant itself)
        return instant if found.opaque else anchor

    def rule_change(
        self, policy: CompiledPolicy, rule: CompiledRule, raw: RawResult
    ) -> tuple[Outcome, datetime | None, bool]:
        """(outcome at now, the rule's nextChange, opaque) for a time-dependent rule."""
        if self.edges_of(policy, rule) is None:
            return raw.outcome, None, True
        now = self.context.now
        if raw.outcome is Outcome.FAIL:
            opens = self.first_edge(policy, rule, now, _passes)
            return (Outcome.PENDING, opens, False) if opens else (Outcome.FAIL, None, False)
        if raw.outcome in (Outcome.PASS, Outcome.PENDING):
            current = raw.outcome
            changes = self.first_edge(policy, rule, now, lambda r: r.outcome is not current)
            return current, changes, False
        return raw.outcome, None, False

    def decision_change(self, members: list[Member], decision: Decision) -> datetime | None:
        """The first edge at which the candidate's decision differs from ``decision``."""
        dynamic = [m for m in members if m.dynamic and m.rule.effect is Effect.BLOCK]
        if not dynamic or _blocked_for_good(members):
            return None
        sources: list[Iterator[datetime]] = []
        for member in dynamic:
            found = self.edges_of(member.policy, member.rule)
            if found is None:
                return None
            sources.append(iter(found))
        try:
            return self._first_flip(members, decision, sources)
        except edges.OpaqueTime:
            return None

    def _first_flip(
        self, members: list[Member], decision: Decision, sources: list[Iterator[datetime]]
    ) -> datetime | None:
        for instant in edges.merged(sources, self.context.now):
            if instant > self.horizon:
                return None
            outcomes = [
                (
                    m.rule.effect,
                    m.rule.on_error,
                    self.outcome_at(m.policy, m.rule, instant) if m.dynamic else m.outcome,
                )
                for m in members
            ]
            if fold_outcomes(outcomes) is not decision:
                return instant
        return None


class LazyEdges:
    """Ascending edges pulled from a generator once and replayed from a cache."""

    def __init__(self, source: Iterator[datetime]) -> None:
        self._source = source
        self._seen: list[datetime] = []
        self.opaque = False

    def __iter__(self) -> Iterator[datetime]:
        index = 0
        while True:
            if index < len(self._seen):
                yield self._seen[index]
                index += 1
                continue
            try:
                following = next(self._source)
            except StopIteration:
                return
            except edges.OpaqueTime:
                self.opaque = True
                return
            self._seen.append(following)


def _blocked_for_good(members: list[Member]) -> bool:
    """A blocking rule fails for the whole horizon: nothing but new facts can help.

    Static rules keep their result; a time-dependent ``fail`` means no edge in
    the horizon makes it pass (else it would be ``pending``).
    """
    lasting = [
        (m.rule.effect, m.rule.on_error, m.outcome)
        for m in members
        if not m.dynamic or m.outcome is Outcome.FAIL
    ]
    return fold_outcomes(lasting) is Decision.BLOCKED


def _passes(result: RawResult) -> bool:
    return result.outcome is Outcome.PASS
