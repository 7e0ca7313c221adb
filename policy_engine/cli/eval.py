"""``tidegate eval``: the decision and its explanation for one Rollout from recorded facts.

Callers: ``policy_engine.cli.main``. Reads files and the wall clock (only
for ``--at wall``), writes results to stdout; decisions come from
``evaluation``. Exit 1 when the decision is Pending/Blocked (``--fail-on``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from policy_engine import evaluation, snapshots
from policy_engine.cli import common, sweeping
from policy_engine.compiling import CompiledPolicy, coerce_param
from policy_engine.errors import (
    Diagnostic,
    InputErrors,
    NothingSelected,
    SourceLocation,
    UsageError,
)
from policy_engine.explaining import Explainer
from policy_engine.model.facts import DELETE, FactSet, FactShapeError, with_overrides
from policy_engine.model.paths import PathSyntaxError, parse_path
from policy_engine.model.times import TimeSyntaxError, format_timestamp, parse_duration, to_utc
from policy_engine.model.verdict import Decision, Evaluation
from policy_engine.rendering import github, json, text

FAIL_ON = ("blocked", "pending", "warn", "none")


def register(sub: Any) -> None:
    parser = sub.add_parser("eval", help="decision + explanation for one Rollout")
    common.add_global_flags(parser, ["text", "json", "github"])
    parser.add_argument("--facts", required=False, metavar="FILE|-")
    parser.add_argument("--live", action="store_true", help="read facts from the cluster")
    parser.add_argument("--rollout", metavar="NS/NAME")
    parser.add_argument("--release", metavar="TAG|all")
    parser.add_argument("--at", metavar="RFC3339|recorded|wall")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument("--param", action="append", default=[], metavar="[POLICY/]NAME=VALUE")
    parser.add_argument("--rule", action="append", default=[], metavar="REF")
    parser.add_argument("--no-builtins", action="store_true")
    parser.add_argument(
        "--explain", nargs="?", const="fails", default=None, choices=["fails", "all", "none"]
    )
    parser.add_argument("--sweep", metavar="FROM..TO/STEP")
    parser.add_argument("--horizon", default="2160h", metavar="DUR")
    parser.add_argument("--fail-on", default="blocked,pending")
    parser.add_argument("--display-tz", default=None, metavar="ZONE")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, streams: common.Streams) -> int:
    if args.live:
        raise UsageError(
            "eval --live needs the cluster readers",
            hint="pip install 'tidegate[evaluators]' and use tidegate record, then eval --facts",
        )
    if not args.facts:
        raise UsageError("eval needs --facts FILE (or - for stdin)")
    fail_on = _fail_on(args.fail_on)
    horizon = _duration(args.horizon, "--horizon")
    display_tz = _zone(args.display_tz)
    _check_flags(args)  # usage errors (exit 2) outrank policy and input errors
    backend = common.backend_from(args, streams)
    policies = common.load_and_compile(
        common.policy_paths(args), backend, builtins=not args.no_builtins
    )
    snapshot = _snapshot(args.facts, args.rollout)
    facts = _facts(snapshot, args.set, args.at)
    missing = evaluation.missing_roots(policies, facts)
    if missing:
        raise InputErrors(
            [
                Diagnostic(
                    "input.missing_fact",
                    f"the policies read {', '.join(missing)} but {args.facts} does not record it",
                    SourceLocation(args.facts),
                    hint="record it (tidegate record) or list its collection error under errors:",
                )
            ]
        )
    options = _options(args, policies, facts, horizon)
    if args.sweep:
        return sweeping.sweep(args, streams, policies, facts, backend, options, display_tz)
    result = evaluation.evaluate(policies, facts, backend, options)
    explain_mode = args.explain or ("fails" if args.output == "text" else "none")
    if args.output == "json" and args.explain is None:
        explain_mode = "none"
    explainer = Explainer(policies, facts, backend, options)
    explanations = {v.tag: explainer.explain(v, explain_mode) for v in result.verdicts}
    info = json.FactsInfo(
        source="file",
        path=args.facts,
        recorded_at=format_timestamp(snapshot.recorded_at) if snapshot.recorded_at else None,
        overrides=tuple(args.set),
    )
    if args.output == "json":
        streams.out.write(
            json.dumps(json.evaluation_report(result, facts, info, explanations, _tzdata())) + "\n"
        )
    elif args.output == "github":
        streams.out.write(github.evaluation_annotations(result))
    else:
        header = _header(
            result, facts, snapshot, backend_text=result.backend, display_tz=display_tz
        )
        rules = _rule_filter(args.rule, policies)
        streams.out.write(
            text.evaluation_text(
                result,
                facts,
                header,
                explanations,
                text.TextOptions(
                    color=streams.color(args.color),
                    glyphs=args.color != "never",
                    display_tz=display_tz,
                    explain=explain_mode,
                    rules=rules,
                ),
            )
        )
    return _exit(result, args.release, fail_on)


def _check_flags(args: argparse.Namespace) -> None:
    if args.at not in (None, "recorded", "wall"):
        try:
            to_utc(args.at)
        except TimeSyntaxError as exc:
            raise UsageError(f"--at: {exc}") from exc
    for item in args.set:
        name, _ = common.parse_assignment(item, "--set")
        try:
            parse_path(name)
        except PathSyntaxError as exc:
            raise UsageError(f"--set: {exc}") from exc
    for item in args.param:
        common.parse_assignment(item, "--param")
    if args.sweep and not sweeping.SPEC.match(args.sweep):
        raise UsageError(
            f"--sweep {args.sweep!r}: expected FROM..TO/STEP", hint="e.g. recorded..+72h/15m"
        )


def _snapshot(path: str, rollout: str | None) -> snapshots.Snapshot:
    if path == "-":
        found = snapshots.load_snapshot_text(sys.stdin.read(), "<stdin>")
    else:
        found = snapshots.load_snapshot_path(path)
    if rollout is not None:
        namespace, _, name = rollout.partition("/")
        found = [s for s in found if s.target == (namespace, name)]
        if not found:
            raise NothingSelected(f"no snapshot for rollout {rollout!r} in {path}")
    if not found:
        raise UsageError(f"{path} holds no FactSnapshot")
    return found[-1]


def _facts(snapshot: snapshots.Snapshot, sets: Sequence[str], at: str | None) -> FactSet:
    facts = snapshot.facts
    if at not in (None, "recorded"):
        if at == "wall":
            facts = facts.with_now(common.wall_clock(), "wall")
        else:
            try:
                facts = facts.with_now(to_utc(at or ""), "flag")
            except TimeSyntaxError as exc:
                raise UsageError(f"--at: {exc}") from exc
    assignments: list[tuple[Any, Any]] = []
    for item in sets:
        name, value = common.parse_assignment(item, "--set")
        try:
            assignments.append((parse_path(name), DELETE if value is None else value))
        except PathSyntaxError as exc:
            raise UsageError(f"--set: {exc}") from exc
    if not assignments:
        return facts
    try:
        return with_overrides(facts, assignments, "cli")
    except FactShapeError as exc:
        raise UsageError(f"--set: {exc}") from exc


def _options(
    args: argparse.Namespace, policies: Sequence[CompiledPolicy], facts: FactSet, horizon: timedelta
) -> evaluation.Options:
    params: dict[str, dict[str, Any]] = {}
    for item in args.param:
        name, value = common.parse_assignment(item, "--param")
        scope, _, param = name.rpartition("/")
        targets = [
            p
            for p in policies
            if name.rpartition("/")[2] in p.param_types and (not scope or scope in (p.ref, p.name))
        ]
        if not targets:
            raise UsageError(f"--param {name}: no attached policy declares param {param!r}")
        for policy in targets:
            try:
                params.setdefault(policy.ref, {})[param] = coerce_param(
                    policy.param_types[param], value
                )
            except (TimeSyntaxError, ValueError, TypeError) as exc:
                raise UsageError(f"--param {name}: {exc}") from exc
    candidates = None
    hypothetical: frozenset[str] = frozenset()
    recorded = facts.values.get("candidates") or []
    if args.release and args.release != "all":
        match = [c for c in recorded if c.get("tag") == args.release]
        if not match:
            match = [_hypothetical(args.release)]
            hypothetical = frozenset({args.release})
            candidates = [*match, *recorded]
    return replace(
        evaluation.Options(),
        horizon=horizon,
        params=params,
        candidates=candidates,
        hypothetical=hypothetical,
    )


def _hypothetical(tag: str) -> dict[str, Any]:
    return {"tag": tag, "version": None, "digest": None, "revision": None, "created": None}


def _header(
    result: Evaluation,
    facts: FactSet,
    snapshot: snapshots.Snapshot,
    *,
    backend_text: str,
    display_tz: Any,
) -> list[tuple[str, str]]:
    rollout = facts.values.get("rollout") or {}
    current = (rollout.get("current") or {}).get("tag") or "nothing"
    tags = ", ".join(v.tag for v in result.verdicts) or "none"
    options = text.TextOptions(display_tz=display_tz)
    lines = [
        (
            "rollout",
            f"{rollout.get('namespace')}/{rollout.get('name')}   running {current}   "
            f"candidates {tags}",
        ),
        ("now", f"{text.when(facts.now, options)} (from {facts.now_source})"),
    ]
    if snapshot.recorded_at is not None:
        digest = (facts.digest or "")[:15]
        recorded = f"recorded {text.when(snapshot.recorded_at, options)}  {digest}"
        lines.append(("facts", recorded))
        gap = facts.now - snapshot.recorded_at
        if abs(gap) > timedelta(minutes=5):
            lines.append(
                (
                    "",
                    "warning[input.time_gap]: now differs from the recording by "
                    f"{text._span(abs(gap))}; other facts are assumed unchanged",
                )
            )
    refs = (
        " · ".join(
            sorted(
                {
                    p.ref + (" (builtin)" if p.builtin else f" {p.digest[:15]}")
                    for p in result.policies
                }
            )
        )
        or "none"
    )
    lines.append(("policies", refs))
    lines.append(
        ("engine", f"tidegate {json.ENGINE_VERSION} · {backend_text} · tzdata {_tzdata()}")
    )
    return lines


def _rule_filter(refs: Sequence[str], policies: Sequence[CompiledPolicy]) -> frozenset[str] | None:
    if not refs:
        return None
    chosen: set[str] = set()
    ids = [r.rule_id for p in policies for r in p.rules]
    for ref in refs:
        found = [i for i in ids if i == ref or i.endswith("/" + ref)]
        if len(found) != 1:
            raise UsageError(
                f"--rule {ref!r} matches {len(found)} rules",
                hint="use <policy>/<rule> or the full rule ID",
            )
        chosen.update(found)
    return frozenset(chosen)


def _exit(result: Evaluation, release: str | None, fail_on: frozenset[str]) -> int:
    if release and release != "all":
        verdict = result.verdict_for(release)
        decision = verdict.decision if verdict else None
        warned = bool(verdict and verdict.warnings)
    else:
        decision = result.decision
        warned = any(v.warnings for v in result.verdicts)
    if decision is None:
        return 0
    if decision is Decision.BLOCKED and "blocked" in fail_on:
        return 1
    if decision is Decision.PENDING and "pending" in fail_on:
        return 1
    return 1 if warned and "warn" in fail_on else 0


def _fail_on(value: str) -> frozenset[str]:
    items = frozenset(v.strip() for v in value.split(",") if v.strip())
    unknown = items - set(FAIL_ON)
    if unknown:
        raise UsageError(
            f"--fail-on: unknown {', '.join(sorted(unknown))}",
            hint="use blocked, pending, warn or none",
        )
    return frozenset() if "none" in items else items


def _duration(value: str, flag: str) -> timedelta:
    try:
        return parse_duration(value)
    except TimeSyntaxError as exc:
        raise UsageError(f"{flag}: {exc}") from exc


def _zone(name: str | None) -> ZoneInfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(f"--display-tz: unknown time zone {name!r}") from exc


def _tzdata() -> str:
    try:
        from importlib.metadata import version

        return version("tzdata")
    except Exception:  # the system zone database has no version we can read
        return "system"
