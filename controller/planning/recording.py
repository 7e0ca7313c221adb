"""Decision-log lines (POLICY-FORMATS.md §7.2): one compact FactSnapshot per line.

Callers: ``reconciling`` offers a line when the decision, allowedVersions,
nextChange or fact digest of a Rollout changed, or the plan acted. Pure apart
from the random part of the decision id (a ULID from ``now``).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from controller.api.actions import ApplySubstitute, Plan, SetSourceTag, WriteStatus
from policy_engine import Evaluation, FactSet, __version__
from policy_engine.snapshots import (
    Snapshot,
    dump_snapshot,
    errors_to_json,
    facts_to_json,
    snapshot_digest,
)

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(now: datetime) -> str:
    """A ULID: 48 bits of milliseconds since the epoch, 80 random bits, Crockford base32."""
    value = (int(now.timestamp() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def facts_digest(facts: FactSet) -> str:
    return snapshot_digest(
        facts.now, facts.target, facts_to_json(facts.values), errors_to_json(facts.errors)
    )


def signature(evaluation: Evaluation | None, digest: str) -> tuple[Any, ...]:
    """What must change for a new line: decision, allowedVersions, nextChange, fact digest."""
    if evaluation is None:
        return (None, (), None, digest)
    return (evaluation.decision, evaluation.allowed_versions, evaluation.next_change, digest)


def action_of(plan: Plan, status_tag: str | None, before_tag: str | None) -> str:
    """``none``, ``deploy <tag>`` or ``manual <tag>`` (a new history[0] written by this plan)."""
    wrote = any(isinstance(a, WriteStatus) for a in plan.actions)
    patched = any(isinstance(a, ApplySubstitute | SetSourceTag) for a in plan.actions)
    if status_tag and (wrote or patched) and status_tag != before_tag:
        return f"deploy {status_tag}"
    return "none"


def decision_line(facts: FactSet, evaluation: Evaluation | None, action: str, now: datetime) -> str:
    """The NDJSON line for one reconcile."""
    namespace, name = facts.target or ("", "")
    decision: dict[str, Any] | None = None
    if evaluation is not None:
        decision = {
            "allowedVersions": list(evaluation.allowed_versions),
            "candidates": {
                v.tag: {
                    "decision": str(v.decision),
                    **({"nextChange": v.next_change.isoformat()} if v.next_change else {}),
                    "rules": {r.rule_id: str(r.outcome) for r in v.results if r.blocking},
                }
                for v in evaluation.verdicts
            },
        }
        if evaluation.next_change is not None:
            decision["nextChange"] = evaluation.next_change.isoformat()
    snapshot = Snapshot(
        name=f"{namespace}.{name}.{now.strftime('%Y%m%dT%H%M%SZ')}",
        now=facts.now,
        recorded_at=now,
        recorded_by={"program": "tidegate-controller", "version": __version__},
        mixed_time=False,
        target=facts.target,
        policies=[
            {"ref": p.ref, "builtin": p.builtin, "digest": p.digest}
            for p in (evaluation.policies if evaluation else ())
        ],
        engine={"version": __version__, "celBackend": evaluation.backend if evaluation else None},
        facts=facts,
        redacted=(),
        digest="",
        decision=decision,
        decision_id=ulid(now),
        action=action,
    )
    return dump_snapshot(snapshot, "ndjson")
