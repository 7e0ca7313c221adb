"""The delay queue: de-duplication, earliest-wins scheduling, one run per key, backoff, scale."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from clocks import T0, ManualClock

from controller.queueing import Backoff, DelayQueue

S = timedelta(seconds=1)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(scenario(), timeout=20)

    asyncio.run(bounded())


async def until(predicate: Callable[[], bool], what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@asynccontextmanager
async def running(queue: DelayQueue[str]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(queue.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class Recorder:
    """A handler that records (key, clock time) and returns what ``plan`` says."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, datetime]] = []
        self.results: dict[str, list[datetime | Exception | None]] = {}

    async def __call__(self, key: str) -> datetime | None:
        self.calls.append((key, self.clock.now()))
        planned = self.results.get(key)
        outcome = planned.pop(0) if planned else None
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def count(self, key: str) -> int:
        return sum(1 for k, _ in self.calls if k == key)


def test_repeated_enqueues_before_a_run_collapse_into_one_run() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        handler = Recorder(clock)
        queue = DelayQueue(clock, handler, workers=2)
        for _ in range(3):
            queue.enqueue("a")
        queue.enqueue("b")
        async with running(queue):
            await until(lambda: len(handler.calls) == 2, "two runs")
            await queue.idle()
            await settle()
        assert sorted(k for k, _ in handler.calls) == ["a", "b"]

    run(scenario)


def test_the_earliest_requested_instant_wins() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        handler = Recorder(clock)
        queue = DelayQueue(clock, handler)
        async with running(queue):
            queue.enqueue("a", T0 + 10 * S)
            await until(lambda: clock.next_wakeup() == T0 + 10 * S, "timer at +10 s")
            queue.enqueue("a", T0 + 5 * S)
            await until(lambda: clock.next_wakeup() == T0 + 5 * S, "timer woken for +5 s")
            assert clock.sleepers == 1
            queue.enqueue("a", T0 + 20 * S)  # later: does not postpone
            clock.advance(4 * S)
            await settle()
            assert handler.calls == []
            clock.advance(1 * S)
            await until(lambda: handler.calls == [("a", T0 + 5 * S)], "the run at +5 s")
            clock.advance(30 * S)
            await settle()
            await queue.idle()
        assert handler.calls == [("a", T0 + 5 * S)]

    run(scenario)


def test_an_enqueue_during_a_run_schedules_exactly_one_more_run_after_it() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        release = asyncio.Event()
        active: Counter[str] = Counter()
        overlap: list[str] = []
        runs: list[str] = []

        async def handler(key: str) -> datetime | None:
            active[key] += 1
            if active[key] > 1:
                overlap.append(key)
            runs.append(key)
            if len(runs) == 1:
                await release.wait()
            active[key] -= 1
            return None

        queue = DelayQueue(clock, handler, workers=4)
        queue.enqueue("a")
        async with running(queue):
            await until(lambda: queue.running == 1, "first run in progress")
            queue.enqueue("a")
            queue.enqueue("a")
            await settle()
            assert runs == ["a"]
            release.set()
            await until(lambda: len(runs) == 2, "the second run")
            await queue.idle()
            await settle()
        assert runs == ["a", "a"]
        assert overlap == []

    run(scenario)


def test_different_keys_run_concurrently_on_separate_workers() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        release = asyncio.Event()
        started: set[str] = set()

        async def handler(key: str) -> datetime | None:
            started.add(key)
            await release.wait()
            return None

        queue = DelayQueue(clock, handler, workers=2)
        queue.enqueue("a")
        queue.enqueue("b")
        queue.enqueue("c")
        async with running(queue):
            await until(lambda: started == {"a", "b"}, "two keys in parallel")
            assert queue.depth == 1
            release.set()
            await until(lambda: started == {"a", "b", "c"}, "the third key")

    run(scenario)


def test_a_returned_instant_requeues_the_key_then() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        handler = Recorder(clock)
        handler.results["a"] = [T0 + 30 * S, None]
        queue = DelayQueue(clock, handler)
        queue.enqueue("a")
        async with running(queue):
            await until(lambda: queue.due("a") == T0 + 30 * S, "requeue at +30 s")
            clock.advance(30 * S)
            await until(lambda: handler.count("a") == 2, "the requeued run")
            await queue.idle()
        assert handler.calls == [("a", T0), ("a", T0 + 30 * S)]
        assert queue.due("a") is None

    run(scenario)


def test_failures_back_off_exponentially_and_a_success_resets_the_backoff() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        handler = Recorder(clock)
        boom = RuntimeError("boom")
        handler.results["a"] = [boom, boom, boom, None, boom]
        errors: list[tuple[str, timedelta]] = []
        queue = DelayQueue(clock, handler, on_error=lambda k, e, d: errors.append((k, d)))
        queue.enqueue("a")
        async with running(queue):
            for n, delay in enumerate((1, 2, 4), start=1):
                await until(lambda n=n: len(errors) == n, f"failure {n}")  # type: ignore[misc]
                assert queue.failures("a") == n
                assert queue.due("a") == clock.now() + delay * S
                clock.advance(delay * S)
            await until(lambda: handler.count("a") == 4, "the successful run")
            await queue.idle()
            assert queue.failures("a") == 0
            queue.enqueue("a")
            await until(lambda: len(errors) == 4, "a failure after the success")
            assert queue.due("a") == clock.now() + 1 * S
        assert [d for _, d in errors] == [1 * S, 2 * S, 4 * S, 1 * S]

    run(scenario)


def test_backoff_doubles_from_one_second_up_to_five_minutes() -> None:
    delays = [Backoff().delay(n).total_seconds() for n in range(1, 12)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert Backoff().delay(10_000) == timedelta(minutes=5)


def test_ten_thousand_waiting_keys_share_one_timer() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        handler = Recorder(clock)
        queue = DelayQueue(clock, handler, workers=4)
        async with running(queue):
            for n in range(10_000):
                queue.enqueue(f"k{n}", T0 + timedelta(seconds=1 + n % 600))
            await until(lambda: clock.sleepers == 1, "one sleeping timer")
            assert queue.scheduled == 10_000
            assert clock.next_wakeup() == T0 + 1 * S
            clock.advance(timedelta(minutes=10))
            await until(lambda: len(handler.calls) == 10_000, "every key handled")
            await queue.idle()
        assert len({k for k, _ in handler.calls}) == 10_000
        assert queue.scheduled == 0

    run(scenario)


def test_stopping_cancels_every_task_and_later_enqueues_are_ignored() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        blocked = asyncio.Event()

        async def handler(key: str) -> datetime | None:
            await blocked.wait()
            return None

        before = asyncio.all_tasks()
        queue: DelayQueue[str] = DelayQueue(clock, handler, workers=3)
        queue.enqueue("a")
        queue.enqueue("b", T0 + 5 * S)
        task = asyncio.create_task(queue.run())
        await until(lambda: queue.running == 1, "a run in progress")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert asyncio.all_tasks() == before
        assert clock.sleepers == 0
        queue.enqueue("c")
        assert queue.depth == 0

    run(scenario)


def test_a_queue_needs_at_least_one_worker() -> None:
    async def handler(key: str) -> None:
        return None

    with pytest.raises(ValueError, match="workers=0"):
        DelayQueue(ManualClock(), handler, workers=0)
