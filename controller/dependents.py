"""Dependents: which queue keys a changed object wakes (KUBERIK-SEMANTICS.md §4.1 triggers).

Callers: ``handlers`` after each store change, with the object's old and new
bodies; ``main`` after a LIST. Pure: reads only the ``ObjectReader`` it is
given, never writes, never decides. Keys are Rollouts, plus the objects that
are queue keys of their own: HealthChecks (their classes are polled) and
RolloutSchedules/ClusterRolloutSchedules (they keep gates). Waking too many
costs a no-op reconcile; waking too few loses a trigger, so every doubt
resolves towards waking.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from controller.api.actions import HEALTHCHECKS, ROLLOUTS, ObjectKey
from controller.selectors import selects
from controller.stores import (
    CHECKS_BY_KUSTOMIZATION,
    POLICIES_BY_REPOSITORY,
    ROLLOUTS_BY_IMAGE_POLICY,
    ROLLOUTS_BY_SELECTOR,
    SELECTS_HEALTH_CHECKS,
    SELECTS_NAMESPACES,
    find,
)
from evaluators.base import Object, ObjectReader

ROLLOUTGATES = "rolloutgates.kuberik.com"
SCHEDULES = "rolloutschedules.kuberik.com"
CLUSTER_SCHEDULES = "clusterrolloutschedules.kuberik.com"
ENVIRONMENTS = "environments.environments.kuberik.com"
ROLLOUTTESTS = "rollouttests.rollout.kuberik.com"
POLICIES = "rolloutpolicies.tidegate.dev"
CLUSTER_POLICIES = "clusterrolloutpolicies.tidegate.dev"
IMAGEPOLICIES = "imagepolicies.image.toolkit.fluxcd.io"
IMAGEREPOSITORIES = "imagerepositories.image.toolkit.fluxcd.io"
OCIREPOSITORIES = "ocirepositories.source.toolkit.fluxcd.io"
KUSTOMIZATIONS = "kustomizations.kustomize.toolkit.fluxcd.io"
KRUISE_ROLLOUTS = "rollouts.rollouts.kruise.io"
JOBS = "jobs.batch"
NAMESPACES = "namespaces"
TEST_LABEL = "rollout-test"

SUBSTITUTE_FROM = re.compile(r"^rollout\.kuberik\.com/substitute\.([^.]+)\.from$")
SOURCE_ROLLOUT = "rollout.kuberik.com/rollout"
LINK_NAME = "rollout.kuberik.com/name"
LINK_NAMESPACE = "rollout.kuberik.com/namespace"
LINK_PREFIX = "rollout.kuberik.com/"
FLUX_NAME = "kustomize.toolkit.fluxcd.io/name"
FLUX_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"
NAME_LABEL = "kubernetes.io/metadata.name"
HC_KUSTOMIZATION = "healthcheck.kuberik.com/kustomization"
GATE_SCHEDULE_NAME = "gate.kuberik.com/schedule-name"
GATE_SCHEDULE_KIND = "gate.kuberik.com/schedule-kind"
GATE_SCHEDULE_NAMESPACE = "gate.kuberik.com/schedule-namespace"
QUEUE_KINDS = (
    ROLLOUTS, HEALTHCHECKS, SCHEDULES, CLUSTER_SCHEDULES, KRUISE_ROLLOUTS, ROLLOUTTESTS,
    ENVIRONMENTS,
)  # fmt: skip
"""Kinds whose objects are queue keys (each reconciled on its own)."""

Keys = frozenset[ObjectKey]


def affected_by_change(
    kind: str, old: Object | None, new: Object | None, reader: ObjectReader
) -> Keys:
    """The Rollouts to reconcile after ``kind`` changed from ``old`` to ``new`` (either None)."""
    keys: set[ObjectKey] = set()
    for body in (old, new):
        if body is not None:
            keys |= affected(kind, body, reader)
    return frozenset(keys)


def affected(kind: str, body: Object, reader: ObjectReader) -> Keys:
    """The Rollouts whose reconcile reads ``body`` (an object of ``kind``), per §4.1."""
    rule = _RULES.get(kind)
    return frozenset() if rule is None else frozenset(rule(body, reader))


def _meta(body: Object) -> Mapping[str, Any]:
    return body.get("metadata") or {}


def _spec(body: Object) -> Mapping[str, Any]:
    return body.get("spec") or {}


def _namespace(body: Object) -> str | None:
    return _meta(body).get("namespace") or None


def _annotations(body: Object) -> Mapping[str, str]:
    return _meta(body).get("annotations") or {}


def _key(namespace: str | None, name: object) -> ObjectKey:
    return ObjectKey(ROLLOUTS, namespace, str(name))


def _key_of(rollout: Object) -> ObjectKey:
    return _key(_namespace(rollout), _meta(rollout).get("name"))


def _ref_name(body: Object, field: str) -> str | None:
    name = (_spec(body).get(field) or {}).get("name")
    return str(name) if name else None


def _own(kind: str, body: Object) -> ObjectKey:
    return ObjectKey(kind, _namespace(body), str(_meta(body).get("name")))


def _rollout(body: Object, reader: ObjectReader) -> Iterable[ObjectKey]:
    """The Rollout, Rollouts linked through Environments, schedules selecting it, and the
    Kruise Rollouts (with their RolloutTests) linked to it (§8: history, cutoff, retry-mode)."""
    yield _key_of(body)
    yield from _kruise_linked_to(_key_of(body), reader)
    for environment in _environments_of(_namespace(body), str(_meta(body).get("name")), reader):
        yield from _environment(environment, reader)
    labels = _meta(body).get("labels") or {}
    for schedule in reader.list(SCHEDULES, _namespace(body)):
        if selects(_spec(schedule).get("rolloutSelector"), labels):
            yield _own(SCHEDULES, schedule)
    namespace_labels: Mapping[str, str] | None = None
    for schedule in reader.list(CLUSTER_SCHEDULES):
        spec = _spec(schedule)
        if not selects(spec.get("rolloutSelector"), labels):
            continue
        if namespace_labels is None:
            namespace_labels = _namespace_labels(_namespace(body), reader)
        if spec.get("namespaceSelector") is None or selects(
            spec["namespaceSelector"], namespace_labels
        ):
            yield _own(CLUSTER_SCHEDULES, schedule)


def _environments_of(namespace: str | None, rollout: str, reader: ObjectReader) -> Iterable[Object]:
    for environment in reader.list(ENVIRONMENTS, namespace):
        if _ref_name(environment, "rolloutRef") == rollout:
            yield environment


def _app_name(environment: Object) -> str:
    name = str(_spec(environment).get("name") or "")
    return name if name.startswith("kuberik/") else f"kuberik/{name}"


def _environment(body: Object, reader: ObjectReader) -> Iterable[ObjectKey]:
    """An Environment wakes every Environment of the same app and their Rollouts (§7 links):
    a downstream's gate follows its upstreams' histories."""
    app = _app_name(body)
    yield _own(ENVIRONMENTS, body)
    for environment in reader.list(ENVIRONMENTS):
        if environment is body or _app_name(environment) == app:
            yield _own(ENVIRONMENTS, environment)
            rollout = _ref_name(environment, "rolloutRef")
            if rollout:
                yield _key(_namespace(environment), rollout)
    rollout = _ref_name(body, "rolloutRef")
    if rollout:
        yield _key(_namespace(body), rollout)


def _image_policy(body: Object, reader: ObjectReader) -> Iterable[ObjectKey]:
    name = _meta(body).get("name")
    for rollout in find(reader, ROLLOUTS_BY_IMAGE_POLICY, _namespace(body), str(name)):
        yield _key_of(rollout)


def _image_repository(body: Object, reader: ObjectReader) -> Iterable[ObjectKey]:
    namespace, name = _namespace(body), _meta(body).get("name")
    for policy in find(reader, POLICIES_BY_REPOSITORY, namespace, str(name)):
        yield from _image_policy(policy, reader)


def _gate(body: Object, _reader: ObjectReader) -> Iterable[ObjectKey]:
    """The gated Rollout, and the schedule or Environment that keeps the gate."""
    rollout = _ref_name(body, "rolloutRef")
    if rollout:
        yield _key(_namespace(body), rollout)
    for owner in _meta(body).get("ownerReferences") or []:
        if owner.get("kind") == "Environment" and owner.get("name"):
            yield ObjectKey(ENVIRONMENTS, _namespace(body), str(owner["name"]))
    labels = _meta(body).get("labels") or {}
    name = labels.get(GATE_SCHEDULE_NAME)
    if name and labels.get(GATE_SCHEDULE_KIND) == "ClusterRolloutSchedule":
        yield ObjectKey(CLUSTER_SCHEDULES, None, name)
    elif name:
        yield ObjectKey(SCHEDULES, labels.get(GATE_SCHEDULE_NAMESPACE) or _namespace(body), name)


def _namespace_labels(namespace: str | None, reader: ObjectReader) -> Mapping[str, str]:
    found = reader.get(NAMESPACES, None, namespace) if namespace else None
    labels = dict(_meta(found).get("labels") or {}) if found is not None else {}
    if namespace:
        labels.setdefault(NAME_LABEL, namespace)
    return labels


def _health_check(body: Object, reader: ObjectReader) -> Iterable[ObjectKey]:
    """The HealthCheck, and every Rollout whose ``healthCheckSelector`` picks it (§2.1).

    Rollouts of the HealthCheck's namespace are matched fully; elsewhere only those
    with a ``namespaceSelector`` can pick it, so the cluster-wide pass stays cheap.
    """
    yield _own(HEALTHCHECKS, body)
    namespace, labels = _namespace(body), _meta(body).get("labels") or {}
    namespace_labels: Mapping[str, str] | None = None
    for rollout in find(reader, ROLLOUTS_BY_SELECTOR, namespace, SELECTS_HEALTH_CHECKS):
        chooser = _spec(rollout).get("healthCheckSelector")
        if chooser is None or not selects(chooser.get("selector"), labels):
            continue
        if chooser.get("namespaceSelector") is not None:
            namespace_labels = namespace_labels or _namespace_labels(namespace, reader)
            if not selects(chooser["namespaceSelector"], namespace_labels):
                continue
        yield _key_of(rollout)
    for rollout in find(reader, ROLLOUTS_BY_SELECTOR, None, SELECTS_NAMESPACES):
        chooser = (rollout.get("spec") or {}).get("healthCheckSelector")
        if not chooser or chooser.get("namespaceSelector") is None:
            continue
        if _namespace(rollout) == namespace or not selects(chooser.get("selector"), labels):
            continue
        namespace_labels = namespace_labels or _namespace_labels(namespace, reader)
        if selects(chooser["namespaceSelector"], namespace_labels):
            yield _key_of(rollout)


def _kustomization(body: Object, reader: ObjectReader) -> Iterable[ObjectKey]:
    """Rollouts its substitute annotations name; HealthChecks of class kustomization on it."""
    namespace, name = _namespace(body), _meta(body).get("name")
    for key, value in _annotations(body).items():
        if SUBSTITUTE_FROM.match(key) and value:
            yield _key(namespace, value)
    for check in find(reader, CHECKS_BY_KUSTOMIZATION, namespace, str(name)):
        yield _own(HEALTHCHECKS, check)


def _oci_repository(body: Object, _reader: ObjectReader) -> Iterable[ObjectKey]:
    annotations, namespace = _annotations(body), _namespace(body)
    for key, value in annotations.items():
        if not key.startswith(LINK_PREFIX) or not value or key == LINK_NAMESPACE:
            continue
        if key == LINK_NAME:
            yield _key(annotations.get(LINK_NAMESPACE) or namespace, value)
        elif key == SOURCE_ROLLOUT or not SUBSTITUTE_FROM.match(key):
            yield _key(namespace, value)


def _kruise_linked_to(rollout: ObjectKey, reader: ObjectReader) -> Iterable[ObjectKey]:
    """Kruise Rollouts whose Flux links may name ``rollout``, and their RolloutTests."""
    for kruise in reader.list(KRUISE_ROLLOUTS):
        if rollout in set(_kruise_links(kruise, reader)):
            yield from _kruise_and_tests(kruise, reader)


def _kruise_and_tests(kruise: Object, reader: ObjectReader) -> Iterable[ObjectKey]:
    yield _own(KRUISE_ROLLOUTS, kruise)
    name = _meta(kruise).get("name")
    for test in reader.list(ROLLOUTTESTS, _namespace(kruise)):
        if _spec(test).get("rolloutName") == name:
            yield _own(ROLLOUTTESTS, test)


def _kruise_rollout(body: Object, reader: ObjectReader) -> Iterable[ObjectKey]:
    """Itself and its RolloutTests (step gate, test table), and the Rollouts it links to."""
    yield from _kruise_and_tests(body, reader)
    yield from _kruise_links(body, reader)


def _kruise_links(body: Object, reader: ObjectReader) -> Iterable[ObjectKey]:
    """Kruise → its Kustomization (labels/annotations) → substitute Rollouts and source links."""
    meta = _meta(body)
    marks = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
    name = marks.get(FLUX_NAME)
    if not name:
        return
    kustomization = reader.get(KUSTOMIZATIONS, marks.get(FLUX_NAMESPACE) or _namespace(body), name)
    if kustomization is None:
        return
    yield from _kustomization(kustomization, reader)
    source = _spec(kustomization).get("sourceRef") or {}
    if source.get("kind") == "OCIRepository" and source.get("name"):
        where = source.get("namespace") or _namespace(kustomization)
        repository = reader.get(OCIREPOSITORIES, where, source["name"])
        if repository is not None:
            yield from _oci_repository(repository, reader)


def _rollout_test(body: Object, reader: ObjectReader) -> Iterable[ObjectKey]:
    """Itself, its Kruise Rollout (the step gate reads tests) and that one's links."""
    yield _own(ROLLOUTTESTS, body)
    name = _spec(body).get("rolloutName")
    if name:
        yield ObjectKey(KRUISE_ROLLOUTS, _namespace(body), str(name))
    kruise = reader.get(KRUISE_ROLLOUTS, _namespace(body), str(name)) if name else None
    if kruise is not None:
        yield from _kruise_links(kruise, reader)


