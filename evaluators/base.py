"""The evaluator contract: FactSource, CollectRequest, CollectedFact and the FactError tree.

Callers: every fact source implements ``FactSource``; ``evaluators.collecting``
runs them. This module must not do I/O or import any other evaluators module.

Error tree (exceptions raised inside sources, turned into ``fact.*`` values)::

    FactError(Exception)              code fact.unavailable
    +-- FactUnavailable               fact.unavailable: connect error, timeout, 5xx, no samples
    +-- FactStale                     fact.stale: sample older than maxAge at collection
    +-- FactInvalid                   fact.invalid: malformed, over a bound, several series
    +-- FactSourceMisconfigured       fact.unavailable: bad URL, credentials, 401/403, bad query

Messages name the source and endpoint, never contain secrets and are capped
at 256 characters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, runtime_checkable

from policy_engine.model import facts as model
from policy_engine.model.paths import FactPath

MESSAGE_LIMIT = 256


def cap_message(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Returns ``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class FactError(Exception):
    """A fact could not be collected; ``code`` is the ``fact.*`` error code it becomes."""

    code: ClassVar[str] = "fact.unavailable"

    def __init__(self, message: str) -> None:
        self.message = cap_message(message)
        super().__init__(self.message)

    def at(self, path: FactPath) -> model.FactError:
        """The engine's record of this error at ``path``."""
        return model.FactError(path=path, code=self.code, message=self.message)


class FactUnavailable(FactError):
    """The source did not answer usably: connect error, timeout, 5xx, no samples."""

    code: ClassVar[str] = "fact.unavailable"


class FactStale(FactError):
    """The value is older than the allowed age at collection time."""

    code: ClassVar[str] = "fact.stale"


class FactInvalid(FactError):
    """The answer is malformed or over a bound; never truncated, never defaulted."""

    code: ClassVar[str] = "fact.invalid"


class FactSourceMisconfigured(FactError):
    """The source's configuration is wrong (URL, credentials, query); reads as unavailable."""

    code: ClassVar[str] = "fact.unavailable"


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """One metric to collect: rendered PromQL, endpoint name and the maximum sample age."""

    query: str
    endpoint: str = "default"
    max_age: timedelta = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class CollectRequest:
    """What one collection cycle asks for: the instant, the deadline, the metric queries."""

    now: datetime
    deadline: float
    metrics: Mapping[str, MetricQuery] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError(f"CollectRequest.now {self.now.isoformat()} must be time-zone aware")
        if not self.deadline > 0:
            raise ValueError(f"CollectRequest.deadline {self.deadline!r} must be > 0 seconds")


@dataclass(frozen=True, slots=True)
class CollectedFact:
    """One collected path: a value, or an error (then the path is absent), with provenance."""

    path: FactPath
    value: Any
    error: model.FactError | None
    provenance: model.Provenance


class Clock(Protocol):
    """The only way evaluators and the controller learn the time (ARCHITECTURE.md §7).

    ``SystemClock`` (evaluators.clock) reads the wall clock; the demo runs an
    accelerated clock and tests a manual one. ``sleep_until`` returns at or after
    ``when`` on this clock and must be cancellable.
    """

    def now(self) -> datetime:
        """The current instant, time-zone aware (UTC)."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Waits until this clock reads ``when`` or later."""
        ...


Object = Mapping[str, Any]
"""A Kubernetes object as JSON (``apiVersion``, ``kind``, ``metadata``, ``spec``, ``status``)."""


class ObjectReader(Protocol):
    """Read access to Kubernetes objects, from watch-fed stores or live API reads.

    Kinds are named ``<plural>.<group>`` (``rollouts.kuberik.com``,
    ``imagepolicies.image.toolkit.fluxcd.io``) or plain ``<plural>`` for the core group.
    """

    def get(self, kind: str, namespace: str | None, name: str) -> Object | None:
        """The object, or None when it does not exist."""
        ...

    def list(self, kind: str, namespace: str | None = None) -> Sequence[Object]:
        """Every object of ``kind`` (in ``namespace`` when given), sorted by namespace/name."""
        ...

    def synced(self, kind: str) -> bool:
        """Whether ``kind`` has been listed at least once (an unsynced kind is unavailable)."""
        ...


@runtime_checkable
class FactSource(Protocol):
    """A read-only source of facts under the roots it owns."""

    name: ClassVar[str]
    roots: ClassVar[tuple[str, ...]]

    async def collect(self, request: CollectRequest) -> Sequence[CollectedFact]:
        """Collects facts for ``request``; failures are facts with an error, not raised."""
        ...


__all__ = [
    "MESSAGE_LIMIT",
    "Clock",
    "CollectRequest",
    "CollectedFact",
    "FactError",
    "FactInvalid",
    "FactSource",
    "FactSourceMisconfigured",
    "FactStale",
    "FactUnavailable",
    "MetricQuery",
    "Object",
    "ObjectReader",
    "cap_message",
]
