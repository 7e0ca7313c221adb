"""The ``tidegate record`` verb: a FactSnapshot of one Rollout, the facts the controller decides on.

Callers: the ``tidegate`` dispatcher through the entry point
``record = "controller.record:RECORD"``. One LIST per kind the
Rollout depends on (kubeconfig or in-cluster credentials), then the
controller's own observe → prepare → facts path, so ``tidegate eval`` on the
snapshot reproduces the controller's decision. Optionally adds the ``alerts``
root from Prometheus. Annotation values are redacted by default; Secrets are
never read. Usage errors exit 2, a missing Rollout exits 4, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from policy_engine.cli.common import Streams

KINDS_IN_NAMESPACE = (
    "rolloutgates.kuberik.com", "healthchecks.kuberik.com",
    "rolloutschedules.kuberik.com", "imagepolicies.image.toolkit.fluxcd.io",
    "kustomizations.kustomize.toolkit.fluxcd.io", "ocirepositories.source.toolkit.fluxcd.io",
    "rolloutpolicies.tidegate.dev", "rollouts.rollouts.kruise.io",
    "rollouttests.rollout.kuberik.com",
)  # fmt: skip
CLUSTER_KINDS = (
    "clusterrolloutschedules.kuberik.com",
    "clusterrolloutpolicies.tidegate.dev",
    "namespaces",
)
LINKED_KINDS = ("rollouts.kuberik.com", "environments.environments.kuberik.com")
"""Listed in all namespaces (linked Environments may live elsewhere); in the Rollout's
namespace only when the credentials may not list them cluster-wide."""
REDACTED = "<redacted>"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidegate record",
        description="Capture a FactSnapshot of a Rollout from the live cluster (and Prometheus).",
        exit_on_error=False,
    )
    parser.add_argument("rollout", help="the Kuberik Rollout's name")
    parser.add_argument("-n", "--namespace", required=True, help="the Rollout's namespace")
    parser.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig (default: $KUBECONFIG, in-cluster)"
    )
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument(
        "--prometheus-url", help="also record firing/pending alerts from this server"
    )
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    parser.add_argument("--format", choices=("yaml", "json", "ndjson"), default="yaml")
    parser.add_argument(
        "--keep-annotations",
        action="store_true",
        help="record annotation values (default: redacted)",
    )
    return parser


def RECORD(argv: list[str], streams: Streams) -> int:
    """Records one snapshot; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except (argparse.ArgumentError, SystemExit) as exc:
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            return 0
        streams.err.write(f"tidegate record: error: {exc}\n  hint: see 'tidegate record --help'\n")
        return 2
    from controller import credentials

    try:
        connection, token_path = credentials.resolve(args.kubeconfig, args.context)
    except credentials.CredentialsError as exc:
        streams.err.write(f"tidegate record: error: {exc}\n  hint: pass --kubeconfig PATH\n")
        return 2
    try:
        text = asyncio.run(_record(args, connection, token_path))
    except LookupError as exc:
        streams.err.write(f"tidegate record: error: {exc.args[0]}\n")
        return 4
    except Exception as exc:  # the API or Prometheus failed: one line, no traceback
        streams.err.write(f"tidegate record: error: {type(exc).__name__}: {exc}\n")
        return 1
    if args.output is not None:
        args.output.write_text(text)
    else:
        streams.out.write(text)
    return 0


