"""Phase one of a Rollout pass: retry, releases, candidates, gates, health, bake (§4.1 steps 1–8).

Callers: ``reconciling`` (then facts are built from the result and the engine
decides) and ``deciding``. Pure: (observed, now) -> Prepared.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.api.actions import (
    ROLLOUTGATES,
    Action,
    JsonPatch,
    MergePatch,
    ObjectKey,
    PatchStatus,
    RemoveAnnotations,
)
from controller.conditions import is_true, set_condition
from controller.events import Happening, normal, warning
from controller.patching import annotation_pointer
from controller.planning import bake, releases
from controller.planning.gates import APPROVAL, GateView, gate_view
from controller.planning.intents import APPROVE, MARK_SUCCESSFUL, RETRY, Intents, read_intents
from controller.planning.kruise import RETRY_MODE
from controller.planning.observing import Observed

HEALTH_CHECKS = "healthchecks.kuberik.com"


@dataclass(slots=True)
class Prepared:
    """The status after steps 1–8, what happened, and whether planning stops here."""

    observed: Observed
    intents: Intents
    status: dict[str, Any]
    now: datetime
    candidates: releases.Candidates = field(default_factory=lambda: releases.Candidates(()))
    gates: GateView | None = None
    happenings: list[Happening] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    deadlines: list[datetime] = field(default_factory=list)
    stopped: bool = False
    just_failed: bool = False

    @property
    def history(self) -> list[dict[str, Any]]:
        history: list[dict[str, Any]] = self.status.setdefault("history", [])
        return history

    @property
    def current(self) -> str | None:
        return self.history[0]["version"]["tag"] if self.history else None

    def condition(self, kind: str, status: str, reason: str, message: str) -> None:
        generation = self.observed.rollout["metadata"].get("generation")
        self.status["conditions"] = set_condition(
            self.status.get("conditions") or [], kind, status, reason, message, self.now, generation
        )

    @property
    def unhealthy(self) -> list[dict[str, Any]]:
        return [
            dict(hc) for hc in self.observed.health_checks
            if (hc.get("status") or {}).get("status") == "Unhealthy"
        ]  # fmt: skip


def prepare(observed: Observed, now: datetime) -> Prepared:
    """Runs steps 1–8 of §4.1 on a copy of the Rollout's status."""
    status = copy.deepcopy(dict(observed.rollout.get("status") or {}))
    prepared = Prepared(observed, read_intents(observed.rollout), status, now)
    _one_shot_bake_intents(prepared)
    _approvals(prepared)
    if not _releases(prepared):
        prepared.stopped = True
        _advance_bake(prepared)
        return prepared
    _candidates_and_gates(prepared)
    _health_blocking(prepared)
    _advance_bake(prepared)
    return prepared


def _rollout_key(prepared: Prepared) -> ObjectKey:
    return prepared.observed.key


def _one_shot_bake_intents(prepared: Prepared) -> None:
    """``retry`` (§3) and [T] ``mark-successful``: applied to history[0], then removed."""
    intents, history = prepared.intents, prepared.history
    if intents.retry is not None and not _skip_mode_first(prepared):
        if history and history[0].get("bakeStatus") == "Failed":
            step = bake.retried(history[0], prepared.now)
            history[0] = step.entry
            prepared.happenings += step.happenings
            prepared.actions += reset_health_checks(prepared, prepared.now)
        prepared.actions.append(RemoveAnnotations(_rollout_key(prepared), {RETRY: intents.retry}))
    if intents.mark_successful is not None:
        if history:
            step = bake.mark_successful(history[0], intents.mark_successful, prepared.now)
            history[0] = step.entry
            if step.ready:
                prepared.condition("Ready", *step.ready)
        prepared.actions.append(
            RemoveAnnotations(_rollout_key(prepared), {MARK_SUCCESSFUL: intents.mark_successful})
        )


def _skip_mode_first(prepared: Prepared) -> bool:
    """[T] ``retry: skip`` of a Failed entry: first record ``retry-mode: skip``, retry next pass.

    The OpenKruise step gate learns the mode from the Rollout's ``retry-mode``
    annotation when it sees the new ``lastRetryTimestamp``; ``retry`` itself is
    removed in the pass that retries. So this pass only adds ``retry-mode: skip``
    (if ``retry`` still holds the value seen) and leaves the retry to the pass its
    own watch event starts, when the mode is already on the object.
    """
    intents, history = prepared.intents, prepared.history
    failed = bool(history) and history[0].get("bakeStatus") == "Failed"
    value = (intents.retry or "").strip()
    if value != "skip" or not failed or intents.annotations.get(RETRY_MODE) == "skip":
        return False
    ops = (
        {"op": "test", "path": annotation_pointer(RETRY), "value": intents.retry},
        {"op": "add", "path": annotation_pointer(RETRY_MODE), "value": "skip"},
    )
    prepared.actions.append(JsonPatch(_rollout_key(prepared), ops))
    return True


def _approvals(prepared: Prepared) -> None:
    """[T] ``tidegate.dev/approve: tag[,tag]``: appended to every approval gate, then removed."""
    value = prepared.intents.annotations.get(APPROVE)
    if value is None:
        return
    tags = [t.strip() for t in value.split(",") if t.strip()]
    gates = [
        g for g in prepared.observed.gates
        if (g["metadata"].get("annotations") or {}).get(APPROVAL) == "true"
    ]  # fmt: skip
    if not gates:
        prepared.happenings.append(
            warning("ApprovalIgnored", f"no approval gate (annotation {APPROVAL}) for {value}")
        )
    for gate in gates:
        listed = [str(v) for v in (gate.get("spec") or {}).get("allowedVersions") or []]
        wanted = listed + [t for t in tags if t not in listed]
        meta = gate["metadata"]
        if wanted != listed:
            key = ObjectKey(ROLLOUTGATES, meta.get("namespace"), meta["name"])
            prepared.actions.append(MergePatch(key, {"spec": {"allowedVersions": wanted}}))
        prepared.happenings.append(
            normal("ApprovalRecorded", f"approved {', '.join(tags)} on gate {meta['name']}")
        )
    prepared.actions.append(RemoveAnnotations(_rollout_key(prepared), {APPROVE: value}))


