"""Handlers: the kopf registry: one ``@kopf.on.event`` feeder per watched kind, plus the login.

Callers: ``main`` builds the registry with ``build_registry`` and passes it to
``kopf.operator``. Each feeder updates the stores, enqueues the dependents of
the change and returns None; it never reconciles, writes or raises. Nothing is
registered at import time and no global registry is used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from controller import dependents
from controller.api.actions import ObjectKey
from controller.stores import WATCHED_KINDS, Stores


@dataclass(frozen=True, slots=True)
class Wiring:
    """What the handlers reach: the stores, the queue, the syncer and the credentials."""

    stores: Stores
    enqueue: Callable[[ObjectKey], None]
    request_sync: Callable[[str], None]
    credentials: Callable[[], kopf.ConnectionInfo]


def build_registry(wiring: Wiring, kinds: Sequence[str] = WATCHED_KINDS) -> kopf.OperatorRegistry:
    """A fresh kopf registry feeding ``kinds`` (``<plural>.<group>``) into ``wiring``."""
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry, id="tidegate-login")(_login(wiring))
    for kind in kinds:
        plural, _, group = kind.partition(".")
        kopf.on.event(group=group, plural=plural, registry=registry, id=f"feed/{kind}")(
            _feeder(kind, wiring)
        )
    kopf.on.event(
        group="apiextensions.k8s.io", plural="customresourcedefinitions", registry=registry,
        id="crd-appeared",
    )(_crd_watcher(frozenset(kinds), wiring))  # fmt: skip
    return registry


def _login(wiring: Wiring) -> Callable[..., Any]:
    async def login(**_: Any) -> kopf.ConnectionInfo:
        return wiring.credentials()

    return login


def _feeder(kind: str, wiring: Wiring) -> Callable[..., Any]:
    async def feed(event: kopf.RawEvent, **_: Any) -> None:
        change = wiring.stores.apply_event(kind, event["type"], event["object"])
        if change is None:
            return
        for key in dependents.affected_by_change(kind, change.old, change.new, wiring.stores):
            wiring.enqueue(key)
        if not wiring.stores.synced(kind):
            wiring.request_sync(kind)

    return feed


def _crd_watcher(kinds: frozenset[str], wiring: Wiring) -> Callable[..., Any]:
    """A CRD named like an unsynced watched kind (``<plural>.<group>``) asks for its LIST."""

    async def crd_seen(event: kopf.RawEvent, **_: Any) -> None:
        name = str((event["object"].get("metadata") or {}).get("name") or "")
        if name in kinds and not wiring.stores.synced(name):
            wiring.request_sync(name)

    return crd_seen
