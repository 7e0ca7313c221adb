"""Plays a scenario's steps against the running world and waits for their outcomes.

Callers: ``demo.running`` (``play``). Steps act as a user or a CI pipeline
would: pushing an image (through simulated Flux), patching ``wantedVersion``,
setting annotations; ``wait`` steps watch the Rollouts through the emulated
API. Virtual time comes from the demo clock; each wait also has a real-time
limit so a stuck demo fails with a message instead of hanging. It never writes
a Rollout's status and never decides for the controller.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from controller.demo import world
from controller.demo.emulation import EmulatedApi
from controller.demo.flux import Flux
from controller.demo.recording import Recorder
from controller.demo.scenario import Scenario, Step
from evaluators.base import Clock

REAL_WAIT_LIMIT = 90.0
POLL_SECONDS = 0.25
FORCE_DEPLOY = "rollout.kuberik.com/force-deploy"
DEPLOY_MESSAGE = "rollout.kuberik.com/deploy-message"
DEPLOY_USER = "rollout.kuberik.com/deploy-user"


class StepFailed(Exception):
    """A wait step's outcome did not happen in time; the message says what was expected."""


@dataclass
class Driver:
    """The scenario player."""

    api: EmulatedApi
    clock: Clock
    flux: Flux
    recorder: Recorder
    scenario: Scenario

    async def play(self) -> None:
        """Runs every step in order.

        Raises:
            StepFailed: a ``wait`` did not see its outcome in time.
        """
        for index, step in enumerate(self.scenario.steps, start=1):
            fields = {k: v for k, v in _fields(step).items() if v not in (None, False, "")}
            self.recorder.add("step", step=index, **fields)
            await self._run(step)

    async def _run(self, step: Step) -> None:
        if step.kind == "push" and step.tag:
            await self.flux.push(step.tag, faulty=step.faulty)
        elif step.kind == "hold" and step.duration is not None:
            await self.clock.sleep_until(self.clock.now() + step.duration)
        elif step.kind == "wait":
            await self._wait(step)
        else:
            await self._patch_rollout(step)

    async def _patch_rollout(self, step: Step) -> None:
        patch: dict[str, Any] = {}
        if step.kind == "pin":
            patch["spec"] = {"wantedVersion": step.tag}
        elif step.kind == "unpin":
            patch["spec"] = {"wantedVersion": None}
        if step.kind == "force-deploy" or step.force:
            annotations = {FORCE_DEPLOY: step.tag, DEPLOY_USER: "demo"}
            if step.message:
                annotations[DEPLOY_MESSAGE] = step.message
            patch["metadata"] = {"annotations": annotations}
        target = {"namespace": step.env, "name": self.scenario.app}
        await self.api.patch_object(world.ROLLOUTS, target, patch)

    async def _wait(self, step: Step) -> None:
        loop = asyncio.get_running_loop()
        real_deadline = loop.time() + REAL_WAIT_LIMIT
        virtual_deadline = self.clock.now() + self.scenario.step_timeout
        while not self._reached(step):
            if loop.time() > real_deadline or self.clock.now() > virtual_deadline:
                raise StepFailed(f"{_describe(step)} did not happen ({self._state(step)})")
            await self.api.changed(POLL_SECONDS)

    def _reached(self, step: Step) -> bool:
        entry = self._current(step)
        if entry is None or (entry.get("version") or {}).get("tag") != step.tag:
            return False
        return step.bake is None or entry.get("bakeStatus") == step.bake

    def _current(self, step: Step) -> dict[str, Any] | None:
        rollout = self.api.get_object(world.ROLLOUTS, step.env, self.scenario.app)
        history = ((rollout or {}).get("status") or {}).get("history") or []
        return dict(history[0]) if history else None

    def _state(self, step: Step) -> str:
        entry = self._current(step) or {}
        tag = (entry.get("version") or {}).get("tag")
        return f"{step.env} runs {tag or 'nothing'}, bake {entry.get('bakeStatus') or 'unset'}"


def _describe(step: Step) -> str:
    bake = f" with bake {step.bake}" if step.bake else ""
    return f"{step.env} deploying {step.tag}{bake}"


def _fields(step: Step) -> dict[str, Any]:
    return {
        "action": step.kind,
        "env": step.env,
        "tag": step.tag,
        "bake": step.bake,
        "duration": str(step.duration) if step.duration else None,
        "faulty": step.faulty,
        "force": step.force,
        "message": step.message,
        "say": step.say,
    }
