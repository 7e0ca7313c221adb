"""``tidegate demo``: flags, logging to a file, signals; then ``running.run_demo``.

Callers: ``controller.cli.DEMO`` (the ``demo`` entry point of ``tidegate.verbs``).
Usage errors (a bad ``--speed``, an unknown scenario, a missing Prometheus with
``--alerts prometheus``) exit 2 with a hint, never a traceback. The controller's
logs go to a file (named at the end), so the terminal shows only the story.
SIGINT/SIGTERM end ``--keep``; during the scenario they stop the demo (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from controller.demo.prometheus import AlertSourceError
from controller.demo.report import Report
from controller.demo.running import DemoOptions, run_demo
from controller.demo.scenario import ScenarioError, load
from controller.logs import configure_logging
from policy_engine.cli.common import Streams

DEFAULT_SPEED = 90.0
MAX_SPEED = 100_000.0


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def __init__(self, streams: Streams, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.streams = streams

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            (self.streams.err if file is sys.stderr else self.streams.out).write(message)

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'max'") from None
    if not 0 < value <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f"{text} must be above 0 and at most {MAX_SPEED:g}")
    return value


def _parser(streams: Streams) -> _Parser:
    parser = _Parser(
        streams,
        prog="tidegate demo",
        description=(
            "Run the real tidegate controller against an embedded, in-process Kubernetes API "
            "emulation (kmock), simulated Flux and an alert source, on an accelerated clock."
        ),
    )
    parser.add_argument(
        "--speed", type=_speed, default=DEFAULT_SPEED, metavar="N|max",
        help=f"virtual seconds per real second (default {DEFAULT_SPEED:g}); max: jump when idle",
    )  # fmt: skip
    parser.add_argument(
        "--scenario", default="talk", metavar="NAME|FILE",
        help="built-in scenario (talk, happy) or a scenario YAML file (default talk)",
    )  # fmt: skip
    parser.add_argument("--output", choices=["text", "json"], default="text")
    parser.add_argument(
        "--keep", action="store_true",
        help="after the scenario, keep the emulated API and controller running (Ctrl-C stops)",
    )  # fmt: skip
    parser.add_argument(
        "--kubeconfig", type=Path, metavar="PATH",
        help="where --keep writes the kubeconfig (default: a new temporary directory)",
    )  # fmt: skip
    parser.add_argument(
        "--alerts", choices=["auto", "prometheus", "embedded"], default="auto",
        help="alert source: a real Prometheus when installed (auto), required, or embedded",
    )  # fmt: skip
    parser.add_argument(
        "--log-file", type=Path, metavar="PATH",
        help="controller logs (JSON lines; default: tidegate-demo.log in the temp directory)",
    )  # fmt: skip
    return parser


def main(argv: list[str], streams: Streams) -> int:
    """Runs the demo; returns the exit code."""
    try:
        args = _parser(streams).parse_args(argv)
        scenario = load(args.scenario)
    except (_UsageError, ScenarioError) as exc:
        streams.err.write(f"tidegate demo: error: {exc}\n  hint: see 'tidegate demo --help'\n")
        return 2
    except SystemExit as exc:  # --help
        return 0 if exc.code in (0, None) else 2
    log_path = args.log_file or Path(tempfile.gettempdir()) / "tidegate-demo.log"
    options = DemoOptions(scenario, args.speed, args.keep, args.kubeconfig, args.alerts)
    console = Console(file=streams.out, highlight=False)
    report = Report(console, args.output, streams.out)
    try:
        with log_path.open("w", encoding="utf-8") as log:
            configure_logging("info", log)
            code = asyncio.run(_main(options, report))
    except AlertSourceError as exc:
        streams.err.write(f"tidegate demo: error: {exc}\n")
        return 2
    except OSError as exc:
        streams.err.write(f"tidegate demo: error: {exc}\n")
        return 2
    if args.output == "text":
        console.print(f"controller logs: {log_path}", style="dim")
    return code


async def _main(options: DemoOptions, report: Report) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    demo = asyncio.create_task(run_demo(options, report, stop))
    if options.keep:
        return await demo
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({demo, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not demo.done():
        demo.cancel()
        await asyncio.gather(demo, return_exceptions=True)
        return 1
    return demo.result()
