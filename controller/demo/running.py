"""``run_demo``: builds the demo world, runs the real controller in it, plays the scenario.

Callers: ``controller.cli`` (the ``tidegate demo`` verb). Order: the clock, the
emulated API (kmock) on loopback, the registry/alert services (or a real
Prometheus, see ``demo.prometheus``), tidegate's CRDs and the world's objects,
then ``controller.main.run_controller`` exactly as ``tidegate run`` starts it
(pointed at the emulated API), simulated Flux, and the scenario driver. With
``keep`` the API, the controller and Flux stay up after the scenario, with a
kubeconfig written for kubectl, until ``stop`` is set (Ctrl-C). Returns the
exit code: 0 when every step happened, 1 when one did not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import kmock
import kopf

from controller.api import crds
from controller.api.kinds import kinds
from controller.demo import prometheus, world
from controller.demo.clock import DemoClock
from controller.demo.driver import Driver, StepFailed
from controller.demo.emulation import EmulatedApi
from controller.demo.flux import Flux
from controller.demo.recording import Recorder
from controller.demo.report import Report
from controller.demo.scenario import Scenario
from controller.demo.services import AlertBoard, Registry, Services
from controller.main import ControllerConfig, run_controller
from controller.stores import WATCHED_KINDS

LOG = logging.getLogger("tidegate.demo")
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class DemoOptions:
    """What ``tidegate demo`` was asked for."""

    scenario: Scenario
    speed: float | None
    keep: bool = False
    kubeconfig: Path | None = None
    alerts: str = "auto"
    """``auto`` (a real Prometheus when installed), ``prometheus`` or ``embedded``."""


async def run_demo(options: DemoOptions, report: Report, stop: asyncio.Event) -> int:
    """Runs the demo; returns the exit code (0: the whole story happened)."""
    s = options.scenario
    clock = DemoClock(s.start, options.speed)
    api = EmulatedApi(clock)
    board = AlertBoard(clock, s.app)
    services = Services(board, Registry(), api.touch)
    recorder = Recorder(clock, board)
    api.listeners.append(recorder.on_event)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(api)
        server = await stack.enter_async_context(kmock.Server(api))
        await services.start()
        stack.push_async_callback(services.stop)
        source = await stack.enter_async_context(prometheus.alert_source(options.alerts, services))
        report.start(s, options, str(server.url), source, clock)
        recorder.subscribers.append(report.record)
        for kind in kinds():
            await api.create_object(
                "customresourcedefinitions.apiextensions.k8s.io", crds.crd(kind)
            )
        await world.build(api, s, services)
        flux = Flux(
            api, clock, s, services.registry, board,
            settle=lambda env, firing: source.settle(clock, env, firing),
        )  # fmt: skip
        stopping = asyncio.Event()
        controller = asyncio.create_task(
            _controller(api, str(server.url), clock, services, stopping)
        )
        background = [
            asyncio.create_task(flux.run(), name="demo-flux"),
            asyncio.create_task(
                clock.run_jumps(lambda: (api.requests, api.writes), lambda: api.inflight > 0)
            ),
            asyncio.create_task(report.run(), name="demo-view"),
        ]
        try:
            await _settle(api, s, report)
            code = await _play(Driver(api, clock, flux, recorder, s), report, controller)
            if options.keep and code == 0:
                path = write_kubeconfig(options.kubeconfig, str(server.url))
                report.kept(path)
                await _until(stop, controller)
        finally:
            stopping.set()
            await asyncio.gather(controller, return_exceptions=True)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
    report.finish(code, api)
    return code


async def _play(driver: Driver, report: Report, controller: asyncio.Task[None]) -> int:
    play = asyncio.create_task(driver.play())
    await asyncio.wait({play, controller}, return_when=asyncio.FIRST_COMPLETED)
    if not play.done():
        play.cancel()
        await asyncio.gather(play, return_exceptions=True)
        failure = controller.exception() if not controller.cancelled() else None
        report.failed(f"the controller stopped: {failure!r}")
        return 1
    try:
        play.result()
    except StepFailed as exc:
        report.failed(str(exc))
        return 1
    return 0


async def _settle(api: EmulatedApi, s: Scenario, report: Report) -> None:
    """Waits (real time) until the controller made the world's gates, as a cluster running
    for a while would have them before anyone pushes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT
    while not world.settled(api, s):
        if loop.time() > deadline:
            report.failed(f"the controller did not create the gates within {READY_TIMEOUT:g} s")
            return
        await api.changed(0.2)


async def _until(stop: asyncio.Event, controller: asyncio.Task[None]) -> None:
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, controller}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


async def _controller(
    api: EmulatedApi, url: str, clock: DemoClock, services: Services, stop: asyncio.Event
) -> None:
    """``run_controller`` as ``tidegate run`` runs it, on the emulated API and demo clock."""
    config = ControllerConfig(
        credentials=kopf.ConnectionInfo(server=url, default_namespace="default"),
        workers=4,
        metrics_port=0,
        startup_jitter=timedelta(0),
        prometheus_url=services.prometheus_url,
        kinds=tuple(k for k in WATCHED_KINDS if k in api.by_key),
    )
    await run_controller(config, clock, stop=stop)


def write_kubeconfig(path: Path | None, url: str) -> Path:
    """A kubeconfig for the emulated API (plain HTTP on loopback, no credentials)."""
    import tempfile

    import yaml

    target = path or Path(tempfile.mkdtemp(prefix="tidegate-demo-")) / "kubeconfig"
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "tidegate-demo", "cluster": {"server": url.rstrip("/")}}],
        "users": [{"name": "demo", "user": {}}],
        "contexts": [
            {
                "name": "tidegate-demo",
                "context": {
                    "cluster": "tidegate-demo",
                    "user": "demo",
                    "namespace": "staging",
                },
            }
        ],
        "current-context": "tidegate-demo",
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return target
