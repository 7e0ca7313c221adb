"""Deploying a tag: cancel, recovery mode, the history entry, retention, Flux convergence (§4.5).

Callers: ``planning.plan``. Pure: returns the new status pieces, events and
actions; the Flux patches are computed from ``history[0]`` on every pass, so a
controller restarted between the status write and the patch converges.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from controller.api.actions import Action, ApplySubstitute, SetSourceTag
from controller.events import Happening, normal
from controller.planning.bake import bake_configured, instant
from controller.planning.releases import Release, retained
from policy_engine.model.times import format_timestamp, parse_duration

SUBSTITUTE_KEY = re.compile(r"^rollout\.kuberik\.com/substitute\.([^.]+)\.from$")
SOURCE_KEY = "rollout.kuberik.com/rollout"
CONTROLLER_NAME = "rollout-controller"
DEFAULT_HISTORY_LIMIT = 10
NO_BAKE_MESSAGE = "No bake time configured, deployment completed immediately."
DEPLOYING_MESSAGE = "Waiting for health checks to become healthy before starting bake."


@dataclass(frozen=True, slots=True)
class Deploy:
    """What to deploy and why: the tag's VersionInfo and the intents it uses."""

    release: Release
    manual: bool
    force: bool = False
    bypass: bool = False
    unblock: bool = False
    message: str | None = None
    user: str | None = None
    rollback_of: str | None = None

    @property
    def tag(self) -> str:
        return str(self.release["tag"])


@dataclass(slots=True)
class Deployed:
    """The status after the deploy and the events it caused."""

    history: list[dict[str, Any]]
    available: list[Release]
    recovery: tuple[str, str, str]
    ready: tuple[str, str, str]
    happenings: list[Happening] = field(default_factory=list)


def deploy(
    what: Deploy,
    history: Sequence[Mapping[str, Any]],
    available: Sequence[Release],
    spec: Mapping[str, Any],
    unhealthy: bool,
    now: datetime,
) -> Deployed:
    """Steps 1–5 of §4.5."""
    entries = [dict(e) for e in history]
    happenings: list[Happening] = []
    if entries and entries[0].get("bakeStatus") in ("Deploying", "InProgress"):
        entries[0].update(
            bakeStatus="Cancelled",
            bakeStatusMessage="Bake cancelled due to new deployment.",
            bakeEndTime=format_timestamp(now),
            message=f"Deployment cancelled due to new deployment of version {what.tag}",
        )
        happenings.append(
            normal(
                "BakeTimeCancelled",
                f"Bake time cancelled due to new deployment of version {what.tag}",
            )
        )
    recovery = _recovery(entries, what, unhealthy)
    entry = _entry(what, entries, spec, now)
    if entry["bakeStatus"] == "Deploying":
        happenings.append(
            normal(
                "BakeTimeDeploying",
                "Bake time deploying, waiting for health checks to become healthy"
                " before starting bake.",
            )
        )
    limit = int(spec.get("versionHistoryLimit") or DEFAULT_HISTORY_LIMIT)
    entries.insert(0, entry)
    kept = list(available)
    if len(entries) > limit:
        entries = entries[:limit]
        kept = retained(
            available,
            entries,
            now,
            int(spec.get("availableReleasesRetentionDays") or 7),
            int(spec.get("availableReleasesMinCount") or 30),
        )
    happenings.append(
        normal(
            "DeploymentSucceeded", f"Successfully deployed version {what.tag}{_event_suffix(what)}"
        )
    )
    return Deployed(
        entries,
        kept,
        recovery,
        ("True", "RolloutSucceeded", ready_message(what, entry, spec, now)),
        happenings,
    )


def _recovery(
    entries: Sequence[Mapping[str, Any]], what: Deploy, unhealthy: bool
) -> tuple[str, str, str]:
    if what.rollback_of or (entries and entries[0].get("bakeStatus") != "Succeeded"):
        return (
            "True",
            "PreviousBakeFailed",
            "Previous deployment failed. Health check failures will not fail this deployment.",
        )
    if what.manual and unhealthy:
        return (
            "True",
            "DeployedWithUnhealthyHealthChecks",
            "Deployed during an active incident."
            " Health check failures will not fail this deployment.",
        )
    return ("False", "Normal", "Health check failures will fail this deployment.")


