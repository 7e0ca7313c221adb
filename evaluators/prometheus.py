"""Prometheus as a fact source: active alerts, instant queries and series over httpx.

Callers: ``evaluators.collecting`` (through ``collect``), the CLI and the
controller (which construct it with a client from ``evaluators._http``).
Produces the ``alerts``, ``metrics`` and ``metricsMeta`` roots of
POLICY-FORMATS.md §3. Must not write, retry, truncate an over-bound answer,
default a missing value or put credentials into URLs or messages.

Errors (see ``evaluators.base``): connect error, timeout, 5xx, ``status:
error`` and no samples are ``FactUnavailable``; malformed JSON, several
series, NaN/Inf, over 8 MiB or over 5 000 alerts are ``FactInvalid``; a sample
older than ``maxAge`` at collection is ``FactStale``; a bad URL, 401/403/404
or a rejected query is ``FactSourceMisconfigured``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import httpx

from evaluators._http import get_capped
from evaluators.base import (
    CollectedFact,
    CollectRequest,
    FactError,
    FactInvalid,
    FactSourceMisconfigured,
    FactStale,
    FactUnavailable,
    MetricQuery,
    cap_message,
)
from policy_engine.model import facts as model
from policy_engine.model.paths import FactPath

MAX_ALERTS = 5000
ALERTS_PATH = "/api/v1/alerts"
QUERY_PATH = "/api/v1/query"
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Sample:
    """The single value of an instant query and its evaluation timestamp."""

    value: float
    evaluated_at: datetime
    samples: int = 1


class PrometheusSource:
    """One Prometheus endpoint: ``alerts()``, ``query()`` and ``collect()``."""

    name: ClassVar[str] = "prometheus"
    roots: ClassVar[tuple[str, ...]] = ("alerts", "metrics", "metricsMeta")

    def __init__(
        self,
        base_url: str,
        client: httpx.AsyncClient,
        *,
        endpoint: str = "default",
        collect_alerts: bool | None = None,
    ) -> None:
        """``collect_alerts`` defaults to true only for the ``default`` endpoint (§3)."""
        self.base_url = _validated_base_url(base_url)
        self.client = client
        self.endpoint = endpoint
        self.collect_alerts = endpoint == "default" if collect_alerts is None else collect_alerts
        self.where = f"prometheus endpoint {endpoint} ({self.base_url})"

    async def alerts(self) -> list[dict[str, Any]]:
        """Firing and pending alerts as Alert records; more than 5 000 is FactInvalid."""
        data = await self._get(ALERTS_PATH, None)
        raw = data.get("alerts") if isinstance(data, dict) else None
        if not isinstance(raw, list):
            raise FactInvalid(f"{self.where}: {ALERTS_PATH}: data.alerts is not a list")
        if len(raw) > MAX_ALERTS:
            raise FactInvalid(
                f"{self.where}: {len(raw)} active alerts, over the bound of {MAX_ALERTS}"
            )
        records = [self._alert(item) for item in raw]
        try:
            normalised: list[dict[str, Any]] = model.normalise_root("alerts", records)
        except model.FactShapeError as exc:
            raise FactInvalid(f"{self.where}: {ALERTS_PATH}: {exc}") from exc
        return normalised

    async def query(self, name: str, promql: str, at: datetime, max_age: timedelta) -> Sample:
        """The single value of ``promql`` evaluated at ``at``; see the module's error list."""
        data = await self._get(QUERY_PATH, {"query": promql, "time": _unix(at)})
        what = f"{self.where}: metric {name} (query {cap_message(promql, 80)})"
        if not isinstance(data, dict):
            raise FactInvalid(f"{what}: data is not an object")
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            sample = _sample(result, what)
        elif kind == "vector":
            if not isinstance(result, list):
                raise FactInvalid(f"{what}: vector result is not a list")
            if not result:
                raise FactUnavailable(f"{what}: query returned no samples")
            if len(result) > 1:
                raise FactInvalid(f"{what}: query returned {len(result)} series, expected one")
            first = result[0]
            sample = _sample(first.get("value") if isinstance(first, dict) else None, what)
        else:
            raise FactInvalid(f"{what}: unsupported result type {str(kind)[:40]!r}")
        age = at - sample.evaluated_at
        if age > max_age:
            raise FactStale(f"{what}: sample is {age} old, over maxAge {max_age}")
        return sample

    async def series(self, promql: str, at: datetime | None = None) -> list[dict[str, str]]:
        """The label sets of every series ``promql`` returns (an instant vector).

        Evaluated at ``at``, else at Prometheus' own now. More than 5 000 series is
        FactInvalid (never truncated: a cut list could hide a firing alert).
        """
        params = {"query": promql} if at is None else {"query": promql, "time": _unix(at)}
        data = await self._get(QUERY_PATH, params)
        what = f"{self.where}: query {cap_message(promql, 80)}"
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("resultType") != "vector":
            raise FactInvalid(f"{what}: expected an instant vector")
        if not isinstance(result, list):
            raise FactInvalid(f"{what}: vector result is not a list")
        if len(result) > MAX_ALERTS:
            raise FactInvalid(f"{what}: {len(result)} series, over the bound of {MAX_ALERTS}")
        found = []
        for item in result:
            labels = item.get("metric") if isinstance(item, dict) else None
            if not isinstance(labels, dict):
                raise FactInvalid(f"{what}: a series without labels")
            found.append({str(k): str(v) for k, v in labels.items()})
        return found

    async def collect(self, request: CollectRequest) -> Sequence[CollectedFact]:
        """Alerts plus one request per distinct query of this endpoint, under one deadline.

        Never raises for a failed read: each failure is a fact with an error.
        """
        loop_deadline = asyncio.get_running_loop().time() + request.deadline
        wanted = {n: m for n, m in request.metrics.items() if m.endpoint == self.endpoint}
        names_by_query: dict[str, list[str]] = {}
        for name in sorted(wanted):
            names_by_query.setdefault(wanted[name].query, []).append(name)
        # Staleness is judged per metric below (maxAge may differ for a shared query).
        async with asyncio.TaskGroup() as group:
            alerts_task = (
                group.create_task(self._bounded(self.alerts(), loop_deadline, request.deadline))
                if self.collect_alerts
                else None
            )
            query_tasks = {
                promql: group.create_task(
                    self._bounded(
                        self.query(", ".join(names), promql, request.now, timedelta.max),
                        loop_deadline,
                        request.deadline,
                    )
                )
                for promql, names in names_by_query.items()
            }
        roots_prov = self._provenance(None, request.now)
        out = [
            CollectedFact(("metrics",), {}, None, roots_prov),
            CollectedFact(("metricsMeta",), {}, None, roots_prov),
        ]
        if alerts_task is not None:
            alerts_prov = self._provenance(ALERTS_PATH, request.now)
            out.insert(0, _fact(("alerts",), alerts_task.result(), alerts_prov))
        for name in sorted(wanted):
            metric = wanted[name]
            out.extend(
                self._metric_facts(name, metric, query_tasks[metric.query].result(), request)
            )
        return out

    def _metric_facts(
        self,
        name: str,
        metric: MetricQuery,
        result: Sample | FactError,
        request: CollectRequest,
    ) -> list[CollectedFact]:
        value_path: FactPath = ("metrics", name)
        meta_path: FactPath = ("metricsMeta", name)
        if isinstance(result, FactError):
            prov = self._provenance(metric.query, request.now)
            return [_fact(value_path, result, prov), _fact(meta_path, result, prov)]
        prov = self._provenance(metric.query, request.now, result.evaluated_at)
        meta = {
            "evaluatedAt": result.evaluated_at,
            "samples": result.samples,
            "endpoint": self.endpoint,
            "query": metric.query,
            "stale": False,
        }
        age = request.now - result.evaluated_at
        if age > metric.max_age:
            stale = FactStale(
                f"{self.where}: metric {name}: sample is {age} old, over maxAge {metric.max_age}"
            )
            return [_fact(value_path, stale, prov), _fact(meta_path, {**meta, "stale": True}, prov)]
        return [_fact(value_path, result.value, prov), _fact(meta_path, meta, prov)]

    async def _bounded(
        self, work: Awaitable[_T], loop_deadline: float, seconds: float
    ) -> _T | FactError:
        try:
            async with asyncio.timeout_at(loop_deadline):
                return await work
        except TimeoutError:
            return FactUnavailable(f"{self.where}: timeout after the {seconds:g}s deadline")
        except FactError as exc:
            return exc

    async def _get(self, path: str, params: Mapping[str, str] | None) -> Any:
        where = f"{self.where}: {path}"
        status, body = await get_capped(
            self.client, self.base_url + path, where=where, params=params
        )
        if status in (401, 403, 404):
            raise FactSourceMisconfigured(f"{where}: HTTP {status}")
        if status >= 500:
            raise FactUnavailable(f"{where}: HTTP {status}")
        try:
            document = json.loads(body)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise FactInvalid(f"{where}: malformed JSON (HTTP {status})") from exc
        if not isinstance(document, dict):
            raise FactInvalid(f"{where}: malformed response: not a JSON object")
        if document.get("status") == "error":
            text = cap_message(f"{document.get('errorType')}: {document.get('error')}", 160)
            if document.get("errorType") == "bad_data":
                raise FactSourceMisconfigured(f"{where}: query rejected: {text}")
            raise FactUnavailable(f"{where}: Prometheus error: {text}")
        if status != 200 or document.get("status") != "success":
            raise FactUnavailable(f"{where}: HTTP {status} without a success status")
        return document.get("data")

    def _alert(self, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
            raise FactInvalid(f"{self.where}: {ALERTS_PATH}: alert without labels")
        labels = item["labels"]
        state = item.get("state")
        if state not in ("firing", "pending"):
            raise FactInvalid(
                f"{self.where}: {ALERTS_PATH}: unknown alert state {str(state)[:20]!r}"
            )
        value = _float(item.get("value"), f"{self.where}: {ALERTS_PATH}: alert value")
        return {
            "name": labels.get("alertname"),
            "labels": labels,
            "annotations": item.get("annotations") or {},
            "state": state,
            "activeAt": item.get("activeAt"),
            "value": value,
        }

    def _provenance(
        self, query: str | None, now: datetime, evaluated_at: datetime | None = None
    ) -> model.Provenance:
        return model.Provenance(
            source=self.name,
            endpoint=self.base_url,
            query=query,
            observed_at=now,
            evaluated_at=evaluated_at,
        )


def _validated_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash; FactSourceMisconfigured unless plain http(s)."""
    try:
        parts = urlsplit(base_url)
        _ = parts.port  # validates the port
    except ValueError as exc:
        raise FactSourceMisconfigured("prometheus base URL is not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FactSourceMisconfigured(
            f"prometheus base URL must be http(s)://host[:port][/path], got scheme "
            f"{parts.scheme[:20]!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise FactSourceMisconfigured(
            "prometheus base URL must not contain credentials (user:password@)"
        )
    if parts.query or parts.fragment:
        raise FactSourceMisconfigured("prometheus base URL must not have a query or fragment")
    return base_url.rstrip("/")


def _fact(path: FactPath, value: Any, provenance: model.Provenance) -> CollectedFact:
    if isinstance(value, FactError):
        return CollectedFact(path, None, value.at(path), provenance)
    return CollectedFact(path, value, None, provenance)


def _unix(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError(f"query time {at.isoformat()} must be time-zone aware")
    return f"{at.timestamp():.3f}"


def _float(raw: Any, what: str) -> float:
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise FactInvalid(f"{what} is not a number")
    try:
        value = float(raw)
    except ValueError as exc:
        raise FactInvalid(f"{what} {str(raw)[:40]!r} is not a number") from exc
    if not math.isfinite(value):
        raise FactInvalid(f"{what} is {raw!s:.10}, not a finite number")
    return value


def _sample(pair: Any, what: str) -> Sample:
    if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], int | float):
        raise FactInvalid(f"{what}: sample is not a [timestamp, value] pair")
    value = _float(pair[1], f"{what}: sample value")
    return Sample(value=value, evaluated_at=datetime.fromtimestamp(pair[0], UTC))


__all__ = ["MAX_ALERTS", "PrometheusSource", "Sample"]
