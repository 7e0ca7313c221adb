"""GitHub mirroring of Environments: names, request bodies, mirror plans, remote history (§7).

Callers: ``reconciling.environments`` (which does the GitHub I/O through
``evaluators.github``) and ``planning.environments`` users that read remote
upstreams. Pure: history entries and GitHub JSON in; plans and entries out. No
I/O, no clock; promotion and linking live in ``planning.environments``.

Entries are Rollout history entries as JSON (``status.history[]``), newest
first. GitHub deployments come as ``(deployment, statuses)`` pairs with the
statuses latest first, as ``GitHubDeployments.deployments_with_statuses``
returns them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from controller.planning.environments import EnvironmentTermsError, Json, Obj, app_name
from policy_engine.model.times import TimeSyntaxError, format_timestamp, to_utc

DESCRIPTION_LIMIT: Final = 140

#: bakeStatus -> (GitHub state, description prefix); ``None`` is an unset bakeStatus.
STATUS_TABLE: Final[Mapping[str | None, tuple[str, str]]] = {
    "Succeeded": ("success", "Bake succeeded"),
    "Failed": ("failure", "Bake failed"),
    "InProgress": ("in_progress", "Baking in progress"),
    "Deploying": ("in_progress", "Deploying"),
    "Cancelled": ("inactive", "Bake cancelled"),
    None: ("pending", "Deploying"),
}
_TERMINAL = ("Succeeded", "Failed", "Cancelled")
_VERSION_KEYS = ("tag", "digest", "version", "revision", "created")

Pair = tuple[Obj, Sequence[Obj]]


# --- names and GitHub bodies ----------------------------------------------------------


def github_environment(spec: Obj) -> str:
    """The GitHub environment ``kuberik/<name>/<environment>``."""
    if not spec.get("environment"):
        raise EnvironmentTermsError("Environment spec.environment is required for mirroring")
    return f"{app_name(spec)}/{spec['environment']}"


def deployment_task(spec: Obj) -> str:
    """The deployment task ``deploy:kuberik/<name>``."""
    return f"deploy:{app_name(spec)}"


def deployment_payload(entry: Obj, relationship: Obj | None) -> Json:
    """``{"id": "<id>", "relationship": {...}, "version": <VersionInfo>}`` (JSON-safe)."""
    version = {
        key: format_timestamp(value) if isinstance(value, datetime) else value
        for key, value in (entry.get("version") or {}).items()
        if value is not None
    }
    payload: Json = {"id": str(entry["id"])}
    if relationship:
        payload["relationship"] = {k: relationship.get(k) for k in ("environment", "type")}
    payload["version"] = version
    return payload


def deployment_request(spec: Obj, entry: Obj, relationship: Obj | None) -> Json:
    """The POST body creating the deployment of ``entry``."""
    return {
        "ref": entry["version"]["revision"],
        "task": deployment_task(spec),
        "environment": github_environment(spec),
        "description": entry.get("message") or "",
        "production_environment": spec.get("environment") == "production",
        "auto_merge": False,
        "required_contexts": [],
        "payload": deployment_payload(entry, relationship),
    }


def status_for(entry: Obj) -> tuple[str, str]:
    """(state, ``"<prefix>[: <bakeStatusMessage>]"``) at most 140 characters."""
    state, prefix = STATUS_TABLE.get(entry.get("bakeStatus"), STATUS_TABLE[None])
    message = entry.get("bakeStatusMessage")
    text = f"{prefix}: {message}" if message else prefix
    if len(text) > DESCRIPTION_LIMIT:
        text = text[: DESCRIPTION_LIMIT - 1] + "…"
    return state, text


def status_request(entry: Obj, environment_url: str | None) -> Json:
    """The POST body of the status for ``entry``."""
    state, description = status_for(entry)
    body: Json = {"state": state, "description": description}
    if environment_url:
        body["environment_url"] = environment_url
    return body


def payload_object(payload: Any) -> Json | None:
    """A deployment payload as an object: JSON, a JSON string, or base64 of JSON."""
    if isinstance(payload, dict):
        return payload
    if not isinstance(payload, str) or not payload:
        return None
    for decode in (lambda p: p, lambda p: base64.b64decode(p, validate=True).decode()):
        try:
            value = json.loads(decode(payload))
        except (ValueError, binascii.Error):
            continue
        if isinstance(value, dict):
            return value
    return None


def payload_id(payload: Any) -> str | None:
    """The payload's ``id`` as a string, or None."""
    found = (payload_object(payload) or {}).get("id")
    return None if found is None or isinstance(found, bool | dict | list) else str(found)


# --- mirroring ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateDeployment:
    """POST ``request`` to deployments, then POST ``status`` on the new deployment."""

    entry_id: int
    request: Json
    status: Json


@dataclass(frozen=True, slots=True)
class PostStatus:
    """POST ``request`` to the statuses of ``deployment_id``."""

    entry_id: int
    deployment_id: int
    request: Json


