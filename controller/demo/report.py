"""What the demo shows: a live terminal view, the closing summary table, or one JSON document.

Callers: ``demo.running`` (``start``, ``run``, ``kept``, ``failed``, ``finish``)
and the recorder (``record``). ``--output text`` on a terminal redraws a rich
Live view (header saying the API is emulated and which alert source runs, the
environments, the latest timeline lines); on a pipe it prints one line per
record. ``--output json`` prints nothing until the end, then one line of JSON
(at ``kept`` already, since ``--keep`` then waits for Ctrl-C). It only renders.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from controller.demo.clock import DemoClock
from controller.demo.recording import Record
from controller.demo.scenario import Scenario

LIVE_LINES = 14
REFRESH_SECONDS = 0.125
API_NAME = "kmock"


class Report:
    """Collects records and renders them as the chosen output."""

    def __init__(self, console: Console, output: str, out: TextIO) -> None:
        self.console, self.output, self.out = console, output, out
        self.timeline: list[Record] = []
        self.header: dict[str, Any] = {}
        self.error: str | None = None
        self.kubeconfig: str | None = None
        self._clock: DemoClock | None = None
        self._scenario: Scenario | None = None
        self._started = 0.0
        self._emitted = False

    @property
    def live(self) -> bool:
        return self.output == "text" and self.console.is_terminal

    def start(
        self, scenario: Scenario, options: Any, url: str, source: Any, clock: DemoClock
    ) -> None:
        self._clock, self._scenario = clock, scenario
        self._started = asyncio.get_running_loop().time()
        from importlib.metadata import version

        self.header = {
            "scenario": scenario.name,
            "api": f"emulated Kubernetes API ({API_NAME} {version('kmock')}, in-process) at {url}",
            "alertSource": source.description,
            "speed": "max" if options.speed is None else options.speed,
            "virtualStart": _stamp(clock),
        }
        if self.output == "text":
            self.console.print(Panel(self._header_text(), title="tidegate demo", expand=False))

    def record(self, record: Record) -> None:
        self.timeline.append(record)
        if self.output == "text" and not self.live:
            self.console.print(_line(record), highlight=False)

    async def run(self) -> None:
        """Redraws the live view until cancelled (text output on a terminal only)."""
        if not self.live:
            await asyncio.Event().wait()
        with Live(self._view(), console=self.console, refresh_per_second=8, transient=True) as live:
            while True:
                await asyncio.sleep(REFRESH_SECONDS)
                live.update(self._view())

    def failed(self, message: str) -> None:
        self.error = message

    def kept(self, path: Any) -> None:
        """The scenario is over; the API stays up with ``path`` as kubeconfig."""
        self.kubeconfig = str(path)
        if self.output == "json":
            self._emit(0)
            return
        self.console.print(self._summary())
        self.console.print(
            f"\nThe emulated API keeps running. In another terminal:\n"
            f"  export KUBECONFIG={path}\n  kubectl get rollouts -A\n"
            "Press Ctrl-C to stop."
        )

    def finish(self, code: int, api: Any) -> None:
        self.header["virtualEnd"] = _stamp(self._clock)
        if self.output == "json":
            if not self._emitted:
                self._emit(code)
            return
        if self.kubeconfig is None:
            self.console.print(self._summary())
        if self.error:
            self.console.print(f"[red]demo failed:[/red] {self.error}")
        else:
            self.console.print(f"[green]done[/green]: {api.writes} API writes, exit {code}")

    # -- rendering --------------------------------------------------------------------------------

    def _emit(self, code: int) -> None:
        self._emitted = True
        loop_time = asyncio.get_running_loop().time()
        document = {
            **self.header,
            "virtualEnd": _stamp(self._clock),
            "realSeconds": round(loop_time - self._started, 3),
            "ok": code == 0,
            "exitCode": code,
            "error": self.error,
            "kubeconfig": self.kubeconfig,
            "environments": self._environments(),
            "timeline": self.timeline,
        }
        self.out.write(json.dumps(document, separators=(",", ":")) + "\n")
        self.out.flush()

    def _environments(self) -> dict[str, Any]:
        envs: dict[str, Any] = {}
        for env in self._scenario.environments if self._scenario else ():
            deploys = [r for r in self.timeline if r["kind"] == "deploy" and r["env"] == env.name]
            bakes = [r for r in self.timeline if r["kind"] == "bake" and r["env"] == env.name]
            envs[env.name] = {
                "version": deploys[-1]["tag"] if deploys else None,
                "bake": bakes[-1]["status"] if bakes else None,
                "deployed": [r["tag"] for r in deploys],
            }
        return envs

    def _header_text(self) -> Text:
        text = Text()
        text.append("Kubernetes: ", style="bold")
        text.append(self.header["api"] + "\n")
        text.append("Alerts:     ", style="bold")
        text.append(str(self.header["alertSource"]) + "\n")
        text.append("Clock:      ", style="bold")
        speed = self.header["speed"]
        text.append(
            "as fast as possible (virtual time jumps when idle)"
            if speed == "max"
            else f"{speed}× real time"
        )
        text.append(f", starting {self.header['virtualStart']}")
        return text

    def _view(self) -> Group:
        clock = Text(f"virtual time {_stamp(self._clock)}", style="bold cyan")
        lines = Text("\n").join(_line(r) for r in self.timeline[-LIVE_LINES:])
        return Group(clock, self._table(), Panel(lines, title="what happens", expand=True))

    def _summary(self) -> Table:
        return self._table(title="summary")

    def _table(self, title: str | None = None) -> Table:
        table = Table(title=title, expand=False)
        for column in ("environment", "running", "bake", "deployed, in order"):
            table.add_column(column)
        for name, env in self._environments().items():
            table.add_row(
                name, env["version"] or "-", env["bake"] or "-", " → ".join(env["deployed"])
            )
        return table


def _stamp(clock: DemoClock | None) -> str:
    return clock.now().strftime("%Y-%m-%d %H:%M:%S UTC") if clock else "-"


def _line(record: Record) -> Text:
    at = str(record.get("at", ""))[11:19]
    text = Text(f"{at} ", style="dim")
    kind, env = record["kind"], record.get("env") or ""
    style, body = _describe(kind, record)
    if env:
        text.append(f"{env:<8} ", style="bold")
    text.append(body, style=style)
    return text


def _describe(kind: str, r: Record) -> tuple[str, str]:
    if kind == "step":
        words = [str(r.get("action")), str(r.get("tag") or ""), str(r.get("duration") or "")]
        return "bold magenta", "▶ " + " ".join(w for w in words if w) + (
            f" — {r['say']}" if r.get("say") else ""
        )
    if kind == "deploy":
        return "bold green", f"deployed {r['tag']} ({r.get('message')})"
    if kind == "bake":
        style = {"Succeeded": "green", "Failed": "bold red"}.get(str(r.get("status")), "yellow")
        return style, f"{r['tag']} bake {r.get('status')}: {r.get('message') or ''}"
    if kind == "decision":
        rules = _rules(r.get("rules") or [])
        until = f" until {r['nextChange']}" if r.get("nextChange") else ""
        return "cyan", f"{r['tag']}: {r.get('decision')}{until}{rules}"
    if kind == "gate":
        state = {True: "open", False: "closed", None: "removed"}[r.get("passing")]
        return "cyan", f"schedule gate {r.get('gate')}: {state}"
    if kind == "schedule":
        return "dim", f"window active={r.get('active')}, next transition {r.get('nextTransition')}"
    if kind == "promotion-gate":
        return "cyan", f"promotion gate allows {r.get('allowedVersions')}"
    if kind == "health":
        style = {"Healthy": "green", "Unhealthy": "red"}.get(str(r.get("status")), "yellow")
        return style, f"{r.get('check')}: {r.get('status')} {r.get('message') or ''}"
    if kind == "alert":
        return (
            "bold red" if r.get("state") == "firing" else "green"
        ), f"alert {r.get('state')}: {r.get('alert')}"
    return "dim", f"event {r.get('type')} {r.get('reason')}: {r.get('message')}"


def _rules(rules: Sequence[dict[str, Any]]) -> str:
    shown = [f"{x.get('id')}: {x.get('message')}" for x in rules if x.get("result") != "pass"]
    return f" — {'; '.join(shown)}" if shown else ""
