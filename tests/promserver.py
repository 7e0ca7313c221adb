"""Real Prometheus and a test-controlled exporter, as importable helpers.

Callers: the ``prometheus_server`` fixture of tests/integration and the
controller behaviour tests. Starts the Debian ``prometheus`` binary on a free
loopback port, waits for readiness with a deadline, stops it by PID. A missing
binary fails with the install hint. Nothing here is imported by non-test code.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

import pytest

READY_TIMEOUT = 30.0
ALERT_LABELS = {"app": "checkout", "severity": "critical", "namespace": "shop"}
ALERT_NAME = "TidegateAlways"
RATE_ALERT = "TidegateErrorRateHigh"


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], bool], timeout: float = READY_TIMEOUT) -> None:
    """Polls ``check`` until true; fails the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}")


def _get_json(url: str) -> Any:
    try:
        with urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except (URLError, OSError, ValueError):
        return None


class _Server:
    """A ThreadingHTTPServer on a free loopback port, served from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.port: int = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@dataclass
class Exporter:
    """Serves ``/metrics`` in the Prometheus text format; the test sets the values."""

    samples: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: _Server | None = None

    def set(self, series: str, value: float) -> None:
        """Sets ``series`` (``name`` or ``name{label="v"}``) to ``value``."""
        with self.lock:
            self.samples[series] = value

    def render(self) -> bytes:
        with self.lock:
            lines = [f"{series} {value!r}" for series, value in sorted(self.samples.items())]
        return ("\n".join(lines) + "\n").encode()

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"


def _exporter_handler(exporter: Exporter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exporter.render() if self.path == "/metrics" else b"not found\n"
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@dataclass(frozen=True)
class PrometheusServer:
    """A running Prometheus: base URL, its scrape target and its log file."""

    base_url: str
    exporter: Exporter
    log_path: Path


def prometheus_process(root: Path) -> Iterator[PrometheusServer]:
    """The Debian ``prometheus`` binary with an always-firing alert and a test exporter.

    ``TidegateErrorRateHigh`` fires while the exporter's ``tidegate_checkout_error_ratio``
    is above 0.5, so a test can make an alert fire and clear.
    """
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus not installed: apt-get install prometheus")
    exporter = Exporter()
    exporter.set("tidegate_checkout_error_ratio", 0.25)
    exporter.set('tidegate_requests_total{path="/a"}', 1.0)
    exporter.set('tidegate_requests_total{path="/b"}', 2.0)
    exporter.server = _Server(_exporter_handler(exporter))
    labels = "\n".join(f"          {k}: {v}" for k, v in ALERT_LABELS.items())
    (root / "rules.yml").write_text(
        "groups:\n"
        "  - name: tidegate-tests\n"
        "    rules:\n"
        f"      - alert: {ALERT_NAME}\n"
        "        expr: vector(1)\n"
        "        labels:\n"
        f"{labels}\n"
        "        annotations:\n"
        "          summary: always firing\n"
        f"      - alert: {RATE_ALERT}\n"
        "        expr: tidegate_checkout_error_ratio > 0.5\n"
        "        labels:\n"
        f"{labels}\n"
    )
    (root / "prometheus.yml").write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "rule_files:\n"
        f"  - {root / 'rules.yml'}\n"
        "scrape_configs:\n"
        "  - job_name: exporter\n"
        "    static_configs:\n"
        f"      - targets: ['{exporter.address}']\n"
    )
    port = free_port()
    log_path = root / "prometheus.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"

    def alive(check: Callable[[], bool]) -> Callable[[], bool]:
        def probe() -> bool:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited with {process.returncode}:\n{_tail(log_path)}")
            return check()

        return probe

    def ready() -> bool:
        try:
            with urlopen(f"{base_url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (URLError, OSError):
            return False

    def alert_firing() -> bool:
        doc = _get_json(f"{base_url}/api/v1/alerts")
        alerts = (doc or {}).get("data", {}).get("alerts", [])
        return any(a["labels"].get("alertname") == ALERT_NAME for a in alerts)

    def scraped() -> bool:
        doc = _get_json(f"{base_url}/api/v1/query?query=tidegate_checkout_error_ratio")
        return bool((doc or {}).get("data", {}).get("result"))

    try:
        wait_for("prometheus /-/ready", alive(ready))
        wait_for(f"alert {ALERT_NAME} in /api/v1/alerts", alive(alert_firing))
        wait_for("the first scrape of the test exporter", alive(scraped))
        yield PrometheusServer(base_url, exporter, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        exporter.server.close()


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
