"""The demo's alert source: a real Prometheus when installed, else the embedded one, said clearly.

Callers: ``demo.running`` enters ``alert_source`` before the world is built (the
HealthChecks name its URL); ``demo.flux`` awaits ``settle`` after changing an
error ratio. A real Prometheus (``prometheus`` on PATH, Debian's package) runs on
a free loopback port with its data in a temporary directory, scrapes the demo's
``/metrics`` every second and evaluates the ``HighErrorRate`` rule every second;
it is stopped by PID on exit. Real Prometheus runs on real time: ``settle``
holds the demo clock until Prometheus agrees with the error ratio, so a fast
clock cannot outrun a scrape. Startup problems in ``auto`` mode fall back to
the embedded source (the reason is shown); in ``prometheus`` mode they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from controller.demo.clock import DemoClock
from controller.demo.services import ALERT_NAME, THRESHOLD, Services

READY_SECONDS = 20.0
SETTLE_SECONDS = 30.0
POLL_SECONDS = 0.1
EMBEDDED = "embedded alert source (not Prometheus): the rule 'error ratio > 5 %' on the demo clock"


class AlertSourceError(Exception):
    """A real Prometheus was asked for and cannot be used."""


@dataclass
class AlertSource:
    """What the HealthChecks ask, described for the screen."""

    description: str
    url: str | None = None
    """A real Prometheus' URL; None for the embedded source."""

    lookback: float = 15.0
    """Seconds a HealthCheck looks back for firings (its poll interval plus slack)."""

    async def settle(self, clock: DemoClock, env: str, firing: bool) -> None:
        """Holds ``clock`` until a real Prometheus agrees: ``env``'s alert fires, or it has
        not fired within the HealthChecks' lookback (which runs on real time there)."""
        if self.url is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_SECONDS
        selector = f'ALERTS{{alertname="{ALERT_NAME}",env="{env}",alertstate="firing"}}'
        query = selector if firing else f"last_over_time({selector}[{self.lookback:g}s])"
        clock.hold()
        try:
            async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as client:
                while loop.time() < deadline and await _present(client, query) != firing:
                    await asyncio.sleep(POLL_SECONDS)
        finally:
            clock.release()


async def _present(client: httpx.AsyncClient, query: str) -> bool | None:
    try:
        answer = (await client.get("/api/v1/query", params={"query": query})).json()
        return bool(answer["data"]["result"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


@contextlib.asynccontextmanager
async def alert_source(mode: str, services: Services) -> AsyncIterator[AlertSource]:
    """The alert source for ``mode`` (``auto``, ``prometheus``, ``embedded``), running."""
    binary = shutil.which("prometheus")
    if mode == "embedded" or (mode == "auto" and binary is None):
        reason = "" if mode == "embedded" else " (no prometheus on PATH)"
        yield AlertSource(EMBEDDED + reason)
        return
    if binary is None:
        raise AlertSourceError("prometheus is not installed (hint: apt-get install prometheus)")
    with tempfile.TemporaryDirectory(prefix="tidegate-demo-prometheus-") as root:
        try:
            process, url = await _start(binary, Path(root), services)
        except AlertSourceError as exc:
            if mode == "prometheus":
                raise
            yield AlertSource(f"{EMBEDDED} (Prometheus did not start: {exc})")
            return
        try:
            services.prometheus_url = url
            yield AlertSource(f"Prometheus (real server, {binary}) at {url}", url)
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 10)
            with contextlib.suppress(ProcessLookupError):
                process.kill()


async def _start(
    binary: str, root: Path, services: Services
) -> tuple[asyncio.subprocess.Process, str]:
    port = _free_port()
    (root / "rules.yml").write_text(_RULES, encoding="utf-8")
    (root / "prometheus.yml").write_text(_CONFIG.format(target=services.host), encoding="utf-8")
    log = (root / "prometheus.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={root / 'prometheus.yml'}",
        f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await _ready(process, url)
    except AlertSourceError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    return process, url


async def _ready(process: asyncio.subprocess.Process, url: str) -> None:
    """Ready, and the demo's exporter scraped once (so the rule has data)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_SECONDS
    query = {"query": 'up{job="demo"} == 1'}
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:
        while loop.time() < deadline:
            if process.returncode is not None:
                raise AlertSourceError(f"it exited with code {process.returncode}")
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
                answer = (await client.get("/api/v1/query", params=query)).json()
                if answer["data"]["result"]:
                    return
            await asyncio.sleep(POLL_SECONDS)
    raise AlertSourceError(f"not ready with a first scrape after {READY_SECONDS:g} s")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: demo
    static_configs: [{{targets: ["{target}"]}}]
"""
_RULES = f"""\
groups:
  - name: demo
    interval: 1s
    rules:
      - alert: {ALERT_NAME}
        expr: demo_error_ratio > {THRESHOLD}
        labels: {{severity: page}}
        annotations: {{summary: "error ratio above 5 %"}}
"""
