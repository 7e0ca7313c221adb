"""``tidegate bench``: engine timings and ratios measured in one run.

Callers: ``policy_engine.cli.main``. Prints medians and ratios; the figures
quoted in closing notes come from here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from policy_engine import bench, loading, snapshots
from policy_engine.cel.environment import select_backend
from policy_engine.cli import common
from policy_engine.rendering import json
from policy_engine.testing.suite import Filters, Suite


def register(sub: Any) -> None:
    parser = sub.add_parser("bench", help="engine timings (ratios within one run)")
    parser.add_argument(
        "suite",
        nargs="?",
        choices=["engine"],
        default="engine",
        help="what to measure (the controller contributes its own suite)",
    )
    parser.add_argument("--facts", help="a FactSnapshot to measure with (default: built-in)")
    parser.add_argument("-p", "--policy", action="append", default=[])
    parser.add_argument("--backend", choices=["all", "cel-expr-python", "celpy"], default="all")
    parser.add_argument(
        "--cases",
        default="",
        help="also measure test throughput on this policy-case directory",
    )
    parser.add_argument("-o", "--output", choices=["text", "json"], default="text")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, streams: common.Streams) -> int:
    names = ["cel-expr-python", "celpy"] if args.backend == "all" else [args.backend]
    backends = [select_backend(n).backend for n in names]
    facts = snapshots.load_snapshot_path(args.facts)[-1].facts if args.facts else None
    policies = None
    if args.policy:
        policies = [*loading.load_builtin_policies(), *loading.load_policy_paths(args.policy)]
    rows = bench.run(backends, facts, policies)
    simple = _simple_throughput(backends[0])
    throughput = _test_throughput(args.cases, backends[0]) if args.cases else None
    if args.output == "json":
        streams.out.write(
            json.dumps(
                {
                    "apiVersion": json.API_VERSION,
                    "kind": "BenchReport",
                    "figures": [
                        {
                            "backend": b,
                            "name": f.name,
                            "medianSeconds": f.median_s,
                            "perSecond": f.per_second,
                        }
                        for b, f in rows
                    ],
                    "ratios": bench.ratios(rows),
                    "simpleTestCasesPerSecond": simple,
                    "corpusTestCasesPerSecond": throughput,
                }
            )
            + "\n"
        )
        return 0
    lines = [f"{'backend':<16} {'stage':<40} {'median':>12} {'per second':>12}"]
    for backend, figure in rows:
        lines.append(
            f"{backend:<16} {figure.name:<40} {_time(figure.median_s):>12} "
            f"{figure.per_second:>12,.0f}"
        )
    lines += ["", *bench.ratios(rows)]
    lines.append(
        f"tidegate test, simple cases ({backends[0].name}, YAML parsing included): "
        f"{simple:,.0f} cases/s"
    )
    if throughput is not None:
        lines.append(f"tidegate test, {args.cases} ({backends[0].name}): {throughput:,.0f} cases/s")
    streams.out.write("\n".join(lines) + "\n")
    return 0


def _test_throughput(path: str, backend: Any) -> float | None:
    if not Path(path).exists():
        return None
    suite = Suite(backend)
    suite.run([path], Filters())  # warm: compile policies, load snapshots
    started = time.perf_counter()
    report = suite.run([path], Filters())
    elapsed = time.perf_counter() - started
    ran = report.count("passed") + report.count("failed")
    return ran / elapsed if elapsed else None


def _simple_throughput(backend: Any) -> float:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "simple.yaml").write_text(bench.simple_suite(), encoding="utf-8")
        return _test_throughput(folder, backend) or 0.0


def _time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"
