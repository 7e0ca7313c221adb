"""Phase two of a Rollout pass: select and deploy, write status, converge Flux (§4.1 steps 8–13).

Callers: ``reconciling``, after the engine evaluated the prepared facts.
Pure: (prepared, evaluation) -> Plan. Manual intents never consult the
decision; the automatic pick must be ``Allowed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controller.api.actions import Action, Plan, PostEvent, RemoveAnnotations, WriteStatus
from controller.events import Happening, condition_events, normal, warning
from controller.planning.deciding_status import decision_status, facts_unavailable
from controller.planning.deploying import Deploy, deploy, flux_actions
from controller.planning.intents import (
    CONSUMED_BY_DEPLOY,
    DEPLOY_MESSAGE,
    DEPLOY_USER,
    FORCE_DEPLOY,
    consumed,
)
from controller.planning.preparing import Prepared, reset_health_checks
from policy_engine.model.verdict import Decision, Evaluation


def decide(prepared: Prepared, evaluation: Evaluation | None) -> Plan:
    """The plan: status (write-ahead), Flux patches, HC resets, annotation removals, events."""
    if evaluation is not None and prepared.candidates.releases:
        sequential = prepared.intents.sequential and prepared.history
        prepared.status["decision"] = decision_status(
            evaluation,
            prepared.observed.rollout.get("status") or {},
            focus=prepared.candidates.tags[-1] if sequential else None,
        )
    else:
        prepared.status.pop("decision", None)
    if not prepared.stopped:
        chosen = _select(prepared, evaluation)
        if chosen is not None:
            _deploy(prepared, chosen)
    return _plan(prepared, evaluation)


def _select(prepared: Prepared, evaluation: Evaluation | None) -> Deploy | None:
    """Step 12, by priority: wantedVersion, force-deploy, bypass-gates, the automatic pick."""
    intents, current = prepared.intents, prepared.current
    if intents.wanted_version:
        if intents.wanted_version == current:
            return None
        return _manual(prepared, intents.wanted_version, force=False)
    if intents.force_deploy:
        return _forced(prepared, intents.force_deploy)
    rollback = _rollback(prepared)
    if rollback is not None or (prepared.just_failed and intents.rollback_on_failure):
        return rollback
    return _automatic(prepared, evaluation)


def _release(prepared: Prepared, tag: str) -> dict[str, Any]:
    for release in prepared.status.get("availableReleases") or []:
        if release.get("tag") == tag:
            return dict(release)
    return {"tag": tag}


def _manual(prepared: Prepared, tag: str, *, force: bool) -> Deploy:
    intents = prepared.intents
    return Deploy(
        _release(prepared, tag), manual=True, force=force,
        message=intents.deploy_message, user=intents.deploy_user,
    )  # fmt: skip


def _forced(prepared: Prepared, tag: str) -> Deploy | None:
    if tag == prepared.current:
        prepared.happenings.append(
            normal("ForceDeployIgnored", f"version {tag} is already deployed")
        )
        keys = (FORCE_DEPLOY, DEPLOY_MESSAGE, DEPLOY_USER)
        prepared.actions.append(
            RemoveAnnotations(prepared.observed.key, consumed(prepared.intents, keys))
        )
        prepared.condition(
            "DeploymentBlocked", "False", "HealthChecksHealthy", "All health checks are healthy"
        )
        return None
    known = [r.get("tag") for r in prepared.status.get("availableReleases") or []]
    if tag not in known:
        prepared.condition(
            "Ready",
            "False",
            "RolloutFailed",
            f"force deploy version {tag} is not in available releases",
        )
        return None
    return _manual(prepared, tag, force=True)


def _rollback(prepared: Prepared) -> Deploy | None:
    """[T] §4.7: an automatic entry that just failed rolls back to the newest older success."""
    history = prepared.history
    if not (prepared.just_failed and prepared.intents.rollback_on_failure and history):
        return None
    failed = history[0]
    if (failed.get("triggeredBy") or {}).get("kind") != "System":
        return None
    tag = failed["version"]["tag"]
    for entry in history[1:]:
        if entry.get("bakeStatus") == "Succeeded" and entry["version"]["tag"] != tag:
            prepared.happenings.append(
                warning(
                    "AutomaticRollback",
                    f"Rolling back to {entry['version']['tag']} after failed bake of {tag}",
                )
            )
            return Deploy(dict(entry["version"]), manual=False, rollback_of=tag)
    prepared.happenings.append(
        warning("RollbackUnavailable", f"No earlier successful release to roll back to from {tag}")
    )
    return None


def _automatic(prepared: Prepared, evaluation: Evaluation | None) -> Deploy | None:
    """Steps 8–11 are the builtins; the pick is the first Allowed tag in preference order."""
    if evaluation is None or prepared.gates is None:
        return None
    history = prepared.history
    if history and history[0].get("bakeStatus") in ("Deploying", "InProgress"):
        return None
    order = _preference(prepared)
    rolled_back = {e.get("rollbackOf") for e in history if e.get("rollbackOf")}
    for tag in order:
        if tag in rolled_back and tag != prepared.intents.bypass_gates:
            continue
        verdict = evaluation.verdict_for(tag)
        if verdict is not None and verdict.decision is Decision.ALLOWED:
            bypass = tag == prepared.gates.bypassed
            unblock = (
                bool(history)
                and history[0].get("bakeStatus") == "Failed"
                and prepared.intents.unblock_failed
            )
            return Deploy(_release(prepared, tag), manual=False, bypass=bypass, unblock=unblock)
        if prepared.intents.sequential and history:
            break
    if not prepared.candidates.releases and not history:
        prepared.condition("Ready", "False", "RolloutSucceeded", "No release candidates found")
    unavailable = facts_unavailable(evaluation)
    if unavailable:
        prepared.condition("Ready", "False", "FactsUnavailable", unavailable)
    return None


def _preference(prepared: Prepared) -> list[str]:
    assert prepared.gates is not None
    tags = prepared.candidates.tags
    if prepared.gates.bypassed:
        return [prepared.gates.bypassed]
    if not prepared.history:
        return list(prepared.gates.gated) + [t for t in tags if t not in prepared.gates.gated]
    if prepared.intents.sequential:
        return list(reversed(tags))
    return tags


def _deploy(prepared: Prepared, chosen: Deploy) -> None:
    spec = prepared.observed.rollout.get("spec") or {}
    done = deploy(
        chosen, prepared.history, prepared.status.get("availableReleases") or [],
        spec, bool(prepared.unhealthy), prepared.now,
    )  # fmt: skip
    prepared.status["history"] = done.history
    prepared.status["availableReleases"] = done.available
    prepared.happenings += done.happenings
    prepared.condition("BakeFailureDisabled", *done.recovery)
    prepared.condition("Ready", *done.ready)
    if chosen.manual:
        prepared.condition("DeploymentBlocked", "False", "ManualDeployment", "Manual deployment")
    prepared.actions += reset_health_checks(prepared, prepared.now)
    prepared.actions.append(
        RemoveAnnotations(prepared.observed.key, consumed(prepared.intents, CONSUMED_BY_DEPLOY))
    )
    # the new entry's bake advances on the next pass (§4.6); with no HealthCheck to write a
    # status, only our own status write would wake it, and the stores swallow that echo
    prepared.deadlines.append(prepared.now)


def _plan(prepared: Prepared, evaluation: Evaluation | None) -> Plan:
    rollout = prepared.observed.rollout
    meta = rollout["metadata"]
    if meta.get("generation") is not None:
        prepared.status["observedGeneration"] = meta["generation"]
    before = rollout.get("status") or {}
    actions: list[Action] = []
    if prepared.status != before:
        actions.append(
            WriteStatus(
                prepared.observed.key, str(meta.get("resourceVersion", "")), prepared.status
            )
        )
    happenings = prepared.happenings + condition_events(
        before.get("conditions") or [], prepared.status.get("conditions") or []
    )
    actions += [_event(prepared, h) for h in happenings]
    if prepared.history:
        tag = prepared.history[0]["version"]["tag"]
        actions += flux_actions(
            meta["name"], tag, prepared.observed.kustomizations, prepared.observed.sources
        )
    actions += [a for a in prepared.actions if not isinstance(a, RemoveAnnotations)]
    actions += [a for a in prepared.actions if isinstance(a, RemoveAnnotations) and a.expected]
    unique = {a.key: a for a in reversed(actions)}
    ordered = tuple(a for a in actions if unique.get(a.key) is a)
    return Plan(ordered, _requeue_at(prepared, evaluation))


def _event(prepared: Prepared, happening: Happening) -> PostEvent:
    return PostEvent(prepared.observed.key, happening.type, happening.reason, happening.message)


def _requeue_at(prepared: Prepared, evaluation: Evaluation | None) -> Any:
    moments = list(prepared.deadlines)
    if evaluation is not None and evaluation.next_change is not None:
        moments.append(evaluation.next_change)
    return min(moments) if moments else None


def keys_of(actions: Sequence[Action]) -> list[str]:
    """Action keys, for logs and tests."""
    return [a.key for a in actions]
