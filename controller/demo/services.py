"""The demo's outside world on loopback: an OCI registry and an embedded alert source.

Callers: ``demo.running`` starts ``Services``; ``demo.flux`` pushes manifests
into it; the controller reads it exactly as it reads the real things: release
metadata through the OCI distribution API (``/v2/<repo>/manifests/<ref>``), and
``prometheus-alert`` HealthChecks through Prometheus' HTTP API (``/api/v1/alerts``
and ``/api/v1/query`` over the ``ALERTS`` series). The application's error rate
is also exported at ``/metrics`` for a real Prometheus to scrape.

The embedded alert source is not Prometheus: it answers only the ``ALERTS``
selectors the HealthChecks send (exact ``k="v"`` matchers, plus the
``last_over_time(...[Ns])`` lookback), from the rule "an environment's error
ratio is above 5 %" evaluated on the demo's clock. It must not be used outside
the demo.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from evaluators.base import Clock
from policy_engine.model.times import format_timestamp

ALERT_NAME = "HighErrorRate"
THRESHOLD = 0.05
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"]*)"')
_SPAN = re.compile(r"\[(\d+)s\]")


@dataclass
class _Firing:
    labels: dict[str, str]
    since: datetime
    until: datetime | None = None


@dataclass
class AlertBoard:
    """Per-environment error ratios and the alert history derived from them."""

    clock: Clock
    app: str
    ratios: dict[str, float] = field(default_factory=dict)
    firings: list[_Firing] = field(default_factory=list)

    def set_ratio(self, env: str, ratio: float) -> None:
        """The error ratio of ``env`` from now on; opens or closes its firing."""
        self.ratios[env] = ratio
        now = self.clock.now()
        open_ = [f for f in self.firings if f.labels["env"] == env and f.until is None]
        if ratio > THRESHOLD and not open_:
            labels = {"alertname": ALERT_NAME, "app": self.app, "env": env, "severity": "page"}
            self.firings.append(_Firing(labels, now))
        elif ratio <= THRESHOLD:
            for firing in open_:
                firing.until = now

    def active(self) -> list[dict[str, Any]]:
        """Alerts firing now, as ``/api/v1/alerts`` lists them."""
        return [
            {
                "labels": f.labels,
                "annotations": {"summary": f"error ratio of {f.labels['env']} above 5 %"},
                "state": "firing",
                "activeAt": format_timestamp(f.since),
                "value": str(self.ratios.get(f.labels["env"], 0.0)),
            }
            for f in self.firings
            if f.until is None
        ]

    def series(self, query: str) -> list[dict[str, str]]:
        """``ALERTS`` series matching the query's first selector, active or within its span."""
        matchers = dict(_MATCHER.findall(query.split("}", 1)[0]))
        span = _SPAN.search(query)
        since = self.clock.now() - timedelta(seconds=int(span.group(1)) if span else 0)
        found: dict[str, dict[str, str]] = {}
        for firing in self.firings:
            if firing.until is not None and firing.until < since:
                continue
            labels = {**firing.labels, "__name__": "ALERTS", "alertstate": "firing"}
            if all(labels.get(k) == v for k, v in matchers.items()):
                found[json.dumps(labels, sort_keys=True)] = labels
        return list(found.values())


@dataclass
class Registry:
    """Manifests by repository and tag, each with the OCI version annotations."""

    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def push(self, repository: str, tag: str, revision: str, created: datetime) -> str:
        """Stores the manifest of ``repository:tag``; returns its digest."""
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.tidegate.demo.v1",
            "config": {"mediaType": EMPTY_CONFIG, "digest": _EMPTY_DIGEST, "size": 2},
            "layers": [],
            "annotations": {
                "org.opencontainers.image.version": tag.removeprefix("v"),
                "org.opencontainers.image.revision": revision,
                "org.opencontainers.image.created": format_timestamp(created),
                "org.opencontainers.image.title": f"{repository} {tag}",
                "org.opencontainers.image.source": "https://example.com/tidegate-demo",
            },
        }
        body = json.dumps(document, sort_keys=True).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        self.manifests[(repository, tag)] = body
        self.manifests[(repository, digest)] = body
        return digest


_EMPTY_DIGEST = "sha256:" + hashlib.sha256(b"{}").hexdigest()


class Services:
    """One aiohttp app on loopback: the registry, the alert source and ``/metrics``."""

    def __init__(self, board: AlertBoard, registry: Registry, on_request: Callable[[], None]):
        self.board, self.registry = board, registry
        self._on_request = on_request
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.prometheus_url = ""
        """Where HealthChecks ask for alerts: a real Prometheus, else this app."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v2/", self._v2)
        app.router.add_route("*", "/v2/{repository:.+}/manifests/{reference}", self._manifest)
        app.router.add_get("/api/v1/alerts", self._alerts)
        app.router.add_route("*", "/api/v1/query", self._query)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])
        self.prometheus_url = self.prometheus_url or self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _v2(self, request: web.Request) -> web.Response:
        self._on_request()
        return web.json_response({})

    async def _manifest(self, request: web.Request) -> web.Response:
        self._on_request()
        key = (request.match_info["repository"], request.match_info["reference"])
        body = self.registry.manifests.get(key)
        if body is None:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404)
        headers = {
            "Content-Type": OCI_MANIFEST,
            "Docker-Content-Digest": "sha256:" + hashlib.sha256(body).hexdigest(),
        }
        if request.method == "HEAD":
            return web.Response(headers=headers | {"Content-Length": str(len(body))})
        return web.Response(body=body, headers=headers)

    async def _alerts(self, request: web.Request) -> web.Response:
        self._on_request()
        return web.json_response({"status": "success", "data": {"alerts": self.board.active()}})

    async def _query(self, request: web.Request) -> web.Response:
        self._on_request()
        query = request.query.get("query") or (await request.post()).get("query") or ""
        at = self.board.clock.now().timestamp()
        result = [{"metric": s, "value": [at, "1"]} for s in self.board.series(str(query))]
        data = {"resultType": "vector", "result": result}
        return web.json_response({"status": "success", "data": data})

    async def _metrics(self, request: web.Request) -> web.Response:
        self._on_request()
        lines = ["# TYPE demo_error_ratio gauge"]
        for env, ratio in sorted(self.board.ratios.items()):
            lines.append(f'demo_error_ratio{{app="{self.board.app}",env="{env}"}} {ratio}')
        return web.Response(text="\n".join(lines) + "\n")
