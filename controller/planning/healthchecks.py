"""HealthCheck classes as pure logic: targets, verdicts and status writes (KUBERIK-SEMANTICS §5).

Callers: the controller's HealthCheck handlers, which read the Kustomization, its inventory
objects and Prometheus, then write ``status_changes`` to the HealthCheck. Pure: no I/O, no
clock (``now`` is passed in), no kopf; never raises for bad annotations or objects (a bad
input is a message or an ``Unhealthy`` verdict).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from controller.planning import kstatus
from policy_engine.model.times import (
    TimeSyntaxError,
    format_timestamp,
    parse_duration,
    parse_timestamp,
)

KUSTOMIZATION_ANNOTATION = "healthcheck.kuberik.com/kustomization"
REQUEUE_ANNOTATION = "healthcheck.kuberik.com/requeue-interval"
PROMETHEUS_URL_ANNOTATION = "healthcheck.kuberik.com/prometheus-url"
ALERT_LABELS_ANNOTATION = "healthcheck.kuberik.com/prometheus-alert-labels"
DEFAULT_REQUEUE = timedelta(seconds=30)
MIN_REQUEUE = timedelta(seconds=5)
_GO_MAX_DURATION = timedelta(microseconds=(2**63 - 1) // 1000)
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HEALTHY_MESSAGE = "Kustomization and all managed resources are healthy"
NO_RESOURCES_MESSAGE = "Kustomization has no managed resources"
NO_ALERTS_MESSAGE = "no matching alerts firing or pending"
UNAVAILABLE_PREFIX = "prometheus unavailable"
SPAN_SLACK = timedelta(seconds=5)
MAX_SPAN = timedelta(hours=24)

HealthStatus = Literal["Healthy", "Unhealthy", "Pending"]
Object = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One evaluation of a HealthCheck.

    ``witness`` is the failure time written to ``lastErrorTime`` when ``Unhealthy`` (None:
    ``now``). ``keep_error_time`` marks an unreadable source (§5.1): ``lastErrorTime`` stays.
    """

    status: HealthStatus
    message: str
    witness: datetime | None = None
    keep_error_time: bool = False


