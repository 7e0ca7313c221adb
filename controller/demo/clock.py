"""The demo's accelerated clock: a ``Clock`` whose virtual time runs ``speed`` times faster.

Callers: ``demo.running`` builds one and hands it to the controller, the emulated
API, simulated Flux, the alert source and the scenario driver. Virtual time
starts at the scenario's fixed instant (so no wall clock is read) and follows
the event loop's monotonic time:

- ``speed`` N: ``now = start + N × real elapsed``;
- ``speed`` None (``--speed max``): time stands still while anything is in
  flight and jumps to the earliest sleeper's instant once the world has been
  quiet for ``QUIET_SECONDS`` (``run_jumps``). The order of what happens is the
  order of due instants, so a run is deterministic and as fast as the loop allows.

``hold``/``release`` stop virtual time in both modes while something that runs
on real time (a real Prometheus scraping) catches up.

It must not be used outside the demo, and never moves backwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

MAX_SLICE_SECONDS = 0.25
"""Linear mode sleeps in slices, so a sleeper notices a jump made by ``advance``."""
QUIET_SECONDS = 0.03
POLL_SECONDS = 0.01


@dataclass(eq=False)
class _Sleeper:
    when: datetime
    future: asyncio.Future[None] = field(repr=False)


class DemoClock:
    """Virtual time at ``speed`` × real time, or, with ``speed=None``, jumping when idle."""

    def __init__(self, start: datetime, speed: float | None) -> None:
        if start.tzinfo is None:
            raise ValueError("the demo clock needs an aware start instant")
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self._base = start
        self._real0: float | None = None
        self._sleepers: list[_Sleeper] = []
        self.holds = 0
        """While positive, virtual time stands still (something runs on real time)."""
        self._held = 0.0
        self._held_since: float | None = None

    def _loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    def now(self) -> datetime:
        if self.speed is None:
            return self._base
        try:
            real = self._loop_time()
        except RuntimeError:  # no running loop (reporting after the run)
            return self._base
        if self._real0 is None:
            self._real0 = real
        held = self._held + (real - self._held_since if self._held_since is not None else 0.0)
        return self._base + timedelta(seconds=(real - self._real0 - held) * self.speed)

    def hold(self) -> None:
        """Stops virtual time until the matching ``release`` (holds nest)."""
        self.holds += 1
        if self.holds == 1 and self.speed is not None:
            self._held_since = self._loop_time()

    def release(self) -> None:
        """Ends one ``hold``; time runs again when none is left."""
        self.holds -= 1
        if self.holds == 0 and self._held_since is not None:
            self._held += self._loop_time() - self._held_since
            self._held_since = None

    async def sleep_until(self, when: datetime) -> None:
        if self.speed is not None:
            while (remaining := (when - self.now()).total_seconds()) > 0:
                await asyncio.sleep(min(remaining / self.speed, MAX_SLICE_SECONDS))
            return
        if self.now() >= when:
            return
        sleeper = _Sleeper(when, asyncio.get_running_loop().create_future())
        self._sleepers.append(sleeper)
        try:
            await sleeper.future
        finally:
            if sleeper in self._sleepers:
                self._sleepers.remove(sleeper)

    def next_wakeup(self) -> datetime | None:
        """The earliest instant someone sleeps until (jumping mode)."""
        return min((s.when for s in self._sleepers if not s.future.done()), default=None)

    def advance_to(self, instant: datetime) -> None:
        """Jumping mode: moves virtual time to ``instant`` and wakes every sleeper now due."""
        if self.speed is not None or instant <= self._base:
            return
        self._base = instant
        for sleeper in list(self._sleepers):
            if sleeper.when <= instant and not sleeper.future.done():
                sleeper.future.set_result(None)

    async def run_jumps(self, activity: Callable[[], Hashable], busy: Callable[[], bool]) -> None:
        """Jumping mode, until cancelled: after a quiet spell, jump to the next wakeup.

        ``activity`` returns a value that changes whenever anything happened (requests,
        writes); ``busy`` is true while a request is being served.
        """
        if self.speed is not None:
            return
        loop = asyncio.get_running_loop()
        seen, quiet_since = activity(), loop.time()
        while True:
            await asyncio.sleep(POLL_SECONDS)
            now_seen = activity()
            if now_seen != seen or busy() or self.holds:
                seen, quiet_since = now_seen, loop.time()
                continue
            if loop.time() - quiet_since < QUIET_SECONDS:
                continue
            wakeup = self.next_wakeup()
            if wakeup is not None:
                self.advance_to(wakeup)
                quiet_since = loop.time()
