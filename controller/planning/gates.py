"""RolloutGates: summaries, gated candidates and the GatesPassing condition (§4.4).

Callers: ``planning.plan``. Pure. The engine's ``rollout-gates`` rule is what
blocks a deploy; this module computes the Kuberik status view of the same
gates (``status.gates``, ``gatedReleaseCandidates``, ``GatesPassing``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

APPROVAL = "tidegate.dev/approval"


@dataclass(frozen=True, slots=True)
class GateView:
    """The Kuberik status view of a Rollout's gates."""

    summaries: tuple[dict[str, Any], ...]
    gated: tuple[str, ...]
    bypassed: str | None
    passing: bool

    def condition(self, candidates: Sequence[str]) -> tuple[str, str, str]:
        """(status, reason, message) of ``GatesPassing``."""
        if self.bypassed:
            return "True", "GatesBypassed", f"Gates bypassed for version {self.bypassed}"
        if not candidates:
            return "True", "UpToDate", "No release candidates"
        if not self.passing:
            return "False", "SomeGatesBlocking", "Some gates are blocking deployment"
        if not self.gated:
            return "False", "NoAllowedVersions", "No release candidates are allowed by all gates"
        return "True", "AllGatesPassing", "All gates are passing"


def allowed_versions(gate: Mapping[str, Any]) -> list[str] | None:
    """The gate's list; None means no restriction (an approval gate treats None as [])."""
    listed = (gate.get("spec") or {}).get("allowedVersions")
    if listed is None:
        annotations = gate.get("metadata", {}).get("annotations") or {}
        return [] if annotations.get(APPROVAL) == "true" else None
    return [str(v) for v in listed]


def gate_view(
    gates: Sequence[Mapping[str, Any]], candidates: Sequence[str], bypass: str | None
) -> GateView:
    """Summaries in gate-name order; the candidates every gate allows."""
    bypassed = bypass if bypass in candidates else None
    gated = list(candidates)
    passing = True
    summaries = []
    for gate in sorted(gates, key=lambda g: str(g["metadata"]["name"])):
        spec = gate.get("spec") or {}
        listed = allowed_versions(gate)
        gate_passing = spec.get("passing") is not False
        passing = passing and gate_passing
        if listed is not None:
            gated = [tag for tag in gated if tag in listed]
        summaries.append(
            {
                "name": gate["metadata"]["name"],
                "passing": gate_passing,
                "allowedVersions": listed or [],
                "message": _summary(gate_passing, listed, candidates, bypassed),
                "bypassGates": bypassed is not None,
            }
        )
    return GateView(tuple(summaries), (bypassed,) if bypassed else tuple(gated), bypassed, passing)


def _summary(
    passing: bool, listed: list[str] | None, candidates: Sequence[str], bypassed: str | None
) -> str:
    if bypassed:
        return f"Gate bypassed for version {bypassed}"
    if not passing:
        return "Gate is not passing"
    if listed is not None and not any(tag in listed for tag in candidates):
        return "Gate does not allow any release candidate"
    return "Gate is passing"
