"""One pass over an Environment: mirror to GitHub, read upstreams, keep its gate and status (§7).

Callers: ``reconciling.reconcile`` for Environment keys. Reads the stores
(Environments, Rollouts, RolloutGates); for ``backend.type: github`` the token
Secret and GitHub go through ``reconciling.environment_github``. The decisions
are ``planning.environments`` and ``planning.mirroring`` (pure). Never writes
the Rollout. Fails closed: an upstream that cannot be read has no entries, so
nothing qualifies through it; the cause is named in the ``Ready`` condition. Requeues every
``requeueInterval`` (github) and at the instant a soak completes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from controller import conditions
from controller.api.actions import (
    ROLLOUTGATES,
    ROLLOUTS,
    Action,
    CreateObject,
    DeleteObject,
    MergePatch,
    ObjectKey,
    Plan,
    WriteStatus,
)
from controller.applying import ApplyConflict
from controller.planning import environments as envs
from controller.planning.dashboard import environment_url
from controller.reconciling.environment_github import Reads, github_client, mirror, read_remote
from controller.reconciling.runtime import Runtime
from evaluators.base import Object
from policy_engine.model.times import TimeSyntaxError, format_timestamp, parse_duration

ENVIRONMENTS: Final = "environments.environments.kuberik.com"
ENVIRONMENT_KINDS: Final = (ENVIRONMENTS,)
DEFAULT_INTERVAL: Final = timedelta(minutes=1)
MIN_INTERVAL: Final = timedelta(seconds=5)


async def reconcile_environment(key: ObjectKey, rt: Runtime) -> datetime | None:
    """Mirrors, reads upstreams, writes the gate and the status; when to look again."""
    environment = rt.reader.get(key.kind, key.namespace, key.name)
    if environment is None:
        return None
    now = rt.clock.now()
    spec, reads = environment.get("spec") or {}, Reads()
    terms = _terms(environment, reads)
    interval = _interval(spec, reads)
    rollout = _rollout(environment, rt, reads)
    own = list(((rollout or {}).get("status") or {}).get("history") or [])
    github = await github_client(environment, rt, reads) if _backend(spec) == "github" else None
    if github is not None:
        await mirror(github, environment, own, now, reads, environment_url(environment, rt.reader))
    linked = _linked(environment, rt, reads)
    _read_cluster(linked, rt, reads)
    if github is not None and terms is not None:
        await read_remote(github, environment, linked, now, reads)
    allowed, change = _allowed(terms, rollout, reads, now)
    gate_name, gate_actions = _gate(environment, allowed, terms is not None, rt)
    status = _status(environment, own, gate_name, reads, allowed, change, now)
    plans: list[Plan] = []
    if status != (environment.get("status") or {}):
        rv = str(environment["metadata"].get("resourceVersion", ""))
        plans.append(Plan((WriteStatus(key, rv, status),)))
    if gate_actions:
        plans.append(Plan(tuple(gate_actions)))
    for plan in plans:
        error = (await rt.writer.apply(plan)).error
        if isinstance(error, ApplyConflict):
            return now
        if error is not None:
            raise error
    return _requeue(now, interval if _backend(spec) == "github" else None, change, reads)


def _backend(spec: Mapping[str, Any]) -> str:
    return str((spec.get("backend") or {}).get("type") or "github")


def _terms(environment: Object, reads: Reads) -> envs.PromotionTerms | None:
    try:
        envs.app_name(environment.get("spec") or {})
        return envs.promotion_terms(environment)
    except envs.EnvironmentTermsError as exc:
        reads.fail("InvalidSpec", str(exc))
        return None


def _linked(environment: Object, rt: Runtime, reads: Reads) -> dict[str, Object]:
    """Linked Environments by name; only itself when its own spec cannot be read."""
    others = [e for e in rt.reader.list(ENVIRONMENTS) if _readable(e)]
    try:
        return envs.linked_environments(environment, others)
    except (envs.EnvironmentTermsError, KeyError, TypeError) as exc:
        reads.fail("InvalidSpec", f"linking: {exc}")
        return {str((environment.get("spec") or {}).get("environment")): environment}


def _readable(environment: Object) -> bool:
    try:
        envs.app_name(environment.get("spec") or {})
    except envs.EnvironmentTermsError:
        return False
    return True


def _interval(spec: Mapping[str, Any], reads: Reads) -> timedelta:
    text = str(spec.get("requeueInterval") or "1m")
    try:
        return max(parse_duration(text), MIN_INTERVAL)
    except TimeSyntaxError as exc:
        reads.fail("InvalidSpec", f"requeueInterval: {exc}")
        return DEFAULT_INTERVAL


def _rollout(environment: Object, rt: Runtime, reads: Reads) -> Object | None:
    name = ((environment.get("spec") or {}).get("rolloutRef") or {}).get("name")
    namespace = environment["metadata"].get("namespace")
    found = rt.reader.get(ROLLOUTS, namespace, str(name)) if name else None
    if found is None:
        reads.fail("RolloutNotFound", f"Rollout {namespace}/{name} not found")
    return found


# --- the cluster, the gate and the status ---------------------------------------------


def _read_cluster(linked: Mapping[str, Object], rt: Runtime, reads: Reads) -> None:
    """Same-cluster environments: history and DeploymentBlocked from their Rollouts."""
    for name, other in linked.items():
        spec, meta = other.get("spec") or {}, other.get("metadata") or {}
        rollout_name = (spec.get("rolloutRef") or {}).get("name")
        rollout = rt.reader.get(ROLLOUTS, meta.get("namespace"), str(rollout_name or ""))
        status = (rollout or {}).get("status") or {}
        reads.histories[name] = list(status.get("history") or [])
        reads.relationships[name] = spec.get("relationship")
        url = environment_url(other, rt.reader)
        if url:
            reads.urls[name] = url
        if conditions.is_true(status.get("conditions") or [], "DeploymentBlocked"):
            reads.blocked.add(name)


def _allowed(
    terms: envs.PromotionTerms | None, rollout: Object | None, reads: Reads, now: datetime
) -> tuple[list[str] | None, datetime | None]:
    """The gate's allowedVersions (None: no relationship, no restriction) and the next change."""
    if terms is None:
        return [], None  # a malformed spec never opens the gate
    if not terms.edges:
        return None, None
    candidates = ((rollout or {}).get("status") or {}).get("releaseCandidates") or []
    upstreams = {name: reads.histories.get(name, []) for name in terms.edges}
    return envs.allowed_versions(
        candidates, upstreams, terms.mode, edges=terms.edges, now=now, blocked=reads.blocked
    )