def _job(body: Object, _reader: ObjectReader) -> Iterable[ObjectKey]:
    """A RolloutTest's Job (label ``rollout-test``) wakes that test."""
    test = (_meta(body).get("labels") or {}).get(TEST_LABEL)
    if test:
        yield ObjectKey(ROLLOUTTESTS, _namespace(body), test)


def _namespaced_policy(body: Object, reader: ObjectReader) -> Iterable[ObjectKey]:
    return (_key_of(r) for r in reader.list(ROLLOUTS, _namespace(body)))


def _cluster_policy(_body: Object, reader: ObjectReader) -> Iterable[ObjectKey]:
    return (_key_of(r) for r in reader.list(ROLLOUTS))


def _schedule(body: Object, reader: ObjectReader) -> Iterable[ObjectKey]:
    yield _own(SCHEDULES, body)
    selector = _spec(body).get("rolloutSelector")
    for rollout in reader.list(ROLLOUTS, _namespace(body)):
        if selects(selector, _meta(rollout).get("labels")):
            yield _key_of(rollout)


def _cluster_schedule(body: Object, reader: ObjectReader) -> Iterable[ObjectKey]:
    """Omitted ``namespaceSelector`` matches every namespace (tidegate, §2.3)."""
    yield _own(CLUSTER_SCHEDULES, body)
    spec = _spec(body)
    rollout_selector = spec.get("rolloutSelector")
    namespace_selector = spec.get("namespaceSelector")
    for rollout in reader.list(ROLLOUTS):
        if not selects(rollout_selector, _meta(rollout).get("labels")):
            continue
        namespace = _namespace(rollout)
        if namespace_selector is None or selects(
            namespace_selector, _namespace_labels(namespace, reader)
        ):
            yield _key_of(rollout)


