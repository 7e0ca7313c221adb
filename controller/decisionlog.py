"""DecisionLog: a bounded, non-blocking NDJSON sink for decision lines, with size-based rotation.

Callers: ``main`` builds one for ``--decision-log`` and runs its writer task;
``reconciling`` offers lines (it decides which, POLICY-FORMATS.md §7). It must
never block or slow a reconcile: ``offer`` only appends to a bounded buffer and
drops (and counts) what does not fit. Files are written off the event loop;
at ``max_bytes`` the file is renamed to ``<path>.1`` (replacing it) and a new
one is started.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from pathlib import Path
from typing import BinaryIO

LOG = logging.getLogger("tidegate.decisionlog")
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_PENDING = 10_000


class DecisionLog:
    """Appends offered NDJSON lines to ``path`` from a writer task; never blocks the caller."""

    def __init__(
        self,
        path: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"DecisionLog max_bytes={max_bytes!r} must be >= 1")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_pending = max_pending
        self._pending: deque[bytes] = deque()
        self._wakeup = asyncio.Event()
        self._file_lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._size = 0
        self.dropped = 0
        """Lines refused because the buffer was full or the line was not one line."""
        self.written = 0
        """Lines written to disk."""

    def offer(self, line: str) -> bool:
        """Queues one JSON line for writing; False (and counted) when it was dropped."""
        text = line.rstrip("\n")
        if "\n" in text or len(self._pending) >= self.max_pending:
            self.dropped += 1
            return False
        self._pending.append(text.encode("utf-8") + b"\n")
        self._wakeup.set()
        return True

    @property
    def pending(self) -> int:
        """Lines offered and not yet written."""
        return len(self._pending)

    async def run(self) -> None:
        """Writes offered lines until cancelled; then writes what is left and closes the file."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                batch = self._take()
                if batch:
                    await asyncio.to_thread(self._write, batch)
        finally:
            self._write(self._take())
            self._close()

    def _take(self) -> list[bytes]:
        batch = list(self._pending)
        self._pending.clear()
        return batch

    def _write(self, batch: list[bytes]) -> None:
        with self._file_lock:
            try:
                for line in batch:
                    self._write_line(line)
                if self._file is not None:
                    self._file.flush()
            except OSError as exc:
                self.dropped += len(batch)
                LOG.error("cannot write decision log %s: %s", self.path, exc)
                self._close_unlocked()

    def _write_line(self, line: bytes) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
            self._size = self._file.tell()
        if self._size > 0 and self._size + len(line) > self.max_bytes:
            self._file.close()
            self.path.replace(self.path.with_name(self.path.name + ".1"))
            self._file = self.path.open("ab")
            self._size = 0
        self._file.write(line)
        self._size += len(line)
        self.written += 1

    def _close(self) -> None:
        with self._file_lock:
            self._close_unlocked()

    def _close_unlocked(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
