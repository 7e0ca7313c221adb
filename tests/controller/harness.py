"""ControllerHarness: the real controller (``run_controller``) in a background thread, for tests.

Callers: controller behaviour tests. The controller runs on its own event loop
in a thread, against a real apiserver, on a ``ManualClock`` the test drives.
``__enter__`` returns once the controller is ready (stores primed, queue and
kopf running); ``__exit__`` stops it through its stop flag and joins the
thread, re-raising whatever made the controller fail. Nothing here may be
imported by non-test code.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar
from urllib.error import HTTPError
from urllib.request import urlopen

from clocks import ManualClock
from kubecluster import free_port

from controller import credentials
from controller.main import ControllerConfig, run_controller
from controller.stores import WATCHED_KINDS

T = TypeVar("T")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class ControllerError(AssertionError):
    """The controller failed to start, crashed, or did not stop in time."""


class ControllerHarness:
    """Runs ``run_controller`` with ``kubeconfig`` on ``clock``, watching ``namespace`` (or all)."""

    def __init__(
        self,
        kubeconfig: Path,
        clock: ManualClock,
        namespace: str | None = None,
        *,
        workers: int = 2,
        decision_log: Path | None = None,
        metrics: bool = False,
        resync_interval: timedelta = timedelta(hours=1),
        kinds: tuple[str, ...] = WATCHED_KINDS,
    ) -> None:
        self.clock = clock
        self.metrics_port = free_port() if metrics else 0
        self.config = ControllerConfig(
            credentials=credentials.from_kubeconfig(kubeconfig),
            namespaces=(namespace,) if namespace else (),
            workers=workers,
            metrics_port=self.metrics_port,
            metrics_host="127.0.0.1",
            decision_log=decision_log,
            startup_jitter=timedelta(0),
            resync_interval=resync_interval,
            kinds=kinds,
        )
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="tidegate-controller", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> ControllerHarness:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready.wait(0.05):
            if not self._thread.is_alive():
                raise ControllerError(f"the controller exited during start: {self.error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise ControllerError(f"the controller was not ready after {START_TIMEOUT} s")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stops the controller and joins its thread; raises what made it fail, if anything."""
        self._stop.set()
        self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():
            raise ControllerError(f"the controller did not stop within {STOP_TIMEOUT} s")
        if self.error is not None:
            error, self.error = self.error, None
            raise ControllerError(f"the controller failed: {error!r}") from error

    def wait_until(
        self, predicate: Callable[[], T], timeout: float = 30.0, what: str = "the condition"
    ) -> T:
        """Polls ``predicate`` until it returns something truthy; fails if the controller dies."""
        return wait_until(predicate, timeout, what, alive=self._alive)

    def scrape(self, path: str = "/metrics") -> tuple[int, str]:
        """GETs ``path`` from the metrics server (needs ``metrics=True``): (status, body)."""
        if not self.metrics_port:
            raise ControllerError("this harness runs without a metrics server (metrics=False)")
        try:
            with urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except HTTPError as err:
            return err.code, err.read().decode()

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample on /metrics, or None when it is absent."""
        selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        wanted = f"{name}{{{selector}}}" if labels else name
        for line in self.scrape()[1].splitlines():
            sample, _, value = line.rpartition(" ")
            if sample == wanted:
                return float(value)
        return None

    def _alive(self) -> None:
        if not self._thread.is_alive():
            raise ControllerError(f"the controller is not running: {self.error!r}")

    def _main(self) -> None:
        try:
            asyncio.run(run_controller(self.config, self.clock, ready=self._ready, stop=self._stop))
        except BaseException as exc:  # reported by stop()/__enter__ in the test's thread
            self.error = exc
        finally:
            _collect_orphans()


def _collect_orphans() -> None:
    """Garbage-collects what the controller's closed event loop left behind, quietly.

    kopf's aiohttp session now and then orphans a TLS connection (an
    ``SSLProtocol`` whose raw socket is never closed) when the operator stops
    about a second after starting. Left alone, it is collected later, in
    whichever test runs then, as an unraisable ResourceWarning that fails that
    test under ``-W error``. Collected here, while the test thread waits in
    ``join``, it cannot be blamed on an unrelated test.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    what: str = "the condition",
    *,
    interval: float = 0.05,
    alive: Callable[[], None] | None = None,
) -> T:
    """Polls ``predicate`` every ``interval`` s until truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
