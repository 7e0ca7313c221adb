"""Plan and Action: what one reconcile decided, as idempotent writes in order.

Callers: ``planning`` builds Plans; ``applying`` runs their actions;
``reconciling`` requeues from them. Pure data, no I/O. Every action carries a
``key`` so a plan can be logged, compared and de-duplicated.

Order and meaning (ARCHITECTURE.md §7, crash safety):
1. ``WriteStatus`` first (write-ahead), replacing ``status`` wholesale under a
   ``resourceVersion`` precondition (a mismatch is a conflict: re-plan now);
2. ``PostEvent`` for what that status records (best effort, never failing the
   plan, so what happened is told even if a later write conflicts);
3. convergent server-side applies (``ApplySubstitute``, ``SetSourceTag``),
   forced, only the named field; object creates, patches and deletes;
4. ``PatchStatus`` of other objects (HealthCheck resets, planned again on every
   pass while they are due, so a conflict loses nothing);
5. ``RemoveAnnotations`` (one-shot keys, only if they still hold the value seen).
If an action other than an event fails, the ones after it are not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

ROLLOUTS = "rollouts.kuberik.com"
HEALTHCHECKS = "healthchecks.kuberik.com"
ROLLOUTGATES = "rolloutgates.kuberik.com"
KUSTOMIZATIONS = "kustomizations.kustomize.toolkit.fluxcd.io"
OCIREPOSITORIES = "ocirepositories.source.toolkit.fluxcd.io"
IMAGEPOLICIES = "imagepolicies.image.toolkit.fluxcd.io"
ROLLOUTSCHEDULES = "rolloutschedules.kuberik.com"
CLUSTERROLLOUTSCHEDULES = "clusterrolloutschedules.kuberik.com"
NAMESPACES = "namespaces"
FIELD_MANAGER = "tidegate"


@dataclass(frozen=True, slots=True)
class ObjectKey:
    """An object by kind (``<plural>.<group>``), namespace and name."""

    kind: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True, slots=True)
class WriteStatus:
    """Replace ``status`` of ``target`` with ``status`` if its resourceVersion is still ``rv``."""

    target: ObjectKey
    resource_version: str
    status: Mapping[str, Any]

    @property
    def key(self) -> str:
        return f"status {self.target}"


@dataclass(frozen=True, slots=True)
class ApplySubstitute:
    """SSA ``spec.postBuild.substitute.<variable> = value`` on a Flux Kustomization."""

    namespace: str
    name: str
    variable: str
    value: str

    @property
    def key(self) -> str:
        return f"substitute {self.namespace}/{self.name} {self.variable}"


@dataclass(frozen=True, slots=True)
class SetSourceTag:
    """SSA ``spec.ref.tag = tag`` on a Flux OCIRepository (other ``ref`` fields untouched)."""

    namespace: str
    name: str
    tag: str

    @property
    def key(self) -> str:
        return f"source-tag {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class PatchStatus:
    """Merge ``changes`` into ``status`` of ``target`` (e.g. a HealthCheck reset) under ``rv``."""

    target: ObjectKey
    resource_version: str
    changes: Mapping[str, Any]

    @property
    def key(self) -> str:
        return f"patch-status {self.target}"


@dataclass(frozen=True, slots=True)
class RemoveAnnotations:
    """Remove one-shot annotations from ``target``, each only if it still has the value seen."""

    target: ObjectKey
    expected: Mapping[str, str]

    @property
    def key(self) -> str:
        return f"remove-annotations {self.target} {','.join(sorted(self.expected))}"


@dataclass(frozen=True, slots=True)
class PostEvent:
    """A Kubernetes Event about ``target`` (reporting component ``tidegate``)."""

    target: ObjectKey
    type: Literal["Normal", "Warning"]
    reason: str
    message: str

    @property
    def key(self) -> str:
        return f"event {self.target} {self.reason}"


@dataclass(frozen=True, slots=True)
class CreateObject:
    """Create ``body`` (which names its kind by apiVersion/kind) as ``kind`` in ``namespace``."""

    kind: str
    namespace: str | None
    body: Mapping[str, Any]

    @property
    def key(self) -> str:
        meta = self.body.get("metadata") or {}
        return f"create {self.kind} {self.namespace}/{meta.get('name') or meta.get('generateName')}"


@dataclass(frozen=True, slots=True)
class MergePatch:
    """A JSON merge patch of ``target`` (spec or metadata; never status)."""

    target: ObjectKey
    patch: Mapping[str, Any]

    @property
    def key(self) -> str:
        return f"merge-patch {self.target}"


@dataclass(frozen=True, slots=True)
class DeleteObject:
    """Delete ``target`` (propagation Background); already gone is not an error."""

    target: ObjectKey

    @property
    def key(self) -> str:
        return f"delete {self.target}"


@dataclass(frozen=True, slots=True)
class JsonPatch:
    """RFC 6902 ``ops`` on ``target`` (or its ``subresource``, e.g. ``status``).

    With ``resource_version`` the patch applies only to that version (a mismatch
    is a conflict: re-plan). With ``test`` ops, a failed test (422) means the
    precondition no longer holds: the action is skipped, not failed.
    """

    target: ObjectKey
    ops: tuple[Mapping[str, Any], ...]
    resource_version: str | None = None
    subresource: str | None = None

    @property
    def key(self) -> str:
        where = f"/{self.subresource}" if self.subresource else ""
        return f"json-patch {self.target}{where}"


@dataclass(frozen=True, slots=True)
class DeleteCollection:
    """Delete every ``kind`` in ``namespace`` labelled ``labels`` (propagation Background)."""

    kind: str
    namespace: str
    labels: Mapping[str, str]

    @property
    def key(self) -> str:
        selector = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return f"delete-collection {self.kind} {self.namespace} {selector}"


Action = (
    WriteStatus | ApplySubstitute | SetSourceTag | PatchStatus | RemoveAnnotations | PostEvent
    | CreateObject | MergePatch | DeleteObject | JsonPatch | DeleteCollection
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Plan:
    """The outcome of planning one Rollout: ordered actions and when to look again.

    ``requeue_at`` is the earliest instant the decision can change on its own
    (nextChange, bake or deploy deadline); None means wait for watch events.
    """

    actions: tuple[Action, ...] = ()
    requeue_at: datetime | None = None
    notes: tuple[str, ...] = field(default=())
