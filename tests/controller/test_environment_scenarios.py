"""Environments on the real apiserver with the GitHub double (KUBERIK-SEMANTICS.md §7, §10 37–41).

Each test runs the real controller in-process on a ManualClock, pointed at a
loopback GitHub double (``tests/githubdouble.py``) whose timestamps come from
the same clock. Releases carry their revision from a real docker-registry
(``tests/ociregistry.py``): ``rev-<tag>``. "Through GitHub" tests run a second
controller for staging in a second namespace, as a second cluster would: the
prod controller never sees staging's objects and reads it from GitHub only.
"""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest
from clocks import ManualClock
from githubdouble import DEFAULT_TOKEN, GitHubDouble
from harness import ControllerHarness
from kubecluster import KubeCluster
from ociregistry import REPOSITORY, Registry, release_annotations, start_registry
from world import FLUX_IMAGE, KUBERIK, MERGE

from policy_engine.model.times import format_timestamp

ENVIRONMENTS = "/apis/environments.kuberik.com/v1alpha1/namespaces/{ns}"
TAGS = ("1.0.0", "1.1.0", "1.2.0")
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One registry for the module with releases 1.0.0, 1.1.0, 1.2.0 (revision rev-<tag>)."""
    started = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        for tag in TAGS:
            started.push(tag, annotations=release_annotations(tag))
        yield started
    finally:
        started.stop()


@pytest.fixture
def github(clock: ManualClock) -> Iterator[GitHubDouble]:
    """The GitHub double for acme/app, stamping on the controller's clock."""
    with GitHubDouble(token=DEFAULT_TOKEN, owner_repo="acme/app", now=clock.now) as double:
        yield double


def run(kube: KubeCluster, clock: ManualClock, namespace: str, github: str) -> ControllerHarness:
    harness = ControllerHarness(kube.admin_kubeconfig, clock, namespace)
    harness.config = dataclasses.replace(harness.config, github_api_url=github)
    return harness


@pytest.fixture
def controller(
    kube: KubeCluster, namespace: str, clock: ManualClock, github: GitHubDouble
) -> Iterator[ControllerHarness]:
    with run(kube, clock, namespace, github.base_url) as running:
        yield running


