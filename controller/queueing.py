"""DelayQueue: a keyed, de-duplicating delay queue on the injected Clock, with workers and backoff.

Callers: ``main`` builds one around ``reconcile``; ``handlers`` and ``main``
enqueue keys. It must not decide what a key means, read the wall clock
(only the injected ``Clock``) or hold a timer per key: idle keys cost one heap
entry, and a single timer task sleeps until the earliest one.

Semantics:
- ``enqueue(key, at)``: the earliest requested instant wins; ``None`` = now.
- One run per key at a time; an enqueue during a run schedules one more run
  after it (at the requested instant).
- The handler returns when to run the key again (None: only on enqueue);
  an exception schedules a retry with per-key exponential backoff (1 s doubling
  up to 5 min), reset by the next success. The earliest of the two wins.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from evaluators.base import Clock

LOG = logging.getLogger("tidegate.queue")

K = TypeVar("K", bound=Hashable)
Handler = Callable[[K], Awaitable[datetime | None]]
ErrorHook = Callable[[K, Exception, timedelta], None]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Per-key retry delays: ``initial`` doubling per consecutive failure, capped at ``maximum``."""

    initial: timedelta = timedelta(seconds=1)
    maximum: timedelta = timedelta(minutes=5)

    def delay(self, failures: int) -> timedelta:
        """The delay after ``failures`` consecutive failures (``failures >= 1``)."""
        exponent = min(max(failures - 1, 0), 32)
        delay: timedelta = self.initial * (1 << exponent)
        return min(delay, self.maximum)


def _log_error(key: object, error: Exception, delay: timedelta) -> None:
    LOG.error("run of %s failed; retrying in %s", key, delay, exc_info=error)


class DelayQueue(Generic[K]):
    """Runs ``handler(key)`` for enqueued keys on ``workers`` tasks, each key at its due instant."""

    def __init__(
        self,
        clock: Clock,
        handler: Handler[K],
        *,
        workers: int = 4,
        backoff: Backoff | None = None,
        on_error: ErrorHook[K] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"DelayQueue workers={workers!r} must be >= 1")
        self._clock = clock
        self._handler = handler
        self._workers = workers
        self._backoff = backoff or Backoff()
        self._on_error: ErrorHook[K] = on_error or _log_error
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._ready_keys: set[K] = set()
        self._running: set[K] = set()
        self._rerun: dict[K, datetime] = {}
        self._due: dict[K, datetime] = {}
        self._heap: list[tuple[datetime, int, K]] = []
        self._sequence = itertools.count()
        self._failures: dict[K, int] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._timer: asyncio.Task[None] | None = None
        self._timer_waiting = False
        self._rescheduling = False
        self._target: datetime | None = None
        self._closed = False

    # -- producers ------------------------------------------------------------------------------

    def enqueue(self, key: K, at: datetime | None = None) -> None:
        """Asks for a run of ``key`` at ``at`` (None: now); the earliest request wins."""
        if self._closed:
            return
        now = self._clock.now()
        when = now if at is None else at
        if key in self._running:
            previous = self._rerun.get(key)
            self._rerun[key] = when if previous is None else min(previous, when)
            return
        self._schedule(key, when, now)

    # -- observation ----------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Keys due now and waiting for a worker."""
        return len(self._ready_keys)

    @property
    def scheduled(self) -> int:
        """Keys waiting for a future instant."""
        return len(self._due)

    @property
    def running(self) -> int:
        """Keys being handled right now."""
        return len(self._running)

    def due(self, key: K) -> datetime | None:
        """When ``key`` is scheduled to run next, if it waits for a future instant."""
        return self._due.get(key)

    def failures(self, key: K) -> int:
        """Consecutive failed runs of ``key`` (0 after a success)."""
        return self._failures.get(key, 0)

    async def idle(self) -> None:
        """Returns once no key is due now or running (scheduled future keys do not count)."""
        await self._idle.wait()

    # -- running --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Runs the timer and the workers until cancelled, then stops them all."""
        tasks = [asyncio.create_task(self._time(), name="tidegate-queue-timer")]
        self._timer = tasks[0]
        tasks += [
            asyncio.create_task(self._work(), name=f"tidegate-queue-worker-{n}")
            for n in range(self._workers)
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            self._closed = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._timer = None

    def _schedule(self, key: K, when: datetime, now: datetime) -> None:
        if key in self._ready_keys:
            return
        if when <= now:
            self._due.pop(key, None)
            self._make_ready(key)
            return
        current = self._due.get(key)
        if current is not None and current <= when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._sequence), key))
        if len(self._heap) > 2 * len(self._due) + 64:
            self._compact()
        if self._target is None or when < self._target:
            self._wake_timer()

    def _make_ready(self, key: K) -> None:
        self._ready_keys.add(key)
        self._idle.clear()
        self._ready.put_nowait(key)

    def _compact(self) -> None:
        self._heap = [(when, next(self._sequence), key) for key, when in self._due.items()]
        heapq.heapify(self._heap)

    def _release(self, now: datetime) -> None:
        """Moves every key due at ``now`` to the ready queue; drops stale heap entries."""
        while self._heap and self._heap[0][0] <= now:
            when, _, key = heapq.heappop(self._heap)
            if self._due.get(key) == when:
                del self._due[key]
                if key not in self._ready_keys:
                    self._make_ready(key)
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)

    def _wake_timer(self) -> None:
        """Cancels the timer's current sleep so it re-reads the earliest due instant."""
        timer = self._timer
        if timer is None or not self._timer_waiting or self._rescheduling:
            return
        self._rescheduling = True
        timer.cancel(msg="reschedule")

    async def _time(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        forever = asyncio.Event()
        while True:
            self._release(self._clock.now())
            self._target = self._heap[0][0] if self._heap else None
            self._timer_waiting = True
            try:
                if self._target is None:
                    await forever.wait()
                else:
                    await self._clock.sleep_until(self._target)
            except asyncio.CancelledError:
                if not self._rescheduling or task.cancelling() > 1:
                    raise
                task.uncancel()
            finally:
                self._timer_waiting = False
                self._rescheduling = False

    async def _work(self) -> None:
        while True:
            key = await self._ready.get()
            self._ready_keys.discard(key)
            self._running.add(key)
            again: datetime | None = None
            try:
                again = await self._run_one(key)
            finally:
                self._running.discard(key)
            rerun = self._rerun.pop(key, None)
            if rerun is not None and (again is None or rerun < again):
                again = rerun
            if again is not None and not self._closed:
                self._schedule(key, again, self._clock.now())
            if not self._ready_keys and not self._running:
                self._idle.set()

    async def _run_one(self, key: K) -> datetime | None:
        try:
            result = await self._handler(key)
        except Exception as error:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = self._backoff.delay(failures)
            self._on_error(key, error, delay)
            return self._clock.now() + delay
        self._failures.pop(key, None)
        return result