def _gate(
    environment: Object, allowed: list[str] | None, valid: bool, rt: Runtime
) -> tuple[str, list[Action]]:
    """The owned gate's name and the writes that make it (and only it) as wanted."""
    meta = environment["metadata"]
    namespace, uid = meta.get("namespace"), str(meta.get("uid") or "")
    shown = environment if valid else {**environment, "metadata": {**meta, "annotations": {}}}
    if not valid:
        shown = {**shown, "spec": {**environment["spec"], "relationship": None}}
    wanted = envs.environment_gate(shown, allowed)
    owned = sorted(
        (g for g in rt.reader.list(ROLLOUTGATES, namespace) if _owned_by(g, meta)),
        key=lambda g: str(g["metadata"]["name"]),
    )
    if not owned:
        name = "ghd-" + hashlib.sha256(uid.encode()).hexdigest()[:10]
        body = {**wanted, "metadata": {**wanted["metadata"], "name": name}}
        return name, [CreateObject(ROLLOUTGATES, namespace, body)]
    referenced = ((environment.get("status") or {}).get("rolloutGateRef") or {}).get("name")
    keep = next((g for g in owned if g["metadata"]["name"] == referenced), owned[0])
    name = str(keep["metadata"]["name"])
    actions: list[Action] = []
    patch = _gate_patch(keep, wanted)
    if patch:
        actions.append(MergePatch(ObjectKey(ROLLOUTGATES, namespace, name), patch))
    for extra in owned:
        if extra is not keep:
            target = ObjectKey(ROLLOUTGATES, namespace, str(extra["metadata"]["name"]))
            actions.append(DeleteObject(target))
    return name, actions


def _owned_by(gate: Object, meta: Mapping[str, Any]) -> bool:
    """Owned by the Environment: its uid, or (no uid known) its name."""
    field_, value = ("uid", meta["uid"]) if meta.get("uid") else ("name", meta["name"])
    owners = (gate.get("metadata") or {}).get("ownerReferences") or []
    return any(o.get("kind") == "Environment" and o.get(field_) == value for o in owners)