class App:
    """The app's Rollouts (each with ImagePolicy ``p-<name>``) and Environments in one namespace."""

    def __init__(self, kube: KubeCluster, namespace: str, registry: Registry) -> None:
        self.kube, self.ns, self.registry = kube, namespace, registry
        self._create(FLUX_IMAGE, "imagerepositories", {
            "apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImageRepository",
            "metadata": {"name": "repo"},
            "spec": {"image": registry.image(REPOSITORY), "interval": "1m", "insecure": True},
        })  # fmt: skip
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "github-token"},
                  "data": {"token": base64.b64encode(DEFAULT_TOKEN.encode()).decode()}}  # fmt: skip
        self._create("/api/v1/namespaces/{ns}", "secrets", secret)

    def _create(self, base: str, plural: str, body: dict[str, Any]) -> None:
        body.setdefault("metadata", {})["namespace"] = self.ns
        status, answer = self.kube.request("POST", f"{base.format(ns=self.ns)}/{plural}", body)
        assert status == 201, answer

    def _get(self, base: str, plural: str, name: str) -> dict[str, Any]:
        status, body = self.kube.request("GET", f"{base.format(ns=self.ns)}/{plural}/{name}")
        assert status == 200, body
        assert isinstance(body, dict)
        return body

    def _patch(self, path: str, body: dict[str, Any]) -> None:
        status, answer = self.kube.request("PATCH", path, body, content_type=MERGE)
        assert status == 200, answer

    def rollout(self, name: str, *, hold: bool = False, **spec: Any) -> None:
        """Rollout ``name``; ``hold`` adds a gate with ``passing: false`` (candidates stay)."""
        self._create(FLUX_IMAGE, "imagepolicies", {
            "apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy",
            "metadata": {"name": f"p-{name}"},
            "spec": {"imageRepositoryRef": {"name": "repo"},
                     "policy": {"semver": {"range": ">=0.0.0"}}},
        })  # fmt: skip
        self._create(KUBERIK, "rollouts", {
            "apiVersion": "kuberik.com/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name},
            "spec": {"releasesImagePolicy": {"name": f"p-{name}"}, **spec},
        })  # fmt: skip
        if hold:
            self._create(KUBERIK, "rolloutgates", {
                "apiVersion": "kuberik.com/v1alpha1", "kind": "RolloutGate",
                "metadata": {"name": f"hold-{name}"},
                "spec": {"rolloutRef": {"name": name}, "passing": False},
            })  # fmt: skip

    def environment(
        self, env: str, rollout: str, *, relationship: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None, backend: str = "github",
    ) -> None:  # fmt: skip
        spec: dict[str, Any] = {
            "rolloutRef": {"name": rollout}, "name": "app", "environment": env,
            "backend": {"type": backend, "project": "acme/app"},
        }  # fmt: skip
        if relationship:
            spec["relationship"] = relationship
        self._create(ENVIRONMENTS, "environments", {
            "apiVersion": "environments.kuberik.com/v1alpha1", "kind": "Environment",
            "metadata": {"name": f"app-{env}", "annotations": annotations or {}}, "spec": spec,
        })  # fmt: skip

    def annotate_environment(self, env: str, annotations: dict[str, str | None]) -> None:
        path = f"{ENVIRONMENTS.format(ns=self.ns)}/environments/app-{env}"
        self._patch(path, {"metadata": {"annotations": annotations}})

    def bake(self, rollout: str, wait: Any, clock: ManualClock, synced: Any = None) -> None:
        """Completes the current 1 h bake. Passes run when the clock moves (bake end, hourly
        resync); the bake may start on such a pass. ``synced`` is waited on before each move."""
        for _ in range(2):
            if self.history(rollout)[0].get("bakeStatus") == "Succeeded":
                return
            if synced is not None:
                wait(synced, what="GitHub in step with the Rollout")
            clock.advance(HOUR)
            wait(lambda: self.history(rollout)[0].get("bakeStartTime"), what="baking")
        wait(lambda: self.history(rollout)[0].get("bakeStatus") == "Succeeded", what="baked")

    def ship(
        self, rollout: str, tag: str, wait: Any, clock: ManualClock, synced: Any = None
    ) -> None:
        """Deploys ``tag`` once the current bake is done (one in flight)."""
        if self.history(rollout):
            self.bake(rollout, wait, clock, synced)
        self.observe(rollout, tag)
        wait(lambda: self.tags(rollout)[:1] == [tag], what=f"{rollout} at {tag}")

    def mirrored(self, github: GitHubDouble, rollout: str, env: str) -> bool:
        """GitHub's latest status of ``rollout``'s newest entry says what the entry says."""
        entry = self.history(rollout)[0]
        prefix = {"InProgress": "Baking in progress", "Succeeded": "Bake succeeded"}.get(
            entry.get("bakeStatus") or "", "Deploying"
        )
        return any(
            d["environment"] == f"kuberik/app/{env}" and d["payload"]["id"] == str(entry["id"])
            and d["statuses"] and d["statuses"][0]["description"].startswith(prefix)
            for d in github.deployments()
        )  # fmt: skip

    def held_prod(
        self, wait: Any, relationship: str | None = "After",
        annotations: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        """prod: a Rollout held by its own gate (candidates stay) behind staging, started."""
        self.rollout("prod", hold=True)
        edge = {"environment": "staging", "type": relationship} if relationship else None
        self.environment("prod", "prod", relationship=edge, annotations=annotations)
        self.start("prod", wait)

    def start(self, rollout: str, wait: Any) -> None:
        """Deploys 1.0.0 (a first deploy skips gates, §4.1 step 10), then observes 1.1.0."""
        self.observe(rollout, "1.0.0")
        wait(lambda: self.tags(rollout) == ["1.0.0"], what=f"{rollout} at 1.0.0")
        self.observe(rollout, "1.1.0")
        wait(lambda: self.candidates(rollout) == ["1.1.0"], what=f"{rollout}'s candidate 1.1.0")

    def observe(self, rollout: str, tag: str) -> None:
        path = f"{FLUX_IMAGE.format(ns=self.ns)}/imagepolicies/p-{rollout}/status"
        self._patch(path, {"status": {"latestRef": {"name": "app", "tag": tag}}})

    def pin(self, rollout: str, tag: str) -> None:
        path = f"{KUBERIK.format(ns=self.ns)}/rollouts/{rollout}"
        self._patch(path, {"spec": {"wantedVersion": tag}})

    def rollout_status(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self._get(KUBERIK, "rollouts", name).get("status") or {}
        return found

    def history(self, rollout: str) -> list[dict[str, Any]]:
        return list(self.rollout_status(rollout).get("history") or [])

    def tags(self, rollout: str) -> list[str]:
        return [e["version"]["tag"] for e in self.history(rollout)]

    def candidates(self, rollout: str) -> list[str]:
        return [c["tag"] for c in self.rollout_status(rollout).get("releaseCandidates") or []]

    def status(self, env: str) -> dict[str, Any]:
        found: dict[str, Any] = (
            self._get(ENVIRONMENTS, "environments", f"app-{env}").get("status") or {}
        )
        return found

    def ready(self, env: str) -> dict[str, Any]:
        conditions = self.status(env).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Ready"), {})

    def gates(self, env: str) -> list[dict[str, Any]]:
        status, body = self.kube.request("GET", f"{KUBERIK.format(ns=self.ns)}/rolloutgates")
        assert status == 200, body
        return [
            g for g in body["items"]
            if any(o["name"] == f"app-{env}" for o in g["metadata"].get("ownerReferences") or [])
        ]  # fmt: skip

    def allowed(self, env: str) -> list[str] | bool | None:
        """The owned gate's allowedVersions (None: unset); False while there is no gate."""
        gates = self.gates(env)
        if len(gates) != 1:
            return False
        found: list[str] | None = gates[0]["spec"].get("allowedVersions")
        return found


def second_namespace(kube: KubeCluster) -> str:
    name = f"t-staging-{uuid.uuid4().hex[:6]}"
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    status, answer = kube.request("POST", "/api/v1/namespaces", body)
    assert status == 201, answer
    return name


def seed(
    github: GitHubDouble, env: str, ident: int, tag: str, *statuses: tuple[str, str, timedelta],
    start: Any, created: timedelta = timedelta(0),
) -> int:  # fmt: skip
    """A deployment of ``tag`` in ``kuberik/app/<env>`` made by another cluster, with statuses."""
    body = {
        "ref": f"rev-{tag}", "task": "deploy:kuberik/app", "environment": f"kuberik/app/{env}",
        "description": "Automatic deployment", "production_environment": False,
        "payload": {"id": str(ident), "version": {"tag": tag, "revision": f"rev-{tag}"}},
    }  # fmt: skip
    deployment = github.add_deployment(body, created_at=start + created)
    for state, description, offset in statuses:
        github.add_status(deployment, state, description, created_at=start + offset)
    return deployment


def has_reason(app: App, reason: str) -> bool:
    return bool(app.ready("prod").get("reason") == reason)


def posts(github: GitHubDouble) -> int:
    return sum(1 for r in github.requests if r.method == "POST")


def mirrored(github: GitHubDouble, prefix: str, environment: str = "kuberik/app/staging") -> bool:
    """Some deployment of ``environment`` has a latest status starting with ``prefix``."""
    return any(
        d["environment"] == environment and d["statuses"]
        and d["statuses"][0]["description"].startswith(prefix)
        for d in github.deployments()
    )  # fmt: skip


def requeued(clock: ManualClock, after: timedelta = timedelta(minutes=1)) -> None:
    """Waits until a pass ran at the clock's instant and asked to run again ``after`` it."""
    assert clock.wait_for_sleeper(until=clock.now() + after, timeout=30), "no requeue"


# --- 37: mirroring ----------------------------------------------------------------------------


def dashboard(kube: KubeCluster, namespace: str, host: str) -> None:
    """An Ingress to the Kuberik dashboard Service (``environment_url`` comes from it)."""
    backend = {"service": {"name": "rollout-dashboard", "port": {"number": 80}}}
    body = {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "dashboard", "namespace": namespace},
        "spec": {"rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": backend}]}}]},
    }  # fmt: skip
    path = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses"
    status, answer = kube.request("POST", path, body)
    assert status == 201, answer


