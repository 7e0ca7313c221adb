"""Demo scenarios as data: the world's settings and the steps played against the controller.

Callers: ``demo.running`` (``load``), ``demo.world`` (builds objects from a
``Scenario``), ``demo.driver`` (plays the steps). A scenario is a built-in name
(``talk``, ``happy``) or a YAML file of the same shape (see docs/demo.md). Pure
data and validation: no I/O besides reading the named file, no clock.

Step kinds: ``push`` (a tag is pushed: simulated Flux moves every ImagePolicy),
``wait`` (until an environment's ``history[0]`` has ``tag`` and, optionally,
``bake``; a virtual ``timeout`` fails the demo), ``hold`` (let virtual time
pass), ``pin`` (``spec.wantedVersion``), ``force-deploy`` (the one-shot
annotation, with ``message``; ``pin`` with ``force: true`` does both in one
write) and ``unpin``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from policy_engine.model.times import TimeSyntaxError, parse_duration, parse_timestamp

STEP_KINDS = ("push", "wait", "hold", "pin", "force-deploy", "unpin")


class ScenarioError(Exception):
    """A scenario that cannot be played; the message names the field."""


@dataclass(frozen=True, slots=True)
class Step:
    """One step; ``env`` names an environment, ``tag`` a release."""

    kind: str
    tag: str | None = None
    env: str | None = None
    bake: str | None = None
    duration: timedelta | None = None
    message: str | None = None
    faulty: bool = False
    """push: this release raises the error rate once deployed (the alert fires)."""
    force: bool = False
    """pin: also set the one-shot force-deploy annotation (one manual deploy, now)."""
    say: str = ""


@dataclass(frozen=True, slots=True)
class Environment:
    """One environment: a namespace with its Rollout, Flux objects and HealthChecks."""

    name: str
    upstream: str | None = None
    bake_time: str = "5m"
    window: tuple[str, str] | None = None
    """Allowed deployment window (HH:MM, HH:MM), Monday to Friday, in the scenario's zone."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A world (app, environments, start instant, first release) and its steps."""

    name: str
    app: str
    start: datetime
    timezone: str
    initial: str
    environments: tuple[Environment, ...]
    steps: tuple[Step, ...]
    step_timeout: timedelta = timedelta(hours=2)
    notes: tuple[str, ...] = field(default=())


_TALK: dict[str, Any] = {
    "name": "talk",
    "app": "shop",
    "start": "2026-03-02T07:55:00Z",
    "timezone": "Europe/Amsterdam",
    "initial": "v1.0.0",
    "environments": [
        {"name": "staging", "bakeTime": "3m", "window": ["09:00", "17:00"]},
        {"name": "prod", "upstream": "staging", "bakeTime": "3m"},
    ],
    "steps": [
        {
            "push": "v1.1.0",
            "say": "push v1.1.0 (08:55 in Amsterdam: staging's window opens at 09:00)",
        },
        {"wait": "staging", "tag": "v1.1.0", "bake": "Succeeded"},
        {"wait": "prod", "tag": "v1.1.0", "bake": "Succeeded"},
        {"push": "v1.2.0", "faulty": True, "say": "push v1.2.0: it raises the error rate"},
        {"wait": "staging", "tag": "v1.2.0", "bake": "Failed"},
        {"hold": "10m", "say": "prod never sees v1.2.0"},
        {
            "pin": "staging",
            "tag": "v1.1.0",
            "force": True,
            "message": "roll back the faulty v1.2.0",
            "say": "pin staging to v1.1.0 and force-deploy it",
        },
        {"wait": "staging", "tag": "v1.1.0", "bake": "Succeeded"},
    ],
}

_HAPPY: dict[str, Any] = {
    **_TALK,
    "name": "happy",
    "steps": _TALK["steps"][:3],
}

BUILTIN: dict[str, dict[str, Any]] = {"talk": _TALK, "happy": _HAPPY}


def load(name_or_path: str) -> Scenario:
    """The built-in scenario ``name_or_path``, else the YAML file at that path.

    Raises:
        ScenarioError: unknown name, unreadable file or invalid content.
    """
    raw = BUILTIN.get(name_or_path)
    if raw is None:
        path = Path(name_or_path)
        if not path.is_file():
            names = ", ".join(sorted(BUILTIN))
            raise ScenarioError(f"no scenario {name_or_path!r}: use {names} or a YAML file")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ScenarioError(f"{path}: cannot read the scenario: {exc}") from exc
    if not isinstance(raw, dict):
        raise ScenarioError(f"{name_or_path}: a scenario is a mapping")
    return parse(raw)


def parse(raw: dict[str, Any]) -> Scenario:
    """A Scenario from its mapping form; ScenarioError names what is wrong."""
    try:
        envs = tuple(_environment(e) for e in raw["environments"])
        names = {e.name for e in envs}
        steps = tuple(_step(s, names) for s in raw["steps"])
        start = parse_timestamp(str(raw.get("start", _TALK["start"])))
        return Scenario(
            name=str(raw.get("name", "custom")),
            app=str(raw.get("app", "shop")),
            start=start,
            timezone=str(raw.get("timezone", "UTC")),
            initial=str(raw.get("initial", "v1.0.0")),
            environments=envs,
            steps=steps,
            step_timeout=parse_duration(str(raw.get("stepTimeout", "2h"))),
        )
    except KeyError as exc:
        raise ScenarioError(f"scenario: missing field {exc}") from exc
    except (TypeError, ValueError, TimeSyntaxError) as exc:
        raise ScenarioError(f"scenario: {exc}") from exc


def _environment(raw: dict[str, Any]) -> Environment:
    window = raw.get("window")
    if window is not None and (not isinstance(window, list) or len(window) != 2):
        raise ScenarioError(f"environment {raw.get('name')}: window is [start, end]")
    return Environment(
        name=str(raw["name"]),
        upstream=raw.get("upstream"),
        bake_time=str(raw.get("bakeTime", "5m")),
        window=(str(window[0]), str(window[1])) if window else None,
    )


def _step(raw: dict[str, Any], environments: set[str]) -> Step:
    kinds = [k for k in STEP_KINDS if k in raw]
    if len(kinds) != 1:
        raise ScenarioError(f"step {raw}: needs exactly one of {', '.join(STEP_KINDS)}")
    kind, value = kinds[0], raw[kinds[0]]
    if kind == "push":
        return Step(kind, tag=str(value), faulty=bool(raw.get("faulty")), say=raw.get("say", ""))
    if kind == "hold":
        return Step(kind, duration=parse_duration(str(value)), say=raw.get("say", ""))
    if str(value) not in environments:
        raise ScenarioError(f"step {kind}: unknown environment {value!r}")
    if kind != "unpin" and not raw.get("tag"):
        raise ScenarioError(f"step {kind} {value}: needs a tag")
    bake = raw.get("bake")
    if bake not in (None, "Succeeded", "Failed", "InProgress", "Deploying", "Cancelled"):
        raise ScenarioError(f"step wait {value}: unknown bake status {bake!r}")
    return Step(
        kind,
        tag=str(raw["tag"]) if raw.get("tag") else None,
        env=str(value),
        bake=bake,
        message=raw.get("message"),
        force=bool(raw.get("force")),
        say=raw.get("say", ""),
    )
