"""The Rollout's annotations as intents: one-shot requests and tidegate options (§3).

Callers: ``planning.plan``. Pure: reads a Rollout object, never writes. Which
keys a deploy consumes is decided in ``deploying``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FORCE_DEPLOY = "rollout.kuberik.com/force-deploy"
BYPASS_GATES = "rollout.kuberik.com/bypass-gates"
UNBLOCK_FAILED = "rollout.kuberik.com/unblock-failed"
RETRY = "rollout.kuberik.com/retry"
DEPLOY_MESSAGE = "rollout.kuberik.com/deploy-message"
DEPLOY_USER = "rollout.kuberik.com/deploy-user"
CANDIDATE_ORDER = "tidegate.dev/candidate-order"
SEQUENTIAL = "tidegate.dev/sequential"
ROLLBACK_ON_FAILURE = "tidegate.dev/rollback-on-failure"
MARK_SUCCESSFUL = "tidegate.dev/mark-successful"
APPROVE = "tidegate.dev/approve"

CONSUMED_BY_DEPLOY = (BYPASS_GATES, UNBLOCK_FAILED, FORCE_DEPLOY, DEPLOY_MESSAGE, DEPLOY_USER)


@dataclass(frozen=True, slots=True)
class Intents:
    """What the Rollout's spec and annotations ask for in this pass."""

    wanted_version: str | None
    force_deploy: str | None
    bypass_gates: str | None
    unblock_failed: bool
    retry: str | None
    deploy_message: str | None
    deploy_user: str | None
    mark_successful: str | None
    observed_order: bool
    sequential: bool
    rollback_on_failure: bool
    annotations: Mapping[str, str]

    @property
    def manual(self) -> bool:
        """Pinned, or a force-deploy is requested (KUBERIK-SEMANTICS.md conventions)."""
        return bool(self.wanted_version) or bool(self.force_deploy)


def read_intents(rollout: Mapping[str, Any]) -> Intents:
    """Reads the intents of a Rollout object."""
    annotations: Mapping[str, str] = rollout.get("metadata", {}).get("annotations") or {}
    spec = rollout.get("spec") or {}

    def text(key: str) -> str | None:
        value = annotations.get(key)
        return value if value else None

    return Intents(
        wanted_version=spec.get("wantedVersion") or None,
        force_deploy=text(FORCE_DEPLOY),
        bypass_gates=text(BYPASS_GATES),
        unblock_failed=annotations.get(UNBLOCK_FAILED) == "true",
        retry=annotations.get(RETRY),
        deploy_message=text(DEPLOY_MESSAGE),
        deploy_user=text(DEPLOY_USER),
        mark_successful=annotations.get(MARK_SUCCESSFUL),
        observed_order=annotations.get(CANDIDATE_ORDER) == "observed",
        sequential=annotations.get(SEQUENTIAL) == "true",
        rollback_on_failure=annotations.get(ROLLBACK_ON_FAILURE) == "true",
        annotations=annotations,
    )


def consumed(intents: Intents, keys: tuple[str, ...]) -> dict[str, str]:
    """The subset of ``keys`` present on the Rollout, with the values seen."""
    return {key: intents.annotations[key] for key in keys if key in intents.annotations}
