"""What one evaluation works out once for all its candidates: rule results before presentation.

Callers: ``evaluation`` (results at ``now``) and ``evaluation.timeline``
(results at time edges). A rule that does not read ``release`` gives one
result per instant for every candidate; a rule that does is evaluated for
all candidates in one call of its ``batched`` program when its policy's
variables do not read ``release`` either (at ``now`` only: at a time edge
often only a few candidates need the rule). Any error or unexpected value in a
batch sends that candidate down the ordinary per-candidate path, so results
never depend on the sharing. Pure memoisation: never changes an outcome.
"""

from __future__ import annotations

from datetime import datetime

from policy_engine.compiling import CompiledPolicy, CompiledRule
from policy_engine.evaluation.binding import CandidateContext
from policy_engine.evaluation.rules import RawResult, RuleRunner, decode_fused

RuleKey = tuple[int, str]
InstantKey = tuple[RuleKey, datetime]


class Raws:
    """Raw results of one evaluation's rules, memoised per instant across candidates."""

    def __init__(self, runner: RuleRunner, candidates: int) -> None:
        self.runner = runner
        self.candidates = candidates
        # every candidate needs every rule at ``now``; at a time edge often only a few do
        self.batch_at = runner.facts.now
        self._shared: dict[InstantKey, RawResult] = {}
        self._batches: dict[InstantKey, list[RawResult | None]] = {}

    def raw(
        self, policy: CompiledPolicy, rule: CompiledRule, context: CandidateContext, index: int
    ) -> RawResult:
        """The rule's raw result for candidate ``index`` (whose bindings ``context`` holds)."""
        key = ((id(policy), rule.name), context.now)
        if not rule.per_candidate:
            found = self._shared.get(key)
            if found is None:
                found = self.runner.raw(rule, context.for_policy(policy))
                self._shared[key] = found
            return found
        if (
            rule.batched is not None
            and context.now == self.batch_at
            and not policy.variables_per_candidate
            and self.runner.shortcuts(rule)
        ):
            batch = self._batches.get(key)
            if batch is None:
                batch = self._batch(policy, rule, context)
                self._batches[key] = batch
            decoded = batch[index]
            if decoded is not None:
                return decoded
            # no result for this candidate (the batch failed somewhere): part by part
            return self.runner.stepwise(rule, context.for_policy(policy))
        return self.runner.raw(rule, context.for_policy(policy))

    def _batch(
        self, policy: CompiledPolicy, rule: CompiledRule, context: CandidateContext
    ) -> list[RawResult | None]:
        # any candidate's policy binding holds every candidate (``cel.fusing.RELEASES``)
        value = self.runner.backend.evaluate(rule.batched, context.for_policy(policy).bound)
        if not isinstance(value, list) or len(value) != self.candidates:
            return [None] * self.candidates
        return [decode_fused(rule, item) for item in value]
