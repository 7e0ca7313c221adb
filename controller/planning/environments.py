"""Environments: linking, promotion terms, allowed versions, the owned gate and the facts (§7).

Callers: ``reconciling.environments`` (which reads the stores and GitHub, see
``planning.mirroring`` for the GitHub side) and the Rollout reconcile (the
``environments`` fact root through ``planning.linked``). Pure: objects and
entries in; verdicts, gates and records out. ``now`` is an argument; no I/O,
no clock.

Entries are Rollout history entries as JSON (``status.history[]``), newest first.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from policy_engine.model.times import TimeSyntaxError, parse_duration, to_utc

APP_PREFIX: Final = "kuberik/"
SOAK: Final = "tidegate.dev/soak"
UPSTREAMS: Final = "tidegate.dev/upstreams"
UPSTREAMS_MODE: Final = "tidegate.dev/upstreams-mode"
PARALLEL_MODE: Final = "tidegate.dev/parallel-mode"
ENVIRONMENT_URL: Final = "tidegate.dev/environment-url"
PRETTY_NAME: Final = "gate.kuberik.com/pretty-name"
DESCRIPTION: Final = "gate.kuberik.com/description"
GATE_PRETTY_NAME: Final = "Relationship not ready yet"
HEALTHY: Final = ("InProgress", "Succeeded")

Obj = Mapping[str, Any]
Json = dict[str, Any]
Relation = Literal["After", "Parallel"]


class EnvironmentTermsError(ValueError):
    """A malformed Environment spec or tidegate annotation; the message names it."""


# --- names and links ------------------------------------------------------------------


def app_name(spec: Obj) -> str:
    """``spec.name`` with ``kuberik/`` prefixed when missing."""
    name = str(spec.get("name") or "")
    if not name:
        raise EnvironmentTermsError("Environment spec.name is required")
    return name if name.startswith(APP_PREFIX) else APP_PREFIX + name


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


def linked_environments(environment: Obj, environments: Iterable[Obj]) -> dict[str, Obj]:
    """``spec.environment`` -> the linked Environment object of that name, itself included.

    Linked: same app name and the same backend project (either being
    ``kubernetes`` links within the cluster). When several namespaces hold one
    name, ``environment``'s own namespace wins, then the first by namespace/name.
    """
    spec = environment["spec"]
    key = (app_name(spec), _backend(spec))
    here = (environment.get("metadata") or {}).get("namespace")
    linked: dict[str, Obj] = {}
    for other in sorted(environments, key=lambda e: _rank(e, here)):
        if app_name(other["spec"]) == key[0] and _same_backend(_backend(other["spec"]), key[1]):
            linked.setdefault(str(other["spec"].get("environment")), other)
    linked[str(spec.get("environment"))] = environment
    return linked


def _rank(environment: Obj, namespace: str | None) -> tuple[bool, str, str]:
    meta = environment.get("metadata") or {}
    where = str(meta.get("namespace") or "")
    return where != (namespace or ""), where, str(meta.get("name") or "")


def linked_relations(environment: Obj, environments: Iterable[Obj]) -> dict[str, str]:
    """``spec.environment`` -> self/upstream/downstream/other for the linked Environments.

    Linked as ``linked_environments`` says. Upstreams are followed transitively.
    """
    linked = linked_environments(environment, environments)
    ups = {name: set(promotion_terms(e).edges) for name, e in linked.items()}
    me = str(environment["spec"].get("environment"))
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
    "Edge",
    "EnvironmentTermsError",
    "LinkedEnvironment",
    "PromotionTerms",
    "allowed_versions",
    "app_name",
    "environment_facts",
    "environment_gate",
    "linked_environments",
    "linked_relations",
    "promotion_terms",
    "qualifies",
]