def test_37_history_is_mirrored_to_github_once(
    kube: KubeCluster, namespace: str, registry: Registry, github: GitHubDouble,
    clock: ManualClock, controller: ControllerHarness,
) -> None:  # fmt: skip
    app = App(kube, namespace, registry)
    dashboard(kube, namespace, "dash.example.com")
    app.rollout("staging", bakeTime="1h")
    app.environment("staging", "staging")
    controller.wait_until(lambda: app.allowed("staging") is None, what="the owned gate")
    app.observe("staging", "1.0.0")
    controller.wait_until(lambda: mirrored(github, "Baking in progress"), what="the mirror")
    [deployment] = github.deployments()
    url = f"http://dash.example.com/rollouts/{namespace}/staging"
    assert deployment["statuses"][0].get("environment_url") == url, "the dashboard URL"
    assert deployment["ref"] == "rev-1.0.0"
    assert deployment["task"] == "deploy:kuberik/app"
    assert deployment["environment"] == "kuberik/app/staging"
    assert deployment["payload"]["id"] == "1"
    assert deployment["payload"]["version"]["tag"] == "1.0.0"
    latest = deployment["statuses"][0]
    assert latest["state"] == "in_progress"
    assert latest["description"] == "Baking in progress: Bake started, monitoring for errors."
    [gate] = app.gates("staging")
    assert gate["metadata"]["name"].startswith("ghd-")
    assert gate["metadata"]["annotations"]["gate.kuberik.com/pretty-name"] == (
        "Relationship not ready yet"
    )
    assert gate["metadata"]["ownerReferences"][0]["kind"] == "Environment"
    assert "allowedVersions" not in gate["spec"]
    controller.wait_until(lambda: app.status("staging").get("currentVersion"), what="status")
    status = app.status("staging")
    assert status["currentVersion"] == "rev-1.0.0"
    assert status["rolloutGateRef"] == {"name": gate["metadata"]["name"]}
    [info] = status["environmentInfos"]
    assert info["environment"] == "staging"
    assert [e["version"]["tag"] for e in info["history"]] == ["1.0.0"]
    assert app.ready("staging")["status"] == "True"
    changed, written = status["lastStatusChangeTime"], posts(github)
    requeued(clock)
    clock.advance(timedelta(minutes=1))
    requeued(clock)
    assert posts(github) == written, "a second pass wrote to GitHub again"
    assert len(github.deployments()) == 1
    assert app.status("staging")["lastStatusChangeTime"] == changed


