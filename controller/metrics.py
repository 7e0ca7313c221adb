"""Metrics: the controller's prometheus_client registry, its instruments and the /metrics server.

Callers: ``main`` builds one ``Metrics`` per Runtime and serves it with
``MetricsServer``; ``reconciling``, ``applying`` and the queue wiring record
into it. No metric has a per-Rollout label (ARCHITECTURE.md §7, §13); the
registry is owned by the Runtime, never the process-global default.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

LOG = logging.getLogger("tidegate.metrics")
STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The controller's instruments, registered in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.reconcile_duration = Histogram(
            "tidegate_reconcile_duration_seconds",
            "Time spent in each step of a reconcile (observe, evaluate, plan, apply, total).",
            ["step"],
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.reconciles = Counter(
            "tidegate_reconciles",
            "Reconciles finished, by result (ok, error).",
            ["result"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "tidegate_queue_depth",
            "Keys due now and waiting for a worker.",
            registry=self.registry,
        )
        self.apply_errors = Counter(
            "tidegate_apply_errors",
            "Failed writes to the Kubernetes API, by kind (conflict, retryable, permanent).",
            ["kind"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "tidegate_decisions",
            "Decisions taken for Rollouts, by decision (Allowed, Pending, Blocked).",
            ["decision"],
            registry=self.registry,
        )

    def observe_step(self, step: str, seconds: float) -> None:
        """Records that reconcile step ``step`` took ``seconds``."""
        self.reconcile_duration.labels(step=step).observe(seconds)

    def time_step(self, step: str) -> AbstractContextManager[Any]:
        """A context manager timing one reconcile step (monotonic timer, not the Clock)."""
        return self.reconcile_duration.labels(step=step).time()

    def count_reconcile(self, result: str) -> None:
        """Counts one finished reconcile with ``result``."""
        self.reconciles.labels(result=result).inc()

    def count_apply_error(self, kind: str) -> None:
        """Counts one failed API write of ``kind`` (conflict, retryable, permanent)."""
        self.apply_errors.labels(kind=kind).inc()

    def count_decision(self, decision: str) -> None:
        """Counts one decision (Allowed, Pending, Blocked)."""
        self.decisions.labels(decision=decision).inc()

    def track_queue_depth(self, depth: Callable[[], float]) -> None:
        """Reads the queue depth from ``depth`` at every scrape."""
        self.queue_depth.set_function(depth)

    def track_stores(self, kinds: Callable[[], Mapping[str, tuple[int, bool]]]) -> None:
        """Reads ``{kind: (objects, synced)}`` from ``kinds`` at every scrape."""
        self.registry.register(_StoreCollector(kinds))

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    """tidegate_store_objects{kind} and tidegate_store_synced{kind}, read at scrape time."""

    def __init__(self, kinds: Callable[[], Mapping[str, tuple[int, bool]]]) -> None:
        self._kinds = kinds

    def collect(self) -> Iterable[Metric]:
        objects = GaugeMetricFamily(
            "tidegate_store_objects", "Objects held in the watch-fed stores.", labels=["kind"]
        )
        synced = GaugeMetricFamily(
            "tidegate_store_synced", "1 once the kind has been listed completely.", labels=["kind"]
        )
        for kind, (count, done) in sorted(self._kinds().items()):
            objects.add_metric([kind], count)
            synced.add_metric([kind], 1 if done else 0)
        return [objects, synced]


class MetricsServer:
    """Serves ``/metrics`` and ``/healthz`` from a daemon thread (stdlib HTTP server)."""

    def __init__(
        self,
        metrics: Metrics,
        port: int,
        *,
        host: str = "0.0.0.0",  # scraped from outside the pod
        healthy: Callable[[], bool] = lambda: True,
    ) -> None:
        self._metrics = metrics
        self._healthy = healthy
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when constructed with port 0)."""
        if self._server is None:
            raise RuntimeError("MetricsServer is not started")
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        """Binds and starts serving; raises OSError when the port is taken."""
        server = ThreadingHTTPServer(self._address, self._handler_class())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="tidegate-metrics", daemon=True
        )
        self._thread.start()
        LOG.info("serving /metrics and /healthz on port %d", self.port)
        return self

    def stop(self) -> None:
        """Stops serving and closes the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        metrics, healthy = self._metrics, self._healthy

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, metrics.exposition(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok = healthy()
                    self._reply(200 if ok else 503, b"ok\n" if ok else b"starting\n")
                else:
                    self._reply(404, b"not found\n")

            def _reply(self, status: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                LOG.debug("metrics server: " + format, *args)

        return Handler
