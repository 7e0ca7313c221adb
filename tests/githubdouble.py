"""A loopback double of the GitHub Deployments API: deployments, statuses, faults, a request log.

Callers: tests/integration/github (fixture ``github_double``) and controller
behaviour tests (``from githubdouble import GitHubDouble``; ``tests/`` is on
``sys.path`` through ``tests/conftest.py``). It implements only what tidegate
calls, with GitHub's documented JSON shapes:

- ``GET/POST /repos/{owner}/{repo}/deployments`` (filters ``sha ref task
  environment``, newest first),
- ``GET /repos/{owner}/{repo}/deployments/{id}``,
- ``GET/POST /repos/{owner}/{repo}/deployments/{id}/statuses`` (newest first;
  a ``success`` with ``auto_inactive`` (default true) adds ``inactive`` to the
  environment's earlier successful non-production deployments; descriptions
  over 140 characters are 422),

plus bearer/token auth (401 "Bad credentials"), weak ETags with 304 (which do
not count against the rate limit), ``per_page``/``page`` pagination with
``Link`` headers, ``x-ratelimit-*`` headers, injectable faults and a request
log. Must not be imported by non-test code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")
DESCRIPTION_LIMIT = 140
RATE_LIMIT = 5000
DEFAULT_TOKEN = "ghp_s3cr3t-double-token"


@dataclass(frozen=True)
class Logged:
    """One request as the double saw it (never the token itself)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    authorized: bool
    conditional: bool


@dataclass
class _Fault:
    kind: str  # rate_limit | secondary | forbidden | server_error | slow
    times: int
    methods: tuple[str, ...]
    path_contains: str
    status: int = 0
    reset: int = 0
    retry_after: int | None = None
    seconds: float = 0.0


@dataclass
class _State:
    deployments: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    next_id: int = 1
    remaining: int = RATE_LIMIT
    faults: list[_Fault] = field(default_factory=list)
    log: list[Logged] = field(default_factory=list)


