"""Runtime: everything a reconcile needs, built once by ``main``.

Callers: ``main`` builds it; every reconcile reads it. Holds no per-object
state beyond caches (compiled policies, HTTP connection pools).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from controller.applying import Writer
from controller.decisionlog import DecisionLog
from controller.metrics import Metrics
from controller.policies import PolicyEngine
from evaluators.base import Clock, CollectedFact, ObjectReader
from evaluators.github import DEFAULT_BASE_URL, GitHubDeployments
from evaluators.oci import OciMetadataSource


@dataclass
class Runtime:
    """Clock, stores, writer, engine and the optional outputs of one controller."""

    clock: Clock
    reader: ObjectReader
    writer: Writer
    engine: PolicyEngine
    decision_log: DecisionLog | None = None
    metrics: Metrics | None = None
    http: httpx.AsyncClient | None = None
    oci: OciMetadataSource | None = None
    prometheus_url: str | None = None
    prometheus_allowed: Sequence[str] | None = None
    logged: dict[tuple[str | None, str], tuple[object, ...]] = field(default_factory=dict)
    github_api_url: str = DEFAULT_BASE_URL
    github_clients: dict[tuple[str, str, str], GitHubDeployments] = field(default_factory=dict)
    prometheus_cache: dict[tuple[object, ...], tuple[datetime, tuple[CollectedFact, ...]]] = field(
        default_factory=dict
    )
    """Prometheus collections by (URL, alerts?, queries), shared by Rollouts for a few seconds."""
    """GitHub clients by (base URL, repository, token digest), kept for their ETag caches."""
