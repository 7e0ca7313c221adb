"""Models of the deployment windows RolloutSchedule and ClusterRolloutSchedule (kuberik.com).

Fields follow KUBERIK-SEMANTICS.md §2.3; [T] marks tidegate additions.
Callers: the controller (schedule reconcile, the ``windows`` facts) and
``controller.api.crds``. Pure data: no I/O, no clock, no window evaluation
(that is ``policy_engine.windows``).
"""

from __future__ import annotations

from datetime import date
from typing import Final, Literal

from pydantic import ConfigDict, Field, model_validator

from controller.api.meta import (
    DATE_PATTERN,
    TIME_OF_DAY_PATTERN,
    Conditions,
    CrdModel,
    Int32,
    ObjectMeta,
    Time,
)
from policy_engine.model import policy

API_VERSION: Final = "kuberik.com/v1alpha1"

DayOfWeek = Literal["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


class TimeRange(CrdModel):
    """[start, end) in local time; start >= end crosses midnight, start == end is all day."""

    start: str = Field(pattern=TIME_OF_DAY_PATTERN, max_length=5, description="HH:MM, 24-hour.")
    end: str = Field(pattern=TIME_OF_DAY_PATTERN, max_length=5, description="HH:MM, 24-hour.")


class DateRange(CrdModel):
    """Inclusive local days."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "timestamp(self.start + 'T00:00:00Z') <= "
                    "timestamp(self.end + 'T00:00:00Z')",
                    "message": "dateRange needs real dates with start <= end",
                }
            ]
        }
    )

    start: str = Field(pattern=DATE_PATTERN, max_length=10, description="YYYY-MM-DD.")
    end: str = Field(pattern=DATE_PATTERN, max_length=10, description="YYYY-MM-DD.")

    @model_validator(mode="after")
    def _real_ordered_dates(self) -> DateRange:
        try:
            start, end = date.fromisoformat(self.start), date.fromisoformat(self.end)
        except ValueError as exc:
            raise ValueError(f"dateRange has an impossible date: {exc}") from exc
        if end < start:
            raise ValueError(f"dateRange end {self.end} is before start {self.start}")
        return self


class ScheduleRule(CrdModel):
    """Active when all its present constraints hold; a rule without any is always active."""

    name: str | None = Field(default=None, description="Shown in status.activeRules.")
    time_range: TimeRange | None = Field(
        default=None, alias="timeRange", description="Time of day."
    )
    days_of_week: tuple[DayOfWeek, ...] = Field(
        default=(), alias="daysOfWeek", description="Today's local weekday is listed."
    )
    date_range: DateRange | None = Field(
        default=None, alias="dateRange", description="Today's local date is in range."
    )


class RolloutScheduleSpec(CrdModel):
    """A window over the Rollouts of the schedule's namespace."""

    rollout_selector: policy.LabelSelector = Field(
        alias="rolloutSelector", description="Rollouts (this namespace only)."
    )
    rules: tuple[ScheduleRule, ...] = Field(min_length=1, description="ORed rules.")
    timezone: str = Field(default="UTC", description="IANA time zone of the rules.")
    action: Literal["Allow", "Deny"] = Field(
        default="Deny",
        description="Allow: gates pass while active. Deny: gates block while active.",
    )


class ClusterRolloutScheduleSpec(RolloutScheduleSpec):
    """A window over Rollouts in selected namespaces."""

    rollout_selector: policy.LabelSelector = Field(
        alias="rolloutSelector", description="Rollouts in the selected namespaces."
    )
    namespace_selector: policy.LabelSelector | None = Field(
        default=None,
        alias="namespaceSelector",
        description="{} = all. [T] Omitted also matches all (Kuberik: none).",
    )


class RolloutScheduleStatus(CrdModel):
    """The window's state and the gates it owns."""

    active: bool = Field(default=False, description="Any rule is active.")
    active_rules: tuple[str, ...] = Field(
        default=(), alias="activeRules", description="Names of the active rules."
    )
    next_transition: Time | None = Field(
        default=None,
        alias="nextTransition",
        description="Next flip of active; [T] exact, unset beyond 90 days.",
    )
    managed_gates: tuple[str, ...] = Field(
        default=(),
        alias="managedGates",
        description="Owned RolloutGates (ns/name for the cluster kind).",
    )
    matching_rollouts: Int32 = Field(
        default=0, alias="matchingRollouts", description="Rollouts matched."
    )
    conditions: Conditions = Field(
        default=(), description="[T] Ready (reasons Evaluated, InvalidTimezone)."
    )


class RolloutSchedule(CrdModel):
    """A deployment window for Rollouts in its namespace."""

    api_version: Literal["kuberik.com/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["RolloutSchedule"] = "RolloutSchedule"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RolloutScheduleSpec
    status: RolloutScheduleStatus | None = None


class ClusterRolloutSchedule(CrdModel):
    """A deployment window for Rollouts across namespaces."""

    api_version: Literal["kuberik.com/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["ClusterRolloutSchedule"] = "ClusterRolloutSchedule"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ClusterRolloutScheduleSpec
    status: RolloutScheduleStatus | None = None
