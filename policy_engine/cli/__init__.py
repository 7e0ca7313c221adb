"""The ``tidegate`` command: verb dispatch, exit codes, error reporting.

Callers: the console script ``tidegate = policy_engine.cli:main``. Built-in
verbs live in this package; I/O verbs (``record``, ``run``, ``demo``, …) are
entry points of group ``tidegate.verbs`` loaded only when invoked, so
importing this package loads no kopf, kubernetes or httpx.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import entry_points

from policy_engine.cli import bench, check, common, eval, functions, replay
from policy_engine.cli import test as test_verb
from policy_engine.errors import (
    InputErrors,
    PolicyErrors,
    TidegateError,
    UsageError,
    render_diagnostics,
)

VERSION = "0.1.0"
EXTRA_OF = {
    "record": "controller",
    "run": "controller",
    "demo": "controller",
}
INTERNAL = 70
BUILTIN_VERBS = ("eval", "test", "check", "functions", "replay", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidegate",
        description="CEL deployment policies for Kubernetes: evaluate, test, explain.",
    )
    parser.add_argument("--version", action="version", version=f"tidegate {VERSION}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for module in (eval, test_verb, check, functions, replay, bench):
        module.register(sub)
    for verb in sorted(_plugin_verbs()):
        sub.add_parser(
            verb, help=f"(from an installed extra) see tidegate {verb} --help", add_help=False
        )
    return parser


def _plugin_verbs() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group="tidegate.verbs")}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one verb and returns its exit code (POLICY-FORMATS.md §9.2)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    streams = common.standard_streams()
    verbose = "-v" in arguments or "--verbose" in arguments
    try:
        return _dispatch(arguments, streams)
    except PolicyErrors as exc:
        streams.err.write(render_diagnostics(exc.diagnostics))
        return exc.exit_code
    except InputErrors as exc:
        streams.err.write(render_diagnostics(exc.diagnostics))
        return exc.exit_code
    except UsageError as exc:
        streams.err.write(f"tidegate: error: {exc.message}\n")
        if exc.hint:
            streams.err.write(f"  hint: {exc.hint}\n")
        return exc.exit_code
    except TidegateError as exc:
        streams.err.write(f"tidegate: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line, a traceback with -v
        streams.err.write(
            f"tidegate {VERSION}: internal error: {type(exc).__name__}: {exc}"
            " (re-run with -v for the traceback)\n"
        )
        if verbose:
            traceback.print_exc(file=streams.err)
        return INTERNAL


def _dispatch(arguments: list[str], streams: common.Streams) -> int:
    verb = next((a for a in arguments if not a.startswith("-")), None)
    plugins = _plugin_verbs()
    if verb in plugins and verb not in BUILTIN_VERBS:
        return _run_plugin(verb, arguments, streams, plugins[verb])
    if verb in EXTRA_OF and verb not in plugins:
        raise UsageError(
            f"'tidegate {verb}' needs the [{EXTRA_OF[verb]}] extra",
            hint=f"pip install 'tidegate[{EXTRA_OF[verb]}]'",
        )
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
        return 0 if code == 0 else 2
    if not getattr(args, "handler", None):
        parser.print_help(streams.out)
        return 2
    result: int = args.handler(args, streams)
    return result


def _run_plugin(verb: str, arguments: list[str], streams: common.Streams, entry: object) -> int:
    try:
        loaded = entry.load()  # type: ignore[attr-defined]
    except ImportError as exc:
        extra = EXTRA_OF.get(verb, "controller")
        raise UsageError(
            f"'tidegate {verb}' cannot load: {exc}", hint=f"pip install 'tidegate[{extra}]'"
        ) from exc
    rest = list(arguments)
    rest.remove(verb)
    result: int = loaded(rest, streams)
    return result
