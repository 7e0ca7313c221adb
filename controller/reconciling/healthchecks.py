"""One pass over a HealthCheck of a class tidegate owns: kustomization, prometheus-alert, cel.

Callers: ``reconciling.reconcile`` for HealthCheck keys (due every
requeue-interval, or ``spec.cel.interval``). Reads the Kustomization from the
stores and its inventory entries live (a poll, as the class is defined); asks
Prometheus for the alerts active or fired since the last poll; for ``cel``,
collects the facts of the HealthCheck's namespace and lets the engine judge.
The verdicts are pure (``planning.healthchecks``, ``planning.cel_health``);
only changed fields are written. A source that cannot answer gives Unhealthy
without a new ``lastErrorTime`` (KUBERIK-SEMANTICS.md §5.1 [T]).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controller.api.actions import HEALTHCHECKS, KUSTOMIZATIONS, ObjectKey, PatchStatus, Plan
from controller.applying import ApiError, ApplyConflict
from controller.planning import cel_health
from controller.planning import healthchecks as classes
from controller.planning.facts import assemble
from controller.planning.linked import linked_facts, namespace_linked
from controller.reconciling.runtime import Runtime
from evaluators.base import CollectedFact, CollectRequest, FactError, FactUnavailable
from evaluators.kuberik import health_check_fact
from evaluators.prometheus import PrometheusSource
from policy_engine import FactSet
from policy_engine.model import facts as model

OWNED_CLASSES = ("kustomization", "prometheus-alert", "cel")
PROMETHEUS_DEADLINE = 10.0


async def reconcile_health_check(key: ObjectKey, rt: Runtime) -> datetime | None:
    """Evaluates the HealthCheck, writes what changed, returns the next poll."""
    hc = rt.reader.get(HEALTHCHECKS, key.namespace, key.name)
    if hc is None:
        return None
    kind = (hc.get("spec") or {}).get("class")
    if kind not in OWNED_CLASSES:
        return None
    now = rt.clock.now()
    interval = classes.requeue_interval(hc)
    if kind == "kustomization":
        verdict = await _kustomization(hc, key, rt, now)
    elif kind == "cel":
        verdict, interval = await _cel(hc, rt, now), cel_health.interval(hc)
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
    return now + interval


KUSTOMIZATION_GVK = ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization")


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
    if kustomization is None:  # the watch may lag a just-created object: ask before failing
        try:
            kustomization = await rt.writer.get_by_kind(*KUSTOMIZATION_GVK, namespace, name)
        except ApiError as exc:
            return classes.unavailable_verdict("kubernetes", f"Kustomization read: {exc.message}")
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
    """§5.3: the matching ``ALERTS`` active now or fired since the last successful poll."""
    matchers = classes.prometheus_alert_matchers(hc)
    if isinstance(matchers, str):
        return classes.Verdict("Unhealthy", matchers)
    source = _prometheus(hc, rt)
    if isinstance(source, str):
        return classes.Verdict("Unhealthy", source)
    query = classes.alerts_query(matchers, classes.alert_span(hc, now))
    try:
        series = await source.series(query)
    except FactError as exc:
        return classes.unavailable_verdict("prometheus", exc.message)
    return classes.prometheus_alert_verdict([{"metric": labels} for labels in series], now)


def _prometheus(hc: Mapping[str, Any], rt: Runtime) -> PrometheusSource | str:
    """The HealthCheck's Prometheus (annotation, else the controller's), or why there is none."""
    annotations = hc["metadata"].get("annotations") or {}
    url = annotations.get(classes.PROMETHEUS_URL_ANNOTATION) or rt.prometheus_url
    if not url:
        return (
            "no Prometheus: set healthcheck.kuberik.com/prometheus-url"
            " or run tidegate with --prometheus-url"
        )
    problem = classes.validate_prometheus_url(url, rt.prometheus_allowed)
    if problem is not None or rt.http is None:
        return problem or "no HTTP client configured"
    try:
        return PrometheusSource(url, rt.http)
    except FactError as exc:
        return exc.message


async def _cel(hc: Mapping[str, Any], rt: Runtime, now: datetime) -> classes.Verdict:
    """POLICY-FORMATS.md §2.5: compile ``spec.cel``, collect its facts, let the engine judge."""
    check = cel_health.compile_check(hc, rt.engine.backend)
    if isinstance(check, classes.Verdict):
        return check
    facts = await _cel_facts(hc, check, rt, now)
    return cel_health.verdict_of(check, facts, rt.engine.backend)


async def _cel_facts(
    hc: Mapping[str, Any], check: cel_health.CelCheck, rt: Runtime, now: datetime
) -> FactSet:
    """``flux`` and ``kruise`` of the HealthCheck's namespace; ``alerts``, ``metrics`` and
    ``healthCheck`` (the check itself, as the ``healthChecks`` root records it)."""
    linked = namespace_linked(rt.reader, hc["metadata"].get("namespace"))
    collected, provenance = linked_facts(linked, (), now)
    source = _prometheus(hc, rt)
    wanted = {n: m for n, m in check.metrics.items() if m.endpoint == "default"}
    missing = {
        n: f"prometheus endpoint {m.endpoint} is not configured (only default is)"
        for n, m in check.metrics.items()
        if n not in wanted
    } | dict(check.uncollectable)
    if isinstance(source, str):
        missing |= dict.fromkeys(wanted, source)
        prov = model.Provenance("prometheus", observed_at=now)
        collected.append(_unavailable(("alerts",), source, prov))
        collected += [CollectedFact((root,), {}, None, prov) for root in ("metrics", "metricsMeta")]
    else:
        request = CollectRequest(now=now, deadline=PROMETHEUS_DEADLINE, metrics=wanted)
        collected += await source.collect(request)
    for name, why in sorted(missing.items()):
        prov = model.Provenance("prometheus", query=name, observed_at=now)
        collected.append(_unavailable(("metrics", name), why, prov))
    collected.append(health_check_fact(hc, now))
    return assemble(collected, now, None, provenance)


def _unavailable(path: tuple[str, ...], why: str, prov: model.Provenance) -> CollectedFact:
    return CollectedFact(path, None, FactUnavailable(why).at(path), prov)