def _namespace_object(body: Object, reader: ObjectReader) -> Iterable[ObjectKey]:
    """Namespace labels feed selectors: its Rollouts, cross-namespace ones, cluster schedules."""
    name = _meta(body).get("name")
    for schedule in reader.list(CLUSTER_SCHEDULES):
        yield _own(CLUSTER_SCHEDULES, schedule)
    for rollout in reader.list(ROLLOUTS):
        chooser = _spec(rollout).get("healthCheckSelector") or {}
        if _namespace(rollout) == name or chooser.get("namespaceSelector") is not None:
            yield _key_of(rollout)


_Rule = Callable[[Object, ObjectReader], Iterable[ObjectKey]]
_RULES: Mapping[str, _Rule] = MappingProxyType(
    {
        ROLLOUTS: _rollout,
        IMAGEPOLICIES: _image_policy,
        IMAGEREPOSITORIES: _image_repository,
        ROLLOUTGATES: _gate,
        HEALTHCHECKS: _health_check,
        KUSTOMIZATIONS: _kustomization,
        OCIREPOSITORIES: _oci_repository,
        KRUISE_ROLLOUTS: _kruise_rollout,
        ROLLOUTTESTS: _rollout_test,
        JOBS: _job,
        ENVIRONMENTS: _environment,
        POLICIES: _namespaced_policy,
        CLUSTER_POLICIES: _cluster_policy,
        SCHEDULES: _schedule,
        CLUSTER_SCHEDULES: _cluster_schedule,
        NAMESPACES: _namespace_object,
    }
)
