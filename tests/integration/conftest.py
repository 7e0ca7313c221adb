"""Real servers for integration tests: Prometheus, a test-controlled exporter, fault servers.

Session-scoped fixtures start real processes and loopback HTTP servers on free
ports, wait for readiness by polling with a deadline, and stop them by PID or
by shutting the server down. A missing server binary fails the test with the
install hint; it never skips.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from promserver import (  # noqa: F401
    ALERT_LABELS,
    ALERT_NAME,
    RATE_ALERT,
    READY_TIMEOUT,
    Exporter,
    PrometheusServer,
    _get_json,
    _Server,
    _tail,
    free_port,
    prometheus_process,
    wait_for,
)


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """The Debian ``prometheus`` binary with an always-firing alert and a test exporter."""
    yield from prometheus_process(tmp_path_factory.mktemp("prometheus"))


@dataclass
class FaultServer:
    """A loopback HTTP server whose first path segment picks a failure mode.

    ``/slow`` waits (until released at teardown), ``/status500`` answers 500,
    ``/malformed`` answers 200 with broken JSON, ``/huge`` streams 9 MiB without
    a length, ``/manyalerts`` lists 5 001 alerts.
    """

    server: _Server
    release: threading.Event

    def url(self, mode: str) -> str:
        return f"{self.server.base_url}/{mode}"


def _fault_handler(release: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            mode = self.path.split("/")[1]
            try:
                if mode == "slow":
                    release.wait(timeout=READY_TIMEOUT)
                    self._send(200, b'{"status":"success","data":{"alerts":[]}}')
                elif mode == "status500":
                    self._send(500, b"internal error\n")
                elif mode == "malformed":
                    self._send(200, b'{"status":"success","data":{"alerts":[')
                elif mode == "huge":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    chunk = b" " * (1024 * 1024)
                    for _ in range(9):
                        self.wfile.write(chunk)
                elif mode == "manyalerts":
                    alert = {
                        "labels": {"alertname": "Many"},
                        "annotations": {},
                        "state": "firing",
                        "activeAt": "2026-01-01T00:00:00Z",
                        "value": "1e+00",
                    }
                    doc = {"status": "success", "data": {"alerts": [alert] * 5001}}
                    self._send(200, json.dumps(doc).encode())
                else:
                    self._send(404, b"unknown mode\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="session")
def fault_server() -> Iterator[FaultServer]:
    """A loopback server that is slow, fails, or answers malformed or oversized bodies."""
    release = threading.Event()
    server = _Server(_fault_handler(release))
    try:
        yield FaultServer(server, release)
    finally:
        release.set()
        server.close()


@pytest.fixture
def free_loopback_url() -> str:
    """An http URL on a loopback port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"
