"""CRD-side parts of tidegate's own kinds RolloutPolicy and ClusterRolloutPolicy (tidegate.dev).

The ``spec`` model is ``policy_engine.model.policy.PolicySpec`` (never
duplicated here); this module adds what the CRD needs besides it: the status
model, field descriptions by path (the engine's models carry none), the
paths whose content is open, and the admission rules (CEL) that mirror the
loader's checks; HealthCheck ``spec.cel`` reuses the metric ones. Callers:
``controller.api.kinds``; the controller for ``PolicyStatus``. Pure data: no
I/O, no CEL compilation (the apiserver compiles the rules).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from pydantic import Field

from controller.api.meta import Conditions, CrdModel, Int64

GROUP = "tidegate.dev"
OPEN_PATHS = frozenset({"spec.params"})


class PolicyStatus(CrdModel):
    """What the controller made of the policy."""

    observed_generation: Int64 | None = Field(
        default=None, alias="observedGeneration", description="Last compiled generation."
    )
    digest: str | None = Field(default=None, description="Digest of the compiled policy.")
    conditions: Conditions = Field(default=(), description="Ready: compiled and attached.")


def metric_descriptions(prefix: str) -> dict[str, str]:
    """Descriptions of a ``facts.metrics`` map at ``prefix`` (``spec.facts``)."""
    return {
        f"{prefix}.metrics": "Prometheus instant queries by name.",
        f"{prefix}.metrics.*.query": "PromQL returning a scalar or one sample.",
        f"{prefix}.metrics.*.queryExpression": "CEL over rollout and params giving the PromQL.",
        f"{prefix}.metrics.*.endpoint": "Prometheus endpoint name.",
        f"{prefix}.metrics.*.maxAge": "Oldest acceptable result.",
    }


def named_descriptions(prefix: str, what: str) -> dict[str, str]:
    """Descriptions of a list of ``{name, expression}`` at ``prefix``."""
    return {f"{prefix}[].name": f"{what} name.", f"{prefix}[].expression": "CEL expression."}


def _window_entries() -> dict[str, str]:
    entry = {
        "name": "Entry name.",
        "days": "Local weekdays, Mon…Sun.",
        "between": "HH:MM-HH:MM local time, [start, end); start >= end crosses midnight.",
        "dates": "YYYY-MM-DD or A..B, inclusive local dates.",
    }
    return {
        f"spec.windows[].{part}[].{key}": text
        for part in ("allow", "deny")
        for key, text in entry.items()
    }


def _spec_descriptions() -> dict[str, str]:
    return {
        "spec": "Rules that decide which release candidates a Rollout may deploy.",
        "spec.description": "Shown by tidegate eval.",
        "spec.targets": "Rollouts the policy attaches to.",
        "spec.targets.rolloutSelector": "Rollouts attached ({} = all in scope).",
        "spec.targets.targetRefs": "Explicit Rollouts, added to the selector's.",
        "spec.targets.targetRefs[].kind": "Always Rollout.",
        "spec.targets.targetRefs[].name": "Rollout name.",
        "spec.targets.targetRefs[].namespace": "Rollout namespace (cluster kind).",
        "spec.targets.namespaceSelector": "Namespaces in scope; ClusterRolloutPolicy only.",
        "spec.params": "Named values: a literal, or {type, default, description}.",
        "spec.defaults": "Effect and error handling for rules that set none.",
        "spec.defaults.effect": "block, warn or audit.",
        "spec.defaults.onError": "block or pending; there is no allow.",
        "spec.facts": "Facts the rules read besides the built-in ones.",
        **metric_descriptions("spec.facts"),
        "spec.windows": "Deploy windows the rules can reference.",
        "spec.windows[].name": "Window name.",
        "spec.windows[].timezone": "IANA time zone.",
        "spec.windows[].allow": "Open periods; with none, always open unless denied.",
        "spec.windows[].deny": "Closed periods; deny wins over allow.",
        **_window_entries(),
        "spec.variables": "Named CEL expressions, in order, as variables.<name>.",
        **named_descriptions("spec.variables", "Variable"),
        "spec.matchConditions": "All must be true, else every rule is skipped.",
        **named_descriptions("spec.matchConditions", "Condition"),
        "spec.rules": "The rules; a candidate is Allowed when none blocks.",
        "spec.rules[].name": "Unique in the policy.",
        "spec.rules[].kind": "gate, window, dependency or health (display only).",
        "spec.rules[].when": "CEL: false skips the rule.",
        "spec.rules[].pendingWhen": "CEL: true makes the rule pending.",
        "spec.rules[].expression": "CEL body: true passes.",
        "spec.rules[].all": "Checks that must all pass.",
        **named_descriptions("spec.rules[].all", "Check"),
        "spec.rules[].any": "Checks of which one must pass.",
        **named_descriptions("spec.rules[].any", "Check"),
        "spec.rules[].window": "A window of this policy that must be open.",
        "spec.rules[].effect": "block, warn or audit (default from defaults).",
        "spec.rules[].onError": "block or pending (default from defaults).",
        "spec.rules[].message": "Text for non-pass results.",
        "spec.rules[].messageExpression": "CEL string; wins over message.",
        "spec.rules[].reason": "CamelCase code for conditions and events.",
        "spec.rules[].outputs": "CEL values attached to results.",
        "spec.rules[].description": "Shown with explanations.",
        "spec.rules[].docs": "URL shown with explanations.",
        "spec.rules[].metadata": "Free-form strings shown with explanations.",
    }


DESCRIPTIONS = MappingProxyType(_spec_descriptions())
"""Descriptions of the policy ``spec`` fields, by path (the engine's models carry none)."""


ONE_TARGET = {
    "rule": "has(self.rolloutSelector) || (has(self.targetRefs) && size(self.targetRefs) > 0)",
    "message": "targets needs rolloutSelector or targetRefs",
}
NO_NAMESPACE_SELECTOR = {
    "rule": "!has(self.namespaceSelector)",
    "message": "namespaceSelector is only valid in a ClusterRolloutPolicy",
}
ONE_BODY = {
    "rule": "(has(self.expression) ? 1 : 0) + (has(self.all) ? 1 : 0) + "
    "(has(self.any) ? 1 : 0) + (has(self.window) ? 1 : 0) == 1",
    "message": "exactly one of expression, all, any, window is required",
}
ONE_QUERY = {
    "rule": "has(self.query) != has(self.queryExpression)",
    "message": "exactly one of query and queryExpression is required",
}


def admission_rules(spec: dict[str, Any], *, cluster: bool) -> None:
    """Adds to the translated ``spec`` schema the checks the engine's loader also makes.

    Modifies ``spec`` in place: targets are required with a selector or refs;
    the cluster kind requires ``namespaceSelector``, the namespaced kind
    forbids it; a rule has exactly one body; a metric exactly one query.
    """
    props = spec["properties"]
    targets = props["targets"]
    rules = [dict(ONE_TARGET)] if cluster else [dict(ONE_TARGET), dict(NO_NAMESPACE_SELECTOR)]
    targets["x-kubernetes-validations"] = rules
    targets.pop("nullable", None)
    spec["required"] = sorted({*spec.get("required", ()), "targets"})
    if cluster:
        targets["required"] = ["namespaceSelector"]
    rule_items = props["rules"]["items"]
    rule_items["x-kubernetes-validations"] = [dict(ONE_BODY)]
    metric = props["facts"]["properties"]["metrics"]["additionalProperties"]
    metric["x-kubernetes-validations"] = [dict(ONE_QUERY)]


def cel_health_rules(spec: dict[str, Any]) -> None:
    """Adds to a translated HealthCheck ``spec`` schema the one-query check of its metrics."""
    facts = spec["properties"]["cel"]["properties"]["facts"]
    metric = facts["properties"]["metrics"]["additionalProperties"]
    metric["x-kubernetes-validations"] = [dict(ONE_QUERY)]