async def _record(args: argparse.Namespace, connection: Any, token_path: Any) -> str:
    from controller.applying import KindUnavailable, Writer
    from controller.planning import observe, prepare
    from controller.planning.facts import facts_of, with_collected
    from controller.stores import Stores
    from evaluators.clock import SystemClock

    clock = SystemClock()
    stores = Stores()
    async with Writer.from_connection_info(connection, clock, token_path=token_path) as writer:
        for kind in (*KINDS_IN_NAMESPACE, *CLUSTER_KINDS, *LINKED_KINDS):
            namespace = None if kind in CLUSTER_KINDS else args.namespace
            try:
                if kind in LINKED_KINDS:
                    items, version = await _list_widely(writer, kind, args.namespace)
                else:
                    items, version = await writer.list_objects(kind, namespace)
            except KindUnavailable:
                items, version = [], None
            stores.replace_all(kind, items, version)
    rollout = stores.get("rollouts.kuberik.com", args.namespace, args.rollout)
    if rollout is None:
        raise LookupError(f"Rollout {args.namespace}/{args.rollout} not found")
    now = clock.now()
    observed = observe(stores, rollout)
    prepared = prepare(observed, now)
    facts = facts_of(observed, prepared, now)
    if args.prometheus_url:
        extra = await _prometheus_facts(stores, args, facts.values, now)
        facts = with_collected(facts, extra)
    return _dump(_not_collected(facts), now, args)


async def _prometheus_facts(stores: Any, args: argparse.Namespace, values: Any, now: Any) -> Any:
    """Alerts and every metric the policies in force declare (rendered for this Rollout)."""
    from controller.policies import PolicyEngine
    from controller.reconciling.prometheus_facts import Prometheus
    from evaluators import _http
    from policy_engine.cel.environment import select_backend

    backend = select_backend().backend
    policies = PolicyEngine(backend).policies_for(stores, args.namespace).policies
    async with _http.make_client() as client:
        prometheus = Prometheus(args.prometheus_url, client, backend)
        return await prometheus.facts(policies, True, values, now)


async def _list_widely(writer: Any, kind: str, namespace: str) -> tuple[list[Any], Any]:
    """``kind`` in every namespace, or in ``namespace`` when listing everywhere is forbidden."""
    from controller.applying import ApiError

    try:
        found: tuple[list[Any], Any] = await writer.list_objects(kind, None)
    except ApiError as exc:
        if exc.status != 403:
            raise
        found = await writer.list_objects(kind, namespace)
    return found


def _not_collected(facts: Any) -> Any:
    """Roots this recording did not collect, as ``fact.unavailable`` (never silently absent)."""
    import dataclasses

    from policy_engine.model import facts as model

    reasons = {
        "alerts": "not recorded: pass --prometheus-url",
        "metrics": "not recorded: pass --prometheus-url",
        "metricsMeta": "not recorded: pass --prometheus-url",
        "environments": "not recorded: Environments are not served by this cluster",
    }
    missing = [
        model.FactError((root,), "fact.unavailable", reason)
        for root, reason in reasons.items()
        if root not in facts.values
    ]
    return dataclasses.replace(facts, errors=(*facts.errors, *missing))


def _dump(facts: Any, now: Any, args: argparse.Namespace) -> str:
    import dataclasses

    from policy_engine import __version__
    from policy_engine.snapshots import Snapshot, dump_snapshot

    redacted: tuple[str, ...] = ()
    if not args.keep_annotations:
        rollout = dict(facts.values["rollout"])
        rollout["annotations"] = dict.fromkeys(rollout.get("annotations") or {}, REDACTED)
        facts = dataclasses.replace(facts, values={**facts.values, "rollout": rollout})
        redacted = ("rollout.annotations",)
    snapshot = Snapshot(
        name=f"{args.namespace}.{args.rollout}.{now.strftime('%Y%m%dT%H%M%SZ')}",
        now=facts.now,
        recorded_at=now,
        recorded_by={"program": "tidegate record", "version": __version__},
        mixed_time=False,
        target=facts.target,
        policies=[],
        engine={"version": __version__},
        facts=dataclasses.replace(facts, now_source="snapshot"),
        redacted=redacted,
        digest="",
    )
    return dump_snapshot(snapshot, args.format)


if __name__ == "__main__":  # pragma: no cover - python -m controller.record
    from policy_engine.cli.common import standard_streams

    sys.exit(RECORD(sys.argv[1:], standard_streams()))