# --- 38–41: the gate from GitHub upstreams ----------------------------------------------------


def test_38_after_allows_a_candidate_whose_revision_succeeded_upstream(
    kube: KubeCluster, namespace: str, registry: Registry, github: GitHubDouble,
    clock: ManualClock, controller: ControllerHarness,
) -> None:  # fmt: skip
    app = App(kube, namespace, registry)
    app.rollout("prod", hold=True)
    app.environment("prod", "prod", relationship={"environment": "staging", "type": "After"})
    controller.wait_until(lambda: app.allowed("prod") == [], what="a closed gate")
    app.start("prod", controller.wait_until)
    requeued(clock)
    assert app.allowed("prod") == []
    assert app.ready("prod")["status"] == "True"
    [gate] = app.gates("prod")
    assert gate["metadata"]["annotations"]["gate.kuberik.com/description"] == (
        "This gate is passing only for those versions that have been successfully deployed "
        "after the staging environment."
    )
    seed(github, "staging", 1, "1.1.0", ("in_progress", "Deploying", timedelta(0)),
         start=clock.now())  # fmt: skip
    clock.advance(timedelta(minutes=1))
    requeued(clock)
    assert app.allowed("prod") == []
    deployment = seed(github, "staging", 2, "1.1.0", start=clock.now())
    github.add_status(deployment, "success", "Bake succeeded", created_at=clock.now())
    clock.advance(timedelta(minutes=1))
    controller.wait_until(lambda: app.allowed("prod") == ["1.1.0"], what="1.1.0 allowed")
    infos = app.status("prod")["environmentInfos"]
    assert [i["environment"] for i in infos] == ["staging", "prod"]
    assert infos[1]["relationship"] == {"environment": "staging", "type": "After"}
    assert app.tags("prod") == ["1.0.0"]  # the hold gate keeps 1.1.0 from deploying


