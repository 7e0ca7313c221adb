"""``eval --sweep FROM..TO/STEP``: decision changes over a time range, to the second.

Callers: ``cli.eval``. Parses the range, runs ``evaluation.sweeping`` over the
decision of ``--release`` (else of the Rollout) and prints the transitions.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from policy_engine import evaluation
from policy_engine.cel.backend import CelBackend
from policy_engine.cli import common
from policy_engine.compiling import CompiledPolicy
from policy_engine.errors import UsageError
from policy_engine.evaluation.sweeping import SweepTooLong
from policy_engine.evaluation.sweeping import sweep as run_sweep
from policy_engine.model.facts import FactSet
from policy_engine.model.times import TimeSyntaxError, format_timestamp, parse_duration, to_utc
from policy_engine.rendering import json, text

SPEC = re.compile(r"^(?P<start>.+?)\.\.(?P<end>.+)/(?P<step>[^/]+)$")


def parse_range(spec: str, facts: FactSet) -> tuple[datetime, datetime, timedelta]:
    """``FROM..TO/STEP`` with FROM = RFC 3339 | recorded | now, TO = RFC 3339 | +DUR."""
    match = SPEC.match(spec)
    if match is None:
        raise UsageError(
            f"--sweep {spec!r}: expected FROM..TO/STEP",
            hint="e.g. recorded..+72h/15m or 2026-03-27T08:00:00+01:00..+72h/15m",
        )
    try:
        start_text = match.group("start")
        if start_text == "recorded":
            start = facts.now
        elif start_text == "now":
            start = common.wall_clock()
        else:
            start = to_utc(start_text)
        end_text = match.group("end")
        end = start + parse_duration(end_text[1:]) if end_text.startswith("+") else to_utc(end_text)
        step = parse_duration(match.group("step"))
    except TimeSyntaxError as exc:
        raise UsageError(f"--sweep: {exc}") from exc
    if end <= start or step <= timedelta(0):
        raise UsageError("--sweep: TO must be after FROM and STEP positive")
    return start, end, step


def sweep(
    args: argparse.Namespace,
    streams: common.Streams,
    policies: Sequence[CompiledPolicy],
    facts: FactSet,
    backend: CelBackend,
    options: evaluation.Options,
    display_tz: Any,
) -> int:
    start, end, step = parse_range(args.sweep, facts)
    release = args.release if args.release and args.release != "all" else None

    def state_at(instant: datetime) -> str:
        result = evaluation.evaluate(policies, facts.with_now(instant), backend, options)
        if release is not None:
            verdict = result.verdict_for(release)
            return verdict.decision.value if verdict else "none"
        return result.decision.value if result.decision else "UpToDate"

    try:
        initial, transitions = run_sweep(state_at, start, end, step)
    except SweepTooLong as exc:
        raise UsageError(f"--sweep: {exc}") from exc
    subject = f"release {release}" if release else "rollout"
    if args.output == "json":
        streams.out.write(
            json.dumps(
                {
                    "apiVersion": json.API_VERSION,
                    "kind": "SweepReport",
                    "subject": subject,
                    "from": format_timestamp(start),
                    "to": format_timestamp(end),
                    "step": args.sweep.rsplit("/", 1)[1],
                    "initial": initial,
                    "transitions": [
                        {"at": format_timestamp(t.at), "from": t.before, "to": t.after}
                        for t in transitions
                    ],
                }
            )
            + "\n"
        )
        return 0
    options_text = text.TextOptions(display_tz=display_tz)
    lines = [
        f"sweep {subject} {text.when(start, options_text)} .. {text.when(end, options_text)}"
        f" every {args.sweep.rsplit('/', 1)[1]}",
        f"  {text.when(start, options_text)}  {initial}",
    ]
    lines += [f"  {text.when(t.at, options_text)}  {t.before} → {t.after}" for t in transitions]
    lines.append(f"{len(transitions)} change(s)")
    streams.out.write("\n".join(lines) + "\n")
    return 0
