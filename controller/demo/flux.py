"""Simulated Flux (and the app it deploys): what Flux's controllers would write in the demo.

Callers: ``demo.running`` runs ``Flux.run`` beside the controller; ``demo.driver``
calls ``push``. Behaviour, all on the demo clock:

- image-reflector: ``push(tag)`` stores the manifest in the registry and moves
  every ImagePolicy's ``status.latestRef`` to the tag;
- source-controller: an OCIRepository whose ``spec.ref.tag`` changed reports the
  new artifact after ``FETCH``;
- kustomize-controller: a Kustomization whose generation moved (the controller
  applied ``VERSION``) is applied after ``APPLY``: its ConfigMap gets the version,
  its status becomes Ready for that generation;
- the app: once an environment runs a faulty release its error ratio rises, so
  the ``HighErrorRate`` alert fires there (and stops when a good one runs).

It writes only Flux objects' status, ConfigMaps and the alert board; never a
tidegate or Kuberik object.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from controller.demo import world
from controller.demo.emulation import EmulatedApi
from controller.demo.scenario import Scenario
from controller.demo.services import AlertBoard, Registry
from evaluators.base import Clock
from policy_engine.model.times import format_timestamp

FETCH = timedelta(seconds=5)
APPLY = timedelta(seconds=20)
FAULTY_RATIO, HEALTHY_RATIO = 0.2, 0.001
CHANGE_POLL_SECONDS = 1.0


class Flux:
    """Image reflector, source and kustomize controllers, plus the deployed app's error rate."""

    def __init__(
        self,
        api: EmulatedApi,
        clock: Clock,
        scenario: Scenario,
        registry: Registry,
        board: AlertBoard,
        settle: Callable[[str, bool], Awaitable[None]] | None = None,
    ) -> None:
        self.api, self.clock, self.scenario = api, clock, scenario
        self.settle = settle
        self.registry, self.board = registry, board
        self.faulty: set[str] = set()
        self._busy: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def push(self, tag: str, *, faulty: bool = False) -> None:
        """A new image ``tag``: the registry has it and every ImagePolicy reports it."""
        if faulty:
            self.faulty.add(tag)
        app = self.scenario.app
        digest = self.registry.push(app, tag, world.revision(tag), self.clock.now())
        for policy in self.api.list_objects(world.IMAGEPOLICIES):
            image = ((policy.get("status") or {}).get("latestRef") or {}).get("name")
            latest = {"name": image, "tag": tag, "digest": digest}
            await self.api.patch_object(
                world.IMAGEPOLICIES, policy, {"status": {"latestRef": latest}}, "status"
            )

    def running(self, env: str) -> str | None:
        """The version the app runs in ``env`` (its ConfigMap), if any."""
        found = self.api.get_object(world.CONFIGMAPS, env, self.scenario.app)
        return ((found or {}).get("data") or {}).get("VERSION")

    async def run(self) -> None:
        """Reconciles Flux objects after every API change until cancelled."""
        for env in self.scenario.environments:
            self.board.set_ratio(env.name, HEALTHY_RATIO)
        try:
            while True:
                self._reconcile()
                await self.api.changed(CHANGE_POLL_SECONDS)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _reconcile(self) -> None:
        for source in self.api.list_objects(world.OCIREPOSITORIES):
            tag = (source["spec"].get("ref") or {}).get("tag")
            artifact = ((source.get("status") or {}).get("artifact") or {}).get("revision")
            if tag and artifact != tag:
                self._later(FETCH, world.OCIREPOSITORIES, source, self._fetched)
        for kustomization in self.api.list_objects(world.KUSTOMIZATIONS):
            observed = (kustomization.get("status") or {}).get("observedGeneration")
            if observed != kustomization["metadata"].get("generation"):
                self._later(APPLY, world.KUSTOMIZATIONS, kustomization, self._applied)

    def _later(self, delay: timedelta, kind: str, obj: dict[str, Any], action: Any) -> None:
        key = (kind, f"{obj['metadata']['namespace']}/{obj['metadata']['name']}")
        if key in self._busy:
            return
        self._busy.add(key)
        task = asyncio.create_task(self._after(delay, key, action, obj))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after(self, delay: timedelta, key: tuple[str, str], action: Any, obj: Any) -> None:
        try:
            await self.clock.sleep_until(self.clock.now() + delay)
            await action(obj)
        finally:
            self._busy.discard(key)

    async def _fetched(self, source: dict[str, Any]) -> None:
        current = self.api.get_object(
            world.OCIREPOSITORIES, source["metadata"]["namespace"], source["metadata"]["name"]
        )
        if current is None:
            return
        tag = (current["spec"].get("ref") or {}).get("tag")
        status = {
            "artifact": {"revision": tag},
            "conditions": [self._ready(f"stored artifact for {tag}")],
        }
        await self.api.patch_object(world.OCIREPOSITORIES, current, {"status": status}, "status")

    async def _applied(self, kustomization: dict[str, Any]) -> None:
        meta = kustomization["metadata"]
        current = self.api.get_object(world.KUSTOMIZATIONS, meta["namespace"], meta["name"])
        if current is None:
            return
        version = str(
            ((current["spec"].get("postBuild") or {}).get("substitute") or {}).get("VERSION")
        )
        await self.api.patch_object(world.CONFIGMAPS, current, {"data": {"VERSION": version}})
        status = {
            "observedGeneration": current["metadata"].get("generation"),
            "lastAppliedRevision": version,
            "conditions": [self._ready(f"Applied revision: {version}")],
        }
        await self.api.patch_object(world.KUSTOMIZATIONS, current, {"status": status}, "status")
        env = str(meta["namespace"])
        faulty = version in self.faulty
        before = self.board.ratios.get(env, HEALTHY_RATIO) > HEALTHY_RATIO
        self.board.set_ratio(env, FAULTY_RATIO if faulty else HEALTHY_RATIO)
        if faulty != before and self.settle is not None:
            await self.settle(env, faulty)

    def _ready(self, message: str) -> dict[str, Any]:
        return {
            "type": "Ready",
            "status": "True",
            "reason": "ReconciliationSucceeded",
            "message": message,
            "lastTransitionTime": format_timestamp(self.clock.now().replace(microsecond=0)),
        }
