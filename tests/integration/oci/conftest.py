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
with the install hint. The helpers ``free_port``/``wait_for`` of the parent
conftest are not importable (rootless conftests share the module name
``conftest``), so small equivalents live here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import oras.client
import pytest

READY_TIMEOUT = 30.0
REPOSITORY = "tidegate/app"
PRIVATE_REPOSITORY = "tidegate/private"
USER, PASSWORD = "alice", "s3cret-Pa55"
CONFIG_TYPE = "application/vnd.tidegate.config.v1+json"
RELEASE_TYPE = "application/vnd.tidegate.release.v1"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INSTALL_HINT = "docker-registry not installed: apt-get install -y docker-registry"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for(what: str, check: Callable[[], bool], timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}")


def release_annotations(version: str) -> dict[str, str]:
    """The full set of org.opencontainers.image.* annotations for ``version``."""
    prefix = "org.opencontainers.image."
    return {
        prefix + "version": version,
        prefix + "revision": f"rev-{version}",
        prefix + "created": "2026-01-02T03:04:05Z",
        prefix + "source": "https://git.example.com/shop/app",
        prefix + "title": "app",
        prefix + "description": f"the app, release {version}",
    }


@dataclass
class Registry:
    """A running ``docker-registry``: ``host`` (127.0.0.1:port), pushed digests by tag."""

    host: str
    process: subprocess.Popen[bytes]
    root: Path
    credentials: tuple[str, str] | None = None
    pushed: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"

    def image(self, repository: str = REPOSITORY) -> str:
        return f"{self.host}/{repository}"

    def _client(self) -> oras.client.OrasClient:
        backend = "token" if self.credentials is None else "basic"  # htpasswd speaks Basic only
        client = oras.client.OrasClient(hostname=self.host, insecure=True, auth_backend=backend)
        if self.credentials is not None:
            client.auth.set_basic_auth(*self.credentials)
        return client

    def push(
        self,
        tag: str,
        *,
        repository: str = REPOSITORY,
        annotations: dict[str, str] | None = None,
        config_annotations: dict[str, str] | None = None,
        config_media_type: str | None = None,
        artifact_type: str | None = None,
    ) -> str:
        """Pushes an artifact with oras and returns the manifest digest the registry reports."""
        client, target = self._client(), f"{self.image(repository)}:{tag}"
        config = self.root / "config.json"
        config.write_text("{}")
        spec = self.root / f"annotations-{tag}.json"
        spec.write_text(json.dumps({"$config": config_annotations or {}}))
        response = client.push(
            target,
            files=[],
            manifest_config=f"{config}:{config_media_type}" if config_media_type else None,
            annotation_file=str(spec),
            manifest_annotations=annotations,
            quiet=True,
        )
        if artifact_type is not None:
            manifest = client.get_manifest(target)
            manifest["artifactType"] = artifact_type
            response = client.upload_manifest(manifest, client.get_container(target))
        digest: str = response.headers["Docker-Content-Digest"]
        self.pushed[tag] = digest
        self.annotations[tag] = {**(config_annotations or {}), **(annotations or {})}
        return digest

    def push_index(self, tag: str, child: str, annotations: dict[str, str]) -> str:
        """PUTs an OCI image index over the manifest ``child`` (a digest) with oras' session."""
        client = self._client()
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": INDEX_TYPE,
                "manifests": [{"mediaType": MANIFEST_TYPE, "digest": child, "size": 1}],
                "annotations": annotations,
            }
        ).encode()
        url = f"{self.base_url}/v2/{REPOSITORY}/manifests/{tag}"
        response = client.do_request(url, "PUT", headers={"Content-Type": INDEX_TYPE}, data=body)
        assert response.status_code == 201, response.text
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        assert response.headers["Docker-Content-Digest"] == digest
        self.pushed[tag] = digest
        self.annotations[tag] = annotations
        return digest

    def log(self, lines: int = 30) -> str:
        text = (self.root / "registry.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Ends the registry process by PID (terminate, then kill)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _htpasswd_line(user: str, password: str) -> str:
    binary = shutil.which("htpasswd")
    if binary is None:
        pytest.fail(
            "htpasswd (bcrypt for the registry) not installed: apt-get install -y apache2-utils"
        )
    done = subprocess.run(
        [binary, "-nbB", user, password], capture_output=True, text=True, check=True
    )
    return done.stdout.strip() + "\n"


def start_registry(root: Path, credentials: tuple[str, str] | None = None) -> Registry:
    """Starts ``docker-registry serve`` on a free loopback port and waits for ``/v2/``."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail(INSTALL_HINT)
    port = _free_port()
    auth = ""
    if credentials is not None:
        (root / "htpasswd").write_text(_htpasswd_line(*credentials))
        auth = f"auth:\n  htpasswd:\n    realm: tidegate-test\n    path: {root / 'htpasswd'}\n"
    (root / "config.yml").write_text(
        "version: 0.1\n"
        "log:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: tidegate-test-secret\n" + auth
    )
    with (root / "registry.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, "serve", str(root / "config.yml")], stdout=log, stderr=subprocess.STDOUT
        )
    registry = Registry(f"127.0.0.1:{port}", process, root, credentials)

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited with {process.returncode}:\n{registry.log()}")
        try:
            with urlopen(f"{registry.base_url}/v2/", timeout=2):
                return True
        except HTTPError as exc:
            return exc.code == 401
        except (URLError, OSError):
            return False

    try:
        _wait_for(f"docker-registry on {registry.host}/v2/", ready)
    except BaseException:
        registry.stop()
        raise
    return registry


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
