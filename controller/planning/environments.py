"""Environments: GitHub mirroring, remote history, promotion terms, the gate and the facts (§7).

Callers: the controller's Environment reconcile (which does the I/O through
``evaluators.github`` and the stores) and the Rollout reconcile (the
``environments`` fact root). Pure: objects, entries and GitHub JSON in; plans,
entries and objects out. ``now`` is an argument; no I/O, no clock.

Entries are Rollout history entries as JSON (``status.history[]``), newest
first. GitHub deployments come as ``(deployment, statuses)`` pairs with the
statuses latest first, as ``GitHubDeployments.deployments_with_statuses``
returns them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from policy_engine.model.times import TimeSyntaxError, format_timestamp, parse_duration, to_utc

APP_PREFIX: Final = "kuberik/"
DESCRIPTION_LIMIT: Final = 140
SOAK: Final = "tidegate.dev/soak"
UPSTREAMS: Final = "tidegate.dev/upstreams"
UPSTREAMS_MODE: Final = "tidegate.dev/upstreams-mode"
PARALLEL_MODE: Final = "tidegate.dev/parallel-mode"
ENVIRONMENT_URL: Final = "tidegate.dev/environment-url"
PRETTY_NAME: Final = "gate.kuberik.com/pretty-name"
DESCRIPTION: Final = "gate.kuberik.com/description"
GATE_PRETTY_NAME: Final = "Relationship not ready yet"

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
HEALTHY: Final = ("InProgress", "Succeeded")
_VERSION_KEYS = ("tag", "digest", "version", "revision", "created")

Obj = Mapping[str, Any]
Json = dict[str, Any]
Pair = tuple[Obj, Sequence[Obj]]
Relation = Literal["After", "Parallel"]


class EnvironmentTermsError(ValueError):
    """A malformed Environment spec or tidegate annotation; the message names it."""


# --- names and GitHub bodies ----------------------------------------------------------


def app_name(spec: Obj) -> str:
    """``spec.name`` with ``kuberik/`` prefixed when missing."""
    name = str(spec.get("name") or "")
    if not name:
        raise EnvironmentTermsError("Environment spec.name is required")
    return name if name.startswith(APP_PREFIX) else APP_PREFIX + name


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


# --- promotion ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edge:
    """How this environment follows one upstream."""

    relation: Relation = "After"
    parallel_mode: str | None = None
    soak: timedelta | None = None

    def verdict(
        self, entries: Sequence[Obj], revision: str, now: datetime, blocked: bool
    ) -> tuple[bool, datetime | None]:
        """``qualifies`` on this edge."""
        return qualifies(
            entries, revision, self.relation, self.parallel_mode, self.soak, now, blocked
        )


@dataclass(frozen=True, slots=True)
class PromotionTerms:
    """Upstreams by ``spec.environment`` name and whether ``all`` or ``any`` must qualify."""

    edges: Mapping[str, Edge]
    mode: Literal["all", "any"] = "all"


def promotion_terms(environment: Obj) -> PromotionTerms:
    """The relationship plus the ``tidegate.dev/*`` annotations; EnvironmentTermsError if bad."""
    spec = environment.get("spec") or {}
    notes: Mapping[str, str] = (environment.get("metadata") or {}).get("annotations") or {}
    relationship = spec.get("relationship") or {}
    relation = relationship.get("type", "After")
    if relation not in ("After", "Parallel"):
        raise EnvironmentTermsError(f"relationship.type must be After or Parallel: {relation!r}")
    mode = notes.get(UPSTREAMS_MODE, "all")
    if mode not in ("all", "any"):
        raise EnvironmentTermsError(f"{UPSTREAMS_MODE} must be all or any, got {mode!r}")
    parallel_mode = notes.get(PARALLEL_MODE) or None
    if parallel_mode not in (None, "after"):
        raise EnvironmentTermsError(f"{PARALLEL_MODE} must be 'after', got {parallel_mode!r}")
    names = [relationship["environment"]] if relationship.get("environment") else []
    extra = [n.strip() for n in notes.get(UPSTREAMS, "").split(",") if n.strip()]
    names += [n for n in extra if n not in names]
    general = _soak(notes, SOAK)
    edges = {}
    for name in names:
        own = _soak(notes, f"{SOAK}.{name}")
        soak = general if own is None else own
        edges[name] = Edge(relation, parallel_mode, soak or None)  # 0s: no soak on this edge
    return PromotionTerms(edges, "any" if mode == "any" else "all")


def _soak(notes: Mapping[str, str], key: str) -> timedelta | None:
    if not notes.get(key):
        return None
    try:
        value = parse_duration(notes[key])
    except TimeSyntaxError as exc:
        raise EnvironmentTermsError(f"{key}: {exc}") from exc
    if value < timedelta(0):
        raise EnvironmentTermsError(f"{key} must not be negative, got {notes[key]!r}")
    return value


def qualifies(
    upstream_entries: Sequence[Obj],
    revision: str,
    relation: Relation,
    parallel_mode: str | None,
    soak: timedelta | None,
    now: datetime,
    upstream_current_blocked: bool = False,
) -> tuple[bool, datetime | None]:
    """Whether an upstream entry with ``revision`` qualifies, and when that can change.

    After (or ``parallel-mode: after``): the entry is ``Succeeded``. Parallel [T]:
    ``Deploying``, ``InProgress`` or ``Succeeded``. With a soak the entry must be
    ``Succeeded`` and ``end - bakeStartTime >= soak`` (bakeStartTime, else
    bakeEndTime), ``end`` being now for the upstream's current entry unless it is
    blocked, else the next entry's timestamp. ``next_change`` is the instant a
    running soak completes; None when only another change can alter the answer.
    """
    accepted: tuple[str, ...] = ("Succeeded",)
    if relation == "Parallel" and parallel_mode != "after" and soak is None:
        accepted = ("Deploying", "InProgress", "Succeeded")
    pending: list[datetime] = []
    for index, entry in enumerate(upstream_entries):
        if not revision or (entry.get("version") or {}).get("revision") != revision:
            continue
        if entry.get("bakeStatus") not in accepted:
            continue
        if soak is None:
            return True, None
        start = entry.get("bakeStartTime") or entry.get("bakeEndTime")
        if not start:
            continue
        done = to_utc(start) + soak
        if index > 0:
            if to_utc(upstream_entries[index - 1]["timestamp"]) >= done:
                return True, None
        elif not upstream_current_blocked:
            if now >= done:
                return True, None
            pending.append(done)
    return False, min(pending, default=None)


def allowed_versions(
    candidates: Sequence[Obj],
    upstreams: Mapping[str, Sequence[Obj]],
    mode: Literal["all", "any"],
    *,
    edges: Mapping[str, Edge],
    now: datetime,
    blocked: Collection[str] = (),
) -> tuple[list[str], datetime | None]:
    """Tags among ``candidates`` whose revision qualifies upstream, and the next change.

    ``upstreams`` maps each edge's environment to its entries (missing: none);
    ``blocked`` names upstreams whose current entry is DeploymentBlocked.
    """
    if not edges:
        raise EnvironmentTermsError("allowed_versions needs at least one upstream")
    allowed: list[str] = []
    changes: list[datetime] = []
    for candidate in candidates:
        tag, revision = candidate.get("tag"), candidate.get("revision")
        if not tag or not revision or tag in allowed:
            continue
        verdicts = [
            e.verdict(upstreams.get(name, ()), str(revision), now, name in blocked)
            for name, e in edges.items()
        ]
        ok, change = _combine(verdicts, mode)
        if ok:
            allowed.append(str(tag))
        elif change is not None:
            changes.append(change)
    return allowed, min(changes, default=None)


def _combine(
    verdicts: Sequence[tuple[bool, datetime | None]], mode: str
) -> tuple[bool, datetime | None]:
    waiting = [change for ok, change in verdicts if not ok]
    if mode == "any":
        if len(waiting) < len(verdicts):
            return True, None
        return False, min((c for c in waiting if c is not None), default=None)
    if not waiting:
        return True, None
    return False, None if None in waiting else max(c for c in waiting if c is not None)


# --- the gate and the facts -----------------------------------------------------------


def environment_gate(environment: Obj, allowed: Sequence[str] | None) -> Json:
    """The RolloutGate the Environment owns; ``allowed`` None means no restriction."""
    meta, spec = environment["metadata"], environment["spec"]
    terms = promotion_terms(environment)
    annotations = {PRETTY_NAME: GATE_PRETTY_NAME}
    if terms.edges:
        relation = next(iter(terms.edges.values())).relation
        verb = "deployed in parallel with" if relation == "Parallel" else "deployed after"
        names = list(terms.edges)
        joined = " or " if terms.mode == "any" else " and "
        which = (
            f"the {names[0]} environment"
            if len(names) == 1
            else f"the {', '.join(names[:-1])}{joined}{names[-1]} environments"
        )
        annotations[DESCRIPTION] = (
            "This gate is passing only for those versions that have been successfully "
            f"{verb} {which}."
        )
    gate_spec: Json = {"rolloutRef": {"name": spec["rolloutRef"]["name"]}}
    if allowed is not None:
        gate_spec["allowedVersions"] = list(allowed)
    owner = {
        "apiVersion": environment.get("apiVersion", "environments.kuberik.com/v1alpha1"),
        "kind": "Environment",
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {
        "apiVersion": "kuberik.com/v1alpha1",
        "kind": "RolloutGate",
        "metadata": {
            "generateName": "ghd-",
            "namespace": meta.get("namespace"),
            "ownerReferences": [owner],
            "annotations": annotations,
        },
        "spec": gate_spec,
    }


@dataclass(frozen=True, slots=True)
class LinkedEnvironment:
    """One environment of the app as the ``environments`` root shows it."""

    name: str
    relation: Literal["self", "upstream", "downstream", "other"]
    source: Literal["cluster", "github"]
    history: Sequence[Obj]


def environment_facts(linked: Iterable[LinkedEnvironment]) -> dict[str, Json]:
    """The ``environments`` root: an ENVIRONMENT record per name, from its newest entry."""
    facts: dict[str, Json] = {}
    for env in linked:
        record: Json = {"name": env.name, "relation": env.relation, "source": env.source}
        current = env.history[0] if env.history else None
        record["healthy"] = current is not None and current.get("bakeStatus") in HEALTHY
        if current:
            version = current.get("version") or {}
            record |= {"tag": version.get("tag"), "revision": version.get("revision")}
            record |= {"bakeStatus": current.get("bakeStatus"), "deployedAt": current["timestamp"]}
            for key in ("bakeStartTime", "bakeEndTime"):
                record[key] = current.get(key)
            if record["healthy"]:
                record["healthySince"] = current.get("bakeStartTime")
        facts[env.name] = {k: v for k, v in record.items() if v is not None}
    return facts


def linked_relations(environment: Obj, environments: Iterable[Obj]) -> dict[str, str]:
    """``spec.environment`` -> self/upstream/downstream/other for the linked Environments.

    Linked: same app name and the same backend project (either being
    ``kubernetes`` links within the cluster). Upstreams are followed transitively.
    """
    spec = environment["spec"]
    key = (app_name(spec), _backend(spec))
    linked = {
        str(e["spec"].get("environment")): e
        for e in environments
        if app_name(e["spec"]) == key[0] and _same_backend(_backend(e["spec"]), key[1])
    }
    ups = {name: set(promotion_terms(e).edges) for name, e in linked.items()}
    me = str(spec.get("environment"))
    relations = dict.fromkeys(linked, "other") | {me: "self"}
    for name in linked:
        if name != me and me in _closure(name, ups):
            relations[name] = "downstream"
    for name in _closure(me, ups):
        if name in linked and name != me:
            relations[name] = "upstream"
    return relations


def _backend(spec: Obj) -> tuple[str, str]:
    backend = spec.get("backend") or {}
    return str(backend.get("type", "github")), str(backend.get("project") or "")


def _same_backend(a: tuple[str, str], b: tuple[str, str]) -> bool:
    return "kubernetes" in (a[0], b[0]) or a == b


def _closure(start: str, ups: Mapping[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(ups.get(start, ()))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(ups.get(name, ()))
    return seen


__all__ = [
    "STATUS_TABLE",
    "CreateDeployment",
    "Edge",
    "EnvironmentTermsError",
    "LinkedEnvironment",
    "MirrorOperation",
    "PostStatus",
    "PromotionTerms",
    "allowed_versions",
    "app_name",
    "deployment_payload",
    "deployment_request",
    "deployment_task",
    "environment_facts",
    "environment_gate",
    "github_environment",
    "linked_relations",
    "mirror_plan",
    "payload_id",
    "payload_object",
    "promotion_terms",
    "qualifies",
    "read_status",
    "remote_history",
    "status_for",
    "status_request",
]
