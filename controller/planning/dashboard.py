"""The Kuberik dashboard URL of a Rollout, for GitHub statuses' ``environment_url`` (§7).

Callers: the Environment reconcile. Pure: Ingresses and HTTPRoutes (from the
reader's watch-fed stores) in, a URL or None out; ``tidegate.dev/environment-url``
wins over any lookup. The dashboard is whatever routes to Service ``rollout-dashboard``;
among several, the first by (namespace, name) wins, so the answer is stable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from evaluators.base import ObjectReader

DASHBOARD_SERVICE = "rollout-dashboard"
INGRESSES = "ingresses.networking.k8s.io"
HTTPROUTES = "httproutes.gateway.networking.k8s.io"

ENVIRONMENT_URL = "tidegate.dev/environment-url"

Obj = Mapping[str, Any]


def environment_url(environment: Obj, reader: ObjectReader) -> str | None:
    """``tidegate.dev/environment-url``, else the dashboard URL of the Environment's Rollout."""
    meta = environment.get("metadata") or {}
    annotated = (meta.get("annotations") or {}).get(ENVIRONMENT_URL)
    if annotated:
        return str(annotated)
    rollout = ((environment.get("spec") or {}).get("rolloutRef") or {}).get("name")
    if not rollout:
        return None
    ingresses = reader.list(INGRESSES) if reader.synced(INGRESSES) else ()
    routes = reader.list(HTTPROUTES) if reader.synced(HTTPROUTES) else ()
    return dashboard_url(ingresses, routes, str(meta.get("namespace") or ""), str(rollout))


def dashboard_url(
    ingresses: Iterable[Obj], routes: Iterable[Obj], namespace: str, rollout: str
) -> str | None:
    """``<scheme>://<host>/rollouts/<namespace>/<rollout>``, or None without a dashboard."""
    found = [b for b in map(_ingress_base, _stable(ingresses)) if b]
    found += [b for b in map(_route_base, _stable(routes)) if b]
    return f"{found[0]}/rollouts/{namespace}/{rollout}" if found else None


def _stable(objects: Iterable[Obj]) -> list[Obj]:
    def where(obj: Obj) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        return str(meta.get("namespace") or ""), str(meta.get("name") or "")

    return sorted(objects, key=where)


def _ingress_base(ingress: Obj) -> str | None:
    """``https://host`` when a TLS entry covers the host, else ``http://host``."""
    spec = ingress.get("spec") or {}
    secured = {h for tls in spec.get("tls") or [] for h in tls.get("hosts") or []}
    for rule in spec.get("rules") or []:
        host = rule.get("host")
        paths = (rule.get("http") or {}).get("paths") or []
        if host and any(_service_of(p) == DASHBOARD_SERVICE for p in paths):
            return f"{'https' if host in secured else 'http'}://{host}"
    return None


def _service_of(path: Obj) -> str | None:
    service = (path.get("backend") or {}).get("service") or {}
    name = service.get("name")
    return str(name) if name else None


def _route_base(route: Obj) -> str | None:
    """``https://<first hostname>`` of a route with a rule backed by the dashboard Service."""
    spec = route.get("spec") or {}
    hostnames = [h for h in spec.get("hostnames") or [] if h and "*" not in h]
    backed = any(
        ref.get("name") == DASHBOARD_SERVICE and ref.get("kind", "Service") == "Service"
        for rule in spec.get("rules") or []
        for ref in rule.get("backendRefs") or []
    )
    return f"https://{hostnames[0]}" if backed and hostnames else None


__all__ = [
    "DASHBOARD_SERVICE",
    "ENVIRONMENT_URL",
    "HTTPROUTES",
    "INGRESSES",
    "dashboard_url",
    "environment_url",
]
