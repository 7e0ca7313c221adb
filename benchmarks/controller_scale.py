"""Scale benchmark of ``tidegate run``: N Rollouts on a real apiserver; startup, idle, churn.

Run: ``/work/.venv/bin/python benchmarks/controller_scale.py --rollouts 1000 [--releases 200]
[--json]``, or a named configuration: ``--preset 10k-one-namespace`` (see PRESETS). It starts a
KubeCluster (tests/cluster), creates N ImagePolicies + Kustomizations + Rollouts, starts ``tidegate
run`` (of this checkout or ``--controller-root``) as a subprocess and measures (c) startup to all
first deploys, (a) idle CPU/RSS and (b) release -> Kustomization patch latency under churn
(ARCHITECTURE.md §9). It must not change or import controller code; it only talks to the
apiserver and reads /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
for extra in (HERE, REPO_ROOT / "tests" / "cluster"):
    if str(extra) not in sys.path:  # neither directory is a package
        sys.path.insert(0, str(extra))

from kubecluster import KubeCluster, KubeClusterError, free_port  # noqa: E402
from scale_cluster import (  # noqa: E402
    KUBERIK,
    BenchError,
    KustomizationWatch,
    ProcSample,
    call,
    create_all,
    list_all,
    names,
    new_client,
    sample,
    set_tag,
)

RUN = (
    "import sys; from controller.cli import RUN; "
    "from policy_engine.cli.common import standard_streams; "
    "sys.exit(RUN(sys.argv[1:], standard_streams()))"
)
FIRST_TAG = "0.1.0"
PRESETS: dict[str, dict[str, int]] = {
    "1k-one-namespace": {"rollouts": 1000, "namespaces": 1},
    "10k-one-namespace": {"rollouts": 10000, "namespaces": 1},
    "10k-100-namespaces": {"rollouts": 10000, "namespaces": 100},
}
"""Named configurations (README.md): ``--preset NAME`` sets ``--rollouts`` and ``--namespaces``
(explicit options still win). ``10k-one-namespace`` is the worst case for per-namespace scans."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a named configuration")
    parser.add_argument(
        "--controller-root", type=Path, default=REPO_ROOT,
        help="checkout whose controller runs (default: this one; e.g. a git worktree of HEAD)",
    )  # fmt: skip
    parser.add_argument("--rollouts", type=int, default=1000, help="N Rollouts (default 1000)")
    parser.add_argument("--releases", type=int, default=200, help="churn releases (default 200)")
    parser.add_argument("--rate", type=float, default=20.0, help="releases per second (20)")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="idle window (60)")
    parser.add_argument("--settle-seconds", type=float, default=5.0, help="pause before idle (5)")
    parser.add_argument("--namespaces", type=int, default=1, help="spread over K namespaces (1)")
    parser.add_argument("--workers", type=int, default=8, help="tidegate run --workers (8)")
    parser.add_argument("--concurrency", type=int, default=32, help="creation requests in flight")
    parser.add_argument("--log-level", default="info", help="tidegate run --log-level (info)")
    parser.add_argument("--startup-timeout", type=float, default=0.0, help="0: 120 s + 0.1 s/N")
    parser.add_argument("--churn-timeout", type=float, default=120.0, help="wait for patches")
    parser.add_argument("--seed", type=int, default=1, help="random seed for churn targets")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    preset = parser.parse_known_args(argv)[0].preset
    parser.set_defaults(**PRESETS.get(preset or "", {}))
    args = parser.parse_args(argv)
    if not (args.controller_root / "controller" / "cli.py").is_file():
        parser.error(f"--controller-root {args.controller_root}: no controller/cli.py there")
    if args.rollouts < 1 or args.releases < 0 or args.rate <= 0 or args.namespaces < 1:
        parser.error("--rollouts and --namespaces must be >= 1, --releases >= 0, --rate > 0")
    return args


