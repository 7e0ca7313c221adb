"""The ``tidegate run`` and ``tidegate demo`` verbs: flags, credentials, logging, signals.

Callers: the ``tidegate`` dispatcher through the ``tidegate.verbs`` entry point
``run = "controller.cli:RUN"`` as ``RUN(argv, streams) -> int`` (then
``main.run_controller``) and ``demo = "controller.cli:DEMO"`` (then
``demo.verb``). kopf and the runtime are imported only when the verb runs.
Usage errors exit 2 with a hint, never a traceback; SIGTERM and SIGINT stop the
controller gracefully (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from policy_engine.cli.common import Streams

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

    from controller.main import ControllerConfig

LOG = logging.getLogger("tidegate.cli")
LOG_LEVELS = ("debug", "info", "warning", "error")
CREDENTIALS_HINT = "pass --kubeconfig PATH, set KUBECONFIG, or run in a pod with a service account"


class _UsageError(Exception):
    def __init__(self, message: str, hint: str = "see 'tidegate run --help'") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


class _Parser(argparse.ArgumentParser):
    """argparse writing to the verb's streams and raising instead of exiting on errors."""

    def __init__(self, streams: Streams, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.streams = streams

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        if message:
            (self.streams.err if file is sys.stderr else self.streams.out).write(message)

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _parser(streams: Streams) -> _Parser:
    parser = _Parser(
        streams,
        prog="tidegate run",
        description="Run the tidegate controller: Kuberik Rollouts decided by CEL policies.",
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="kubeconfig file (default: $KUBECONFIG, in-cluster service account, ~/.kube/config)",
    )
    parser.add_argument("--context", help="kubeconfig context (default: current-context)")
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch only this namespace (repeatable; default: all)",
    )
    parser.add_argument("--workers", type=int, default=4, help="parallel reconciles (default 4)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=8080,
        help="port for /metrics and /healthz (default 8080; 0 = off)",
    )
    parser.add_argument(
        "--decision-log",
        type=Path,
        metavar="PATH",
        help="append decision snapshots (NDJSON) to PATH",
    )
    parser.add_argument(
        "--prometheus-url",
        metavar="URL",
        help="Prometheus of prometheus-alert HealthChecks without their own URL annotation",
    )
    parser.add_argument(
        "--prometheus-allow",
        action="append",
        metavar="PREFIX",
        help="URL prefix HealthChecks may query (repeatable; default: any http(s) URL)",
    )
    parser.add_argument(
        "--github-api-url",
        metavar="URL",
        default="https://api.github.com",
        help="GitHub REST API of Environments with backend github (default https://api.github.com)",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    parser.add_argument(
        "--cel-backend",
        choices=["auto", "cel-expr-python", "celpy"],
        default=None,
        help="CEL implementation (env TIDEGATE_CEL_BACKEND)",
    )
    return parser


def RUN(argv: list[str], streams: Streams) -> int:
    """Runs the controller until SIGTERM/SIGINT; returns the exit code."""
    try:
        args = _parser(streams).parse_args(argv)
        config = _config(args)
    except _UsageError as exc:
        streams.err.write(f"tidegate run: error: {exc.message}\n")
        streams.err.write(f"  hint: {exc.hint}\n")
        return 2
    except SystemExit as exc:  # --help
        return 0 if exc.code in (0, None) else 2
    from controller.logs import configure_logging
    from evaluators.clock import SystemClock

    configure_logging(args.log_level, streams.err)
    try:
        asyncio.run(_serve(config, SystemClock()))
    except OSError as exc:
        streams.err.write(f"tidegate run: error: {exc}\n")
        return 2
    except Exception as exc:  # kopf gave up (login, API unreachable at start, …)
        LOG.error("controller stopped: %s: %s", type(exc).__name__, exc)
        return 1
    return 0


def DEMO(argv: list[str], streams: Streams) -> int:
    """``tidegate demo``: the controller on an emulated API (controller/demo; docs/demo.md)."""
    try:
        from controller.demo import verb
    except ImportError as exc:
        streams.err.write(f"tidegate demo: error: cannot load: {exc}\n")
        streams.err.write("  hint: pip install 'tidegate[controller]'\n")
        return 2
    return verb.main(argv, streams)


def _config(args: argparse.Namespace) -> ControllerConfig:
    if args.workers < 1:
        raise _UsageError(f"--workers {args.workers} must be at least 1")
    if not 0 <= args.metrics_port <= 65535:
        raise _UsageError(f"--metrics-port {args.metrics_port} must be 0..65535 (0 = off)")
    try:
        from controller import credentials
        from controller.main import ControllerConfig
    except ImportError as exc:
        raise _UsageError(
            f"'tidegate run' cannot load: {exc}", hint="pip install 'tidegate[controller]'"
        ) from exc
    try:
        connection, token_path = credentials.resolve(args.kubeconfig, args.context)
    except credentials.CredentialsError as exc:
        raise _UsageError(str(exc), hint=CREDENTIALS_HINT) from exc
    return ControllerConfig(
        credentials=connection,
        token_path=token_path,
        namespaces=tuple(dict.fromkeys(args.namespace)),
        workers=args.workers,
        metrics_port=args.metrics_port,
        decision_log=args.decision_log,
        cel_backend=args.cel_backend,
        prometheus_url=args.prometheus_url,
        prometheus_allowed=tuple(args.prometheus_allow) if args.prometheus_allow else None,
        github_api_url=_github_api_url(args.github_api_url),
    )


def _github_api_url(url: str) -> str:
    if not url.startswith(("http://", "https://")) or len(url.split("/")[2]) == 0:
        raise _UsageError(
            f"--github-api-url must be an http(s) URL, got {url[:80]!r}",
            hint="e.g. --github-api-url https://github.example.com/api/v3",
        )
    return url.rstrip("/")


async def _serve(config: ControllerConfig, clock: Any) -> None:
    from controller.main import run_controller

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run_controller(config, clock, stop=stop)