def test_39_parallel_allows_a_deployed_upstream_and_parallel_mode_after_restores_kuberik(
    kube: KubeCluster, namespace: str, registry: Registry, github: GitHubDouble,
    clock: ManualClock, controller: ControllerHarness,
) -> None:  # fmt: skip
    app = App(kube, namespace, registry)
    app.held_prod(controller.wait_until, "Parallel")
    first = seed(github, "staging", 1, "1.1.0", ("in_progress", "Deploying", timedelta(0)),
                 start=clock.now())  # fmt: skip
    clock.advance(timedelta(minutes=1))
    controller.wait_until(lambda: app.allowed("prod") == ["1.1.0"], what="Deploying allows")
    [gate] = app.gates("prod")
    assert (
        "deployed in parallel with the staging environment"
        in (gate["metadata"]["annotations"]["gate.kuberik.com/description"])
    )
    github.add_status(first, "failure", "Bake failed: HealthCheck down", created_at=clock.now())
    clock.advance(timedelta(minutes=1))
    controller.wait_until(lambda: app.allowed("prod") == [], what="Failed does not allow")
    seed(github, "staging", 2, "1.1.0", ("inactive", "Bake cancelled", timedelta(0)),
         start=clock.now())  # fmt: skip
    clock.advance(timedelta(minutes=1))
    requeued(clock)
    assert app.allowed("prod") == [], "Cancelled allowed the release"
    app.annotate_environment("prod", {"tidegate.dev/parallel-mode": "after"})
    third = seed(github, "staging", 3, "1.1.0", ("in_progress", "Deploying", timedelta(0)),
                 start=clock.now())  # fmt: skip
    clock.advance(timedelta(minutes=1))
    requeued(clock)
    assert app.allowed("prod") == [], "parallel-mode after allowed a Deploying upstream"
    github.add_status(third, "success", "Bake succeeded", created_at=clock.now())
    clock.advance(timedelta(minutes=1))
    controller.wait_until(lambda: app.allowed("prod") == ["1.1.0"], what="Succeeded allows")


def test_40_soak_opens_the_gate_at_the_exact_instant(
    kube: KubeCluster, namespace: str, registry: Registry, github: GitHubDouble,
    clock: ManualClock, controller: ControllerHarness,
) -> None:  # fmt: skip
    app = App(kube, namespace, registry)
    app.held_prod(controller.wait_until, annotations={"tidegate.dev/soak": "24h"})
    start = clock.now()
    seed(github, "staging", 1, "1.1.0",
         ("in_progress", "Baking in progress: Bake started, monitoring for errors.", timedelta(0)),
         ("success", "Bake succeeded: Bake time completed successfully", HOUR),
         start=start)  # fmt: skip
    clock.set(start + timedelta(hours=24) - timedelta(seconds=1))
    controller.wait_until(
        lambda: format_timestamp(start + timedelta(hours=24)) in app.ready("prod")["message"],
        what="the soak's instant in Ready",
    )
    assert app.allowed("prod") == []
    assert clock.wait_for_sleeper(until=start + timedelta(hours=24)), "no requeue at S+24h"
    assert clock.next_wakeup() == start + timedelta(hours=24)
    clock.set(start + timedelta(hours=24))
    controller.wait_until(lambda: app.allowed("prod") == ["1.1.0"], what="allowed at S+24h")


def test_40_an_upstream_that_moved_on_before_the_soak_never_qualifies(
    kube: KubeCluster, namespace: str, registry: Registry, github: GitHubDouble,
    clock: ManualClock, controller: ControllerHarness,
) -> None:  # fmt: skip
    app = App(kube, namespace, registry)
    app.held_prod(controller.wait_until, annotations={"tidegate.dev/soak": "24h"})
    start = clock.now()
    seed(github, "staging", 1, "1.1.0", ("in_progress", "Baking in progress", timedelta(0)),
         ("success", "Bake succeeded", HOUR), start=start)  # fmt: skip
    seed(github, "staging", 2, "1.2.0", ("in_progress", "Baking in progress", 10 * HOUR),
         start=start, created=10 * HOUR)  # fmt: skip
    for hours in (24, 48):
        clock.set(start + hours * HOUR)
        requeued(clock)
        assert app.allowed("prod") == [], f"1.1.0 qualified at S+{hours}h"


