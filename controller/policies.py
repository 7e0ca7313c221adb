"""The policies a Rollout is judged by: builtins plus RolloutPolicy CRs, compiled once per content.

Callers: ``reconciling``. Reads policy objects from the stores; compiles each
distinct content once (LRU by content digest); never evaluates partially: an
invalid policy is reported (``Stalled``/``InvalidPolicy``) and blocks every
automatic deploy of the Rollouts in its scope.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evaluators.base import Object, ObjectReader
from policy_engine import (
    CompiledPolicy,
    Evaluation,
    FactSet,
    Options,
    PolicyErrors,
    compile_policies,
    evaluate,
    load_builtin_policies,
    load_policy_text,
)
from policy_engine.cel.backend import CelBackend
from policy_engine.errors import render_diagnostics
from policy_engine.model.paths import FactPath

POLICY_KINDS = ("rolloutpolicies.tidegate.dev", "clusterrolloutpolicies.tidegate.dev")
CACHE_SIZE = 1024
METADATA_KEYS = ("name", "namespace", "labels", "annotations", "generation")


@dataclass(frozen=True, slots=True)
class PolicySet:
    """The compiled policies in force, and the problems of those that did not compile."""

    policies: tuple[CompiledPolicy, ...]
    problems: tuple[str, ...] = ()
    roots_read: frozenset[str] = field(init=False)
    """Fact roots any rule, variable or matchCondition of these policies reads."""

    def __post_init__(self) -> None:
        roots = frozenset(str(path[0]) for p in self.policies for path in _policy_reads(p))
        object.__setattr__(self, "roots_read", roots)


def _policy_reads(policy: CompiledPolicy) -> Iterator[FactPath]:
    for rule in policy.rules:
        yield from rule.reads
    for _, expr in (*policy.variables, *policy.match_conditions):
        yield from expr.checked.analysis.reads


class PolicyEngine:
    """Builtins compiled at start; cluster policies compiled on first sight of their content."""

    def __init__(self, backend: CelBackend) -> None:
        self.backend = backend
        self.builtins = tuple(compile_policies(load_builtin_policies(), backend))
        self._compiled: OrderedDict[str, tuple[CompiledPolicy, ...] | str] = OrderedDict()

    def policies_for(self, reader: ObjectReader, namespace: str | None) -> PolicySet:
        """Builtins + ClusterRolloutPolicies + RolloutPolicies of ``namespace``."""
        compiled: list[CompiledPolicy] = list(self.builtins)
        problems: list[str] = []
        objects = [*reader.list(POLICY_KINDS[1]), *reader.list(POLICY_KINDS[0], namespace)]
        for obj in objects:
            result = self._compile(obj)
            if isinstance(result, str):
                problems.append(result)
            else:
                compiled.extend(result)
        return PolicySet(tuple(compiled), tuple(problems))

    def _compile(self, obj: Object) -> tuple[CompiledPolicy, ...] | str:
        document = _document(obj)
        text = json.dumps(document, sort_keys=True)
        key = hashlib.sha256(text.encode()).hexdigest()
        if key in self._compiled:
            self._compiled.move_to_end(key)
            return self._compiled[key]
        meta = document["metadata"]
        where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
        name = f"{document.get('kind')} {where}{meta.get('name')}"
        result: tuple[CompiledPolicy, ...] | str
        try:
            result = tuple(compile_policies(load_policy_text(text, name), self.backend))
        except PolicyErrors as exc:
            result = f"{name}: " + render_diagnostics(exc.diagnostics).strip().splitlines()[0]
        self._compiled[key] = result
        if len(self._compiled) > CACHE_SIZE:
            self._compiled.popitem(last=False)
        return result

    def evaluate(self, policies: Sequence[CompiledPolicy], facts: FactSet) -> Evaluation:
        return evaluate(policies, facts, self.backend, Options())


def _document(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {k: meta[k] for k in METADATA_KEYS if meta.get(k) not in (None, {}, "")},
        "spec": obj.get("spec") or {},
    }
