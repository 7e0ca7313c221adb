"""Which policies attach to a Rollout, and which builtin rules it opts out of (§2.3, §2.4).

Callers: ``evaluation``. Reads only the ``rollout`` fact; pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policy_engine.compiling import CompiledPolicy
from policy_engine.errors import Diagnostic, Severity
from policy_engine.model.policy import LabelSelector, Origin

DISABLE_ANNOTATION = "tidegate.dev/disable-builtins"


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics; ``{}`` matches everything."""
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for requirement in selector.match_expressions:
        present = requirement.key in labels
        value = labels.get(requirement.key)
        if requirement.operator == "In" and value not in requirement.values:
            return False
        if requirement.operator == "NotIn" and present and value in requirement.values:
            return False
        if requirement.operator == "Exists" and not present:
            return False
        if requirement.operator == "DoesNotExist" and present:
            return False
    return True


def attaches(policy: CompiledPolicy, rollout: Mapping[str, Any] | None) -> bool:
    """Whether ``policy`` attaches to the Rollout described by the ``rollout`` fact.

    Builtins attach to every Rollout. Without a ``rollout`` fact every
    policy attaches (nothing to select on). A ClusterRolloutPolicy's
    namespaceSelector cannot be judged from facts (namespace labels are not
    recorded), so only its rolloutSelector/targetRefs are checked.
    """
    if policy.policy.origin is Origin.BUILTIN or not rollout:
        return True
    targets = policy.policy.spec.targets
    if targets is None:
        return True
    namespace = rollout.get("namespace")
    if policy.policy.origin is Origin.NAMESPACED and policy.policy.namespace not in (
        None,
        namespace,
    ):
        return False
    labels = rollout.get("labels") or {}
    for ref in targets.target_refs:
        if ref.name == rollout.get("name") and ref.namespace in (None, namespace):
            return True
    return targets.rollout_selector is not None and selector_matches(
        targets.rollout_selector, labels
    )


def attached_policies(
    policies: Sequence[CompiledPolicy], facts: Mapping[str, Any]
) -> list[CompiledPolicy]:
    """Attached policies in display order: builtins, cluster, namespaced, by name."""
    rollout = facts.get("rollout")
    order = {Origin.BUILTIN: 0, Origin.CLUSTER: 1, Origin.NAMESPACED: 2}
    chosen = [p for p in policies if attaches(p, rollout if isinstance(rollout, dict) else None)]
    return sorted(chosen, key=lambda p: (order[p.policy.origin], p.ref, p.name))


def disabled_builtins(
    facts: Mapping[str, Any], policies: Sequence[CompiledPolicy]
) -> tuple[frozenset[str], list[Diagnostic]]:
    """Builtin rule names listed in the Rollout's opt-out annotation, and warnings."""
    rollout = facts.get("rollout")
    annotations = (rollout or {}).get("annotations") if isinstance(rollout, dict) else None
    raw = (annotations or {}).get(DISABLE_ANNOTATION, "")
    names = {n.strip() for n in str(raw).split(",") if n.strip()}
    if not names:
        return frozenset(), []
    known = {r.name for p in policies if p.policy.origin is Origin.BUILTIN for r in p.rules}
    warnings = [
        Diagnostic(
            "policy.unknown_reference",
            f"{DISABLE_ANNOTATION} names unknown builtin rule {name!r}",
            hint="known builtin rules: " + ", ".join(sorted(known)),
            severity=Severity.WARNING,
        )
        for name in sorted(names - known)
    ]
    return frozenset(names & known), warnings
