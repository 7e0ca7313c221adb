"""The demo's timeline: what the controller decided and did, as seen through the API.

Callers: ``demo.running`` attaches ``Recorder.on_event`` to the emulated API's
listeners; ``demo.driver`` adds step records; ``demo.report`` renders the
timeline and the summary. Records are plain dicts (the ``--output json``
document): ``step``, ``decision``, ``gate``, ``schedule``, ``promotion-gate``,
``deploy``, ``bake``, ``health``, ``alert`` and ``event``, each with the virtual
instant ``at`` and the environment ``env``. It only observes: it never writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.demo import world
from controller.demo.services import AlertBoard
from evaluators.base import Clock
from policy_engine.model.times import format_timestamp

Record = dict[str, Any]
SCHEDULE_LABEL = "gate.kuberik.com/schedule-name"


class Recorder:
    """Turns API events into timeline records; remembers the last state per object."""

    def __init__(self, clock: Clock, board: AlertBoard) -> None:
        self.clock, self.board = clock, board
        self.timeline: list[Record] = []
        self.subscribers: list[Callable[[Record], None]] = []
        self._seen: dict[tuple[str, ...], Any] = {}
        self._alerts: frozenset[str] = frozenset()

    def add(self, kind: str, **fields: Any) -> Record:
        """Appends a record stamped with the virtual now."""
        at = format_timestamp(self.clock.now().replace(microsecond=0))
        record: Record = {"at": at, "kind": kind, **fields}
        self.timeline.append(record)
        for subscriber in self.subscribers:
            subscriber(record)
        return record

    def on_event(self, kind: str, event: dict[str, Any]) -> None:
        """Records what changed in one API event."""
        obj = event.get("object") or {}
        env = str((obj.get("metadata") or {}).get("namespace") or "")
        if kind == world.ROLLOUTS:
            self._rollout(env, obj)
        elif kind == world.GATES:
            self._gate(env, obj, deleted=event.get("type") == "DELETED")
        elif kind == world.SCHEDULES:
            status = obj.get("status") or {}
            self._changed(
                ("schedule", env),
                (status.get("active"), status.get("nextTransition")),
                "schedule",
                env=env,
                active=status.get("active"),
                nextTransition=status.get("nextTransition"),
            )
        elif kind == world.HEALTHCHECKS:
            status = obj.get("status") or {}
            name = obj["metadata"]["name"]
            if status.get("status") is None:
                return
            self._changed(
                ("health", env, name),
                status.get("status"),
                "health",
                env=env,
                check=name,
                status=status.get("status"),
                message=status.get("message"),
            )
        elif kind == "events" and event.get("type") == "ADDED":
            involved = obj.get("involvedObject") or {}
            self.add(
                "event",
                env=env,
                object=f"{involved.get('kind')}/{involved.get('name')}",
                type=obj.get("type"),
                reason=obj.get("reason"),
                message=obj.get("message"),
            )
        self._alert_changes()

    def _changed(self, key: tuple[str, ...], value: Any, kind: str, **fields: Any) -> None:
        if self._seen.get(key, object()) != value:
            self._seen[key] = value
            self.add(kind, **fields)

    def _rollout(self, env: str, obj: dict[str, Any]) -> None:
        status = obj.get("status") or {}
        for entry in reversed(status.get("history") or []):
            tag = (entry.get("version") or {}).get("tag")
            key = ("deploy", env, str(entry.get("id")))
            if key not in self._seen:
                self._seen[key] = True
                self.add(
                    "deploy",
                    env=env,
                    tag=tag,
                    id=entry.get("id"),
                    deployedAt=entry.get("timestamp"),
                    message=entry.get("message"),
                    triggeredBy=entry.get("triggeredBy"),
                )
            self._changed(
                ("bake", env, str(entry.get("id"))),
                entry.get("bakeStatus"),
                "bake",
                env=env,
                tag=tag,
                status=entry.get("bakeStatus"),
                message=entry.get("bakeStatusMessage"),
            )
        decision = status.get("decision") or {}
        for candidate in decision.get("candidates") or []:
            rules = sorted(r.get("id") for r in candidate.get("rules") or [])
            value = (candidate.get("decision"), candidate.get("nextChange"), tuple(rules))
            self._changed(
                ("decision", env, str(candidate.get("tag"))),
                value,
                "decision",
                env=env,
                tag=candidate.get("tag"),
                decision=candidate.get("decision"),
                nextChange=candidate.get("nextChange"),
                rules=[
                    {"id": r.get("id"), "result": r.get("result"), "message": r.get("message")}
                    for r in candidate.get("rules") or []
                ],
            )

    def _gate(self, env: str, obj: dict[str, Any], *, deleted: bool) -> None:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        schedule = (meta.get("labels") or {}).get(SCHEDULE_LABEL)
        if schedule:
            passing = None if deleted else spec.get("passing", True)
            self._changed(
                ("gate", env, meta["name"]),
                passing,
                "gate",
                env=env,
                gate=schedule,
                passing=passing,
            )
            return
        allowed = spec.get("allowedVersions")
        if allowed is None:
            return  # an environment without upstream: its gate restricts nothing
        self._changed(
            ("promotion-gate", env, meta["name"]),
            None if allowed is None else tuple(allowed),
            "promotion-gate",
            env=env,
            gate=meta["name"],
            allowedVersions=allowed,
        )

    def _alert_changes(self) -> None:
        firing = frozenset(a["labels"]["env"] for a in self.board.active())
        for env in sorted(firing - self._alerts):
            self.add("alert", env=env, state="firing", alert=f"{self.board.app} error ratio > 5 %")
        for env in sorted(self._alerts - firing):
            self.add(
                "alert", env=env, state="resolved", alert=f"{self.board.app} error ratio > 5 %"
            )
        self._alerts = firing
