"""The controller's composition root: builds the Runtime and runs kopf, the queue and the syncer.

Callers: ``controller.cli`` (``tidegate run``), the demo and the behaviour-test
harness, all through ``run_controller``. It wires; it decides nothing and
branches on nothing but its ``ControllerConfig``. Start-up order matters:
stores are primed by one LIST per kind *before* kopf starts (so kopf's own
initial listing finds nothing new), every Rollout is enqueued with jitter,
the queue and the syncer start, and only then kopf. Shutdown stops the queue
first, then kopf, then the metrics server and the HTTP client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import kopf

from controller import dependents
from controller.api.actions import ObjectKey
from controller.applying import ApiError, ApplyError, KindUnavailable, Writer
from controller.decisionlog import DEFAULT_MAX_BYTES, DecisionLog
from controller.handlers import Wiring, build_registry
from controller.metrics import Metrics, MetricsServer
from controller.policies import PolicyEngine
from controller.queueing import DelayQueue, Handler
from controller.reconciling import Runtime, reconcile
from controller.stores import WATCHED_KINDS, Stores
from evaluators import _http
from evaluators.base import Clock
from evaluators.github import DEFAULT_BASE_URL
from evaluators.oci import OciMetadataSource
from policy_engine import select_backend

LOG = logging.getLogger("tidegate.main")
PROGRESS_PREFIX = "kopf.tidegate.dev"
STOP_POLL_SECONDS = 0.05
Flag = threading.Event | asyncio.Event


@dataclass(frozen=True)
class ControllerConfig:
    """Everything ``run_controller`` needs besides the clock."""

    credentials: kopf.ConnectionInfo
    token_path: Path | None = None
    """Re-read the bearer token from this file (in-cluster service-account tokens rotate)."""
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty: the whole cluster."""
    workers: int = 4
    metrics_port: int = 8080
    """0: no metrics server."""
    metrics_host: str = "0.0.0.0"
    decision_log: Path | None = None
    decision_log_max_bytes: int = DEFAULT_MAX_BYTES
    startup_jitter: timedelta = timedelta(seconds=10)
    resync_interval: timedelta = timedelta(hours=1)
    cel_backend: str | None = None
    prometheus_url: str | None = None
    """The default Prometheus of ``prometheus-alert`` HealthChecks."""
    prometheus_allowed: tuple[str, ...] | None = None
    github_api_url: str = DEFAULT_BASE_URL
    """The GitHub REST API of Environments with ``backend.type: github``."""
    """URL prefixes HealthChecks may point at; None: any http(s) URL."""
    kinds: tuple[str, ...] = WATCHED_KINDS


def kopf_settings() -> kopf.OperatorSettings:
    """kopf settings per ARCHITECTURE.md §7: no progress in our objects, no k8s events."""
    settings = kopf.OperatorSettings()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PROGRESS_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PROGRESS_PREFIX, key="last-handled-configuration"
    )
    settings.posting.enabled = False
    settings.peering.standalone = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.watching.reconnect_backoff = 0.5
    settings.watching.chunk_size = 500
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    settings.process.ultimate_exiting_timeout = 60
    return settings