def start_controller(
    cluster: KubeCluster, args: argparse.Namespace, port: int, log: Path
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-c", RUN, "--kubeconfig", str(cluster.admin_kubeconfig)]
    argv += ["--metrics-port", str(port), "--workers", str(args.workers)]
    argv += ["--log-level", args.log_level]
    root = str(args.controller_root.resolve())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get(
        "PYTHONPATH"))))}  # fmt: skip
    with log.open("ab") as stderr:
        return subprocess.Popen(
            argv, stderr=stderr, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=root,
            env=env,
        )  # fmt: skip


def stop_controller(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_percent(before: ProcSample, after: ProcSample, seconds: float) -> float:
    return 100.0 * (after.cpu_seconds - before.cpu_seconds) / seconds


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (NaN when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100.0 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def cluster_pids(cluster: KubeCluster) -> list[int]:
    """PIDs of the cluster's etcd and kube-apiserver (KubeCluster keeps them privately)."""
    return [proc.pid for proc in cluster._procs.values()]


def cluster_cpu(pids: list[int]) -> float:
    return sum(sample(pid).cpu_seconds for pid in pids)


async def wait_for(
    check: Any, timeout: float, what: str, process: subprocess.Popen[bytes] | None = None
) -> float:
    """Polls ``check()`` every 50 ms until true; returns the seconds waited."""
    started = time.monotonic()
    while not check():
        if process is not None and process.poll() is not None:
            raise BenchError(f"tidegate run exited with {process.returncode} while waiting: {what}")
        if time.monotonic() - started > timeout:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def count_deployed(client: httpx.AsyncClient, namespaces: list[str]) -> int:
    """Rollouts (by LIST) whose status.history holds at least one deploy."""
    total = 0
    for ns in namespaces:
        items, _ = await list_all(client, f"{KUBERIK.format(ns=ns)}/rollouts")
        total += sum(1 for item in items if (item.get("status") or {}).get("history"))
    return total


async def scrape(port: int) -> dict[str, float]:
    """The controller's counters of interest from /metrics (label sets summed)."""
    wanted = ("tidegate_reconciles_total", "tidegate_apply_errors_total", "tidegate_queue_depth")
    found = dict.fromkeys(wanted, 0.0)
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in found:
            found[name] += float(line.rsplit(" ", 1)[1])
    return found


async def churn(
    client: httpx.AsyncClient,
    watch: KustomizationWatch,
    spots: list[tuple[str, int]],
    args: argparse.Namespace,
) -> list[float]:
    """M releases at ``--rate``/s to random Rollouts; the release -> patch latencies."""
    rng = random.Random(args.seed)
    targets = [spots[i % len(spots)] for i in range(args.releases)]
    rng.shuffle(targets)
    seen: dict[tuple[str, int], int] = {}
    sends: list[asyncio.Task[None]] = []
    first = len(watch.latencies)
    started = time.monotonic()
    for k, (ns, index) in enumerate(targets):
        await asyncio.sleep(max(0.0, started + k / args.rate - time.monotonic()))
        seen[(ns, index)] = seen.get((ns, index), 0) + 1
        tag = f"0.{1 + seen[(ns, index)]}.0"
        _, policy, kustomization = names(index)
        key = (ns, kustomization)
        watch.expect(key, tag, time.monotonic())
        sends.append(asyncio.create_task(set_tag(client, ns, policy, tag)))
    await asyncio.gather(*sends)
    try:
        await wait_for(lambda: not watch.pending, args.churn_timeout, "pending patches")
    except BenchError:
        progress(f"{len(watch.pending)} releases not patched after {args.churn_timeout:g} s")
    return watch.latencies[first:]


async def bench(cluster: KubeCluster, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    """The whole run after the cluster is up; returns the results."""
    results: dict[str, Any] = {"rollouts": args.rollouts, "workers": args.workers}
    results |= {"namespaces": args.namespaces, "preset": args.preset}
    results["controller_root"] = str(args.controller_root)
    client = new_client(cluster.server, cluster.tokens["admin"], cluster.ca_file, 64)
    namespaces = [f"bench-{k}" for k in range(args.namespaces)]
    for ns in namespaces:
        await call(client, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    spots = [(namespaces[i % len(namespaces)], i) for i in range(args.rollouts)]
    started = time.monotonic()
    await create_all(client, spots, FIRST_TAG, args.concurrency)
    results["create_seconds"] = time.monotonic() - started
    progress(f"created {3 * args.rollouts} objects in {results['create_seconds']:.1f} s")
    watch = KustomizationWatch(client)
    watcher = asyncio.create_task(watch.run())
    await wait_for(lambda: len(watch.values) >= args.rollouts, 300, "the Kustomization LIST")
    port = free_port()
    process = start_controller(cluster, args, port, log)
    try:
        await measure_startup(client, watch, process, namespaces, args, results)
        await measure_idle(process, port, cluster, args, results)
        await measure_churn(client, watch, process, spots, args, results)
        results["metrics"] = await scrape(port)
        results["watch_restarts"] = watch.restarts
    finally:
        stop_controller(process)
        watcher.cancel()
        await client.aclose()
    return results


async def measure_startup(
    client: httpx.AsyncClient,
    watch: KustomizationWatch,
    process: subprocess.Popen[bytes],
    namespaces: list[str],
    args: argparse.Namespace,
    results: dict[str, Any],
) -> None:
    """(c) From process start until every Kustomization carries the first tag."""
    timeout = args.startup_timeout or 120.0 + 0.1 * args.rollouts
    total = args.rollouts
    results["first_deploy_seconds"] = await wait_for(
        lambda: watch.count(FIRST_TAG) >= 1, timeout, "the first deploy", process
    )
    results["startup_seconds"] = (
        await wait_for(
            lambda: watch.count(FIRST_TAG) >= total, timeout, f"{total} first deploys", process
        )
        + results["first_deploy_seconds"]
    )
    results["deployed_by_list"] = await count_deployed(client, namespaces)
    current = sample(process.pid)
    results["startup_cpu_seconds"] = current.cpu_seconds
    results["startup_rss_mib"] = current.rss_mib
    progress(f"all {total} first deploys after {results['startup_seconds']:.1f} s")


async def wait_quiet(port: int, timeout: float) -> float:
    """Seconds until the queue is empty and no reconcile finished for two 1-s polls."""
    started, last, calm = time.monotonic(), -1.0, 0
    while calm < 2:
        if time.monotonic() - started > timeout:
            raise BenchError(f"controller still busy after {timeout:g} s")
        await asyncio.sleep(1.0)
        metrics = await scrape(port)
        done = metrics["tidegate_reconciles_total"]
        calm = calm + 1 if done == last and not metrics["tidegate_queue_depth"] else 0
        last = done
    return time.monotonic() - started


async def measure_idle(
    process: subprocess.Popen[bytes],
    port: int,
    cluster: KubeCluster,
    args: argparse.Namespace,
    results: dict[str, Any],
) -> None:
    """(a) CPU and RSS over ``--idle-seconds`` with nothing changing."""
    results["quiet_seconds"] = await wait_quiet(port, args.startup_timeout or 600.0)
    progress(
        f"controller quiet (queue empty, no reconciles) {results['quiet_seconds']:.1f} s later"
    )
    await asyncio.sleep(args.settle_seconds)
    pids = cluster_pids(cluster)
    before, cluster_before, started = sample(process.pid), cluster_cpu(pids), time.monotonic()
    slices, last, last_at = [], before, started
    while (left := started + args.idle_seconds - time.monotonic()) > 0:
        await asyncio.sleep(min(10.0, left))
        current, now = sample(process.pid), time.monotonic()
        slices.append(round(cpu_percent(last, current, now - last_at), 2))
        last, last_at = current, now
    after, cluster_after = sample(process.pid), cluster_cpu(pids)
    results["idle_cpu_percent_per_10s"] = slices
    seconds = time.monotonic() - started
    results["idle_seconds"] = seconds
    results["idle_cpu_percent"] = cpu_percent(before, after, seconds)
    results["idle_cluster_cpu_percent"] = 100.0 * (cluster_after - cluster_before) / seconds
    results["idle_rss_mib"] = after.rss_mib
    progress(f"idle CPU {results['idle_cpu_percent']:.2f} % over {seconds:.0f} s")


async def measure_churn(
    client: httpx.AsyncClient,
    watch: KustomizationWatch,
    process: subprocess.Popen[bytes],
    spots: list[tuple[str, int]],
    args: argparse.Namespace,
    results: dict[str, Any],
) -> None:
    """(b) Release -> Kustomization patch latency, CPU and RSS under churn."""
    if not args.releases:
        return
    before, started = sample(process.pid), time.monotonic()
    latencies = await churn(client, watch, spots, args)
    after, seconds = sample(process.pid), time.monotonic() - started
    results["churn_releases"] = len(latencies)
    results["churn_unfinished"] = args.releases - len(latencies)
    results["churn_seconds"] = seconds
    for pct in (50, 90, 99, 100):
        results[f"churn_p{pct}_seconds"] = percentile(latencies, pct)
    results["churn_cpu_percent"] = cpu_percent(before, after, seconds)
    results["churn_rss_mib"] = after.rss_mib
    results["peak_rss_mib"] = after.hwm_mib


def progress(message: str) -> None:
    print(f"[controller_scale] {message}", file=sys.stderr, flush=True)


ROWS = (
    ("create N×3 objects", "create_seconds", "s"),
    ("startup: first deploy", "first_deploy_seconds", "s"),
    ("startup: all first deploys", "startup_seconds", "s"),
    ("startup: Rollouts deployed (LIST)", "deployed_by_list", ""),
    ("startup: CPU used", "startup_cpu_seconds", "s"),
    ("startup: RSS", "startup_rss_mib", "MiB"),
    ("startup: then until quiet", "quiet_seconds", "s"),
    ("idle: CPU (of one core)", "idle_cpu_percent", "%"),
    ("idle: apiserver+etcd CPU", "idle_cluster_cpu_percent", "%"),
    ("idle: RSS", "idle_rss_mib", "MiB"),
    ("churn: releases timed", "churn_releases", ""),
    ("churn: releases not patched in time", "churn_unfinished", ""),
    ("churn: p50 release->patch", "churn_p50_seconds", "s"),
    ("churn: p90 release->patch", "churn_p90_seconds", "s"),
    ("churn: p99 release->patch", "churn_p99_seconds", "s"),
    ("churn: max release->patch", "churn_p100_seconds", "s"),
    ("churn: CPU (of one core)", "churn_cpu_percent", "%"),
    ("churn: RSS", "churn_rss_mib", "MiB"),
    ("peak RSS (VmHWM)", "peak_rss_mib", "MiB"),
)


def table(results: dict[str, Any]) -> str:
    lines = [
        f"tidegate run ({results['controller_root']}), {results['rollouts']} Rollouts in "
        f"{results['namespaces']} namespace(s) (preset {results['preset']}), "
        f"--workers {results['workers']}"
    ]
    for label, key, unit in ROWS:
        if key in results:
            value = results[key]
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            lines.append(f"  {label:<36} {shown:>10} {unit}")
        if key == "idle_cpu_percent" and "idle_cpu_percent_per_10s" in results:
            lines.append(f"    per 10 s: {results['idle_cpu_percent_per_10s']} %")
    metrics = results.get("metrics") or {}
    lines += [f"  {name:<36} {value:>10.0f}" for name, value in metrics.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    cluster = KubeCluster()
    try:
        cluster.start()
    except KubeClusterError as err:
        print(f"controller_scale: cannot start the Kubernetes API: {err}", file=sys.stderr)
        return 1
    log = cluster.workdir / "tidegate-run.log"
    try:
        progress(f"cluster {cluster.server} up in {cluster.startup_seconds:.1f} s; log {log}")
        results = asyncio.run(bench(cluster, args, log))
    except (BenchError, httpx.HTTPError, OSError) as err:
        print(f"controller_scale: error: {err}", file=sys.stderr)
        if log.exists():
            print("".join(log.read_text(errors="replace").splitlines(True)[-20:]), file=sys.stderr)
        return 1
    finally:
        if os.environ.get("TIDEGATE_KEEP_KUBE"):
            progress(f"keeping {cluster.workdir}")
        cluster.stop()
    print(table(results))
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
