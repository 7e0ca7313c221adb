"""Binding facts to a backend: once per evaluation, then per candidate and per instant.

Callers: ``evaluation`` only. Facts are converted once (``base``); each
candidate rebinds only ``release``; each policy adds its ``params`` and its
``variables`` (evaluated in order). A policy's variables are evaluated once
per instant when none reads ``release`` (``PolicyBindings``, shared by all
candidates, which then rebind only ``release``), and once per candidate when
none reads ``now`` (moving ``now`` for nextChange then rebinds only ``now``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from policy_engine.cel.backend import Bound, CelBackend
from policy_engine.cel.fusing import RELEASES
from policy_engine.compiling import CompiledPolicy
from policy_engine.errors import EvalError


@dataclass(slots=True)
class PolicyBinding:
    """A policy's bound activation for one candidate at one instant."""

    bound: Bound
    variable_errors: dict[str, EvalError] = field(default_factory=dict)


#: policy bindings valid for every candidate, by (id(policy), instant); their
#: ``release`` is whichever candidate's came first, so users rebind it
PolicyBindings = dict[tuple[int, datetime], PolicyBinding]


@dataclass(slots=True)
class CandidateContext:
    """Bindings for one candidate; policy bindings are created on first use.

    ``shared`` holds the candidate-independent policy bindings of the whole
    evaluation; ``origin`` is this candidate at the evaluation's ``now``
    (None for that context itself).
    """

    backend: CelBackend
    base: Bound
    now: datetime
    release: Mapping[str, Any]
    param_overrides: Mapping[str, Mapping[str, Any]]
    shared: PolicyBindings = field(default_factory=dict)
    origin: CandidateContext | None = None
    _policies: dict[int, PolicyBinding] = field(default_factory=dict)

    def for_policy(self, policy: CompiledPolicy) -> PolicyBinding:
        cached = self._policies.get(id(policy))
        if cached is None:
            cached = self._bind(policy)
            self._policies[id(policy)] = cached
        return cached

    def _bind(self, policy: CompiledPolicy) -> PolicyBinding:
        overrides = self.param_overrides.get(policy.ref, {})
        if not policy.params and not policy.variables and not overrides:
            return PolicyBinding(self.base)
        key = (id(policy), self.now)
        source: PolicyBinding | None = None
        changes: dict[str, Any] = {}
        if not policy.variables_per_candidate:
            source = self.shared.get(key)
            changes = {"release": dict(self.release)}
        if source is None and self.origin is not None and not policy.variables_read_now:
            source = self.origin.for_policy(policy)
            changes = {"now": self.now}
        if source is None:
            made = bind_policy(self.backend, self.base, policy, overrides)
        else:
            made = PolicyBinding(
                self.backend.bind(changes, base=source.bound), source.variable_errors
            )
        if not policy.variables_per_candidate:
            self.shared.setdefault(key, made)
        return made

    def at(self, now: datetime) -> CandidateContext:
        """The same candidate with ``now`` moved (policy bindings recomputed lazily)."""
        moved = self.backend.bind({"now": now}, base=self.base)
        origin = self.origin or self
        return CandidateContext(
            self.backend, moved, now, self.release, self.param_overrides, self.shared, origin
        )


def bind_facts(
    backend: CelBackend,
    values: Mapping[str, Any],
    now: datetime,
    releases: Sequence[Mapping[str, Any]] = (),
) -> Bound:
    """Converts all fact roots once, with ``now``, empty params/variables and every candidate.

    ``releases``: the candidates in evaluation order, for batched programs.
    """
    return backend.bind(
        {
            **values,
            "now": now,
            "params": {},
            "variables": {},
            RELEASES: [dict(release) for release in releases],
        }
    )


def candidate_context(
    backend: CelBackend,
    facts_bound: Bound,
    now: datetime,
    release: Mapping[str, Any],
    param_overrides: Mapping[str, Mapping[str, Any]],
    shared: PolicyBindings | None = None,
) -> CandidateContext:
    """A candidate's bindings; pass one ``shared`` to every candidate of an evaluation."""
    bound = backend.bind({"release": dict(release)}, base=facts_bound)
    return CandidateContext(
        backend, bound, now, release, param_overrides, {} if shared is None else shared
    )


def bind_policy(
    backend: CelBackend, base: Bound, policy: CompiledPolicy, overrides: Mapping[str, Any]
) -> PolicyBinding:
    """Adds ``params`` and evaluates ``variables`` in order; failures are remembered.

    A policy without params and variables shares the candidate's binding. A
    variable that reads neither params nor variables is evaluated on ``base``
    (whose activation other policies already use); the others see the params
    and every earlier variable, bound only when one of them needs it.
    """
    if not policy.params and not policy.variables and not overrides:
        return PolicyBinding(base)
    params = {**policy.params, **overrides}
    values: dict[str, Any] = {}
    errors: dict[str, EvalError] = {}
    so_far: Bound | None = None  # base + params + the variables evaluated so far
    for name, expr in policy.variables:
        scope = base
        if any(path[0] in ("params", "variables") for path in expr.checked.analysis.reads):
            if so_far is None:
                so_far = backend.bind({"params": params, "variables": dict(values)}, base=base)
            scope = so_far
        result = backend.evaluate(expr.checked.program, scope)
        if isinstance(result, EvalError):
            errors[name] = result
        else:
            values[name] = result
            so_far = None
    return PolicyBinding(backend.bind({"params": params, "variables": values}, base=base), errors)
