"""The objects a Rollout's facts link to: Flux objects, OpenKruise Rollouts and Environments.

Callers: ``planning.observing.observe`` (``observe_linked``, one call),
``planning.facts`` (``linked_facts``) and the ``cel`` HealthCheck reconcile
(``namespace_linked``). Reads only the ObjectReader (watch-fed stores, no API
calls); the projections are ``evaluators.kuberik`` (FluxObject, KruiseRollout),
``planning.kstatus`` (readiness) and ``planning.environments`` (Environment
records, links). Decides nothing. A kind whose store is not synced makes its
root (or key) unavailable, never empty; a missing linked object is simply not in
its map, so a rule naming it gets ``eval.no_such_key`` and fails closed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.api import actions as kinds
from controller.planning import environments as envs
from controller.planning import kstatus
from controller.planning.kruise_linking import FLUX_NAME, FLUX_NAMESPACE, linked_rollout
from evaluators import kuberik as projections
from evaluators.base import CollectedFact, Object, ObjectReader
from policy_engine.model import facts as model
from policy_engine.model.paths import FactPath

KRUISE_ROLLOUTS = "rollouts.rollouts.kruise.io"
ROLLOUT_TESTS = "rollouttests.rollout.kuberik.com"
ENVIRONMENTS = "environments.environments.kuberik.com"
HELM_RELEASES = "helmreleases.helm.toolkit.fluxcd.io"
FLUX_STORES = {
    "kustomizations": kinds.KUSTOMIZATIONS,
    "helmReleases": HELM_RELEASES,
    "ociRepositories": kinds.OCIREPOSITORIES,
    "imagePolicies": kinds.IMAGEPOLICIES,
}
"""The ``flux`` root's keys and the store each is read from."""
LINKED_ROOTS = frozenset({"flux", "kruise", "environments"})
"""The roots built here. ``flux`` and ``kruise`` cost a scan of their kinds, so the
Rollout reconcile asks only for those its policies read; ``environments`` is always
built (it also names ``rollout.environment``)."""


@dataclass(frozen=True, slots=True)
class LinkedEnvironments:
    """The Rollout's own Environment, the linked ones, and the object each was read from."""

    own: Object | None = None
    linked: tuple[envs.LinkedEnvironment, ...] = ()
    read_from: Mapping[str, tuple[Object, str]] = field(default_factory=dict)
    problem: str | None = None

    @property
    def name(self) -> str | None:
        """``spec.environment`` of the Rollout's own Environment."""
        if self.own is None:
            return None
        return str((self.own.get("spec") or {}).get("environment") or "") or None


@dataclass(frozen=True, slots=True)
class Linked:
    """Flux objects, Kruise Rollouts (with their RolloutTests) and Environments, as observed.

    ``unsynced`` maps a fact path (``flux.helmReleases``, ``kruise``, ``environments``) to
    why it could not be read. ``environments`` is None for a namespace's view (no Rollout).
    """

    namespace: str | None = None
    roots: frozenset[str] = LINKED_ROOTS
    flux: Mapping[str, tuple[Object, ...]] = field(default_factory=dict)
    kruise: tuple[tuple[Object, tuple[Object, ...]], ...] = ()
    environments: LinkedEnvironments | None = field(default_factory=LinkedEnvironments)
    unsynced: Mapping[FactPath, str] = field(default_factory=dict)


def observe_linked(
    reader: ObjectReader, rollout: Object, roots: frozenset[str] = LINKED_ROOTS
) -> Linked:
    """Flux objects of the Rollout's namespace, Kruise Rollouts linked to it, its Environments.

    ``flux`` and ``kruise`` are read only when ``roots`` names them.
    """
    meta = rollout.get("metadata") or {}
    namespace, name = meta.get("namespace"), str(meta.get("name", ""))
    roots = roots | {"environments"}
    unsynced = {
        path: why for path, why in _unsynced(reader, environments=True).items() if path[0] in roots
    }
    kruise = _linked_kruise(reader, namespace, name, unsynced) if "kruise" in roots else ()
    flux = _flux(reader, namespace, unsynced) if "flux" in roots else {}
    environments = (
        LinkedEnvironments() if ("environments",) in unsynced else _environments(reader, rollout)
    )
    return Linked(namespace, roots, flux, kruise, environments, unsynced)


