"""One pass over a HealthCheck of a class tidegate owns: ``kustomization`` or ``prometheus-alert``.

Callers: ``reconciling.reconcile`` for HealthCheck keys (due every
requeue-interval). Reads the Kustomization from the stores and its inventory
entries live (a poll, as the class is defined); asks Prometheus for alerts.
The verdict is pure (``planning.healthchecks``); only changed fields are
written. A source that cannot answer gives Unhealthy without a new
``lastErrorTime`` (KUBERIK-SEMANTICS.md §5.1 [T]).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controller.api.actions import HEALTHCHECKS, KUSTOMIZATIONS, ObjectKey, PatchStatus, Plan
from controller.applying import ApiError, ApplyConflict
from controller.planning import healthchecks as classes
from controller.reconciling.runtime import Runtime
from evaluators.base import FactError
from evaluators.prometheus import PrometheusSource

OWNED_CLASSES = ("kustomization", "prometheus-alert")


async def reconcile_health_check(key: ObjectKey, rt: Runtime) -> datetime | None:
    """Evaluates the HealthCheck, writes what changed, returns the next poll."""
    hc = rt.reader.get(HEALTHCHECKS, key.namespace, key.name)
    if hc is None:
        return None
    kind = (hc.get("spec") or {}).get("class")
    if kind not in OWNED_CLASSES:
        return None
    now = rt.clock.now()
    if kind == "kustomization":
        verdict = await _kustomization(hc, key, rt, now)
    else:
        verdict = await _prometheus_alert(hc, rt, now)
    changes = classes.status_changes(hc.get("status") or {}, verdict, now)
    if changes:
        rv = str(hc["metadata"].get("resourceVersion", ""))
        outcome = await rt.writer.apply(Plan((PatchStatus(key, rv, changes),)))
        if isinstance(outcome.error, ApplyConflict):
            return now  # the store lagged: evaluate again on the fresh object
        if outcome.error is not None:
            raise outcome.error
    return now + classes.requeue_interval(hc)


async def _kustomization(
    hc: Mapping[str, Any], key: ObjectKey, rt: Runtime, now: datetime
) -> classes.Verdict:
    target = classes.kustomization_target(hc)
    if isinstance(target, str):
        return classes.Verdict("Unhealthy", target)
    namespace, name = target
    if not rt.reader.synced(KUSTOMIZATIONS):
        return classes.unavailable_verdict("kubernetes", "Kustomizations are not synced yet")
    kustomization = rt.reader.get(KUSTOMIZATIONS, namespace, name)
    if kustomization is None:
        return classes.kustomization_verdict(None, [], now, target=target)
    inventory: list[tuple[str, Mapping[str, Any] | BaseException | None]] = []
    for entry_id, version in classes.inventory_entries(kustomization):
        inventory.append((entry_id, await _inventory_object(rt, entry_id, version)))
    return classes.kustomization_verdict(kustomization, inventory, now, target=target)


async def _inventory_object(
    rt: Runtime, entry_id: str, version: str
) -> Mapping[str, Any] | BaseException | None:
    try:
        namespace, name, group, kind = classes.parse_inventory_id(entry_id)
        return await rt.writer.get_by_kind(group, version, kind, namespace or None, name)
    except (ApiError, ValueError) as exc:
        return exc


async def _prometheus_alert(hc: Mapping[str, Any], rt: Runtime, now: datetime) -> classes.Verdict:
    matchers = classes.prometheus_alert_matchers(hc)
    if isinstance(matchers, str):
        return classes.Verdict("Unhealthy", matchers)
    annotations = hc["metadata"].get("annotations") or {}
    url = annotations.get(classes.PROMETHEUS_URL_ANNOTATION) or rt.prometheus_url
    if not url:
        return classes.Verdict(
            "Unhealthy",
            "no Prometheus: set healthcheck.kuberik.com/prometheus-url"
            " or run tidegate with --prometheus-url",
        )
    problem = classes.validate_prometheus_url(url, rt.prometheus_allowed)
    if problem is not None or rt.http is None:
        return classes.Verdict("Unhealthy", problem or "no HTTP client configured")
    try:
        alerts = await PrometheusSource(url, rt.http).alerts()
    except FactError as exc:
        return classes.unavailable_verdict("prometheus", exc.message)
    matching = [
        alert for alert in alerts
        if all((alert.get("labels") or {}).get(k) == v for k, v in matchers.items())
    ]  # fmt: skip
    return classes.prometheus_alert_verdict(matching, now)
