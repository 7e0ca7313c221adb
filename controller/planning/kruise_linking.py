"""Which Kuberik Rollout a Kruise Rollout belongs to (§8 linking), its relevant entry and cutoff.

Callers: ``planning.kruise`` (the step gate) and, through it, the controller's
OpenKruise reconciles, which pass in the objects they read. Pure: no I/O, no
clock; ``rollouts_exist`` is the caller's lookup in its own store. Also Go's
duration text, for the step gate's messages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from controller.planning.deploying import SUBSTITUTE_KEY
from controller.planning.kruise_rollouttests import meta_of, time_of

VERSION = "version"
FLUX_NAME = "kustomize.toolkit.fluxcd.io/name"
FLUX_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"
SOURCE_NAME = "rollout.kuberik.com/name"
SOURCE_NAMESPACE = "rollout.kuberik.com/namespace"

Obj = Mapping[str, Any]


def linked_rollout(
    kruise_rollout: Obj,
    kustomizations: Sequence[Obj],
    oci_repositories: Sequence[Obj],
    rollouts_exist: Callable[[str, str], bool],
) -> tuple[str, str] | None:
    """The Kuberik Rollout ``(namespace, name)`` linked to a Kruise Rollout (§8 linking 1–3).

    [T] Substitute keys, then the OCIRepository's keys, are tried in key order.
    """
    meta = meta_of(kruise_rollout)
    name, namespace = _flux_ref(meta, FLUX_NAME), _flux_ref(meta, FLUX_NAMESPACE)
    kustomization = _find(kustomizations, namespace, name) if name and namespace else None
    if kustomization is None:
        return None
    for key, value in sorted(annotations_of(kustomization).items()):
        if SUBSTITUTE_KEY.match(key) and value and rollouts_exist(namespace, value):
            return namespace, value
    ref = (kustomization.get("spec") or {}).get("sourceRef") or {}
    if ref.get("kind") != "OCIRepository":
        return None
    source_ns = str(ref.get("namespace") or namespace)
    source = _find(oci_repositories, source_ns, str(ref.get("name") or ""))
    annotations = annotations_of(source) if source is not None else {}
    if SOURCE_NAME in annotations:
        target_ns = annotations.get(SOURCE_NAMESPACE, source_ns)
        if rollouts_exist(target_ns, annotations[SOURCE_NAME]):
            return target_ns, annotations[SOURCE_NAME]
    for key, value in sorted(annotations.items()):
        named = key.startswith("rollout.kuberik.com/") and key != SOURCE_NAMESPACE
        if named and value and rollouts_exist(source_ns, value):
            return source_ns, value
    return None


def relevant_entry(kuberik_rollout: Obj, kruise_rollout: Obj) -> Obj | None:
    """The history entry tagged as the Kruise ``version`` annotation, else ``history[0]``.

    A ``version`` not in history means "not deployed yet", not failed: None.
    """
    history = (kuberik_rollout.get("status") or {}).get("history") or []
    version = annotations_of(kruise_rollout).get(VERSION)
    if version:
        return next((e for e in history if (e.get("version") or {}).get("tag") == version), None)
    return history[0] if history else None


def retry_cutoff(kuberik_rollout: Obj | None) -> datetime | None:
    """``history[0].lastRetryTimestamp`` of the linked Kuberik Rollout: the shared cutoff."""
    history = ((kuberik_rollout or {}).get("status") or {}).get("history") or []
    return time_of(history[0].get("lastRetryTimestamp")) if history else None


def _flux_ref(meta: Obj, key: str) -> str:
    return str(
        (meta.get("annotations") or {}).get(key) or (meta.get("labels") or {}).get(key) or ""
    )


def _find(objects: Sequence[Obj], namespace: str, name: str) -> Obj | None:
    for obj in objects:
        if meta_of(obj).get("namespace") == namespace and meta_of(obj).get("name") == name:
            return obj
    return None


def annotations_of(obj: Obj) -> dict[str, str]:
    return dict(meta_of(obj).get("annotations") or {})


def go_duration(value: timedelta) -> str:
    """Go's ``time.Duration.String()``: ``1m0s``, ``1h30m0s``, ``1.5s``, ``100ms``, ``0s``."""
    nanos = ((value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds) * 1000
    sign, nanos = ("-" if nanos < 0 else ""), abs(nanos)
    if nanos == 0:
        return "0s"
    if nanos < 10**9:
        units = (("ms", 10**6), ("µs", 10**3), ("ns", 1))
        unit, size = next((u, s) for u, s in units if nanos >= s)
        return sign + _decimal(nanos, size) + unit
    hours, rest = divmod(nanos, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    return sign + text + _decimal(rest, 10**9) + "s"


def _decimal(value: int, unit: int) -> str:
    whole, fraction = divmod(value, unit)
    digits = str(fraction).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)