def namespace_linked(reader: ObjectReader, namespace: str | None) -> Linked:
    """Flux objects and every Kruise Rollout of one namespace (the ``cel`` HealthCheck's view)."""
    unsynced = _unsynced(reader, environments=False)
    kruise: tuple[tuple[Object, tuple[Object, ...]], ...] = ()
    if ("kruise",) not in unsynced:
        kruise = tuple(
            (obj, _tests(reader, obj)) for obj in reader.list(KRUISE_ROLLOUTS, namespace)
        )
    flux = _flux(reader, namespace, unsynced)
    return Linked(namespace, LINKED_ROOTS, flux, kruise, environments=None, unsynced=unsynced)


def _unsynced(reader: ObjectReader, environments: bool) -> dict[FactPath, str]:
    wanted: dict[FactPath, str] = {("flux", key): kind for key, kind in FLUX_STORES.items()}
    wanted[("kruise",)] = KRUISE_ROLLOUTS
    if environments:
        wanted[("environments",)] = ENVIRONMENTS
    return {
        path: f"{kind} not synced (not watched, or its CRD is not installed)"
        for path, kind in wanted.items()
        if not reader.synced(kind)
    }


def _flux(
    reader: ObjectReader, namespace: str | None, unsynced: Mapping[FactPath, str]
) -> dict[str, tuple[Object, ...]]:
    return {
        key: tuple(reader.list(kind, namespace))
        for key, kind in FLUX_STORES.items()
        if ("flux", key) not in unsynced
    }


def _tests(reader: ObjectReader, kruise: Object) -> tuple[Object, ...]:
    meta = kruise.get("metadata") or {}
    if not reader.synced(ROLLOUT_TESTS):
        return ()
    return tuple(
        test
        for test in reader.list(ROLLOUT_TESTS, meta.get("namespace"))
        if (test.get("spec") or {}).get("rolloutName") == meta.get("name")
    )


def _linked_kruise(
    reader: ObjectReader, namespace: str | None, name: str, unsynced: Mapping[FactPath, str]
) -> tuple[tuple[Object, tuple[Object, ...]], ...]:
    """Kruise Rollouts whose §8 link names this Rollout (``kruise_linking.linked_rollout``)."""
    if ("kruise",) in unsynced:
        return ()
    found = []
    for kruise in reader.list(KRUISE_ROLLOUTS):
        kustomizations, sources = _flux_of(reader, kruise)
        if not kustomizations:
            continue
        link = linked_rollout(
            kruise,
            kustomizations,
            sources,
            lambda ns, n: reader.get(kinds.ROLLOUTS, ns, n) is not None,
        )
        if link == (namespace, name):
            found.append((kruise, _tests(reader, kruise)))
    return tuple(found)


def _flux_of(reader: ObjectReader, kruise: Object) -> tuple[list[Object], list[Object]]:
    """The Kustomization a Kruise Rollout names and that one's OCIRepository (if any)."""
    meta = kruise.get("metadata") or {}
    marks = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
    ks_ns, ks_name = marks.get(FLUX_NAMESPACE), marks.get(FLUX_NAME)
    found = reader.get(kinds.KUSTOMIZATIONS, ks_ns, ks_name) if ks_ns and ks_name else None
    if found is None:
        return [], []
    ref = (found.get("spec") or {}).get("sourceRef") or {}
    source = None
    if ref.get("kind") == "OCIRepository" and ref.get("name"):
        source = reader.get(kinds.OCIREPOSITORIES, ref.get("namespace") or ks_ns, ref["name"])
    return [found], [source] if source is not None else []