def _gate_patch(gate: Object, wanted: Mapping[str, Any]) -> dict[str, Any]:
    spec, have = wanted["spec"], gate.get("spec") or {}
    patch: dict[str, Any] = {}
    if have.get("rolloutRef") != spec["rolloutRef"]:
        patch.setdefault("spec", {})["rolloutRef"] = spec["rolloutRef"]
    if have.get("allowedVersions") != spec.get("allowedVersions"):
        patch.setdefault("spec", {})["allowedVersions"] = spec.get("allowedVersions")
    notes = (gate.get("metadata") or {}).get("annotations") or {}
    want = wanted["metadata"]["annotations"]
    changed = {
        k: want.get(k) for k in (envs.PRETTY_NAME, envs.DESCRIPTION) if notes.get(k) != want.get(k)
    }
    if changed:
        patch["metadata"] = {"annotations": changed}
    return patch


def _status(
    environment: Object,
    own: Sequence[Any],
    gate_name: str,
    reads: Reads,
    allowed: list[str] | None,
    change: datetime | None,
    now: datetime,
) -> dict[str, Any]:
    """The wanted status; ``lastStatusChangeTime`` moves only when the content does."""
    previous = environment.get("status") or {}
    content: dict[str, Any] = {"rolloutGateRef": {"name": gate_name}}
    revision = ((own[0] if own else {}).get("version") or {}).get("revision")
    if revision:
        content["currentVersion"] = revision
    content["environmentInfos"] = _infos(environment, reads)
    before = {k: previous[k] for k in ("currentVersion", "rolloutGateRef", "environmentInfos")
              if k in previous}  # fmt: skip
    changed_at = previous.get("lastStatusChangeTime")
    if before != content or not changed_at:
        changed_at = format_timestamp(now)
    ready = _ready(reads, allowed, change)
    found = conditions.set_condition(previous.get("conditions") or [], "Ready", *ready, now)
    return {**content, "lastStatusChangeTime": changed_at, "conditions": found}


def _ready(
    reads: Reads, allowed: list[str] | None, change: datetime | None
) -> tuple[str, str, str]:
    if reads.problems:
        reasons = {reason for reason, _ in reads.problems}
        messages = "; ".join(message for _, message in reads.problems)
        reason = reads.problems[0][0] if len(reasons) == 1 else "Multiple"
        return "False", reason, f"{messages} (the gate allows only what could be verified)"
    if allowed is None:
        return "True", "NoRelationship", "No upstream: the gate does not restrict versions"
    text = f"Gate allows {', '.join(allowed)}" if allowed else "Gate allows no version yet"
    if change is not None:
        text += f"; next change at {format_timestamp(change)}"
    return "True", "Synced", text


def _infos(environment: Object, reads: Reads) -> list[dict[str, Any]]:
    """Linked environments, ancestors first; non-adjacent ones keep only their latest entry."""
    me = str(environment["spec"].get("environment"))
    ups = {n: _relationship_names(reads.relationships.get(n)) for n in reads.histories}
    try:
        ups[me] = set(envs.promotion_terms(environment).edges)
    except envs.EnvironmentTermsError:
        ups[me] = _relationship_names(environment["spec"].get("relationship"))
    adjacent = {me} | ups[me] | {n for n, up in ups.items() if me in up}
    order = sorted(reads.histories, key=lambda n: (_depth(n, ups, set()), n))
    infos = []
    for name in order:
        history = reads.histories[name] if name in adjacent else reads.histories[name][:1]
        info: dict[str, Any] = {"environment": name}
        if name in reads.urls:
            info["environmentUrl"] = reads.urls[name]
        relationship = reads.relationships.get(name)
        if relationship and relationship.get("environment"):
            kind = relationship.get("type") or "After"
            info["relationship"] = {"environment": relationship["environment"], "type": kind}
        info["history"] = [_json_entry(e) for e in history]
        infos.append(info)
    return infos


def _relationship_names(relationship: Any) -> set[str]:
    if isinstance(relationship, Mapping) and relationship.get("environment"):
        return {str(relationship["environment"])}
    return set()


def _depth(name: str, ups: Mapping[str, set[str]], path: set[str]) -> int:
    if name in path:
        return 0  # a cycle: order by name
    return 1 + max((_depth(u, ups, path | {name}) for u in ups.get(name, ())), default=-1)


def _json_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: format_timestamp(v) if isinstance(v, datetime) else v for k, v in entry.items()}


def _requeue(
    now: datetime, interval: timedelta | None, change: datetime | None, reads: Reads
) -> datetime | None:
    """The soak's instant; github also every interval (a rate limit's reset, if later)."""
    due = [change] if change is not None else []
    if interval is not None:
        due.append(max(now + interval, reads.retry_at or now))
    return min(due, default=None)


__all__ = ["ENVIRONMENTS", "ENVIRONMENT_KINDS", "reconcile_environment"]
