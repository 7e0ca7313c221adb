"""The demo's cluster contents: per environment a namespace, Rollout, Environment, Flux objects,
HealthChecks and (optionally) a deployment window, with the first release already running.

Callers: ``demo.running`` (``build`` once the API and services are up) and
``demo.flux`` / ``demo.driver`` (the names below). Every object is what a user
would apply (docs/demo.md shows them); the initial release's Rollout status is
written as the controller itself would have left it, so the story starts from a
running app. Must not touch the controller's objects after ``build``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from controller.demo.emulation import EmulatedApi
from controller.demo.scenario import Environment, Scenario
from controller.demo.services import ALERT_NAME, Services
from policy_engine.model.times import format_timestamp

ROLLOUTS = "rollouts.kuberik.com"
HEALTHCHECKS = "healthchecks.kuberik.com"
GATES = "rolloutgates.kuberik.com"
SCHEDULES = "rolloutschedules.kuberik.com"
ENVIRONMENTS = "environments.environments.kuberik.com"
IMAGEPOLICIES = "imagepolicies.image.toolkit.fluxcd.io"
IMAGEREPOSITORIES = "imagerepositories.image.toolkit.fluxcd.io"
OCIREPOSITORIES = "ocirepositories.source.toolkit.fluxcd.io"
KUSTOMIZATIONS = "kustomizations.kustomize.toolkit.fluxcd.io"
CONFIGMAPS = "configmaps"
SEMVER = {"range": ">=0.0.0"}
HC_INTERVAL = "10s"
"""HealthCheck poll interval (virtual). The alert lookback is as long plus 5 s slack, which a
real Prometheus measures in real time (``prometheus.AlertSource.lookback``)."""


def revision(tag: str) -> str:
    """The (made-up) git commit a tag was built from: one per tag, stable across runs."""
    return hashlib.sha1(tag.encode(), usedforsecurity=False).hexdigest()


def _meta(name: str, env: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": env, **extra}


def _rollout(
    s: Scenario, env: Environment, initial: dict[str, Any], at: datetime
) -> dict[str, Any]:
    entry = {
        "id": 1,
        "version": initial,
        "timestamp": format_timestamp(at - timedelta(days=1)),
        "message": "Initial release (running before the demo starts)",
        "triggeredBy": {"kind": "System", "name": "rollout-controller"},
        "bakeStatus": "Succeeded",
        "bakeStatusMessage": "Bake time completed successfully (no errors within bake time).",
        "bakeStartTime": format_timestamp(at - timedelta(days=1)),
        "bakeEndTime": format_timestamp(at - timedelta(days=1) + timedelta(minutes=5)),
    }
    return {
        "apiVersion": "kuberik.com/v1alpha1",
        "kind": "Rollout",
        "metadata": _meta(s.app, env.name, labels={"app": s.app}),
        "spec": {
            "releasesImagePolicy": {"name": s.app},
            "bakeTime": env.bake_time,
            "deployTimeout": "30m",
            "healthCheckSelector": {"selector": {"matchLabels": {"app": s.app}}},
        },
        "status": {"history": [entry], "availableReleases": [initial]},
    }


def _flux(s: Scenario, env: Environment, services: Services, tag: str) -> list[tuple[str, Any]]:
    image = f"{services.host}/{s.app}"
    ready = {
        "type": "Ready", "status": "True", "reason": "Succeeded",
        "message": f"Applied revision: {tag}", "lastTransitionTime": format_timestamp(s.start),
    }  # fmt: skip
    inventory = {"entries": [{"id": f"{env.name}_{s.app}__ConfigMap", "v": "v1"}]}
    return [
        (IMAGEREPOSITORIES, {
            "metadata": _meta(s.app, env.name),
            "spec": {"image": image, "interval": "1m", "insecure": True},
        }),
        (IMAGEPOLICIES, {
            "metadata": _meta(s.app, env.name),
            "spec": {"imageRepositoryRef": {"name": s.app}, "policy": {"semver": SEMVER}},
            "status": {"latestRef": {"name": image, "tag": tag}},
        }),
        (OCIREPOSITORIES, {
            "metadata": _meta(s.app, env.name, annotations={"rollout.kuberik.com/rollout": s.app}),
            "spec": {"url": f"oci://{image}-manifests", "interval": "1m", "ref": {"tag": tag}},
        }),
        (KUSTOMIZATIONS, {
            "metadata": _meta(s.app, env.name, annotations={
                "rollout.kuberik.com/substitute.VERSION.from": s.app,
            }),
            "spec": {
                "interval": "1m", "path": "./", "prune": True,
                "sourceRef": {"kind": "OCIRepository", "name": s.app},
                "postBuild": {"substitute": {"VERSION": tag}},
            },
            "status": {"observedGeneration": 1, "conditions": [ready], "inventory": inventory},
        }),
        (CONFIGMAPS, {"metadata": _meta(s.app, env.name), "data": {"VERSION": tag}}),
    ]  # fmt: skip


def _checks(s: Scenario, env: Environment, services: Services) -> list[tuple[str, Any]]:
    labels = {"app": s.app}
    interval = {"healthcheck.kuberik.com/requeue-interval": HC_INTERVAL}
    alert_labels = f"alertname={ALERT_NAME},app={s.app},env={env.name}"
    return [
        (HEALTHCHECKS, {
            "metadata": _meta(f"{s.app}-ready", env.name, labels=labels, annotations={
                **interval, "healthcheck.kuberik.com/kustomization": s.app,
            }),
            "spec": {"class": "kustomization"},
        }),
        (HEALTHCHECKS, {
            "metadata": _meta(f"{s.app}-alerts", env.name, labels=labels, annotations={
                **interval,
                "healthcheck.kuberik.com/prometheus-url": services.prometheus_url,
                "healthcheck.kuberik.com/prometheus-alert-labels": alert_labels,
            }),
            "spec": {"class": "prometheus-alert"},
        }),
    ]  # fmt: skip


def _environment(s: Scenario, env: Environment) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "rolloutRef": {"name": s.app},
        "name": s.app,
        "environment": env.name,
        "backend": {"type": "kubernetes"},
    }
    if env.upstream:
        spec["relationship"] = {"environment": env.upstream, "type": "After"}
    return {"metadata": _meta(s.app, env.name), "spec": spec}


def _schedule(s: Scenario, env: Environment) -> dict[str, Any] | None:
    if env.window is None:
        return None
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
    rule = {
        "name": "business-hours",
        "timeRange": {"start": env.window[0], "end": env.window[1]},
        "daysOfWeek": days,
    }
    return {
        "metadata": _meta("business-hours", env.name),
        "spec": {
            "rolloutSelector": {"matchLabels": {"app": s.app}},
            "rules": [rule],
            "timezone": s.timezone,
            "action": "Allow",
        },
    }


def settled(api: EmulatedApi, s: Scenario) -> bool:
    """Whether the controller has made every gate of the world (schedules', environments')."""
    for env in s.environments:
        gates = api.list_objects(GATES, env.name)
        if env.window is not None and not any(
            "gate.kuberik.com/schedule-name" in (g["metadata"].get("labels") or {}) for g in gates
        ):
            return False
        environment = api.get_object(ENVIRONMENTS, env.name, s.app) or {}
        ref = ((environment.get("status") or {}).get("rolloutGateRef") or {}).get("name")
        if env.upstream and (not ref or api.get_object(GATES, env.name, ref) is None):
            return False
    return True


async def build(api: EmulatedApi, s: Scenario, services: Services) -> None:
    """Creates every object of the world, the initial release running everywhere."""
    digest = services.registry.push(
        s.app, s.initial, revision(s.initial), s.start - timedelta(days=2)
    )
    initial = {
        "tag": s.initial,
        "digest": digest,
        "version": s.initial.removeprefix("v"),
        "revision": revision(s.initial),
        "created": format_timestamp(s.start - timedelta(days=2)),
    }
    for env in s.environments:
        await api.create_object(
            "namespaces", {"metadata": {"name": env.name, "labels": {"tier": env.name}}}
        )
        objects = _flux(s, env, services, s.initial) + _checks(s, env, services)
        objects.append((ENVIRONMENTS, _environment(s, env)))
        schedule = _schedule(s, env)
        if schedule is not None:
            objects.append((SCHEDULES, schedule))
        for kind, body in objects:
            await api.create_object(kind, body)
        await api.create_object(ROLLOUTS, _rollout(s, env, initial, s.start))
