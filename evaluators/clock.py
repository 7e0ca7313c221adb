"""SystemClock: the wall clock behind the ``Clock`` port; the only ``datetime.now()`` below cli.

Callers: ``tidegate run`` and ``tidegate record`` build one and pass it down.
Nothing else in evaluators or controller reads the time.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

MAX_SLEEP_SECONDS = 60.0
"""Long sleeps are taken in slices so a wall-clock jump (suspend, NTP step) is noticed."""


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        while (remaining := (when - self.now()).total_seconds()) > 0:
            await asyncio.sleep(min(remaining, MAX_SLEEP_SECONDS))
