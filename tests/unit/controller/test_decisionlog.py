"""The decision log: offers never block, overflow is dropped and counted, files rotate by size."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from controller.decisionlog import DecisionLog


def line(n: int) -> str:
    return json.dumps({"n": n, "decision": "Allowed"})


async def written(log: DecisionLog, count: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while log.written < count:
        assert loop.time() < deadline, f"only {log.written} of {count} lines written"
        await asyncio.sleep(0.001)


def test_offered_lines_are_appended_as_ndjson(tmp_path: Path) -> None:
    path = tmp_path / "decisions.ndjson"

    async def scenario() -> None:
        log = DecisionLog(path)
        task = asyncio.create_task(log.run())
        assert log.offer(line(1))
        assert log.offer(line(2) + "\n")
        await written(log, 2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert [json.loads(t)["n"] for t in path.read_text().splitlines()] == [1, 2]


def test_a_full_buffer_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "d.ndjson", max_pending=3)
    results = [log.offer(line(n)) for n in range(5)]
    assert results == [True, True, True, False, False]
    assert log.dropped == 2
    assert log.pending == 3
    assert not log.offer('{"a":\n1}')
    assert log.dropped == 3


def test_lines_still_pending_at_shutdown_are_written(tmp_path: Path) -> None:
    path = tmp_path / "d.ndjson"

    async def scenario() -> None:
        log = DecisionLog(path)
        task = asyncio.create_task(log.run())
        await asyncio.sleep(0)
        for n in range(3):
            log.offer(line(n))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert len(path.read_text().splitlines()) == 3


def test_the_file_rotates_to_dot_one_at_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "d.ndjson"
    size = len(line(0)) + 1

    async def scenario() -> None:
        log = DecisionLog(path, max_bytes=size * 2)
        task = asyncio.create_task(log.run())
        for n in range(5):
            log.offer(line(n))
            await written(log, n + 1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    rotated = path.with_name("d.ndjson.1")
    assert [json.loads(t)["n"] for t in rotated.read_text().splitlines()] == [2, 3]
    assert [json.loads(t)["n"] for t in path.read_text().splitlines()] == [4]
