"""Stores: watch-fed in-memory projections of Kubernetes objects; the controller's ObjectReader.

Callers: ``handlers`` feed watch events (``apply_event``), ``main`` primes and
resyncs each kind with one LIST (``replace_all``); ``reconciling``, ``planning``,
``dependents`` and ``applying`` read them through ``evaluators.base.ObjectReader``.
It must not do I/O, decide anything or hand out objects for mutation.

Kinds are named ``<plural>.<group>`` (plain ``<plural>`` for the core group).
Objects are projections: ``metadata.managedFields`` and the last-applied
annotation are dropped. Updates are resourceVersion-monotonic: an event older
than what is stored is ignored, so a late or replayed event never rolls state
back. A kind is *synced* once it has been listed completely at least once.

Secondary indexes (``Index``: Rollouts by ImagePolicy, gates by Rollout,
Kustomizations/OCIRepositories by the Rollout their annotations name, …) are
kept in step with every stored change, so a reconcile or a dependents rule
finds related objects without scanning a namespace. ``find`` queries one for
any ``ObjectReader``: through the index on ``Stores``, by a scan elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.api.actions import (
    HEALTHCHECKS,
    IMAGEPOLICIES,
    KUSTOMIZATIONS,
    OCIREPOSITORIES,
    ROLLOUTGATES,
    ROLLOUTS,
)
from evaluators.base import Object, ObjectReader

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
NAMESPACES = "namespaces"
WATCHED_KINDS: tuple[str, ...] = (
    ROLLOUTS,
    "healthchecks.kuberik.com",
    "rolloutgates.kuberik.com",
    "rolloutschedules.kuberik.com",
    "clusterrolloutschedules.kuberik.com",
    "environments.environments.kuberik.com",
    "rollouttests.rollout.kuberik.com",
    "rolloutpolicies.tidegate.dev",
    "clusterrolloutpolicies.tidegate.dev",
    "imagepolicies.image.toolkit.fluxcd.io",
    "imagerepositories.image.toolkit.fluxcd.io",
    "ocirepositories.source.toolkit.fluxcd.io",
    "kustomizations.kustomize.toolkit.fluxcd.io",
    "rollouts.rollouts.kruise.io",
    "jobs.batch",
    "ingresses.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
    NAMESPACES,
)
"""Every kind the controller watches, primes and reads (ARCHITECTURE.md §7)."""

_Where = tuple[str | None, str]
IndexKey = tuple[str | None, str]
"""``(namespace, value)``: the value an object is found under, in the namespace it names."""
_NO_KEYS: frozenset[IndexKey] = frozenset()
SUBSTITUTE_FROM = re.compile(r"^rollout\.kuberik\.com/substitute\.([^.]+)\.from$")
SOURCE_ROLLOUT = "rollout.kuberik.com/rollout"
HC_KUSTOMIZATION = "healthcheck.kuberik.com/kustomization"


@dataclass(frozen=True, slots=True, eq=False)
class Index:
    """A secondary index over ``kind``: ``keys(obj)`` are the keys ``obj`` is found under.

    Indexes compare by identity: ``Stores`` keeps the ones it was built with.

    ``namespaced``: objects are found only under keys of their own namespace (or None),
    so a reader without the index scans just the key's namespace (None: all of them).
    """

    name: str
    kind: str
    keys: Callable[[Object], frozenset[IndexKey]]
    namespaced: bool = True


def _at(body: Object | None, *path: str) -> Any:
    """``body[path[0]][path[1]]…``, or None where a step is missing or not a mapping."""
    value: Any = body
    for step in path:
        value = value.get(step) if isinstance(value, Mapping) else None
    return value


def _one(namespace: Any, value: Any) -> frozenset[IndexKey]:
    """The key ``(namespace, value)``; none when ``value`` is empty."""
    return frozenset({(namespace or None, str(value))}) if value else _NO_KEYS


def _ref_keys(field: str) -> Callable[[Object], frozenset[IndexKey]]:
    """Keys from ``spec.<field>.name``, a reference within the object's namespace."""
    return lambda body: _one(_at(body, "metadata", "namespace"), _at(body, "spec", field, "name"))


def _annotations(body: Object) -> Mapping[str, Any]:
    found = _at(body, "metadata", "annotations")
    return found if isinstance(found, Mapping) else {}


def _substitute_keys(body: Object) -> frozenset[IndexKey]:
    """A Kustomization is found under each Rollout a ``substitute.<VAR>.from`` names."""
    namespace = _at(body, "metadata", "namespace") or None
    return frozenset(
        (namespace, value)
        for key, value in _annotations(body).items()
        if isinstance(value, str) and value and SUBSTITUTE_FROM.match(key)
    )


