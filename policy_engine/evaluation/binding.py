"""Binding facts to a backend: once per evaluation, then per candidate and per instant.

Callers: ``evaluation`` only. Facts are converted once (``base``); each
candidate rebinds only ``release``; each policy adds its ``params`` and its
``variables`` (evaluated in order, memoised per policy and candidate). Moving
``now`` for nextChange rebinds ``now`` and the variables that read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from policy_engine.cel.backend import Bound, CelBackend
from policy_engine.compiling import CompiledPolicy
from policy_engine.errors import EvalError


@dataclass(slots=True)
class PolicyBinding:
    """A policy's bound activation for one candidate at one instant."""

    bound: Bound
    variable_errors: dict[str, EvalError] = field(default_factory=dict)


@dataclass(slots=True)
class CandidateContext:
    """Bindings for one candidate; policy bindings are created on first use."""

    backend: CelBackend
    base: Bound
    now: datetime
    release: Mapping[str, Any]
    param_overrides: Mapping[str, Mapping[str, Any]]
    _policies: dict[int, PolicyBinding] = field(default_factory=dict)

    def for_policy(self, policy: CompiledPolicy) -> PolicyBinding:
        cached = self._policies.get(id(policy))
        if cached is None:
            cached = bind_policy(
                self.backend, self.base, policy, self.param_overrides.get(policy.ref, {})
            )
            self._policies[id(policy)] = cached
        return cached

    def at(self, now: datetime) -> CandidateContext:
        """The same candidate with ``now`` moved (policy bindings recomputed lazily)."""
        moved = self.backend.bind({"now": now}, base=self.base)
        return CandidateContext(self.backend, moved, now, self.release, self.param_overrides)


def bind_facts(backend: CelBackend, values: Mapping[str, Any], now: datetime) -> Bound:
    """Converts all fact roots once, with ``now`` (and empty params/variables)."""
    return backend.bind({**values, "now": now, "params": {}, "variables": {}})


def candidate_context(
    backend: CelBackend,
    facts_bound: Bound,
    now: datetime,
    release: Mapping[str, Any],
    param_overrides: Mapping[str, Mapping[str, Any]],
) -> CandidateContext:
    bound = backend.bind({"release": dict(release)}, base=facts_bound)
    return CandidateContext(backend, bound, now, release, param_overrides)


def bind_policy(
    backend: CelBackend, base: Bound, policy: CompiledPolicy, overrides: Mapping[str, Any]
) -> PolicyBinding:
    """Adds ``params`` and evaluates ``variables`` in order; failures are remembered.

    A policy without params and variables shares the candidate's binding.
    """
    if not policy.params and not policy.variables and not overrides:
        return PolicyBinding(base)
    params = {**policy.params, **overrides}
    bound = backend.bind({"params": params, "variables": {}}, base=base)
    values: dict[str, Any] = {}
    errors: dict[str, EvalError] = {}
    for name, expr in policy.variables:
        result = backend.evaluate(expr.checked.program, bound)
        if isinstance(result, EvalError):
            errors[name] = result
        else:
            values[name] = result
        bound = backend.bind({"variables": values}, base=bound)
    return PolicyBinding(bound, errors)
