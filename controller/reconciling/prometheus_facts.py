"""A Rollout's Prometheus roots (``alerts``, ``metrics``, ``metricsMeta``), when policies read them.

Callers: ``reconciling.rollouts``. The controller's Prometheus (``--prometheus-url``)
is the ``default`` endpoint; a policy's ``facts.metrics`` are rendered by the engine
(``queryExpression`` over ``rollout`` and ``params``). One collection is shared by
every Rollout asking the same queries within ``SHARE_FOR`` on the controller's
clock, so N Rollouts under one ClusterRolloutPolicy cost one query per distinct
query. Never raises: no Prometheus, a failed read or an unrendered query makes the
paths it owns ``fact.unavailable``, so the rules reading them fail closed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from controller.reconciling.runtime import Runtime
from evaluators.base import CollectedFact, CollectRequest, FactError, FactUnavailable, MetricQuery
from evaluators.prometheus import PrometheusSource
from policy_engine import CompiledPolicy
from policy_engine.cel.backend import CelBackend
from policy_engine.evaluation.metrics import MetricRequest, metric_requests
from policy_engine.model import facts as model
from policy_engine.model.paths import FactPath

LOG = logging.getLogger("tidegate.prometheus")
PROMETHEUS_ROOTS = frozenset({"alerts", "metrics", "metricsMeta"})
SHARE_FOR = timedelta(seconds=10)
DEADLINE_SECONDS = 5.0
NO_PROMETHEUS = "no Prometheus configured: run tidegate with --prometheus-url"


async def prometheus_facts(
    rt: Runtime,
    policies: Sequence[CompiledPolicy],
    roots_read: frozenset[str],
    values: Mapping[str, Any],
    now: datetime,
) -> list[CollectedFact]:
    """The Prometheus roots, or [] when no policy reads them (collections shared in ``rt``)."""
    if not roots_read & PROMETHEUS_ROOTS:
        return []
    prometheus = Prometheus(rt.prometheus_url, rt.http, rt.engine.backend, rt.prometheus_cache)
    return await prometheus.facts(policies, "alerts" in roots_read, values, now)


@dataclass(frozen=True, slots=True)
class Prometheus:
    """One Prometheus (the ``default`` endpoint) and the cache its collections are shared in."""

    url: str | None
    http: httpx.AsyncClient | None
    backend: CelBackend
    cache: dict[tuple[object, ...], tuple[datetime, tuple[CollectedFact, ...]]] = field(
        default_factory=dict
    )

    async def facts(
        self,
        policies: Sequence[CompiledPolicy],
        alerts: bool,
        values: Mapping[str, Any],
        now: datetime,
    ) -> list[CollectedFact]:
        """``alerts`` (when asked) and every metric the policies declare; never raises."""
        requests = metric_requests(policies, values, now, self.backend)
        wanted, problems = _split(requests)
        source = self._source(alerts)
        if isinstance(source, str):
            return _unavailable_everything(source, requests, now)
        collected = await self._shared(source, wanted, now)
        prov = model.Provenance("prometheus", endpoint=source.base_url, observed_at=now)
        for name, why in sorted(problems.items()):
            collected += [_unavailable(("metrics", name), why, prov)]
        return collected

    def _source(self, alerts: bool) -> PrometheusSource | str:
        if not self.url or self.http is None:
            return NO_PROMETHEUS
        try:
            return PrometheusSource(self.url, self.http, collect_alerts=alerts)
        except FactError as exc:
            return exc.message

    async def _shared(
        self, source: PrometheusSource, wanted: Mapping[str, MetricQuery], now: datetime
    ) -> list[CollectedFact]:
        """One collection per (alerts?, queries) within SHARE_FOR; the facts are copied out."""
        queries = tuple(sorted((n, m.query, m.max_age) for n, m in wanted.items()))
        key = (source.base_url, source.collect_alerts, queries)
        cached = self.cache.get(key)
        if cached is not None and timedelta(0) <= now - cached[0] < SHARE_FOR:
            return list(cached[1])
        request = CollectRequest(now=now, deadline=DEADLINE_SECONDS, metrics=dict(wanted))
        try:
            facts = list(await source.collect(request))
        except Exception as exc:  # a source bug must not let anything through: fail closed
            LOG.warning("prometheus collection failed: %r", exc)
            why = f"{source.where}: collection failed ({type(exc).__name__})"
            facts = _unavailable_everything(why, wanted, now)
        self.cache[key] = (now, tuple(facts))
        for stale in [k for k, (at, _) in self.cache.items() if now - at >= SHARE_FOR]:
            del self.cache[stale]
        return facts


def _split(
    requests: Mapping[str, MetricRequest],
) -> tuple[dict[str, MetricQuery], dict[str, str]]:
    wanted: dict[str, MetricQuery] = {}
    problems: dict[str, str] = {}
    for name, request in requests.items():
        if request.problem is not None or request.query is None:
            problems[name] = request.problem or "no query"
        elif request.endpoint != "default":
            problems[name] = f"prometheus endpoint {request.endpoint} is not configured"
        else:
            wanted[name] = MetricQuery(request.query, request.endpoint, request.max_age)
    return wanted, problems


def _unavailable_everything(
    why: str, requests: Mapping[str, object], now: datetime
) -> list[CollectedFact]:
    prov = _prov(now)
    facts = [_unavailable(("alerts",), why, prov)]
    facts += [CollectedFact((root,), {}, None, prov) for root in ("metrics", "metricsMeta")]
    facts += [_unavailable(("metrics", name), why, prov) for name in sorted(requests)]
    return facts


def _unavailable(path: FactPath, why: str, prov: model.Provenance) -> CollectedFact:
    return CollectedFact(path, None, FactUnavailable(why).at(path), prov)


def _prov(now: datetime) -> model.Provenance:
    return model.Provenance("prometheus", observed_at=now)
