"""Kubernetes building blocks shared by the custom-resource models: base model, scalar types, meta.

Callers: the kind modules of ``controller.api`` (``kuberik``, ``schedules``,
``rollouttests``, ``environments``, ``policies``) and, through them, the
controller and ``controller.api.crds``. Pure data: no I/O, no clock. The JSON
schema these types produce is translated into CRD schemas by
``controller.api.schemas``, so every constraint here must be expressible in a
structural schema (no unions other than ``X | None``, no sets).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    StringConstraints,
)

from policy_engine.model import times

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
TIME_OF_DAY_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN)]
"""A Go duration as Kuberik validates it (``5m``, ``1h30m``, ``1.5h``, ``250ms``)."""

Time = Annotated[
    AwareDatetime,
    PlainSerializer(times.format_timestamp, return_type=str, when_used="json"),
]
"""An RFC 3339 instant (metav1.Time); serialised in UTC with ``Z``."""

JsonDict: TypeAlias = dict[str, JsonValue]

Int32 = Annotated[int, Field(json_schema_extra={"format": "int32"})]
Int64 = Annotated[int, Field(json_schema_extra={"format": "int64"})]

OPEN: JsonDict = {"x-kubernetes-preserve-unknown-fields": True}
"""Schema marker for content the apiserver must keep as is (it is validated elsewhere)."""

CONDITION_LIST: JsonDict = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


class CrdModel(BaseModel):
    """Base of every custom-resource model: frozen, camelCase aliases, unknown fields rejected.

    The apiserver prunes fields a CRD does not declare, so an object read
    from the cluster always fits; building one with a stray field is a bug.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def to_k8s(self) -> dict[str, Any]:
        """The object as the apiserver stores it: aliases, JSON types, ``None`` omitted."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class LocalObjectReference(CrdModel):
    """A reference to an object in the same namespace, by name."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-map-type": "atomic"})

    name: str = Field(description="Name of the referenced object.")


class Condition(CrdModel):
    """A metav1.Condition: one aspect of the object's state."""

    type: str = Field(
        max_length=316, pattern=CONDITION_TYPE_PATTERN, description="Condition type, CamelCase."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    observed_generation: Int64 | None = Field(
        default=None,
        ge=0,
        alias="observedGeneration",
        description="The .metadata.generation the condition was set for.",
    )
    last_transition_time: Time = Field(
        alias="lastTransitionTime", description="When the status last changed."
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=CONDITION_REASON_PATTERN,
        description="Programmatic identifier of the last transition, CamelCase.",
    )
    message: str = Field(max_length=32768, description="Human-readable details.")


Conditions = Annotated[tuple[Condition, ...], Field(json_schema_extra=CONDITION_LIST)]


class OwnerReference(BaseModel):
    """An owner of an object (read-only view; the apiserver validates these)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    api_version: str = Field(alias="apiVersion")
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = Field(default=None, alias="blockOwnerDeletion")


class ObjectMeta(BaseModel):
    """The metadata fields the controller reads; others (managedFields, …) are ignored.

    Not part of any CRD schema: the apiserver owns ``metadata``.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    name: str | None = None
    generate_name: str | None = Field(default=None, alias="generateName")
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    generation: int | None = None
    creation_timestamp: Time | None = Field(default=None, alias="creationTimestamp")
    deletion_timestamp: Time | None = Field(default=None, alias="deletionTimestamp")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    owner_references: tuple[OwnerReference, ...] = Field(default=(), alias="ownerReferences")
    finalizers: tuple[str, ...] = ()
