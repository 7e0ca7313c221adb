"""The bake state machine of ``history[0]`` and HealthCheck resets (§4.6, §5.1).

Callers: ``planning.plan``. Pure: (entry, spec, selected HealthChecks,
recovery mode, now) -> the advanced entry, what happened, and the deadline at
which the entry can move again without any other change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.events import Happening, normal, warning
from policy_engine.model.times import format_timestamp, parse_duration, parse_timestamp

IN_FLIGHT = ("Deploying", "InProgress")
TERMINAL = ("Succeeded", "Failed", "Cancelled")
RESET_MESSAGE = "Health check reset due to new deployment"
TIMEOUT_MESSAGE = (
    "Deploy timeout reached before bake could start (health checks did not become healthy in time)."
)
PASSED_MESSAGE = "Bake time completed successfully (no errors within bake time)."
NO_BAKE_TIME_MESSAGE = "Bake completed (no bake time configured)."


@dataclass(slots=True)
class BakeStep:
    """The entry after this pass, its events, a Ready change and the next deadline."""

    entry: dict[str, Any]
    happenings: list[Happening] = field(default_factory=list)
    ready: tuple[str, str, str] | None = None
    deadline: datetime | None = None


def bake_configured(spec: Mapping[str, Any]) -> bool:
    """``bakeTime``, ``deployTimeout`` or ``healthCheckSelector`` is set (even ``{}``)."""
    return any(
        spec.get(key) is not None for key in ("bakeTime", "deployTimeout", "healthCheckSelector")
    )


def cutoff(entry: Mapping[str, Any]) -> datetime:
    """``max(timestamp, lastRetryTimestamp)``."""
    moments = [instant(entry["timestamp"])]
    if entry.get("lastRetryTimestamp"):
        moments.append(instant(entry["lastRetryTimestamp"]))
    return max(moments)


def instant(value: Any) -> datetime:
    return value if isinstance(value, datetime) else parse_timestamp(str(value))


def _hc_status(hc: Mapping[str, Any]) -> Mapping[str, Any]:
    status: Mapping[str, Any] = hc.get("status") or {}
    return status


def _ref(hc: Mapping[str, Any], message: str) -> dict[str, str]:
    meta = hc["metadata"]
    return {"name": meta["name"], "namespace": meta.get("namespace", ""), "message": message}


def advance(
    entry: Mapping[str, Any],
    spec: Mapping[str, Any],
    health_checks: Sequence[Mapping[str, Any]],
    recovery: bool,
    now: datetime,
) -> BakeStep:
    """Checks the rows of §4.6 in order (several may apply in one pass)."""
    step = BakeStep(dict(entry))
    if step.entry.get("bakeStatus") not in IN_FLIGHT:
        return step
    start = cutoff(step.entry)
    if not recovery and _timed_out(step, spec, health_checks, start, now):
        return step
    if not recovery and _errored(step, health_checks, start, now):
        return step
    if step.entry["bakeStatus"] == "Deploying" and _all_healthy_since(health_checks, start):
        step.entry.update(
            bakeStatus="InProgress",
            bakeStatusMessage="Bake started, monitoring for errors.",
            bakeStartTime=format_timestamp(now),
        )
        step.happenings.append(
            normal("BakeTimeStarted", "Bake time started, monitoring for errors.")
        )
    if step.entry["bakeStatus"] == "InProgress":
        _finish_bake(step, spec, health_checks, now)
    elif step.entry["bakeStatus"] == "Deploying" and spec.get("deployTimeout"):
        step.deadline = start + parse_duration(str(spec["deployTimeout"]))
    return step


def _timed_out(
    step: BakeStep,
    spec: Mapping[str, Any],
    health_checks: Sequence[Mapping[str, Any]],
    start: datetime,
    now: datetime,
) -> bool:
    timeout = spec.get("deployTimeout")
    if step.entry["bakeStatus"] != "Deploying" or not timeout:
        return False
    if not now > start + parse_duration(str(timeout)):
        return False
    failed = []
    for hc in health_checks:
        status = _hc_status(hc)
        changed = status.get("lastChangeTime")
        if status.get("status") != "Healthy":
            failed.append(_ref(hc, status.get("message") or f"Status: {status.get('status', '')}"))
        elif not changed:
            failed.append(_ref(hc, "LastChangeTime is not set"))
        elif instant(changed) < start:
            failed.append(_ref(hc, status.get("message") or "Status: Healthy"))
    _fail(step, TIMEOUT_MESSAGE, failed, now)
    return True


def _errored(
    step: BakeStep, health_checks: Sequence[Mapping[str, Any]], start: datetime, now: datetime
) -> bool:
    failing = [
        hc
        for hc in health_checks
        if _hc_status(hc).get("lastErrorTime") and instant(_hc_status(hc)["lastErrorTime"]) >= start
    ]
    if not failing:
        return False
    when = "deployment" if step.entry["bakeStatus"] == "Deploying" else "bake started"
    refs = [_ref(hc, str(_hc_status(hc).get("message", ""))) for hc in failing]
    _fail(step, f"A HealthCheck reported an error after {when}.", refs, now)
    return True


def _fail(step: BakeStep, message: str, failed: list[dict[str, str]], now: datetime) -> None:
    step.entry.update(
        bakeStatus="Failed",
        bakeStatusMessage=message,
        bakeEndTime=format_timestamp(now),
        failedHealthChecks=failed,
    )
    step.ready = ("False", "BakeTimeFailed", message)
    step.happenings.append(warning("BakeTimeFailed", message))


def _all_healthy_since(health_checks: Sequence[Mapping[str, Any]], start: datetime) -> bool:
    for hc in health_checks:
        status = _hc_status(hc)
        changed = status.get("lastChangeTime")
        if status.get("status") != "Healthy" or not changed or instant(changed) < start:
            return False
    return True


def _finish_bake(
    step: BakeStep,
    spec: Mapping[str, Any],
    health_checks: Sequence[Mapping[str, Any]],
    now: datetime,
) -> None:
    bake_time = spec.get("bakeTime")
    if not bake_time:
        _succeed(step, NO_BAKE_TIME_MESSAGE, now)
        step.ready = ("True", "BakeTimePassed", NO_BAKE_TIME_MESSAGE)
        return
    end = instant(step.entry["bakeStartTime"]) + parse_duration(str(bake_time))
    unhealthy = any(_hc_status(hc).get("status") == "Unhealthy" for hc in health_checks)
    if now >= end and not unhealthy:
        _succeed(step, PASSED_MESSAGE, now)
        step.ready = ("True", "BakeTimePassed", PASSED_MESSAGE)
        step.happenings.append(normal("BakeTimePassed", PASSED_MESSAGE))
    elif now < end:
        step.deadline = end


def _succeed(step: BakeStep, message: str, now: datetime) -> None:
    step.entry.update(
        bakeStatus="Succeeded", bakeStatusMessage=message, bakeEndTime=format_timestamp(now)
    )


def mark_successful(entry: Mapping[str, Any], note: str, now: datetime) -> BakeStep:
    """[T] ``tidegate.dev/mark-successful``: a non-Succeeded entry becomes Succeeded."""
    step = BakeStep(dict(entry))
    if step.entry.get("bakeStatus") == "Succeeded":
        return step
    message = "Deployment manually marked as successful by user"
    if note and note != "true":
        message += f": {note}"
    _succeed(step, message, now)
    step.ready = ("True", "DeploymentMarkedSuccessful", message)
    return step


def retried(entry: Mapping[str, Any], now: datetime) -> BakeStep:
    """§3 ``retry``: a Failed entry goes back to Deploying with the cutoff at ``now``."""
    step = BakeStep(dict(entry))
    if step.entry.get("bakeStatus") != "Failed":
        return step
    for key in ("bakeStatusMessage", "bakeStartTime", "bakeEndTime", "failedHealthChecks"):
        step.entry.pop(key, None)
    stamp = format_timestamp(now)
    step.entry.update(bakeStatus="Deploying", lastRetryTimestamp=stamp)
    step.happenings.append(
        normal("RetryRequested", f"Retry requested; bake status reset at {stamp}")
    )
    return step


def health_check_resets(
    health_checks: Sequence[Mapping[str, Any]], start: datetime, now: datetime
) -> list[tuple[Mapping[str, Any], dict[str, Any]]]:
    """§5.1: HCs whose lastChangeTime is unset or before ``start`` become Pending."""
    resets = []
    for hc in health_checks:
        changed = _hc_status(hc).get("lastChangeTime")
        if changed and instant(changed) >= start:
            continue
        resets.append(
            (
                hc,
                {
                    "status": "Pending",
                    "message": RESET_MESSAGE,
                    "lastChangeTime": format_timestamp(now),
                    "lastErrorTime": None,
                },
            )
        )
    return resets
