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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.api.actions import ROLLOUTS
from evaluators.base import Object

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
    NAMESPACES,
)
"""Every kind the controller watches, primes and reads (ARCHITECTURE.md §7)."""

_Where = tuple[str | None, str]


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


class _KindStore:
    """The objects of one kind, by namespace then name, with cached sorted listings."""

    __slots__ = ("_all", "_by_namespace", "_listing", "synced")

    def __init__(self) -> None:
        self._by_namespace: dict[str | None, dict[str, Object]] = {}
        self._listing: dict[str | None, tuple[Object, ...]] = {}
        self._all: tuple[Object, ...] | None = None
        self.synced = False

    def get(self, where: _Where) -> Object | None:
        return self._by_namespace.get(where[0], {}).get(where[1])

    def put(self, where: _Where, body: Object) -> None:
        self._by_namespace.setdefault(where[0], {})[where[1]] = body
        self._invalidate(where[0])

    def remove(self, where: _Where) -> None:
        names = self._by_namespace.get(where[0])
        if names is not None and names.pop(where[1], None) is not None:
            if not names:
                del self._by_namespace[where[0]]
            self._invalidate(where[0])

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

    def __init__(self) -> None:
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

    # -- feeding --------------------------------------------------------------------------------

    def apply_event(self, kind: str, type: str | None, body: Object) -> StoreChange | None:
        """Applies one watch event (``ADDED``/``MODIFIED``/``DELETED``; None = initial listing).

        Returns:
            What changed, or None when the event changed nothing (same or older
            resourceVersion, or a deletion of something not stored).
        """
        store = self._kinds.setdefault(kind, _KindStore())
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
        store = self._kinds.setdefault(kind, _KindStore())
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