def _source_keys(body: Object) -> frozenset[IndexKey]:
    """An OCIRepository is found under the Rollout ``rollout.kuberik.com/rollout`` names."""
    value = _annotations(body).get(SOURCE_ROLLOUT)
    return _one(_at(body, "metadata", "namespace"), value if isinstance(value, str) else None)


def _check_target_keys(body: Object) -> frozenset[IndexKey]:
    """A HealthCheck is found under the Kustomization ``[namespace/]name`` it annotates."""
    target = _annotations(body).get(HC_KUSTOMIZATION)
    if not isinstance(target, str):
        return _NO_KEYS
    where, _, name = target.rpartition("/")
    return _one(where or _at(body, "metadata", "namespace"), name)


def _repository_keys(body: Object) -> frozenset[IndexKey]:
    """An ImagePolicy is found under its ImageRepository (namespace defaults to its own)."""
    ref = _at(body, "spec", "imageRepositoryRef")
    where = _at(ref, "namespace") or _at(body, "metadata", "namespace")
    return _one(where, _at(ref, "name"))


SELECTS_HEALTH_CHECKS = "healthCheckSelector"
SELECTS_NAMESPACES = "namespaceSelector"


def _selector_keys(body: Object) -> frozenset[IndexKey]:
    """With ``healthCheckSelector.selector``: ``(namespace, SELECTS_HEALTH_CHECKS)``; also
    with its ``namespaceSelector``: ``(None, SELECTS_NAMESPACES)``."""
    chooser = _at(body, "spec", "healthCheckSelector")
    if _at(chooser, "selector") is None:
        return _NO_KEYS
    own = _one(_at(body, "metadata", "namespace"), SELECTS_HEALTH_CHECKS)
    cross = _at(chooser, "namespaceSelector") is not None
    return own | {(None, SELECTS_NAMESPACES)} if cross else own


ROLLOUTS_BY_IMAGE_POLICY = Index("rollouts-by-policy", ROLLOUTS, _ref_keys("releasesImagePolicy"))
"""Rollouts by ``(namespace, spec.releasesImagePolicy.name)``."""
ROLLOUTS_BY_SELECTOR = Index("rollouts-by-selector", ROLLOUTS, _selector_keys)
"""Rollouts that select HealthChecks (in their namespace, or across namespaces)."""
GATES_BY_ROLLOUT = Index("gates-by-rollout", ROLLOUTGATES, _ref_keys("rolloutRef"))
"""RolloutGates by ``(namespace, spec.rolloutRef.name)``."""
KUSTOMIZATIONS_BY_ROLLOUT = Index("kustomizations-by-rollout", KUSTOMIZATIONS, _substitute_keys)
"""Kustomizations by ``(namespace, value of each substitute.<VAR>.from annotation)``."""
SOURCES_BY_ROLLOUT = Index("sources-by-rollout", OCIREPOSITORIES, _source_keys)
"""OCIRepositories by ``(namespace, rollout.kuberik.com/rollout annotation)``."""
CHECKS_BY_KUSTOMIZATION = Index("checks-by-kustomization", HEALTHCHECKS, _check_target_keys, False)
"""HealthChecks by the ``(namespace, name)`` of the Kustomization their annotation names."""
POLICIES_BY_REPOSITORY = Index("policies-by-repository", IMAGEPOLICIES, _repository_keys, False)
"""ImagePolicies by the ``(namespace, name)`` of their ImageRepository."""
INDEXES: tuple[Index, ...] = (
    ROLLOUTS_BY_IMAGE_POLICY, ROLLOUTS_BY_SELECTOR, GATES_BY_ROLLOUT, KUSTOMIZATIONS_BY_ROLLOUT,
    SOURCES_BY_ROLLOUT, CHECKS_BY_KUSTOMIZATION, POLICIES_BY_REPOSITORY,
)  # fmt: skip
"""Every index ``Stores`` keeps by default."""


def find(reader: ObjectReader, index: Index, namespace: str | None, value: str) -> Sequence[Object]:
    """The objects of ``index.kind`` under ``(namespace, value)``, sorted by namespace/name.

    Through the index on ``Stores``; on any other reader by scanning ``reader.list``
    (one namespace when ``index.namespaced``) with the same keys.
    """
    if isinstance(reader, Stores):
        return reader.indexed(index, (namespace, value))
    return scan(reader, index, (namespace, value))


def scan(reader: ObjectReader, index: Index, key: IndexKey) -> tuple[Object, ...]:
    """``find`` without an index: every listed object whose keys hold ``key``."""
    scope = key[0] if index.namespaced else None
    return tuple(obj for obj in reader.list(index.kind, scope) if key in index.keys(obj))


