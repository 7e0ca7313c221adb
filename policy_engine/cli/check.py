"""``tidegate check``: load, schema- and type-check policies and snapshots; report every problem.

Callers: ``policy_engine.cli.main``. Exit 0 when clean, 3 for policy errors,
4 for input errors (§9.2); ``--strict`` makes warnings errors.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from policy_engine import snapshots
from policy_engine.cli import common
from policy_engine.errors import Diagnostic, InputErrors, PolicyErrors, Severity, render_diagnostics
from policy_engine.rendering import github, json, junit

SNAPSHOT_MARK = "kind: FactSnapshot"


def register(sub: Any) -> None:
    parser = sub.add_parser("check", help="validate policies and snapshots")
    common.add_global_flags(parser, ["text", "json", "junit", "github"])
    parser.add_argument("paths", nargs="*", metavar="PATH")
    parser.add_argument("--strict", action="store_true", help="warnings are errors")
    parser.add_argument("--max-errors", type=int, default=50)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, streams: common.Streams) -> int:
    paths = [common.resolve_path(p) for p in [*args.paths, *args.policy]] or common.policy_paths(
        args
    )
    backend = common.backend_from(args, streams)
    files = _files(paths)
    diagnostics: list[Diagnostic] = []
    policy_files = [f for f in files if not _is_snapshot(f)]
    exit_code = 0
    try:
        compiled = common.load_and_compile(policy_files, backend)
        diagnostics.extend(w for p in compiled for w in p.warnings)
    except PolicyErrors as exc:
        diagnostics.extend(exc.diagnostics)
        exit_code = 3
    for file in (f for f in files if _is_snapshot(f)):
        try:
            snapshots.load_snapshot_path(file)
        except InputErrors as exc:
            diagnostics.extend(exc.diagnostics)
            exit_code = exit_code or 4
    if args.strict and any(d.severity is Severity.WARNING for d in diagnostics):
        exit_code = exit_code or 3
    shown = sorted(diagnostics, key=lambda d: d.sort_key)[: args.max_errors]
    _write(args, streams, files, shown, len(diagnostics))
    return exit_code


def _write(
    args: argparse.Namespace,
    streams: common.Streams,
    files: Sequence[str],
    shown: Sequence[Diagnostic],
    total: int,
) -> None:
    if args.output == "json":
        streams.out.write(json.dumps(json.check_report(files, shown)) + "\n")
    elif args.output == "junit":
        streams.out.write(junit.check_report(files, shown))
    elif args.output == "github":
        streams.out.write(github.diagnostic_annotations(shown))
    elif shown:
        streams.err.write(render_diagnostics(shown))
        if total > len(shown):
            streams.err.write(f"({total - len(shown)} more not shown; raise --max-errors)\n")
    elif not args.quiet:
        streams.out.write(f"{len(files)} file(s) checked, no problems\n")


def _files(paths: Sequence[str]) -> list[str]:
    out: list[str] = []
    for path in paths:
        target = Path(path)
        if target.is_dir():
            out += sorted(str(p) for p in target.rglob("*") if p.suffix in (".yaml", ".yml"))
        elif target.exists():
            out.append(str(target))
        else:
            from policy_engine.errors import UsageError

            raise UsageError(f"path {path!r} does not exist")
    return out


def _is_snapshot(file: str) -> bool:
    try:
        head = Path(file).read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return False
    return SNAPSHOT_MARK in head