def _entry(
    what: Deploy, entries: Sequence[Mapping[str, Any]], spec: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    previous_id = int(entries[0].get("id") or 0) if entries else 0
    entry: dict[str, Any] = {
        "id": previous_id + 1,
        "version": dict(what.release),
        "timestamp": format_timestamp(now),
        "message": entry_message(what),
        "triggeredBy": (
            {"kind": "User", "name": what.user}
            if what.manual and what.user
            else {"kind": "System", "name": CONTROLLER_NAME}
        ),
    }
    if what.rollback_of:
        entry["rollbackOf"] = what.rollback_of
    if bake_configured(spec):
        entry.update(bakeStatus="Deploying", bakeStatusMessage=DEPLOYING_MESSAGE)
    else:
        entry.update(bakeStatus="Succeeded", bakeStatusMessage=NO_BAKE_MESSAGE)
    return entry


def entry_message(what: Deploy) -> str:
    """§4.5 step 4."""
    if what.rollback_of:
        return f"Automatic rollback after failed bake of {what.rollback_of}"
    text = (what.message or "Manual deployment") if what.manual else "Automatic deployment"
    if what.force:
        text += ", with force deploy"
    if what.bypass:
        text += ", with gate bypass"
    if what.unblock:
        text += ", with failed bake unblock"
    return text


def _event_suffix(what: Deploy) -> str:
    return (" (with gate bypass)" if what.bypass else "") + (
        " (with failed bake unblock)" if what.unblock else ""
    )


def ready_message(
    what: Deploy, entry: Mapping[str, Any], spec: Mapping[str, Any], now: datetime
) -> str:
    """ "Release deployed successfully[ with …]. <summary>"."""
    extras = [
        w
        for w, used in (("gate bypass", what.bypass), ("failed bake unblock", what.unblock))
        if used
    ]
    with_text = f" with {' and '.join(extras)}" if extras else ""
    return f"Release deployed successfully{with_text}. {summary(entry, spec, now)}"


def summary(entry: Mapping[str, Any], spec: Mapping[str, Any], now: datetime) -> str:
    """The bake summary of §2.6."""
    status = entry.get("bakeStatus")
    message = entry.get("bakeStatusMessage")
    if status == "Deploying":
        return "Waiting for health checks to become healthy before starting bake"
    if status == "InProgress":
        bake_time = spec.get("bakeTime")
        if not bake_time or not entry.get("bakeStartTime"):
            return "Baking in progress, monitoring for errors"
        remaining = instant(entry["bakeStartTime"]) + parse_duration(str(bake_time)) - now
        return f"Baking in progress, {go_duration(remaining)} remaining"
    if status == "Failed":
        return "Bake failed" + (f": {message}" if message else "")
    if status == "Cancelled":
        return "Bake cancelled" + (f": {message}" if message else "")
    return "Bake completed successfully"


def go_duration(value: timedelta) -> str:
    """A duration to the second in Go's format (``1h2m3s``, ``5m0s``, ``0s``)."""
    seconds = max(0, int(value.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def flux_actions(
    rollout_name: str,
    tag: str,
    kustomizations: Sequence[Mapping[str, Any]],
    sources: Sequence[Mapping[str, Any]],
) -> list[Action]:
    """Convergent patches: every Flux object naming the Rollout that does not hold ``tag`` yet."""
    actions: list[Action] = []
    for source in sources:
        meta = source["metadata"]
        if (meta.get("annotations") or {}).get(SOURCE_KEY) != rollout_name:
            continue
        if ((source.get("spec") or {}).get("ref") or {}).get("tag") != tag:
            actions.append(SetSourceTag(meta["namespace"], meta["name"], tag))
    for kustomization in kustomizations:
        meta = kustomization["metadata"]
        substitute = ((kustomization.get("spec") or {}).get("postBuild") or {}).get(
            "substitute"
        ) or {}
        for key, value in sorted((meta.get("annotations") or {}).items()):
            match = SUBSTITUTE_KEY.match(key)
            if match and value == rollout_name and substitute.get(match.group(1)) != tag:
                actions.append(
                    ApplySubstitute(meta["namespace"], meta["name"], match.group(1), tag)
                )
    return actions
