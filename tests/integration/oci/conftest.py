"""Real OCI registries for the OCI source tests, plus a recording proxy and a fault server.

``registry`` and ``auth_registry`` (session) run Debian's ``docker-registry``
(distribution 2.8) with a config written here: filesystem storage in a temp
dir, 127.0.0.1 on a free port, plain HTTP; ``auth_registry`` adds htpasswd
(bcrypt from ``htpasswd -B``). Artifacts are pushed with the oras SDK.
``stoppable_registry`` is a per-test registry the test may stop.
``registry_proxy`` forwards to ``registry`` and records every request (and can
demand a bearer token from its own token endpoint); ``oci_fault_server``
answers ``/v2/<mode>/manifests/<ref>`` slowly, with 500, broken JSON, over
4 MiB or a wrong digest. Processes are stopped by PID; a missing binary fails
with the install hint. The servers themselves live in the importable ``tests/ociregistry.py``.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from ociregistry import (  # noqa: F401
    CONFIG_TYPE,
    INDEX_TYPE,
    INSTALL_HINT,
    MANIFEST_TYPE,
    PASSWORD,
    PRIVATE_REPOSITORY,
    READY_TIMEOUT,
    RELEASE_TYPE,
    REPOSITORY,
    USER,
    Registry,
    release_annotations,
    start_registry,
)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An anonymous registry with tags 1.0.0, 1.1.0, config-only and index pushed by oras."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        reg.push("1.0.0", annotations=release_annotations("1.0.0"), config_media_type=CONFIG_TYPE)
        reg.push("1.1.0", annotations=release_annotations("1.1.0"), artifact_type=RELEASE_TYPE)
        reg.push(
            "config-only",
            config_annotations={
                "org.opencontainers.image.version": "0.9.0",
                "org.opencontainers.image.revision": "rev-0.9.0",
                "org.opencontainers.image.created": "2025-12-31T23:00:00+01:00",
            },
        )
        reg.push_index("index", reg.pushed["1.0.0"], release_annotations("2.0.0"))
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry with htpasswd (bcrypt) auth for ``USER``/``PASSWORD``; tag 1.0.0 pushed."""
    reg = start_registry(tmp_path_factory.mktemp("auth-registry"), (USER, PASSWORD))
    try:
        reg.push("1.0.0", repository=PRIVATE_REPOSITORY, annotations=release_annotations("1.0.0"))
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def stoppable_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry of this test's own (tag 1.0.0 pushed) that the test may ``stop()``."""
    reg = start_registry(tmp_path)
    try:
        reg.push("1.0.0", annotations=release_annotations("1.0.0"))
        yield reg
    finally:
        reg.stop()


class _Loopback:
    """A ThreadingHTTPServer on a free loopback port, served from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@dataclass
class RegistryProxy:
    """Forwards to a registry and records ``(method, path)``; may demand a bearer token."""

    target: str
    require_bearer: bool = False
    credentials: tuple[str, str] = (USER, PASSWORD)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    host: str = ""

    def image(self, repository: str = REPOSITORY) -> str:
        return f"{self.host}/{repository}"

    def manifest_requests(self) -> list[tuple[str, str]]:
        with self.lock:
            return [r for r in self.requests if "/manifests/" in r[1]]


_TOKEN = "tidegate-test-token"


def _proxy_handler(proxy: RegistryProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve("GET")

        def do_HEAD(self) -> None:
            self._serve("HEAD")

        def _serve(self, method: str) -> None:
            with proxy.lock:
                proxy.requests.append((method, self.path))
            if self.path.startswith("/token"):
                basic = "Basic " + base64.b64encode(":".join(proxy.credentials).encode()).decode()
                ok = self.headers.get("Authorization") == basic
                body = json.dumps({"token": _TOKEN}).encode() if ok else b"{}"
                self._reply(200 if ok else 401, {"Content-Type": "application/json"}, body)
                return
            if proxy.require_bearer and self.headers.get("Authorization") != f"Bearer {_TOKEN}":
                realm = f'Bearer realm="http://{proxy.host}/token",service="tidegate-test"'
                self._reply(401, {"WWW-Authenticate": realm}, b'{"errors":[]}')
                return
            request = Request(f"http://{proxy.target}{self.path}", method=method)
            request.add_header("Accept", self.headers.get("Accept", "*/*"))
            try:
                with urlopen(request, timeout=10) as response:
                    status, headers, body = response.status, response.headers, response.read()
            except HTTPError as exc:
                status, headers, body = exc.code, exc.headers, exc.read()
            keep = ("Content-Type", "Docker-Content-Digest")
            self._reply(status, {k: headers[k] for k in keep if k in headers}, body, method)

        def _reply(
            self, status: int, headers: dict[str, str], body: bytes, method: str = "GET"
        ) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def registry_proxy(registry: Registry) -> Iterator[RegistryProxy]:
    """A recording proxy in front of ``registry`` (set ``require_bearer`` to demand a token)."""
    proxy = RegistryProxy(target=registry.host)
    server = _Loopback(_proxy_handler(proxy))
    proxy.host = server.host
    try:
        yield proxy
    finally:
        server.close()


@dataclass
class OciFaultServer:
    """``/v2/<mode>/manifests/<ref>``: slow, status500, malformed, huge, hugestream, wrongdigest."""

    host: str
    release: threading.Event

    def image(self, mode: str) -> str:
        return f"{self.host}/{mode}"


def _fault_handler(release: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve(head=False)

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def _serve(self, head: bool) -> None:
            mode = self.path.split("/")[2] if self.path.count("/") >= 2 else ""
            manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE}).encode()
            try:
                if mode == "slow":
                    release.wait(timeout=READY_TIMEOUT)
                    self._send(200, manifest, head)
                elif mode == "status500":
                    self._send(500, b'{"errors":[]}', head)
                elif mode == "malformed":
                    self._send(200, b'{"schemaVersion": 2, "config": {', head)
                elif mode == "huge":
                    self._send(200, b" " * (5 * 1024 * 1024), head)
                elif mode == "hugestream":
                    self.send_response(200)
                    self.send_header("Content-Type", MANIFEST_TYPE)
                    self.end_headers()
                    for _ in range(5 if not head else 0):
                        self.wfile.write(b" " * (1024 * 1024))
                elif mode == "wrongdigest":
                    self._send(200, manifest, head, digest="sha256:" + "0" * 64)
                else:
                    self._send(404, b'{"errors":[]}', head)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send(self, status: int, body: bytes, head: bool, digest: str | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", MANIFEST_TYPE)
            if digest is not None:
                self.send_header("Docker-Content-Digest", digest)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="session")
def oci_fault_server() -> Iterator[OciFaultServer]:
    """A loopback 'registry' that is slow, fails, or serves malformed or oversized manifests."""
    release = threading.Event()
    server = _Loopback(_fault_handler(release))
    try:
        yield OciFaultServer(server.host, release)
    finally:
        release.set()
        server.close()