class Syncer:
    """Primes stores with one LIST per kind, re-lists kinds that appear late, resyncs hourly."""

    def __init__(
        self,
        writer: Writer,
        stores: Stores,
        queue: DelayQueue[ObjectKey],
        clock: Clock,
        config: ControllerConfig,
    ) -> None:
        self._writer, self._stores, self._queue = writer, stores, queue
        self._clock, self._config = clock, config
        self._requested: set[str] = set()
        self._wakeup = asyncio.Event()
        self._random = random.Random()
        self.primed = False

    async def prime(self, kind: str) -> bool:
        """Lists ``kind`` into the stores; False (logged) when it cannot be listed."""
        try:
            info = await self._writer.resource(kind)
            scopes: Sequence[str | None] = (
                self._config.namespaces if info.namespaced and self._config.namespaces else [None]
            )
            items, versions = [], []
            for namespace in scopes:
                listed, version = await self._writer.list_objects(kind, namespace)
                items += listed
                versions.append(version)
        except KindUnavailable:
            LOG.warning("%s is not served (CRD missing?); left unsynced until it appears", kind)
            return False
        except ApiError as exc:
            LOG.warning("cannot list %s: %s; left unsynced", kind, exc.message)
            return False
        for change in self._stores.replace_all(kind, items, _oldest(versions)):
            for key in dependents.affected_by_change(kind, change.old, change.new, self._stores):
                self._queue.enqueue(key)
        LOG.info("listed %d %s", len(items), kind)
        return True

    async def prime_all(self) -> None:
        """Lists every configured kind once; failures leave that kind unsynced."""
        for kind in self._config.kinds:
            await self.prime(kind)
        self.primed = True

    def enqueue_all(self) -> None:
        """Enqueues every stored queue key (Rollouts, HealthChecks, schedules) within the jitter."""
        now, spread = self._clock.now(), self._config.startup_jitter.total_seconds()
        for kind in dependents.QUEUE_KINDS:
            for obj in self._stores.list(kind):
                meta = obj["metadata"]
                at = now + timedelta(seconds=self._random.uniform(0, spread)) if spread else None
                self._queue.enqueue(ObjectKey(kind, meta.get("namespace"), meta["name"]), at)

    def request(self, kind: str) -> None:
        """Asks for a LIST of unsynced ``kind`` (its CRD or first object appeared after start)."""
        if kind in self._config.kinds and kind not in self._requested:
            self._requested.add(kind)
            self._wakeup.set()

    async def run_requests(self) -> None:
        """Serves ``request`` until cancelled; every key is re-enqueued after a late sync."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            for kind in sorted(self._requested):
                self._requested.discard(kind)
                if not self._stores.synced(kind) and await self.prime(kind):
                    self.enqueue_all()

    async def run_resync(self) -> None:
        """Every ``resync_interval`` on the clock: re-list every kind, re-enqueue every key."""
        while True:
            await self._clock.sleep_until(self._clock.now() + self._config.resync_interval)
            await self.prime_all()
            self.enqueue_all()


def _oldest(versions: Sequence[str | None]) -> str | None:
    """The oldest of several LIST resourceVersions (None when they cannot be compared)."""
    if len(versions) == 1:
        return versions[0]
    if versions and all(v is not None and v.isdigit() for v in versions):
        return str(min(int(v) for v in versions if v is not None))
    return None


def _reconciler(rt: Runtime, metrics: Metrics) -> Handler[ObjectKey]:
    async def handle(key: ObjectKey) -> datetime | None:
        try:
            again = await reconcile(key, rt)
        except Exception:
            metrics.count_reconcile("error")
            raise
        metrics.count_reconcile("ok")
        return again

    return handle


def _log_failure(key: ObjectKey, error: Exception, delay: timedelta) -> None:
    if isinstance(error, ApplyError):
        LOG.warning("reconcile %s: %s; retrying in %s", key, error.message, delay)
    else:
        LOG.error("reconcile %s failed; retrying in %s", key, delay, exc_info=error)


def _credentials(config: ControllerConfig) -> Callable[[], kopf.ConnectionInfo]:
    def current() -> kopf.ConnectionInfo:
        if config.token_path is None:
            return config.credentials
        token = config.token_path.read_text(encoding="utf-8").strip()
        return dataclasses.replace(config.credentials, token=token)

    return current


async def _wait_flag(flag: Flag | None) -> None:
    if flag is None:
        await asyncio.Event().wait()
    elif isinstance(flag, asyncio.Event):
        await flag.wait()
    else:
        while not flag.is_set():
            await asyncio.sleep(STOP_POLL_SECONDS)


async def run_controller(
    config: ControllerConfig,
    clock: Clock,
    *,
    ready: Flag | None = None,
    stop: Flag | None = None,
) -> None:
    """Runs the controller until ``stop`` is set or kopf exits (e.g. on SIGTERM).

    ``ready`` is set once the stores are primed, the queue runs and kopf has started.

    Raises:
        Exception: whatever made kopf fail (e.g. ``kopf.LoginError``).
    """
    stores, metrics = Stores(), Metrics()
    rt = _runtime(config, clock, stores, metrics)
    writer = rt.writer
    queue: DelayQueue[ObjectKey] = DelayQueue(
        clock, _reconciler(rt, metrics), workers=config.workers, on_error=_log_failure
    )
    metrics.track_queue_depth(lambda: queue.depth)
    metrics.track_stores(lambda: stores.summary(config.kinds))
    syncer = Syncer(writer, stores, queue, clock, config)
    server = _serve_metrics(config, metrics, lambda: syncer.primed)
    background: list[asyncio.Task[None]] = []
    operator: _Operator | None = None
    try:
        if await _stopped_before(syncer.prime_all(), stop):
            return
        syncer.enqueue_all()
        background = _start_background(queue, syncer, rt.decision_log)
        operator = _Operator(
            config, Wiring(stores, queue.enqueue, syncer.request, _credentials(config)), stop
        )
        await operator.run(ready)
    finally:
        await _cancel(background)  # the queue stops before kopf does
        if operator is not None:
            await operator.stop()
        if server is not None:
            server.stop()
        await writer.aclose()
        if rt.http is not None:
            await rt.http.aclose()
    if operator is not None:
        operator.raise_failure()


def _runtime(config: ControllerConfig, clock: Clock, stores: Stores, metrics: Metrics) -> Runtime:
    """The Writer, the engine and the outputs around ``stores``, wired into one Runtime."""
    writer = Writer.from_connection_info(
        config.credentials, clock, token_path=config.token_path, reader=stores, metrics=metrics
    )
    decision_log = None
    if config.decision_log is not None:
        decision_log = DecisionLog(config.decision_log, config.decision_log_max_bytes)
    http = _http.make_client()
    return Runtime(
        clock=clock,
        reader=stores,
        writer=writer,
        engine=PolicyEngine(select_backend(config.cel_backend).backend),
        decision_log=decision_log,
        metrics=metrics,
        http=http,
        oci=OciMetadataSource(http),
        prometheus_url=config.prometheus_url,
        prometheus_allowed=config.prometheus_allowed,
        github_api_url=config.github_api_url,
    )


async def _stopped_before(work: Coroutine[Any, Any, None], stop: Flag | None) -> bool:
    """Runs ``work`` unless ``stop`` comes first; True when stopped."""
    job = asyncio.create_task(work)
    stopper = asyncio.create_task(_wait_flag(stop))
    await asyncio.wait({job, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopped = not job.done()
    await _cancel([stopper, job] if stopped else [stopper])
    if not stopped:
        job.result()
    return stopped


async def _cancel(tasks: Sequence[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _serve_metrics(
    config: ControllerConfig, metrics: Metrics, healthy: Callable[[], bool]
) -> MetricsServer | None:
    if not config.metrics_port:
        return None
    return MetricsServer(
        metrics, config.metrics_port, host=config.metrics_host, healthy=healthy
    ).start()


def _start_background(
    queue: DelayQueue[ObjectKey], syncer: Syncer, decision_log: DecisionLog | None
) -> list[asyncio.Task[None]]:
    tasks = [
        asyncio.create_task(queue.run(), name="tidegate-queue"),
        asyncio.create_task(syncer.run_requests(), name="tidegate-sync-requests"),
        asyncio.create_task(syncer.run_resync(), name="tidegate-resync"),
    ]
    if decision_log is not None:
        tasks.append(asyncio.create_task(decision_log.run(), name="tidegate-decision-log"))
    return tasks


class _Operator:
    """kopf's operator task with its flags.

    The waiters are created before kopf starts: kopf treats every task created
    after its start as its own and cancels leftovers only after a grace period.
    """

    def __init__(self, config: ControllerConfig, wiring: Wiring, stop: Flag | None) -> None:
        self._started, self._stop = asyncio.Event(), asyncio.Event()
        self._started_waiter = asyncio.create_task(self._started.wait())
        self._stop_waiter = asyncio.create_task(_wait_flag(stop))
        self._task = asyncio.create_task(
            kopf.operator(
                registry=build_registry(wiring, config.kinds),
                settings=kopf_settings(),
                standalone=True,
                clusterwide=not config.namespaces,
                namespaces=list(config.namespaces),
                ready_flag=self._started,
                stop_flag=self._stop,
            ),
            name="tidegate-kopf",
        )

    async def run(self, ready: Flag | None) -> None:
        """Sets ``ready`` once kopf has started; returns on stop or when kopf exits."""
        await asyncio.wait({self._task, self._started_waiter}, return_when=asyncio.FIRST_COMPLETED)
        if self._started.is_set() and not self._task.done() and ready is not None:
            ready.set()
        await asyncio.wait({self._task, self._stop_waiter}, return_when=asyncio.FIRST_COMPLETED)

    async def stop(self) -> None:
        """Asks kopf to stop and waits for it."""
        self._stop.set()
        await _cancel([self._started_waiter, self._stop_waiter])
        await asyncio.gather(self._task, return_exceptions=True)

    def raise_failure(self) -> None:
        """Re-raises what made kopf fail, if anything."""
        if self._task.done() and not self._task.cancelled():
            failure = self._task.exception()
            if failure is not None:
                raise failure
