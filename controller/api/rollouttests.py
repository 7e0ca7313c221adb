"""Model of RolloutTest (rollout.kuberik.com/v1alpha1): a Job run at a step of an OpenKruise canary.

Fields follow KUBERIK-SEMANTICS.md §2.4 and §8. Callers: the controller's
step gate and test reconcile, and ``controller.api.crds``. Pure data: no I/O;
``jobTemplate`` is a batch/v1 JobSpec kept as raw JSON (the apiserver
validates it when the Job is created).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import Field

from controller.api.meta import OPEN, Conditions, CrdModel, Int32, ObjectMeta

GROUP = "rollout.kuberik.com"
API_VERSION: Final = "rollout.kuberik.com/v1alpha1"
TERMINAL_PHASES = ("Succeeded", "Failed", "Cancelled", "Skipped")

Phase = Literal[
    "WaitingForStep", "Pending", "Running", "Succeeded", "Failed", "Cancelled", "Skipped"
]


class RolloutTestSpec(CrdModel):
    """Which canary step runs which Job."""

    rollout_name: str = Field(
        alias="rolloutName", description="The OpenKruise Rollout (same namespace)."
    )
    step_index: Int32 = Field(alias="stepIndex", ge=1, description="1-based canary step.")
    job_template: dict[str, Any] = Field(
        alias="jobTemplate", json_schema_extra=OPEN, description="batch/v1 JobSpec to run."
    )


class RolloutTestStatus(CrdModel):
    """The test's phase and its Job's counters."""

    conditions: Conditions = Field(default=(), description="Ready, Failed, Stalled.")
    observed_canary_revision: str | None = Field(
        default=None, alias="observedCanaryRevision", description="Canary revision tested."
    )
    phase: Phase | None = Field(default=None, description="Test phase.")
    job_name: str | None = Field(default=None, alias="jobName", description="The Job's name.")
    retry_count: Int32 = Field(
        default=0, alias="retryCount", description="The Job's failed pod count."
    )
    active_pods: Int32 = Field(default=0, alias="activePods", description="Active pods.")
    succeeded_pods: Int32 = Field(default=0, alias="succeededPods", description="Succeeded pods.")
    failed_pods: Int32 = Field(default=0, alias="failedPods", description="Failed pods.")


class RolloutTest(CrdModel):
    """A test Job that must pass before a paused canary step is approved."""

    api_version: Literal["rollout.kuberik.com/v1alpha1"] = Field(
        default=API_VERSION, alias="apiVersion"
    )
    kind: Literal["RolloutTest"] = "RolloutTest"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RolloutTestSpec
    status: RolloutTestStatus | None = None
