"""ManualClock: a Clock test double that moves only when a test moves it.

Callers: controller unit tests and the behaviour-test harness. It implements
``evaluators.base.Clock``; ``advance``/``set`` may be called from any thread and wake
``sleep_until`` waiters in whichever event loop they wait in. Time never goes backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass(eq=False)
class _Waiter:
    when: datetime
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


class ManualClock:
    """A thread-safe manual clock (aware UTC)."""

    def __init__(self, start: datetime = T0) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware start instant")
        self._now = start.astimezone(UTC)
        self._lock = threading.Condition()
        self._waiters: list[_Waiter] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    async def sleep_until(self, when: datetime) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._now >= when:
                return
            waiter = _Waiter(when, loop, future)
            self._waiters.append(waiter)
            self._lock.notify_all()
        try:
            await future
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                self._lock.notify_all()

    def advance(self, delta: timedelta) -> datetime:
        """Moves the clock forward by ``delta`` and wakes every sleeper now due."""
        if delta < timedelta(0):
            raise ValueError(f"ManualClock cannot go backwards ({delta})")
        with self._lock:
            target = self._now + delta
        return self.set(target)

    def set(self, instant: datetime) -> datetime:
        """Moves the clock forward to ``instant`` and wakes every sleeper now due."""
        with self._lock:
            if instant < self._now:
                raise ValueError(f"ManualClock cannot go back from {self._now} to {instant}")
            self._now = instant
            due = [w for w in self._waiters if w.when <= instant]
            for waiter in due:
                self._waiters.remove(waiter)
            self._lock.notify_all()
        for waiter in due:
            with contextlib.suppress(RuntimeError):  # a closed loop has no waiters left
                waiter.loop.call_soon_threadsafe(_wake, waiter.future)
        return instant

    @property
    def sleepers(self) -> int:
        """How many ``sleep_until`` calls are waiting right now."""
        with self._lock:
            return len(self._waiters)

    def next_wakeup(self) -> datetime | None:
        """The earliest instant a sleeper waits for, if any."""
        with self._lock:
            return min((w.when for w in self._waiters), default=None)

    def wait_for_sleeper(self, until: datetime | None = None, timeout: float = 10.0) -> bool:
        """Blocks (from another thread) until someone sleeps until ``until`` or earlier.

        With ``until`` None: until anyone sleeps. Returns False on timeout.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while not any(until is None or w.when <= until for w in self._waiters):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
