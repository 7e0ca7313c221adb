"""The benchmark's view of the apiserver: bulk object creation, a Kustomization watch, /proc stats.

Callers: benchmarks/controller_scale.py only. It plays Flux (ImagePolicy status, Kustomizations)
with the admin token over concurrent HTTPS (httpx), and reads a process's CPU and RSS from /proc.
It must not touch controller code or decide anything about the results.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

KUBERIK = "/apis/kuberik.com/v1alpha1/namespaces/{ns}"
FLUX_IMAGE = "/apis/image.toolkit.fluxcd.io/v1/namespaces/{ns}"
FLUX_KUSTOMIZE = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{ns}"
KUSTOMIZATIONS = "/apis/kustomize.toolkit.fluxcd.io/v1/kustomizations"
MERGE = "application/merge-patch+json"
Key = tuple[str, str]
"""(namespace, Kustomization name)."""


class BenchError(Exception):
    """The cluster refused or failed a step of the benchmark."""


def names(index: int) -> tuple[str, str, str]:
    """The Rollout, ImagePolicy and Kustomization names of Rollout number ``index``."""
    return f"r-{index:05d}", f"p-{index:05d}", f"k-{index:05d}"


def new_client(server: str, token: str, ca_file: Path, connections: int) -> httpx.AsyncClient:
    """An HTTP/1.1 client for the apiserver with ``connections`` pooled connections."""
    context = ssl.create_default_context(cafile=str(ca_file))
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        base_url=server,
        verify=context,
        headers={"Authorization": f"Bearer {token}"},
        limits=limits,
        timeout=httpx.Timeout(60.0),
    )


async def call(
    client: httpx.AsyncClient, method: str, path: str, body: Any = None, *, merge: bool = False
) -> dict[str, Any]:
    """One API call; raises BenchError on a non-2xx answer (409 on POST counts as done)."""
    headers = {"Content-Type": MERGE if merge else "application/json"}
    content = None if body is None else json.dumps(body).encode()
    for attempt in range(5):
        answer = await client.request(method, path, content=content, headers=headers)
        if answer.status_code == 409 and method == "POST":
            return {}
        if answer.status_code in (429, 500, 503, 504) and attempt < 4:
            await asyncio.sleep(0.2 * (attempt + 1))
            continue
        if answer.status_code >= 300:
            raise BenchError(f"{method} {path} -> {answer.status_code}: {answer.text[:300]}")
        result: dict[str, Any] = answer.json()
        return result
    raise BenchError(f"{method} {path}: retries exhausted")


async def set_tag(client: httpx.AsyncClient, ns: str, policy: str, tag: str) -> None:
    """Flux's image-reflector: ImagePolicy ``policy``'s status.latestRef moves to ``tag``."""
    path = f"{FLUX_IMAGE.format(ns=ns)}/imagepolicies/{policy}/status"
    body = {"status": {"latestRef": {"name": "registry.local/app", "tag": tag}}}
    await call(client, "PATCH", path, body, merge=True)


async def create_one(client: httpx.AsyncClient, ns: str, index: int, tag: str) -> None:
    """ImagePolicy (status at ``tag``), Kustomization (APP "0") and Rollout number ``index``."""
    rollout, policy, kustomization = names(index)
    await call(client, "POST", f"{FLUX_IMAGE.format(ns=ns)}/imagepolicies", {
        "apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy",
        "metadata": {"name": policy, "namespace": ns},
        "spec": {"imageRepositoryRef": {"name": policy},
                 "policy": {"semver": {"range": ">=0.0.0"}}},
    })  # fmt: skip
    await set_tag(client, ns, policy, tag)
    await call(client, "POST", f"{FLUX_KUSTOMIZE.format(ns=ns)}/kustomizations", {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": kustomization, "namespace": ns,
                     "annotations": {"rollout.kuberik.com/substitute.APP.from": rollout}},
        "spec": {"interval": "1m", "path": "./", "prune": True,
                 "sourceRef": {"kind": "OCIRepository", "name": "app"},
                 "postBuild": {"substitute": {"APP": "0"}}},
    })  # fmt: skip
    await call(client, "POST", f"{KUBERIK.format(ns=ns)}/rollouts", {
        "apiVersion": "kuberik.com/v1alpha1", "kind": "Rollout",
        "metadata": {"name": rollout, "namespace": ns, "labels": {"app": rollout}},
        "spec": {"releasesImagePolicy": {"name": policy}},
    })  # fmt: skip


async def create_all(
    client: httpx.AsyncClient, spots: list[tuple[str, int]], tag: str, concurrency: int
) -> None:
    """Creates every (namespace, index) in ``spots`` with at most ``concurrency`` in flight."""
    queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for spot in spots:
        queue.put_nowait(spot)

    async def worker() -> None:
        while not queue.empty():
            ns, index = queue.get_nowait()
            await create_one(client, ns, index, tag)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def list_all(client: httpx.AsyncClient, path: str) -> tuple[list[dict[str, Any]], str]:
    """Every item behind ``path`` (paged by 500) and the list's resourceVersion."""
    items: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "500"}
    while True:
        page = await call(client, "GET", f"{path}?{httpx.QueryParams(params)}")
        items += page.get("items") or []
        token = page["metadata"].get("continue")
        if not token:
            return items, str(page["metadata"]["resourceVersion"])
        params["continue"] = token


