"""A loopback HTTP proxy in front of the test kube-apiserver that injects faults on demand.

Callers: tests/controller/conftest.py (fixture ``fault_proxy``) and controller behaviour tests,
which point the controller at ``FaultProxy.kubeconfig(...)`` and then call ``fail``, ``delay``,
``drop_watches`` and read ``requests``. Clients speak plain HTTP to the proxy; it forwards to
the apiserver over HTTPS (trusting the cluster CA) and streams responses chunk by chunk, so
watches work. The client's bearer token is passed through, so RBAC sees the real identity.

It must not be imported by non-test code. It runs an asyncio loop (aiohttp server + client)
in one daemon thread; every public method is safe to call from the test thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import tempfile
import threading
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import aiohttp
from aiohttp import web
from kubecluster import Identity, KubeCluster, write_kubeconfig
from multidict import CIMultiDict

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "Timeout",
}
MAX_BODY = 32 * 1024 * 1024
_T = TypeVar("_T")


class ProxiedRequest(NamedTuple):
    """One request seen by the proxy: method, path (no query string), status answered."""

    method: str
    path: str
    status: int


@dataclass
class _Rule:
    method: str
    pattern: re.Pattern[str]
    remaining: int | None
    watch: bool | None

    def take(self, method: str, path: str, watch: bool) -> bool:
        """True (and one use consumed) when this rule applies to the request."""
        if self.remaining == 0 or self.method not in ("*", method):
            return False
        if self.watch is not None and self.watch != watch:
            return False
        if not self.pattern.search(path):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


@dataclass
class _Fail(_Rule):
    status: int = 500
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Delay(_Rule):
    seconds: float = 0.0


@dataclass
class _Watch:
    pump: asyncio.Task[None]
    request: web.Request
    abrupt: bool = False


def status_body(status: int, message: str | None = None, retry_after: int | None = None) -> bytes:
    """A Kubernetes ``Status`` object for an injected error."""
    reason = REASONS.get(status, "InternalError")
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message or f"{reason} (injected by the test fault proxy)",
        "reason": reason,
        "code": status,
    }
    if retry_after is not None:
        body["details"] = {"retryAfterSeconds": retry_after}
    return json.dumps(body).encode()


def _is_watch(request: web.Request) -> bool:
    flag = request.query.get("watch", "").lower()
    return flag in ("true", "1") or "/watch/" in request.path


class FaultProxy:
    """Forwards plain-HTTP loopback traffic to the cluster's apiserver, with injected faults."""

    def __init__(self, cluster: KubeCluster, workdir: Path | None = None) -> None:
        self.cluster = cluster
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="tidegate-proxy-"))
        self.port = 0
        self._lock = threading.Lock()
        self._fails: list[_Fail] = []
        self._delays: list[_Delay] = []
        self._log: list[ProxiedRequest] = []
        self._watches: dict[int, _Watch] = {}
        self._held = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ssl = ssl.create_default_context(cafile=str(cluster.ca_file))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        """Starts serving on a free loopback port (``url``); stops again if that fails."""
        self._thread.start()
        try:
            self._call(self._start())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubeconfig(self, identity: Identity = "controller") -> Path:
        """A kubeconfig reaching the apiserver through this proxy as ``identity``."""
        path = self.workdir / f"proxy-{identity}.kubeconfig"
        return write_kubeconfig(path, self.url, self.cluster.tokens[identity])

    def fail(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int | None = 1,
        body: str | Mapping[str, Any] | None = None,
        retry_after: int | None = None,
        watch: bool | None = None,
    ) -> None:
        """Answers the next ``times`` matching requests (None: all) with ``status``.

        ``method`` is an HTTP method or "*"; ``path_regex`` is searched in the path (no query).
        The body is a Kubernetes Status (or ``body``); 429 gets ``Retry-After`` (default 1 s).
        ``watch`` True/False limits the rule to watch/non-watch requests.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        if body is None:
            raw = status_body(status, retry_after=retry_after)
        else:
            raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        rule = _Fail(method.upper(), re.compile(path_regex), times, watch, status, raw, headers)
        with self._lock:
            self._fails.append(rule)

    def delay(
        self,
        method: str,
        path_regex: str,
        seconds: float,
        *,
        times: int | None = 1,
        watch: bool | None = None,
    ) -> None:
        """Holds the next ``times`` matching requests for ``seconds`` before handling them."""
        rule = _Delay(method.upper(), re.compile(path_regex), times, watch, seconds)
        with self._lock:
            self._delays.append(rule)

    def drop_watches(self, *, abrupt: bool = False) -> int:
        """Ends every open watch stream now; returns how many were open.

        Default: the response ends cleanly (as when the apiserver closes a watch);
        ``abrupt=True`` resets the connection mid-stream instead.
        """
        return self._call(self._drop_watches(abrupt))

    def clear(self) -> None:
        """Removes every pending fault and delay (the request log is kept)."""
        with self._lock:
            self._fails.clear()
            self._delays.clear()

    @property
    def requests(self) -> list[ProxiedRequest]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    @property
    def open_watches(self) -> int:
        """How many watch streams are open through the proxy now."""
        with self._lock:
            return len(self._watches)

    @property
    def held(self) -> int:
        """How many requests are being held by ``delay`` now."""
        with self._lock:
            return self._held

    def matching(
        self, method: str, path_regex: str, status: int | None = None
    ) -> list[ProxiedRequest]:
        """The logged requests with this method ("*": any), path and status (None: any)."""
        pattern = re.compile(path_regex)
        return [
            r
            for r in self.requests
            if method.upper() in ("*", r.method)
            and pattern.search(r.path)
            and (status is None or r.status == status)
        ]

    def wait_for(
        self, method: str, path_regex: str, *, status: int | None = None, timeout: float = 30.0
    ) -> ProxiedRequest:
        """Polls the log until a matching request appears; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not (found := self.matching(method, path_regex, status)):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {method} {path_regex} (status {status}) within {timeout:g} s; "
                    f"last requests: {self.requests[-20:]}"
                )
            time.sleep(0.05)
        return found[0]

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        await self._drop_watches(abrupt=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _drop_watches(self, abrupt: bool) -> int:
        with self._lock:
            watches = list(self._watches.values())
        for watch in watches:
            watch.abrupt = abrupt
            watch.pump.cancel()
        if watches:
            await asyncio.wait([w.pump for w in watches], timeout=10)
        return len(watches)

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._log.append(ProxiedRequest(method, path, status))

    def _match(self, method: str, path: str, watch: bool) -> tuple[float, _Fail | None]:
        with self._lock:
            delay = next((d for d in self._delays if d.take(method, path, watch)), None)
            fault = next((f for f in self._fails if f.take(method, path, watch)), None)
        return (delay.seconds if delay else 0.0), fault

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method, path, watch = request.method, request.path, _is_watch(request)
        seconds, fault = self._match(method, path, watch)
        if seconds:
            with self._lock:
                self._held += 1
            try:
                await asyncio.sleep(seconds)
            finally:
                with self._lock:
                    self._held -= 1
        if fault is not None:
            self._record(method, path, fault.status)
            return web.Response(
                status=fault.status,
                body=fault.body,
                headers=fault.headers,
                content_type="application/json",
            )
        assert self._session is not None
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP
        )
        body = await request.read()
        try:
            upstream = await self._session.request(
                method,
                self.cluster.server + request.path_qs,
                headers=headers,
                data=body or None,
                ssl=self._ssl,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, OSError) as err:
            self._record(method, path, 502)
            return web.Response(status=502, body=status_body(502, f"proxy: {err}"))
        async with upstream:
            return await self._relay(request, upstream, watch)

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse, watch: bool
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=upstream.status,
            reason=upstream.reason,
            headers=CIMultiDict(
                (k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP
            ),
        )
        self._record(request.method, request.path, upstream.status)
        try:
            await response.prepare(request)
        except ConnectionError:  # the client went away (e.g. it timed out) meanwhile
            return response
        pump = asyncio.ensure_future(self._pump(upstream, response))
        entry = _Watch(pump, request)
        if watch:
            with self._lock:
                self._watches[id(entry)] = entry
        try:
            await asyncio.wait([pump])
        finally:
            with self._lock:
                self._watches.pop(id(entry), None)
        failed = not pump.cancelled() and pump.exception() is not None
        if entry.abrupt and request.transport is not None:
            request.transport.abort()
            return response
        if failed:
            return response
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    @staticmethod
    async def _pump(upstream: aiohttp.ClientResponse, response: web.StreamResponse) -> None:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