def test_41_fan_in_any_needs_one_upstream_and_all_needs_every_one(
    kube: KubeCluster, namespace: str, registry: Registry, github: GitHubDouble,
    clock: ManualClock, controller: ControllerHarness,
) -> None:  # fmt: skip
    app = App(kube, namespace, registry)
    app.held_prod(controller.wait_until, None, {"tidegate.dev/upstreams": "eu,us",
                                                "tidegate.dev/upstreams-mode": "any"})  # fmt: skip
    seed(github, "eu", 1, "1.1.0", ("success", "Bake succeeded", timedelta(0)), start=clock.now())
    clock.advance(timedelta(minutes=1))
    controller.wait_until(lambda: app.allowed("prod") == ["1.1.0"], what="any: eu is enough")
    app.annotate_environment("prod", {"tidegate.dev/upstreams-mode": "all"})
    controller.wait_until(lambda: app.allowed("prod") == [], what="all: us missing")
    seed(github, "us", 1, "1.1.0", ("success", "Bake succeeded", timedelta(0)), start=clock.now())
    clock.advance(timedelta(minutes=1))
    controller.wait_until(lambda: app.allowed("prod") == ["1.1.0"], what="all: both succeeded")
    assert [i["environment"] for i in app.status("prod")["environmentInfos"]][-1] == "prod"


# --- done when: staging → prod through GitHub, soak, pin; the kubernetes backend -------------


def test_prod_follows_staging_through_github_after_the_soak_and_a_pin_rolls_prod_back(
    kube: KubeCluster, namespace: str, registry: Registry, github: GitHubDouble, clock: ManualClock
) -> None:
    staging_ns = second_namespace(kube)  # another cluster: prod's controller never sees it
    staging, prod = App(kube, staging_ns, registry), App(kube, namespace, registry)
    staging.rollout("staging", bakeTime="1h")
    staging.environment("staging", "staging")
    prod.rollout("prod")
    prod.environment("prod", "prod", relationship={"environment": "staging", "type": "After"},
                     annotations={"tidegate.dev/soak": "24h"})  # fmt: skip
    with (
        run(kube, clock, staging_ns, github.base_url) as ours,
        run(kube, clock, namespace, github.base_url) as theirs,
    ):
        ours.wait_until(lambda: staging.allowed("staging") is None, what="staging's gate")
        theirs.wait_until(lambda: prod.allowed("prod") == [], what="prod's closed gate")
        prod.start("prod", theirs.wait_until)
        synced = lambda: staging.mirrored(github, "staging", "staging")  # noqa: E731
        staging.ship("staging", "1.0.0", ours.wait_until, clock, synced)
        staging.ship("staging", "1.1.0", ours.wait_until, clock, synced)
        staging.bake("staging", ours.wait_until, clock, synced)
        ours.wait_until(synced, what="staging's success mirrored")
        started = staging.history("staging")[0]["bakeStartTime"]
        soaked = datetime.fromisoformat(started) + timedelta(hours=24)
        assert prod.allowed("prod") == []
        clock.set(soaked - timedelta(seconds=1))
        theirs.wait_until(
            lambda: format_timestamp(soaked) in prod.ready("prod")["message"],
            what="prod waiting for the soak",
        )
        assert prod.tags("prod") == ["1.0.0"], "prod deployed before the soak completed"
        assert prod.allowed("prod") == []
        assert clock.wait_for_sleeper(until=soaked), "no requeue at the soak's instant"
        clock.set(soaked)
        theirs.wait_until(lambda: prod.tags("prod")[:1] == ["1.1.0"], what="prod at 1.1.0")
        assert prod.history("prod")[0]["timestamp"] == format_timestamp(soaked)
        infos = prod.status("prod")["environmentInfos"]
        assert [i["environment"] for i in infos] == ["staging", "prod"]
        prod.pin("prod", "1.0.0")
        theirs.wait_until(lambda: prod.tags("prod")[:1] == ["1.0.0"], what="prod rolled back")
        staging.ship("staging", "1.2.0", ours.wait_until, clock, synced)
        staging.bake("staging", ours.wait_until, clock, synced)
        ours.wait_until(synced, what="staging's 1.2.0 success mirrored")
        prod.observe("prod", "1.2.0")
        clock.set(clock.now() + 25 * HOUR)
        theirs.wait_until(lambda: "1.2.0" in str(prod.allowed("prod")), what="1.2.0 soaked")
        requeued(clock)
        assert prod.tags("prod")[:1] == ["1.0.0"], "the pin did not hold prod"