MirrorOperation = CreateDeployment | PostStatus


def mirror_plan(
    history: Sequence[Obj],
    deployments: Sequence[Pair],
    *,
    spec: Obj,
    relationship: Obj | None = None,
    environment_url: str | None = None,
) -> list[MirrorOperation]:
    """What to write so GitHub mirrors ``history``: oldest entry first, nothing twice."""
    task, environment = deployment_task(spec), github_environment(spec)
    plan: list[MirrorOperation] = []
    for entry in reversed(history):
        revision = (entry.get("version") or {}).get("revision")
        if entry.get("id") is None or not revision:
            continue
        status = status_request(entry, environment_url)
        matches = [
            (deployment, statuses)
            for deployment, statuses in deployments
            if deployment.get("ref") == revision
            and deployment.get("task") == task
            and deployment.get("environment") == environment
            and payload_id(deployment.get("payload")) == str(entry["id"])
        ]
        if not matches:
            request = deployment_request(spec, entry, relationship)
            plan.append(CreateDeployment(int(entry["id"]), request, status))
            continue
        deployment, statuses = max(matches, key=lambda pair: int(pair[0]["id"]))
        wanted = (status["state"], status["description"])
        if all((s.get("state"), s.get("description")) != wanted for s in statuses):
            plan.append(PostStatus(int(entry["id"]), int(deployment["id"]), status))
    return plan


# --- remote history -------------------------------------------------------------------


def read_status(state: str, description: str) -> tuple[bool, str | None, str | None]:
    """(ours, bakeStatus, bakeStatusMessage) of a status, read back by its prefix."""
    for bake, (wanted_state, prefix) in STATUS_TABLE.items():
        if state != wanted_state or not description.startswith(prefix):
            continue
        rest = description[len(prefix) :]
        if rest and not rest.startswith(": "):
            continue
        return True, bake, rest[2:] or None
    return False, None, None


def remote_history(deployments: Sequence[Pair]) -> list[Json]:
    """History entries of one GitHub environment, newest first, rebuilt from payloads.

    ``bakeStatus`` comes from the latest status that tidegate/Kuberik wrote; other
    statuses (GitHub's auto-``inactive``, other tools') are skipped. ``bakeStartTime``
    is the first "Baking in progress" status, else the first ``success``.
    """
    entries = []
    for deployment, statuses in deployments:
        try:
            entry = _remote_entry(deployment, statuses)
        except TimeSyntaxError:  # a foreign, malformed timestamp: not an entry we can read
            continue
        if entry is not None:
            entries.append(entry)
    return sorted(entries, key=lambda e: (e["timestamp"], e["id"]), reverse=True)


def _remote_entry(deployment: Obj, statuses: Sequence[Obj]) -> Json | None:
    payload = payload_object(deployment.get("payload"))
    ident = payload_id(payload)
    version = (payload or {}).get("version")
    if ident is None or not ident.isdigit() or not isinstance(version, dict):
        return None
    if not version.get("tag") or not deployment.get("created_at"):
        return None
    read = [
        (status, *read_status(str(status.get("state")), str(status.get("description") or "")))
        for status in sorted(statuses, key=_status_order, reverse=True)
    ]
    ours = [(status, bake, message) for status, known, bake, message in read if known]
    entry: Json = {
        "id": int(ident),
        "version": {k: version[k] for k in _VERSION_KEYS if version.get(k) is not None},
        "timestamp": to_utc(str(deployment["created_at"])),
        "message": deployment.get("description") or None,
        "triggeredBy": {"kind": "System", "name": _login(deployment)},
    }
    if ours:
        latest, entry["bakeStatus"], entry["bakeStatusMessage"] = ours[0]
        if entry["bakeStatus"] in _TERMINAL:
            entry["bakeEndTime"] = to_utc(str(latest["created_at"]))
    started = [s for s, bake, _ in ours if bake == "InProgress"] or [
        s for s, bake, _ in ours if bake == "Succeeded"
    ]
    if started:
        entry["bakeStartTime"] = to_utc(str(started[-1]["created_at"]))
    return {k: v for k, v in entry.items() if v is not None}


def _status_order(status: Obj) -> tuple[str, int]:
    return str(status.get("created_at", "")), int(status.get("id") or 0)


def _login(deployment: Obj) -> str:
    creator = deployment.get("creator")
    return str(creator.get("login")) if isinstance(creator, dict) else "github"


__all__ = [
    "STATUS_TABLE",
    "CreateDeployment",
    "MirrorOperation",
    "Pair",
    "PostStatus",
    "deployment_payload",
    "deployment_request",
    "deployment_task",
    "github_environment",
    "mirror_plan",
    "payload_id",
    "payload_object",
    "read_status",
    "remote_history",
    "status_for",
    "status_request",
]