def _environments(reader: ObjectReader, rollout: Object) -> LinkedEnvironments:
    """The Rollout's Environment and every Environment linked to it (§7 links).

    Same-cluster environments are read through their Rollouts; the others come from the
    own Environment's ``status.environmentInfos`` (maintained by the Environment reconcile).
    """
    meta = rollout.get("metadata") or {}
    mine = [
        env
        for env in reader.list(ENVIRONMENTS, meta.get("namespace"))
        if ((env.get("spec") or {}).get("rolloutRef") or {}).get("name") == meta.get("name")
    ]
    if not mine:
        return LinkedEnvironments()
    own = mine[0]
    everyone = reader.list(ENVIRONMENTS)
    try:
        relations = envs.linked_relations(own, everyone)
        upstreams = set(envs.promotion_terms(own).edges)
    except (envs.EnvironmentTermsError, KeyError, TypeError) as exc:
        return LinkedEnvironments(own, problem=f"Environment links: {exc}")
    app = envs.app_name(own.get("spec") or {})
    by_name: dict[str, Object] = {}
    for env in everyone:
        spec = env.get("spec") or {}
        if envs.app_name(spec) == app:
            by_name.setdefault(str(spec.get("environment")), env)
    infos = {
        str(info.get("environment")): info
        for info in (own.get("status") or {}).get("environmentInfos") or []
        if isinstance(info, Mapping)
    }
    for env_name in infos:
        relations.setdefault(env_name, "upstream" if env_name in upstreams else "other")
    linked, read_from = [], {}
    for env_name, relation in sorted(relations.items()):
        if relation == "self":
            linked.append(envs.LinkedEnvironment(env_name, "self", "cluster", ()))
            read_from[env_name] = (rollout, "Rollout")
            continue
        one, source = _one_environment(reader, env_name, relation, by_name, infos)
        linked.append(one)
        read_from[env_name] = source if source[0] is not None else (own, "Environment")
    return LinkedEnvironments(own, tuple(linked), read_from)


def _one_environment(
    reader: ObjectReader,
    env_name: str,
    relation: Any,
    by_name: Mapping[str, Object],
    infos: Mapping[str, Mapping[str, Any]],
) -> tuple[envs.LinkedEnvironment, tuple[Any, str]]:
    env = by_name.get(env_name)
    target = None
    if env is not None:
        ref = ((env.get("spec") or {}).get("rolloutRef") or {}).get("name")
        where = (env.get("metadata") or {}).get("namespace")
        target = reader.get(kinds.ROLLOUTS, where, str(ref)) if ref else None
    if target is not None:
        history = tuple((target.get("status") or {}).get("history") or ())
        return envs.LinkedEnvironment(env_name, relation, "cluster", history), (target, "Rollout")
    if env_name in infos:
        history = tuple(infos[env_name].get("history") or ())
        return envs.LinkedEnvironment(env_name, relation, "github", history), (None, "")
    return envs.LinkedEnvironment(env_name, relation, "cluster", ()), (env, "Environment")


def linked_facts(
    linked: Linked, history: Sequence[Mapping[str, Any]], now: datetime
) -> tuple[list[CollectedFact], dict[FactPath, model.Provenance]]:
    """The ``flux``, ``kruise`` and (unless None) ``environments`` roots, with provenance.

    ``history`` is the Rollout's planned history: its own environment's record.
    Provenance is per root and per key (``flux.kustomizations.app`` names the object and
    its resourceVersion).
    """
    facts: list[CollectedFact] = []
    provenance: dict[FactPath, model.Provenance] = {}
    if "flux" in linked.roots:
        facts.extend(_flux_facts(linked, now, provenance))
    if "kruise" in linked.roots:
        facts.append(_kruise_fact(linked, now, provenance))
    if linked.environments is None:
        return facts, provenance
    if linked.environments.own is not None or ("environments",) in linked.unsynced:
        facts.append(_environments_fact(linked.environments, linked, history, now, provenance))
    else:
        where = f"Environments referencing the Rollout in {linked.namespace}"
        facts.append(_value(("environments",), {}, projections.query_provenance(where, now)))
    return facts, provenance


