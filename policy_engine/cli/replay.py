"""``tidegate replay``: re-evaluate logged decisions under the given policies; list changes.

Callers: ``policy_engine.cli.main``. Reads a decision log (NDJSON), a
snapshot file, a directory of snapshots or stdin; exit 1 when a recorded
decision would change (``--fail-on``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from policy_engine import replaying, snapshots
from policy_engine.cli import common
from policy_engine.errors import UsageError
from policy_engine.model.times import TimeSyntaxError, format_timestamp, to_utc
from policy_engine.rendering import github, json


def register(sub: Any) -> None:
    parser = sub.add_parser("replay", help="re-evaluate logged decisions, list changes")
    common.add_global_flags(parser, ["text", "json", "github"])
    parser.add_argument("source", metavar="LOG.ndjson|SNAPSHOT|DIR|-")
    parser.add_argument("--at", default="recorded", metavar="recorded|RFC3339")
    parser.add_argument("--fail-on", choices=["changed", "blocked", "none"], default="changed")
    parser.add_argument("--no-builtins", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, streams: common.Streams) -> int:
    backend = common.backend_from(args, streams)
    policies = common.load_and_compile(
        common.policy_paths(args), backend, builtins=not args.no_builtins
    )
    at = None
    if args.at != "recorded":
        try:
            at = to_utc(args.at)
        except TimeSyntaxError as exc:
            raise UsageError(f"--at: {exc}") from exc
    inputs = [
        replaying.ReplayInput(s.facts, s.decision, s.source[0], s.source[1], s.decision_id)
        for s in _snapshots(args.source)
    ]
    report = replaying.replay(inputs, policies, backend, at)
    _write(args, streams, report)
    if args.fail_on == "changed" and report.changes:
        return 1
    if args.fail_on == "blocked" and any(c.now == "Blocked" for c in report.changes):
        return 1
    return 0


def _snapshots(source: str) -> list[snapshots.Snapshot]:
    if source == "-":
        return snapshots.load_snapshot_text(sys.stdin.read(), "<stdin>")
    path = Path(source)
    if path.is_dir():
        found: list[snapshots.Snapshot] = []
        for file in sorted(
            p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json", ".ndjson")
        ):
            found += snapshots.load_snapshot_path(str(file))
        return found
    if not path.exists():
        raise UsageError(f"{source!r} does not exist")
    return snapshots.load_snapshot_path(source)


def _write(
    args: argparse.Namespace, streams: common.Streams, report: replaying.ReplayReport
) -> None:
    if args.output == "json":
        streams.out.write(
            json.dumps(
                {
                    "apiVersion": json.API_VERSION,
                    "kind": "ReplayReport",
                    "summary": {
                        "lines": report.lines,
                        "snapshots": report.snapshots,
                        "candidates": report.candidates,
                        "changed": len(report.changes),
                        "noRecordedDecision": report.no_recorded_decision,
                        "skipped": report.skipped,
                    },
                    "changes": [
                        {
                            "source": c.source,
                            "line": c.line,
                            "decisionId": c.decision_id,
                            "rollout": c.rollout,
                            "release": c.release,
                            "recorded": c.recorded,
                            "now": c.now,
                            "at": format_timestamp(c.at),
                            "rules": [
                                {"id": r.rule_id, "recorded": r.recorded, "now": r.now}
                                for r in c.rules
                            ],
                        }
                        for c in report.changes
                    ],
                }
            )
            + "\n"
        )
        return
    if args.output == "github":
        for change in report.changes:
            streams.out.write(
                github.command(
                    "error", f"{change.rollout} {change.release}: {change.recorded} → {change.now}"
                )
            )
        return
    for change in report.changes:
        where = f"{change.source}:{change.line}" if change.line else change.source
        streams.out.write(
            f"{where}  {change.rollout}  {change.release}  {change.recorded} → {change.now}\n"
        )
        for rule in change.rules:
            streams.out.write(f"    {rule.rule_id}: {rule.recorded} → {rule.now}\n")
    streams.out.write(
        f"{report.snapshots} snapshot(s), {report.candidates} recorded "
        f"decision(s), {len(report.changes)} changed, "
        f"{report.no_recorded_decision} without a recorded decision\n"
    )