@dataclass(frozen=True, slots=True)
class StoreChange:
    """What one event or LIST did to the stored state of one object."""

    kind: str
    old: Object | None
    new: Object | None


def project(body: Object) -> dict[str, Any]:
    """The stored projection of ``body``: no managedFields, no last-applied annotation."""
    projected = dict(body)
    metadata = dict(body.get("metadata") or {})
    metadata.pop("managedFields", None)
    annotations = metadata.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        metadata["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    projected["metadata"] = metadata
    return projected


def _where(body: Object) -> _Where:
    metadata = body.get("metadata") or {}
    return metadata.get("namespace") or None, str(metadata.get("name") or "")


def _rv(body: Object | None) -> str | None:
    if body is None:
        return None
    value = (body.get("metadata") or {}).get("resourceVersion")
    return None if value is None else str(value)


def _uid(body: Object) -> str | None:
    value = (body.get("metadata") or {}).get("uid")
    return None if value is None else str(value)


def is_older(candidate: str | None, stored: str | None) -> bool:
    """Whether resourceVersion ``candidate`` is strictly older than ``stored``.

    resourceVersions are opaque, but every apiserver backed by etcd issues
    increasing integers; non-integer versions are never treated as older.
    """
    if candidate is None or stored is None:
        return False
    if candidate.isdigit() and stored.isdigit():
        return int(candidate) < int(stored)
    return False


def _unchanged(new: Object, stored: Object) -> bool:
    """Same or older resourceVersion; without versions (an emulated API), the same content."""
    version, current = _rv(new), _rv(stored)
    if version is None and current is None:
        return new == stored
    return version == current or is_older(version, current)


def _order(where: _Where) -> tuple[bool, str, str]:
    """Listing order: cluster-scoped first, then by namespace, then by name."""
    return where[0] is not None, where[0] or "", where[1]


class _KindStore:
    """The objects of one kind, by namespace then name, with cached sorted listings and indexes."""

    __slots__ = ("_all", "_by_namespace", "_indexes", "_listing", "synced")

    def __init__(self, indexes: Iterable[Index] = ()) -> None:
        self._by_namespace: dict[str | None, dict[str, Object]] = {}
        self._listing: dict[str | None, tuple[Object, ...]] = {}
        self._all: tuple[Object, ...] | None = None
        self._indexes: dict[Index, dict[IndexKey, set[_Where]]] = {i: {} for i in indexes}
        self.synced = False

    def get(self, where: _Where) -> Object | None:
        return self._by_namespace.get(where[0], {}).get(where[1])

    def put(self, where: _Where, body: Object) -> None:
        self._reindex(where, self.get(where), body)
        self._by_namespace.setdefault(where[0], {})[where[1]] = body
        self._invalidate(where[0])

    def remove(self, where: _Where) -> None:
        names = self._by_namespace.get(where[0])
        if names is not None and (old := names.pop(where[1], None)) is not None:
            self._reindex(where, old, None)
            if not names:
                del self._by_namespace[where[0]]
            self._invalidate(where[0])

    def indexes(self, index: Index) -> bool:
        return index in self._indexes

    def lookup(self, index: Index, key: IndexKey) -> tuple[Object, ...]:
        wheres = self._indexes[index].get(key)
        if not wheres:
            return ()
        found = (self.get(where) for where in sorted(wheres, key=_order))
        return tuple(obj for obj in found if obj is not None)

    def _reindex(self, where: _Where, old: Object | None, new: Object | None) -> None:
        """Moves ``where`` from the keys of ``old`` to those of ``new`` in every index."""
        for index, entries in self._indexes.items():
            before = index.keys(old) if old is not None else _NO_KEYS
            after = index.keys(new) if new is not None else _NO_KEYS
            for key in before - after:
                holders = entries.get(key)
                if holders is not None:
                    holders.discard(where)
                    if not holders:
                        del entries[key]
            for key in after - before:
                entries.setdefault(key, set()).add(where)

    def wheres(self) -> list[_Where]:
        return [(ns, name) for ns, names in self._by_namespace.items() for name in names]

    def count(self) -> int:
        return sum(len(names) for names in self._by_namespace.values())

    def listing(self, namespace: str | None) -> tuple[Object, ...]:
        cached = self._listing.get(namespace)
        if cached is None:
            names = self._by_namespace.get(namespace, {})
            cached = tuple(names[name] for name in sorted(names))
            self._listing[namespace] = cached
        return cached

    def listing_all(self) -> tuple[Object, ...]:
        if self._all is None:
            order = sorted(self._by_namespace, key=lambda ns: (ns is not None, ns or ""))
            self._all = tuple(obj for ns in order for obj in self.listing(ns))
        return self._all

    def _invalidate(self, namespace: str | None) -> None:
        self._listing.pop(namespace, None)
        self._all = None


class Stores:
    """Projections of every watched kind; implements ``evaluators.base.ObjectReader``.

    Not thread-safe: it lives on the controller's event loop.
    """

    def __init__(self, indexes: Iterable[Index] = INDEXES) -> None:
        self._indexes = tuple(indexes)
        self._kinds: dict[str, _KindStore] = {}

    # -- ObjectReader ---------------------------------------------------------------------------

    def get(self, kind: str, namespace: str | None, name: str) -> Object | None:
        """The stored object, or None."""
        store = self._kinds.get(kind)
        return None if store is None else store.get((namespace or None, name))

    def list(self, kind: str, namespace: str | None = None) -> Sequence[Object]:
        """Every stored object of ``kind`` (in ``namespace`` when given), by namespace/name."""
        store = self._kinds.get(kind)
        if store is None:
            return ()
        return store.listing_all() if namespace is None else store.listing(namespace)

    def synced(self, kind: str) -> bool:
        """Whether ``kind`` has been listed completely at least once."""
        store = self._kinds.get(kind)
        return store is not None and store.synced

    # -- indexes ---------------------------------------------------------------------------------

    def indexed(self, index: Index, key: IndexKey) -> Sequence[Object]:
        """The objects of ``index.kind`` under ``key``, sorted by namespace/name (see ``find``).

        An index these stores do not keep is answered by a scan.
        """
        store = self._kinds.get(index.kind)
        if store is None:
            return ()
        return store.lookup(index, key) if store.indexes(index) else scan(self, index, key)

    # -- feeding --------------------------------------------------------------------------------

    def apply_event(self, kind: str, type: str | None, body: Object) -> StoreChange | None:
        """Applies one watch event (``ADDED``/``MODIFIED``/``DELETED``; None = initial listing).

        Returns:
            What changed, or None when the event changed nothing (same or older
            resourceVersion, or a deletion of something not stored).
        """
        store = self._store(kind)
        where = _where(body)
        stored = store.get(where)
        if type == "DELETED":
            if stored is None or is_older(_rv(body), _rv(stored)):
                return None
            if _uid(body) and _uid(stored) and _uid(body) != _uid(stored):
                return None
            store.remove(where)
            return StoreChange(kind, stored, None)
        new = project(body)
        if stored is not None and _unchanged(new, stored):
            return None
        store.put(where, new)
        return StoreChange(kind, stored, new)

    def replace_all(
        self, kind: str, objects: Iterable[Object], resource_version: str | None = None
    ) -> tuple[StoreChange, ...]:
        """Replaces ``kind`` with a complete LIST result and marks it synced.

        Objects stored with a newer resourceVersion than the listed copy are kept;
        objects absent from the LIST are dropped unless they were stored after it
        (their resourceVersion is newer than the LIST's ``resource_version``).

        Returns:
            One change per object added, modified or removed.
        """
        store = self._store(kind)
        changes: list[StoreChange] = []
        listed: set[_Where] = set()
        for body in objects:
            where = _where(body)
            listed.add(where)
            change = self.apply_event(kind, "ADDED", body)
            if change is not None:
                changes.append(change)
        for where in store.wheres():
            stored = store.get(where)
            if where in listed or stored is None:
                continue
            if resource_version is not None and is_older(resource_version, _rv(stored)):
                continue
            store.remove(where)
            changes.append(StoreChange(kind, stored, None))
        store.synced = True
        return tuple(changes)

    def _store(self, kind: str) -> _KindStore:
        store = self._kinds.get(kind)
        if store is None:
            store = self._kinds[kind] = _KindStore(i for i in self._indexes if i.kind == kind)
        return store

    def count(self, kind: str) -> int:
        """How many objects of ``kind`` are stored."""
        store = self._kinds.get(kind)
        return 0 if store is None else store.count()

    def kinds(self) -> Mapping[str, bool]:
        """Every kind seen so far and whether it is synced."""
        return {kind: store.synced for kind, store in sorted(self._kinds.items())}

    def summary(self, kinds: Iterable[str] = ()) -> Mapping[str, tuple[int, bool]]:
        """``{kind: (objects, synced)}`` for every kind seen and every kind in ``kinds``."""
        names = sorted({*self._kinds, *kinds})
        return {kind: (self.count(kind), self.synced(kind)) for kind in names}