def _value(path: FactPath, value: Any, provenance: model.Provenance) -> CollectedFact:
    return CollectedFact(path=path, value=value, error=None, provenance=provenance)


def _error(path: FactPath, message: str, provenance: model.Provenance, code: str) -> CollectedFact:
    error = model.FactError(path, code, message)
    return CollectedFact(path=path, value=None, error=error, provenance=provenance)


def _flux_facts(
    linked: Linked, now: datetime, provenance: dict[FactPath, model.Provenance]
) -> list[CollectedFact]:
    root = projections.query_provenance(f"Flux objects in namespace {linked.namespace}", now)
    value: dict[str, dict[str, Any]] = {}
    out: list[CollectedFact] = []
    for key, objects in linked.flux.items():
        records: dict[str, Any] = {}
        for obj in objects:
            judged = kstatus.compute(obj)
            record = projections.flux_object_record(obj, (judged.status, judged.message))
            records[record["name"]] = record
            kind = projections.FLUX_KINDS[key]
            provenance[("flux", key, record["name"])] = projections.object_provenance(
                obj, kind, now
            )
        value[key] = records
    for path, message in linked.unsynced.items():
        if path[0] == "flux":
            out.append(_error(path, message, root, "fact.unavailable"))
    out.insert(0, _value(("flux",), value, root))
    return out


def _kruise_fact(
    linked: Linked, now: datetime, provenance: dict[FactPath, model.Provenance]
) -> CollectedFact:
    root = projections.query_provenance("OpenKruise Rollouts linked by §8", now)
    if ("kruise",) in linked.unsynced:
        return _error(("kruise",), linked.unsynced[("kruise",)], root, "fact.unavailable")
    value: dict[str, Any] = {}
    for kruise, tests in linked.kruise:
        meta = kruise.get("metadata") or {}
        key = str(meta.get("name", ""))
        if meta.get("namespace") != linked.namespace:
            key = f"{meta.get('namespace')}/{key}"
        value[key] = projections.kruise_record(kruise, tests)
        provenance[("kruise", key)] = projections.object_provenance(kruise, "Rollout", now)
    return _value(("kruise",), value, root)


def _environments_fact(
    view: LinkedEnvironments,
    linked: Linked,
    history: Sequence[Mapping[str, Any]],
    now: datetime,
    provenance: dict[FactPath, model.Provenance],
) -> CollectedFact:
    path: FactPath = ("environments",)
    root = projections.query_provenance("Environments linked to the Rollout's own", now)
    if path in linked.unsynced:
        return _error(path, linked.unsynced[path], root, "fact.unavailable")
    if view.problem is not None:
        return _error(path, view.problem, root, "fact.invalid")
    own = [
        envs.LinkedEnvironment(e.name, e.relation, e.source, tuple(history))
        if e.relation == "self"
        else e
        for e in view.linked
    ]
    try:
        value = envs.environment_facts(own)
    except (KeyError, TypeError, AttributeError) as exc:
        return _error(path, f"malformed environment history: {exc!r}", root, "fact.invalid")
    for env in own:
        obj, kind = view.read_from[env.name]
        source = "github" if env.source == "github" else projections.SOURCE
        ref = projections.object_provenance(obj, kind, now).ref
        provenance[("environments", env.name)] = model.Provenance(source, ref=ref, observed_at=now)
    return _value(path, value, root)


__all__ = ["Linked", "LinkedEnvironments", "linked_facts", "namespace_linked", "observe_linked"]