class GitHubDouble:
    """The server; start with ``with GitHubDouble(token=...) as gh:`` and use ``gh.base_url``."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        owner_repo: str = "acme/app",
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.token = token
        self.owner_repo = owner_repo
        self.now = now or (lambda: datetime.now(UTC))
        self.lock = threading.Lock()
        self.state = _State()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> GitHubDouble:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> GitHubDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- faults -------------------------------------------------------------------------

    def rate_limit(
        self, times: int = 1, *, reset: int, retry_after: int | None = None, status: int = 403,
        methods: tuple[str, ...] = ("GET", "POST"), path_contains: str = "",
    ) -> None:  # fmt: skip
        """The next ``times`` matching requests: primary rate limit, reset at epoch ``reset``."""
        self._add(_Fault("rate_limit", times, methods, path_contains, status, reset, retry_after))

    def secondary_rate_limit(self, times: int = 1, *, retry_after: int | None = None) -> None:
        """The next ``times`` requests: 403 "You have exceeded a secondary rate limit"."""
        self._add(_Fault("secondary", times, ("GET", "POST"), "", 403, retry_after=retry_after))

    def forbid(self, times: int = 1_000_000, *, path_contains: str = "") -> None:
        """403 "Resource not accessible by integration" (the rate limit is not exhausted)."""
        self._add(_Fault("forbidden", times, ("GET", "POST"), path_contains, 403))

    def fail(
        self, times: int = 1, *, status: int = 502, methods: tuple[str, ...] = ("GET", "POST"),
        path_contains: str = "",
    ) -> None:  # fmt: skip
        """The next ``times`` matching requests answer ``status`` (a 5xx)."""
        self._add(_Fault("server_error", times, methods, path_contains, status))

    def slow(self, seconds: float, times: int = 1, *, path_contains: str = "") -> None:
        """The next ``times`` matching requests wait ``seconds`` before answering normally."""
        self._add(_Fault("slow", times, ("GET", "POST"), path_contains, seconds=seconds))

    def clear_faults(self) -> None:
        """Drops every pending fault."""
        with self.lock:
            self.state.faults.clear()

    def _add(self, fault: _Fault) -> None:
        with self.lock:
            self.state.faults.append(fault)

    # --- inspection ---------------------------------------------------------------------

    @property
    def requests(self) -> list[Logged]:
        with self.lock:
            return list(self.state.log)

    def deployments(self) -> list[dict[str, Any]]:
        """Every deployment, newest first, each with its ``statuses`` (newest first)."""
        with self.lock:
            return [
                {**d, "statuses": list(reversed(self.state.statuses[d["id"]]))}
                for d in reversed(self.state.deployments)
            ]

    def add_deployment(self, body: dict[str, Any], created_at: datetime | None = None) -> int:
        """Seeds a deployment (as if another controller made it); its id."""
        with self.lock:
            return int(self._create_deployment(body, created_at)["id"])

    def add_status(
        self, deployment_id: int, state: str, description: str, created_at: datetime | None = None
    ) -> int:
        """Seeds a status (no auto-inactive); its id."""
        with self.lock:
            body = {"state": state, "description": description, "auto_inactive": False}
            return int(self._create_status(deployment_id, body, created_at)["id"])

    # --- the API ------------------------------------------------------------------------

    def _stamp(self, at: datetime | None) -> str:
        return (at or self.now()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _take_id(self) -> int:
        self.state.next_id += 1
        return self.state.next_id - 1

    def _repo_url(self) -> str:
        return f"{self.base_url}/repos/{self.owner_repo}"

    def _create_deployment(self, body: dict[str, Any], at: datetime | None) -> dict[str, Any]:
        ident, stamp, env = (
            self._take_id(),
            self._stamp(at),
            body.get("environment") or "production",
        )
        ref = str(body["ref"])
        sha = ref if len(ref) == 40 else hashlib.sha1(ref.encode()).hexdigest()
        deployment = {
            "url": f"{self._repo_url()}/deployments/{ident}",
            "id": ident,
            "node_id": base64.b64encode(f"Deployment{ident}".encode()).decode(),
            "sha": sha,
            "ref": ref,
            "task": body.get("task") or "deploy",
            "payload": body.get("payload", {}),
            "original_environment": env,
            "environment": env,
            "description": body.get("description"),
            "creator": {"login": "tidegate-bot", "id": 1, "type": "Bot"},
            "created_at": stamp,
            "updated_at": stamp,
            "statuses_url": f"{self._repo_url()}/deployments/{ident}/statuses",
            "repository_url": self._repo_url(),
            "transient_environment": bool(body.get("transient_environment", False)),
            "production_environment": bool(body.get("production_environment", env == "production")),
        }
        self.state.deployments.append(deployment)
        self.state.statuses[ident] = []
        return deployment

    def _create_status(
        self, deployment_id: int, body: dict[str, Any], at: datetime | None
    ) -> dict[str, Any]:
        deployment = next(d for d in self.state.deployments if d["id"] == deployment_id)
        ident, stamp = self._take_id(), self._stamp(at)
        status = {
            "url": f"{deployment['url']}/statuses/{ident}",
            "id": ident,
            "node_id": base64.b64encode(f"DeploymentStatus{ident}".encode()).decode(),
            "state": body["state"],
            "creator": {"login": "tidegate-bot", "id": 1, "type": "Bot"},
            "description": body.get("description") or "",
            "environment": deployment["environment"],
            "target_url": body.get("target_url") or "",
            "log_url": body.get("log_url") or body.get("target_url") or "",
            "environment_url": body.get("environment_url") or "",
            "created_at": stamp,
            "updated_at": stamp,
            "deployment_url": deployment["url"],
            "repository_url": self._repo_url(),
        }
        if body["state"] == "success" and body.get("auto_inactive", True):
            self._auto_inactive(deployment, stamp)
        self.state.statuses[deployment_id].append(status)
        return status

    def _auto_inactive(self, deployment: dict[str, Any], stamp: str) -> None:
        for other in self.state.deployments:
            history = self.state.statuses[other["id"]]
            if (
                other["id"] < deployment["id"]
                and other["environment"] == deployment["environment"]
                and not other["transient_environment"]
                and not other["production_environment"]
                and history
                and history[-1]["state"] == "success"
            ):
                ident = self._take_id()
                history.append(
                    {**history[-1], "id": ident, "state": "inactive", "description": "",
                     "url": f"{other['url']}/statuses/{ident}", "created_at": stamp,
                     "updated_at": stamp}
                )  # fmt: skip

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        """The answer to one request: (status, headers, JSON document or None)."""
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        auth = headers.get("authorization", "")
        authorized = auth in (f"Bearer {self.token}", f"token {self.token}")
        conditional = "if-none-match" in headers
        fault = self._fault(method, parts.path)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
            fault = None
        with self.lock:
            status, extra, document = self._answer(
                method, parts.path, query, headers, body, authorized, fault
            )
            if status != 304:
                self.state.remaining = max(self.state.remaining - 1, 0)
            extra.update(self._rate_headers(fault))
            self.state.log.append(
                Logged(method, parts.path, query, status, authorized, conditional)
            )
        return status, extra, document

    def _fault(self, method: str, path: str) -> _Fault | None:
        with self.lock:
            for fault in self.state.faults:
                if fault.times > 0 and method in fault.methods and fault.path_contains in path:
                    fault.times -= 1
                    return fault
        return None

    def _rate_headers(self, fault: _Fault | None) -> dict[str, str]:
        limited = fault is not None and fault.kind == "rate_limit"
        remaining = 0 if limited else self.state.remaining
        reset = fault.reset if fault is not None and limited else int(self.now().timestamp()) + 3600
        headers = {
            "x-ratelimit-limit": str(RATE_LIMIT),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-used": str(RATE_LIMIT - remaining),
            "x-ratelimit-resource": "core",
        }
        if fault is not None and fault.retry_after is not None:
            headers["retry-after"] = str(fault.retry_after)
        return headers

    def _answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
        body: bytes, authorized: bool, fault: _Fault | None,
    ) -> tuple[int, dict[str, str], Any]:  # fmt: skip
        docs = "https://docs.github.com/rest"
        if not authorized:
            return 401, {}, {"message": "Bad credentials", "documentation_url": docs}
        if fault is not None:
            return _fault_answer(fault, docs)
        prefix = f"/repos/{self.owner_repo}/deployments"
        if not path.startswith(prefix):
            return 404, {}, {"message": "Not Found", "documentation_url": docs}
        rest = [p for p in path[len(prefix) :].split("/") if p]
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return 400, {}, {"message": "Problems parsing JSON", "documentation_url": docs}
        if not rest:
            return self._deployments(method, query, headers, payload, path)
        if not rest[0].isdigit() or int(rest[0]) not in self.state.statuses:
            return 404, {}, {"message": "Not Found", "documentation_url": docs}
        ident = int(rest[0])
        if len(rest) == 1 and method == "GET":
            found = next(d for d in self.state.deployments if d["id"] == ident)
            return self._cacheable(200, found, headers)
        if rest[1:] == ["statuses"]:
            return self._statuses(method, ident, query, headers, payload, path)
        return 404, {}, {"message": "Not Found", "documentation_url": docs}

    def _deployments(
        self, method: str, query: dict[str, str], headers: dict[str, str], payload: Any, path: str
    ) -> tuple[int, dict[str, str], Any]:
        if method == "POST":
            if not isinstance(payload, dict) or not payload.get("ref"):
                return _invalid("ref", "missing_field")
            return 201, {}, self._create_deployment(payload, None)
        found = [
            d
            for d in reversed(self.state.deployments)
            if all(query[k] == d[k] for k in ("sha", "ref", "task", "environment") if k in query)
        ]
        return self._page(found, query, headers, path)

    def _statuses(
        self, method: str, ident: int, query: dict[str, str], headers: dict[str, str],
        payload: Any, path: str,
    ) -> tuple[int, dict[str, str], Any]:  # fmt: skip
        if method == "POST":
            if not isinstance(payload, dict) or payload.get("state") not in STATES:
                return _invalid("state", "invalid")
            if len(str(payload.get("description") or "")) > DESCRIPTION_LIMIT:
                return _invalid("description", "custom", "description is too long (maximum is "
                                "140 characters)")  # fmt: skip
            return 201, {}, self._create_status(ident, payload, None)
        return self._page(list(reversed(self.state.statuses[ident])), query, headers, path)

    def _page(
        self, items: list[dict[str, Any]], query: dict[str, str], headers: dict[str, str], path: str
    ) -> tuple[int, dict[str, str], Any]:
        per_page = min(max(int(query.get("per_page", "30")), 1), 100)
        page = max(int(query.get("page", "1")), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        status, extra, document = self._cacheable(200, chunk, headers)
        links = []
        for rel, number in (("prev", page - 1), ("next", page + 1), ("last", last), ("first", 1)):
            if (rel in ("prev", "first") and page > 1) or (rel in ("next", "last") and page < last):
                url = f"{self.base_url}{path}?{urlencode({**query, 'page': number})}"
                links.append(f'<{url}>; rel="{rel}"')
        if links:
            extra["link"] = ", ".join(links)
        return status, extra, document

    @staticmethod
    def _cacheable(
        status: int, document: Any, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
        etag = f'W/"{digest[:32]}"'
        if headers.get("if-none-match") == etag:
            return 304, {"etag": etag}, None
        return status, {"etag": etag}, document


def _invalid(
    field_name: str, code: str, message: str | None = None
) -> tuple[int, dict[str, str], Any]:
    error: dict[str, Any] = {"resource": "DeploymentStatus", "field": field_name, "code": code}
    if message:
        error["message"] = message
    return 422, {}, {"message": "Validation Failed", "errors": [error],
                     "documentation_url": "https://docs.github.com/rest"}  # fmt: skip


def _fault_answer(fault: _Fault, docs: str) -> tuple[int, dict[str, str], Any]:
    if fault.kind == "rate_limit":
        return fault.status, {}, {"message": "API rate limit exceeded for installation ID 1.",
                                  "documentation_url": docs}  # fmt: skip
    if fault.kind == "secondary":
        message = "You have exceeded a secondary rate limit. Please wait a few minutes."
        return 403, {}, {"message": message, "documentation_url": docs}
    if fault.kind == "forbidden":
        return 403, {}, {"message": "Resource not accessible by integration",
                         "documentation_url": docs}  # fmt: skip
    return fault.status, {}, {"message": "Server Error"}


def _handler(double: GitHubDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, document = double.handle(self.command, self.path, headers, body)
            data = b"" if document is None else json.dumps(document).encode()
            try:
                self.send_response(status)
                if document is not None:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (a "slow" fault)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def served(**kwargs: Any) -> Iterator[GitHubDouble]:
    """A started double for a pytest fixture body (``yield from served(...)``); closed after."""
    with GitHubDouble(**kwargs) as double:
        yield double


__all__ = ["DEFAULT_TOKEN", "GitHubDouble", "Logged", "served"]