@dataclass
class KustomizationWatch:
    """Watches every Kustomization; times when substitute.APP reaches an expected tag."""

    client: httpx.AsyncClient
    clock: Callable[[], float] = time.monotonic
    values: dict[Key, str] = field(default_factory=dict)
    pending: dict[Key, tuple[str, float]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    events: int = 0
    restarts: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def expect(self, key: Key, tag: str, since: float) -> None:
        """From now on, time how long after ``since`` APP of ``key`` becomes ``tag``."""
        self.pending[key] = (tag, since)
        self._check(key, self.clock())

    def count(self, tag: str) -> int:
        return sum(1 for value in self.values.values() if value == tag)

    def _check(self, key: Key, now: float) -> None:
        want = self.pending.get(key)
        if want is not None and self.values.get(key) == want[0]:
            self.latencies.append(now - want[1])
            del self.pending[key]

    def _record(self, obj: dict[str, Any], now: float) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        substitute = ((obj.get("spec") or {}).get("postBuild") or {}).get("substitute") or {}
        self.values[key] = str(substitute.get("APP"))
        self._check(key, now)
        self.changed.set()

    async def run(self) -> None:
        """LIST then WATCH from its resourceVersion, forever; re-LISTs after a 410 or an error."""
        version = ""
        while True:
            if not version:
                items, version = await list_all(self.client, KUSTOMIZATIONS)
                now = self.clock()
                for item in items:
                    self._record(item, now)
            version = await self._watch(version)
            self.restarts += 1

    async def _watch(self, version: str) -> str:
        params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true"}
        params["timeoutSeconds"] = "600"
        try:
            async with self.client.stream(
                "GET", KUSTOMIZATIONS, params=params, timeout=httpx.Timeout(None)
            ) as answer:
                if answer.status_code != 200:
                    return ""
                async for line in answer.aiter_lines():
                    if not line:
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        return ""
                    version = str((obj.get("metadata") or {}).get("resourceVersion", version))
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self.events += 1
                        self._record(obj, self.clock())
        except httpx.HTTPError:
            return ""
        return version


@dataclass(frozen=True)
class ProcSample:
    """CPU seconds (user + system, all threads) and resident memory of one process."""

    cpu_seconds: float
    rss_mib: float
    hwm_mib: float


def sample(pid: int) -> ProcSample:
    """Reads /proc/<pid>/stat (utime + stime) and /proc/<pid>/status (VmRSS, VmHWM)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    memory = {"VmRSS": 0.0, "VmHWM": 0.0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in memory:
            memory[name] = int(value.split()[0]) / 1024
    return ProcSample(ticks / os.sysconf("SC_CLK_TCK"), memory["VmRSS"], memory["VmHWM"])
