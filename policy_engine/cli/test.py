"""``tidegate test``: run PolicyTest / PolicyCheckTest suites, as ``opa test`` does, with a clock.

Callers: ``policy_engine.cli.main``. Exit codes (§9.2): 0 all passed, 1 a
case failed, 4 bad test input, 5 nothing selected (``--allow-empty`` → 0).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from policy_engine.cli import common
from policy_engine.errors import InputErrors, UsageError
from policy_engine.rendering import tests as render
from policy_engine.testing.suite import Filters, Suite

DEFAULT_ROOT = "tests/policy_cases"


def register(sub: Any) -> None:
    parser = sub.add_parser("test", help="run policy test suites")
    common.add_global_flags(parser, ["text", "json", "junit", "github"])
    parser.add_argument("paths", nargs="*", metavar="PATH")
    parser.add_argument("-r", "--run", metavar="REGEX", help="only cases whose ID matches")
    parser.add_argument("--filter", action="append", default=[], metavar="KEY=GLOB")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--allow-empty", action="store_true")
    parser.add_argument("--fail-fast", action="store_true")
    parser.add_argument(
        "--explain", nargs="?", const="fails", default="fails", choices=["fails", "all"]
    )
    parser.add_argument("--report", action="append", default=[], metavar="FORMAT=PATH")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, streams: common.Streams) -> int:
    filters = _filters(args)
    paths = args.paths or [DEFAULT_ROOT]
    suite = Suite(common.backend_from(args, streams), strict=args.strict)
    report = suite.run(paths, filters, fail_fast=args.fail_fast)
    writers = {
        "text": lambda: render.text(report, verbose=args.verbose),
        "json": lambda: render.json_report(report),
        "junit": lambda: render.junit(report),
        "github": lambda: render.github_report(report),
    }
    streams.out.write(writers[args.output]())
    for item in args.report:
        kind, _, target = item.partition("=")
        if kind not in writers or not target:
            raise UsageError(
                f"--report {item!r}: expected FORMAT=PATH with FORMAT one of " + ", ".join(writers)
            )
        Path(target).write_text(writers[kind](), encoding="utf-8")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if args.output == "github" and summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(render.summary_markdown(report))
    if report.input_errors:
        raise InputErrors(report.input_errors)
    if report.count("failed"):
        return 1
    if not report.cases and not args.allow_empty:
        streams.err.write("tidegate: no test case ran (use --allow-empty to accept that)\n")
        return 5
    return 0


def _filters(args: argparse.Namespace) -> Filters:
    pattern = None
    if args.run:
        try:
            pattern = re.compile(args.run)
        except re.error as exc:
            raise UsageError(f"--run: invalid regex: {exc}") from exc
    globs: dict[str, tuple[str, ...]] = {}
    for item in args.filter:
        key, _, glob = item.partition("=")
        if key not in ("file", "case", "rule", "tag") or not glob:
            raise UsageError(
                f"--filter {item!r}: expected KEY=GLOB with KEY file, case, rule or tag"
            )
        globs[key] = (*globs.get(key, ()), glob)
    return Filters(pattern, globs)