def test_kubernetes_backend_promotes_within_the_cluster_without_github(
    kube: KubeCluster, namespace: str, registry: Registry, github: GitHubDouble,
    clock: ManualClock, controller: ControllerHarness,
) -> None:  # fmt: skip
    app = App(kube, namespace, registry)
    app.rollout("staging", bakeTime="1h")
    app.rollout("prod")
    app.environment("staging", "staging", backend="kubernetes")
    app.environment("prod", "prod", relationship={"environment": "staging", "type": "After"},
                    backend="kubernetes")  # fmt: skip
    controller.wait_until(lambda: app.allowed("prod") == [], what="prod's closed gate")
    app.start("prod", controller.wait_until)
    app.ship("staging", "1.0.0", controller.wait_until, clock)
    app.ship("staging", "1.1.0", controller.wait_until, clock)
    assert app.allowed("prod") == []
    assert app.tags("prod") == ["1.0.0"]
    app.bake("staging", controller.wait_until, clock)
    controller.wait_until(lambda: app.tags("prod")[:1] == ["1.1.0"], what="prod follows")
    controller.wait_until(lambda: app.status("prod").get("currentVersion") == "rev-1.1.0",
                          what="prod's status")  # fmt: skip
    status = app.status("prod")
    assert [i["environment"] for i in status["environmentInfos"]] == ["staging", "prod"]
    assert app.ready("prod")["status"] == "True"
    assert github.requests == [], "the kubernetes backend called GitHub"


def test_github_errors_fail_closed_and_name_the_cause(
    kube: KubeCluster, namespace: str, registry: Registry, github: GitHubDouble,
    clock: ManualClock, controller: ControllerHarness,
) -> None:  # fmt: skip
    app = App(kube, namespace, registry)
    app.held_prod(controller.wait_until)
    seed(github, "staging", 1, "1.1.0", ("success", "Bake succeeded", timedelta(0)),
         start=clock.now())  # fmt: skip
    clock.advance(timedelta(minutes=1))
    controller.wait_until(lambda: app.allowed("prod") == ["1.1.0"], what="allowed")
    faults: list[tuple[Callable[[], None], str, str]] = [
        (github.forbid, "GitHubMisconfigured", "403"),
        (lambda: github.fail(times=1000, status=502), "GitHubUnavailable", "502"),
        (lambda: github.rate_limit(times=1000, reset=int(clock.now().timestamp()) + 7200),
         "GitHubRateLimited", "rate limited"),
    ]  # fmt: skip
    for inject, reason, text in faults:
        inject()
        clock.advance(timedelta(minutes=1))
        controller.wait_until(partial(has_reason, app, reason), what=reason)
        assert app.ready("prod")["status"] == "False"
        assert text in app.ready("prod")["message"]
        assert app.allowed("prod") == [], f"{reason}: the gate stayed open"
        github.clear_faults()
        clock.advance(3 * HOUR if reason == "GitHubRateLimited" else timedelta(minutes=1))
        controller.wait_until(lambda: app.allowed("prod") == ["1.1.0"], what="recovered")
    path = f"/api/v1/namespaces/{namespace}/secrets/github-token"
    bad = base64.b64encode(b"wrong-token").decode()
    status, answer = kube.request("PATCH", path, {"data": {"token": bad}}, content_type=MERGE)
    assert status == 200, answer
    clock.advance(timedelta(minutes=1))
    controller.wait_until(lambda: "401" in app.ready("prod").get("message", ""), what="bad token")
    assert app.allowed("prod") == []
    assert kube.request("DELETE", path)[0] == 200
    clock.advance(timedelta(minutes=1))
    controller.wait_until(lambda: app.ready("prod").get("reason") == "TokenUnavailable",
                          what="missing Secret")  # fmt: skip
    assert "github-token not found" in app.ready("prod")["message"]
    assert app.tags("prod") == ["1.0.0"]