def _annotations(hc: Object) -> Mapping[str, Any]:
    meta = hc.get("metadata")
    found = meta.get("annotations") if isinstance(meta, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def _namespace(hc: Object) -> str:
    meta = hc.get("metadata")
    namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
    return namespace if isinstance(namespace, str) else ""


def requeue_interval(hc: Object) -> timedelta:
    """``requeue-interval`` (Go duration): default 30 s, at least 5 s, invalid means 30 s."""
    raw = _annotations(hc).get(REQUEUE_ANNOTATION)
    if not isinstance(raw, str) or not raw.strip():
        return DEFAULT_REQUEUE
    try:
        interval = parse_duration(raw)
    except (TimeSyntaxError, OverflowError):
        return DEFAULT_REQUEUE
    if abs(interval) > _GO_MAX_DURATION:
        return DEFAULT_REQUEUE
    return max(interval, MIN_REQUEUE)


def kustomization_target(hc: Object) -> tuple[str, str] | str:
    """``(namespace, name)`` of the target Kustomization, or why there is none (§5.2 rule 1)."""
    raw = _annotations(hc).get(KUSTOMIZATION_ANNOTATION)
    if raw is None:
        return f"annotation {KUSTOMIZATION_ANNOTATION} not found"
    parts = str(raw).split("/")
    if len(parts) == 1:
        parts.insert(0, _namespace(hc))
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return f"invalid kustomization reference format: {raw}"
    return parts[0], parts[1]


def parse_inventory_id(entry_id: str) -> tuple[str, str, str, str]:
    """``(namespace, name, group, kind)`` of a Flux inventory id; ValueError if malformed.

    The id is ``<namespace>_<name>_<group>_<kind>``; ``__`` in the name stands for ``:``.
    """
    namespace, sep, rest = entry_id.partition("_")
    rest, sep_kind, kind = rest.rpartition("_")
    name, sep_group, group = rest.rpartition("_")
    if not (sep and sep_kind and sep_group):
        raise ValueError(f"unable to parse stored object metadata: {entry_id}")
    name = name.replace("__", ":")
    if "_" in name:
        raise ValueError(f"too many fields within: {entry_id}")
    if not name or not kind:
        raise ValueError(f"empty name or kind in: {entry_id}")
    return namespace, name, group, kind


def inventory_entries(kustomization: Object) -> list[tuple[str, str]]:
    """``(id, version)`` of each ``status.inventory.entries[]`` item that has an id."""
    status = kustomization.get("status")
    inventory = status.get("inventory") if isinstance(status, Mapping) else None
    entries = inventory.get("entries") if isinstance(inventory, Mapping) else None
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        return []
    return [
        (str(item["id"]), str(item.get("v") or ""))
        for item in entries
        if isinstance(item, Mapping) and item.get("id")
    ]


def kustomization_verdict(
    kustomization: Object | BaseException | None,
    inventory: Sequence[tuple[str, Object | BaseException | None]],
    now: datetime,
    *,
    target: tuple[str, str] | None = None,
) -> Verdict:
    """§5.2 rules 2-7, first match wins.

    ``kustomization`` is the object, None when NotFound, or the read error; ``inventory`` pairs
    each entry id with its object, None when NotFound (skipped), or the read error. ``target``
    only names the Kustomization in the NotFound message.
    """
    if kustomization is None or isinstance(kustomization, BaseException):
        reason = _not_found_reason(kustomization, target)
        return Verdict("Unhealthy", f"Kustomization not found: {reason}", now)
    own = kstatus.compute(kustomization)
    if own.status in ("Failed", "Unknown"):
        message = _with_ready(own, kustomization)
        return Verdict("Unhealthy", f"Kustomization unhealthy: {message}", own.witness or now)
    resources = _judge_inventory(inventory)
    if resources.errors:
        message = f"Errors: {'; '.join(resources.errors)}"
        return Verdict("Unhealthy", message, _newest(resources.witnesses) or now)
    if resources.unhealthy:
        message = f"Unhealthy resources: {'; '.join(resources.unhealthy)}"
        return Verdict("Unhealthy", message, _newest(resources.witnesses) or now)
    if resources.pending:
        return Verdict("Pending", f"Pending resources: {'; '.join(resources.pending)}")
    if own.status in ("InProgress", "Terminating"):
        return Verdict("Pending", f"Kustomization pending: {_with_ready(own, kustomization)}")
    if not inventory:
        return Verdict("Pending", NO_RESOURCES_MESSAGE)
    return Verdict("Healthy", HEALTHY_MESSAGE)


def _not_found_reason(error: BaseException | None, target: tuple[str, str] | None) -> str:
    if error is not None:
        return str(error) or type(error).__name__
    if target is None:
        return "not found"
    return f'kustomizations.kustomize.toolkit.fluxcd.io "{target[1]}" not found'


def _with_ready(own: kstatus.KStatus, kustomization: Object) -> str:
    ready = next((c for c in kstatus.conditions(kustomization) if c.get("type") == "Ready"), None)
    extra = ready.get("message") if ready is not None else None
    if isinstance(extra, str) and extra and extra != own.message:
        return f"{own.message}: {extra}"
    return own.message


@dataclass(slots=True)
class _Inventory:
    errors: list[str]
    unhealthy: list[str]
    pending: list[str]
    witnesses: list[datetime]


def _judge_inventory(inventory: Iterable[tuple[str, Object | BaseException | None]]) -> _Inventory:
    judged = _Inventory([], [], [], [])
    for entry_id, found in inventory:
        try:
            namespace, name, _, _ = parse_inventory_id(entry_id)
        except ValueError as exc:
            judged.errors.append(f"{entry_id} (parse error: {exc})")
            continue
        where = f"{namespace}/{name}" if namespace else name
        if found is None:
            continue
        if isinstance(found, BaseException):
            judged.errors.append(f"{where} (get error: {found})")
            continue
        result = kstatus.compute(found)
        if result.status == "Failed":
            judged.unhealthy.append(f"{where} ({result.message})")
        elif result.status == "Unknown":
            judged.unhealthy.append(f"{where} (Unknown: {result.message})")
        elif result.status == "InProgress":
            judged.pending.append(f"{where} ({result.message})")
        elif result.status == "Terminating":
            judged.pending.append(f"{where} (terminating)")
        if result.status in ("Failed", "Unknown") and result.witness is not None:
            judged.witnesses.append(result.witness)
    return judged


def _newest(moments: Sequence[datetime]) -> datetime | None:
    return max(moments) if moments else None


def prometheus_alert_matchers(hc: Object) -> dict[str, str] | str:
    """Exact label matchers from ``prometheus-alert-labels`` (``k=v,k=v``), or the problem."""
    raw = _annotations(hc).get(ALERT_LABELS_ANNOTATION)
    if not isinstance(raw, str) or not raw.strip():
        return (
            f"invalid prometheus-alert-labels: annotation {ALERT_LABELS_ANNOTATION} is "
            "missing or empty; expected k=v pairs such as alertname=HighErrorRate,app=x"
        )
    matchers: dict[str, str] = {}
    for pair in raw.split(","):
        key, sep, value = (part.strip() for part in pair.partition("="))
        if not sep or not key or not value:
            return f"invalid prometheus-alert-labels: {pair.strip()!r} is not k=v"
        if not _LABEL_NAME.match(key):
            return f"invalid prometheus-alert-labels: {key!r} is not a Prometheus label name"
        if key in matchers:
            return f"invalid prometheus-alert-labels: label {key!r} given twice"
        matchers[key] = value
    return matchers


def alerts_selector(matchers: Mapping[str, str]) -> str:
    """The PromQL ``ALERTS{k="v",…}`` selector for ``matchers`` (values escaped)."""
    escaped = {
        key: value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        for key, value in matchers.items()
    }
    inner = ",".join(f'{key}="{escaped[key]}"' for key in sorted(escaped))
    return f"ALERTS{{{inner}}}"


def alert_span(hc: Object, now: datetime) -> timedelta:
    """§5.3 "the span since the last successful poll", from the HealthCheck alone.

    Polls run every requeue-interval, so the last successful one was one interval
    ago (plus ``SPAN_SLACK`` for a late reconcile) unless the status says Prometheus
    was unavailable: then the span reaches back to when that status began (its
    ``lastChangeTime``), at most ``MAX_SPAN``. Nothing is kept in memory, so a
    restarted controller asks for the same span. Over-reaching only repeats a firing
    already reported (fail closed); it never misses one.
    """
    span = requeue_interval(hc) + SPAN_SLACK
    status = hc.get("status")
    status = status if isinstance(status, Mapping) else {}
    message = status.get("message")
    if isinstance(message, str) and message.startswith(UNAVAILABLE_PREFIX):
        try:
            since = parse_timestamp(str(status.get("lastChangeTime") or ""))
        except TimeSyntaxError:
            return MAX_SPAN
        span = max(span, now - since + SPAN_SLACK)
    return min(span, MAX_SPAN)


def alerts_query(matchers: Mapping[str, str], span: timedelta) -> str:
    """PromQL for the alerts now active plus those that fired within ``span``.

    The instant selector is Prometheus' current view (staleness-aware, so resolved
    alerts are gone); the ``last_over_time`` range adds any series that fired within
    the span, however briefly.
    """
    seconds = max(1, math.ceil(span.total_seconds()))
    firing = alerts_selector({**matchers, "alertstate": "firing"})
    return f"{alerts_selector(matchers)} or last_over_time({firing}[{seconds}s])"


def prometheus_alert_verdict(samples: Iterable[Mapping[str, Any]], now: datetime) -> Verdict:
    """§5.3 verdict over the ``ALERTS`` series (or alert records) seen since the last poll.

    Each sample is a Prometheus series (``metric`` labels with ``alertstate``) or an alert
    record (``labels`` plus ``state``). Firing wins over pending; nothing is ``Healthy``.
    """
    firing: set[str] = set()
    pending: set[str] = set()
    for sample in samples:
        labels = sample.get("metric") or sample.get("labels") or {}
        labels = labels if isinstance(labels, Mapping) else {}
        state = sample.get("state") or labels.get("alertstate")
        name = str(labels.get("alertname") or sample.get("name") or "<unnamed>")
        if state == "firing":
            firing.add(name)
        elif state == "pending":
            pending.add(name)
    if firing:
        return Verdict("Unhealthy", f"firing: {', '.join(sorted(firing))}", now)
    if pending:
        return Verdict("Pending", f"pending: {', '.join(sorted(pending))}")
    return Verdict("Healthy", NO_ALERTS_MESSAGE)


def unavailable_verdict(source: str, reason: str) -> Verdict:
    """§5.1 [T] unreadable source: ``Unhealthy`` that keeps ``lastErrorTime`` as it is."""
    return Verdict("Unhealthy", f"{source} unavailable: {reason}", None, keep_error_time=True)


def validate_prometheus_url(url: str, allowed: Sequence[str] | None) -> str | None:
    """Why ``url`` may not be polled, or None; with ``allowed`` it must start with an entry.

    An entry matches at a path boundary: ``http://prom`` admits ``http://prom/x`` but not
    ``http://prometheus``.
    """
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return "prometheus URL is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return f"prometheus URL must use http or https, got scheme {parts.scheme[:20]!r}"
    if parts.username is not None or parts.password is not None:
        return "prometheus URL must not contain credentials (user:password@)"
    if not parts.hostname:
        return "prometheus URL has no host"
    if parts.query or parts.fragment:
        return "prometheus URL must not have a query or fragment"
    if allowed is not None and not any(_admits(entry, url) for entry in allowed if entry):
        return "prometheus URL is not in the controller's allow-list"
    return None


def _admits(prefix: str, url: str) -> bool:
    if not url.startswith(prefix):
        return False
    return prefix.endswith("/") or len(url) == len(prefix) or url[len(prefix)] == "/"


def status_changes(
    current_status: Mapping[str, Any] | None, verdict: Verdict, now: datetime
) -> dict[str, Any]:
    """§5.1 "Fields": the status keys whose values change ({} means no write).

    ``lastChangeTime`` moves only with ``status``; ``lastErrorTime`` is set only with
    ``Unhealthy`` (to the witness, else ``now``) unless the verdict keeps it, and is never
    cleared here.
    """
    current = current_status or {}
    changes: dict[str, Any] = {}
    if (current.get("status") or "") != verdict.status:
        changes["status"] = verdict.status
        changes["lastChangeTime"] = format_timestamp(now)
    if current.get("message") != verdict.message:
        changes["message"] = verdict.message
    if verdict.status == "Unhealthy" and not verdict.keep_error_time:
        stamp = verdict.witness or now
        if not _same_instant(current.get("lastErrorTime"), stamp):
            changes["lastErrorTime"] = format_timestamp(stamp)
    return changes


def _same_instant(value: Any, moment: datetime) -> bool:
    if isinstance(value, datetime):
        return value.utcoffset() is not None and value == moment
    if not isinstance(value, str):
        return False
    try:
        return parse_timestamp(value) == moment
    except TimeSyntaxError:
        return False


__all__ = [
    "ALERT_LABELS_ANNOTATION",
    "DEFAULT_REQUEUE",
    "KUSTOMIZATION_ANNOTATION",
    "MAX_SPAN",
    "MIN_REQUEUE",
    "PROMETHEUS_URL_ANNOTATION",
    "REQUEUE_ANNOTATION",
    "SPAN_SLACK",
    "HealthStatus",
    "Verdict",
    "alert_span",
    "alerts_query",
    "alerts_selector",
    "inventory_entries",
    "kustomization_target",
    "kustomization_verdict",
    "parse_inventory_id",
    "prometheus_alert_matchers",
    "prometheus_alert_verdict",
    "requeue_interval",
    "status_changes",
    "unavailable_verdict",
    "validate_prometheus_url",
]