def reset_health_checks(prepared: Prepared, start: datetime) -> list[Action]:
    """§5.1 reset of every selected HealthCheck not changed since ``start``."""
    actions: list[Action] = []
    for hc, changes in bake.health_check_resets(
        prepared.observed.health_checks, start, prepared.now
    ):
        meta = hc["metadata"]
        key = ObjectKey(HEALTH_CHECKS, meta.get("namespace"), meta["name"])
        actions.append(PatchStatus(key, str(meta.get("resourceVersion", "")), changes))
    return actions


def _releases(prepared: Prepared) -> bool:
    """Step 2–3: the ImagePolicy's latest tag recorded; False when planning must stop."""
    image_policy = prepared.observed.image_policy
    spec = prepared.observed.rollout.get("spec") or {}
    name = (spec.get("releasesImagePolicy") or {}).get("name")
    if image_policy is None:
        prepared.condition("Ready", "False", "RolloutFailed", f"ImagePolicy {name} not found")
        return False
    ranking = releases.ranking_of(image_policy)
    available = list(prepared.status.get("availableReleases") or [])
    latest = releases.latest_release(image_policy)
    if latest is not None:
        latest = {**latest, **prepared.observed.metadata.get(latest["tag"], {})}
        available = releases.with_release(
            available, _version_info(latest), ranking, prepared.intents.observed_order
        )
        _artifact_fields(prepared.status, latest)
        prepared.condition(
            "ReleasesUpdated", "True", "ReleasesUpdated",
            "Available releases were updated successfully from ImagePolicy",
        )  # fmt: skip
    prepared.status["availableReleases"] = available
    if not available:
        prepared.condition("Ready", "False", "RolloutSucceeded", "No releases available")
        return False
    return True


def _version_info(release: dict[str, Any]) -> dict[str, Any]:
    keys = ("tag", "digest", "version", "revision", "created")
    return {key: release[key] for key in keys if release.get(key)}


def _artifact_fields(status: dict[str, Any], latest: dict[str, Any]) -> None:
    for key in ("artifactType", "source", "title", "description"):
        if latest.get(key):
            status[key] = latest[key]


def _candidates_and_gates(prepared: Prepared) -> None:
    """Steps 4–5: candidates in release order and the gates' view of them."""
    ranking = releases.ranking_of(prepared.observed.image_policy)
    available = prepared.status["availableReleases"]
    prepared.candidates = releases.candidates(
        available, prepared.current, ranking, prepared.intents.observed_order
    )
    prepared.status["releaseCandidates"] = list(prepared.candidates.releases)
    view = gate_view(
        prepared.observed.gates, prepared.candidates.tags, prepared.intents.bypass_gates
    )
    prepared.gates = view
    prepared.status["gates"] = list(view.summaries)
    by_tag = {r["tag"]: r for r in prepared.candidates.releases}
    prepared.status["gatedReleaseCandidates"] = [by_tag[t] for t in view.gated if t in by_tag]
    prepared.condition("GatesPassing", *view.condition(prepared.candidates.tags))


def _health_blocking(prepared: Prepared) -> None:
    """Step 6: DeploymentBlocked, independent of gates."""
    if prepared.intents.manual:
        prepared.condition("DeploymentBlocked", "False", "ManualDeployment", "Manual deployment")
        return
    unhealthy = prepared.unhealthy
    if unhealthy:
        prepared.condition(
            "DeploymentBlocked", "True", "UnhealthyHealthChecks", blocking_message(unhealthy[0])
        )
        return
    prepared.condition(
        "DeploymentBlocked", "False", "HealthChecksHealthy", "All health checks are healthy"
    )


def blocking_message(hc: dict[str, Any]) -> str:
    meta, status = hc["metadata"], hc.get("status") or {}
    text = (
        f"HealthCheck '{meta['name']}' in namespace '{meta.get('namespace', '')}' "
        f"is not healthy (status: {status.get('status', '')})"
    )
    return text + (f": {status['message']}" if status.get("message") else "")


def _advance_bake(prepared: Prepared) -> None:
    """Step 8 (first half): move an in-flight history[0] along the state machine."""
    history = prepared.history
    if not history:
        return
    if history[0].get("bakeStatus") == "Deploying":
        # The §5.1 reset, kept convergent: a reset lost to a conflict or a crash is
        # planned again on the next pass, as long as the entry waits for health.
        prepared.actions += reset_health_checks(prepared, bake.cutoff(history[0]))
    recovery = is_true(prepared.status.get("conditions") or [], "BakeFailureDisabled")
    spec = prepared.observed.rollout.get("spec") or {}
    step = bake.advance(history[0], spec, prepared.observed.health_checks, recovery, prepared.now)
    history[0] = step.entry
    prepared.happenings += step.happenings
    if step.ready:
        prepared.condition("Ready", *step.ready)
    if step.deadline:
        prepared.deadlines.append(step.deadline)
    prepared.just_failed = step.entry.get("bakeStatus") == "Failed" and step.ready is not None
