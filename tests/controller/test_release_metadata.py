"""A newly observed release carries its OCI annotations into history (KUBERIK-SEMANTICS.md §2.1).

The release is pushed with oras to a real Debian docker-registry; the Flux
ImageRepository names it; the controller reads the manifest once, when the tag
is first observed.
"""

from __future__ import annotations

from pathlib import Path

from clocks import ManualClock
from harness import ControllerHarness
from kubecluster import KubeCluster
from ociregistry import RELEASE_TYPE, REPOSITORY, release_annotations, start_registry
from world import FLUX_IMAGE, World


def test_a_new_release_is_recorded_with_its_oci_annotations(
    kube: KubeCluster, namespace: str, world: World, tmp_path: Path
) -> None:
    registry = start_registry(tmp_path)
    try:
        digest = registry.push(
            "0.2.0", annotations=release_annotations("0.2.0"), artifact_type=RELEASE_TYPE
        )
        world._create(
            FLUX_IMAGE, "imagerepositories",
            {"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImageRepository",
             "metadata": {"name": "p"},
             "spec": {"image": registry.image(REPOSITORY), "interval": "1m", "insecure": True}},
        )  # fmt: skip
        world.rollout()
        with ControllerHarness(kube.admin_kubeconfig, ManualClock(), namespace) as controller:
            world.observe("0.2.0")
            controller.wait_until(lambda: world.tags() == ["0.2.0"], what="deployed")
    finally:
        registry.stop()
    version = world.entry()["version"]
    assert version == {
        "tag": "0.2.0",
        "digest": digest,
        "version": "0.2.0",
        "revision": "rev-0.2.0",
        "created": "2026-01-02T03:04:05Z",
    }
    status = world.status
    assert status["artifactType"] == RELEASE_TYPE
    assert status["source"] == "https://git.example.com/shop/app"
    assert status["availableReleases"][0]["revision"] == "rev-0.2.0"
