"""JSON documents of tidegate.dev/v1alpha1 (POLICY-FORMATS.md §10): EvaluationReport, CheckReport.

Callers: the CLI (``-o json``), ``testing`` (TestReport embeds evaluations).
Builds plain dicts; the CLI serialises them. Changes within v1alpha1 are
additive only. Must not compute decisions.
"""

from __future__ import annotations

import json as _json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policy_engine.errors import Diagnostic
from policy_engine.explaining import ExplainNode, RuleExplanation
from policy_engine.model.facts import FactSet, Provenance
from policy_engine.model.paths import format_path
from policy_engine.model.verdict import Evaluation, RuleResult, Verdict
from policy_engine.rendering.values import jsonable

API_VERSION = "tidegate.dev/v1alpha1"
ENGINE_VERSION = "0.1.0"


@dataclass(frozen=True, slots=True)
class FactsInfo:
    """Where the facts of an evaluation came from, for reports."""

    source: str = "file"
    path: str | None = None
    recorded_at: str | None = None
    overrides: tuple[str, ...] = ()
    rollout: Mapping[str, Any] = field(default_factory=dict)


def dumps(document: Mapping[str, Any]) -> str:
    return _json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False)


def evaluation_report(
    evaluation: Evaluation,
    facts: FactSet,
    info: FactsInfo,
    explanations: Mapping[str, Sequence[RuleExplanation]] | None = None,
    tzdata: str = "",
) -> dict[str, Any]:
    rollout = facts.values.get("rollout") or {}
    decision = evaluation.decision
    return {
        "apiVersion": API_VERSION,
        "kind": "EvaluationReport",
        "rollout": {
            "namespace": rollout.get("namespace"),
            "name": rollout.get("name"),
            "current": jsonable(rollout.get("current")),
        },
        "now": jsonable(evaluation.now),
        "nowSource": evaluation.now_source,
        "facts": {
            "source": info.source,
            "path": info.path,
            "recordedAt": info.recorded_at,
            "digest": evaluation.facts_digest,
            "overrides": list(info.overrides),
        },
        "policies": [
            {"ref": p.ref, "builtin": p.builtin, "file": p.file, "digest": p.digest}
            for p in evaluation.policies
        ],
        "engine": {"version": ENGINE_VERSION, "celBackend": evaluation.backend, "tzdata": tzdata},
        "decision": decision.value if decision else None,
        "allowedVersions": list(evaluation.allowed_versions),
        "nextChange": jsonable(evaluation.next_change),
        "candidates": [
            candidate_json(v, (explanations or {}).get(v.tag, ())) for v in evaluation.verdicts
        ],
        "provenance": provenance_json(facts),
        "diagnostics": [diagnostic_json(d) for d in evaluation.diagnostics],
    }


def candidate_json(verdict: Verdict, explanations: Sequence[RuleExplanation]) -> dict[str, Any]:
    explained = {e.result.rule_id: e for e in explanations}
    return {
        "release": jsonable(verdict.candidate),
        "hypothetical": verdict.hypothetical,
        "decision": verdict.decision.value,
        "nextChange": jsonable(verdict.next_change),
        "warnings": list(verdict.warnings),
        "rules": [rule_json(r, explained.get(r.rule_id)) for r in verdict.results],
    }


def rule_json(result: RuleResult, explanation: RuleExplanation | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": result.rule_id,
        "kind": result.kind.value,
        "effect": result.effect.value,
        "result": result.outcome.value,
        "reason": result.reason,
        "message": result.message,
        "nextChange": jsonable(result.next_change),
        "outputs": jsonable(result.outputs),
        "durationNs": result.duration_ns,
    }
    if result.location is not None:
        out["source"] = {
            "file": result.location.file,
            "line": result.location.line,
            "column": result.location.column,
        }
    if result.error is not None:
        out["error"] = {
            "code": result.error.code,
            "message": result.error.message,
            "span": result.error.span,
        }
    if result.checks:
        out["checks"] = {c.name: jsonable(c.value) for c in result.checks}
    if result.message_error is not None:
        out["messageError"] = jsonable(result.message_error)
    if explanation is not None:
        out["explanation"] = explanation_json(explanation)
    return out


def explanation_json(explanation: RuleExplanation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "facts": [
            {
                "path": f.path,
                "status": f.status,
                "error": f.error,
                "provenance": _provenance(f.provenance) if f.provenance else None,
            }
            for f in explanation.facts
        ],
    }
    if explanation.root is not None:
        out["root"] = node_json(explanation.root)
    if explanation.checks:
        out["checks"] = {name: node_json(node) for name, node in explanation.checks}
    if explanation.windows:
        out["windows"] = [
            {
                "name": w.name,
                "timezone": w.timezone,
                "localTime": w.local_time,
                "open": w.open,
                "nextChange": jsonable(w.next_change),
                "entries": [
                    {
                        "name": e.name,
                        "kind": e.kind,
                        "description": e.description,
                        "active": e.active,
                        "because": e.because,
                    }
                    for e in w.entries
                ],
            }
            for w in explanation.windows
        ]
    return out


def node_json(node: ExplainNode) -> dict[str, Any]:
    out: dict[str, Any] = {
        "text": node.text,
        "op": node.op,
        "value": jsonable(node.value),
        "span": {"start": node.start, "end": node.end},
    }
    if node.operands:
        out["operands"] = [
            {"text": o.text, "value": jsonable(o.value), "facts": list(o.facts)}
            for o in node.operands
        ]
    if node.children:
        out["children"] = [node_json(c) for c in node.children]
    if node.witness is not None:
        out["witness"] = jsonable(node.witness)
    return out


def provenance_json(facts: FactSet) -> dict[str, Any]:
    return {format_path(path): _provenance(p) for path, p in facts.provenance.items()}


def _provenance(p: Provenance) -> dict[str, Any]:
    ref = None
    if p.ref is not None:
        ref = {
            "apiVersion": p.ref.api_version,
            "kind": p.ref.kind,
            "namespace": p.ref.namespace,
            "name": p.ref.name,
            "uid": p.ref.uid,
            "resourceVersion": p.ref.resource_version,
        }
    return {
        "source": p.source,
        "ref": ref,
        "endpoint": p.endpoint,
        "query": p.query,
        "observedAt": jsonable(p.observed_at),
        "evaluatedAt": jsonable(p.evaluated_at),
    }


def diagnostic_json(d: Diagnostic) -> dict[str, Any]:
    loc = d.location
    return {
        "code": d.code,
        "severity": d.severity.value,
        "file": loc.file if loc else None,
        "line": loc.line if loc else None,
        "column": loc.column if loc else None,
        "endLine": loc.end_line if loc else None,
        "endColumn": loc.end_column if loc else None,
        "path": d.path,
        "message": d.message,
        "hint": d.hint,
        "rule": d.rule,
    }


def check_report(files: Sequence[str], diagnostics: Sequence[Diagnostic]) -> dict[str, Any]:
    errors = [diagnostic_json(d) for d in diagnostics if d.severity.value == "error"]
    warnings = [diagnostic_json(d) for d in diagnostics if d.severity.value == "warning"]
    return {
        "apiVersion": API_VERSION,
        "kind": "CheckReport",
        "files": list(files),
        "errors": errors,
        "warnings": warnings,
    }
