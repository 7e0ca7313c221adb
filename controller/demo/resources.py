"""The kinds the demo's emulated API serves: tidegate's CRDs plus minimal Flux and core kinds.

Callers: ``demo.emulation`` registers each as a discoverable resource. tidegate's
own kinds come from ``controller.api.kinds`` (the CRD generator's source), so the
demo serves exactly what ``crds/`` installs. The third-party kinds are declared
here, not read from ``tests/``: only what the controller and simulated Flux use
(Flux image-reflector v1, kustomize v1, source v1; core namespaces and events).
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.api.kinds import kinds

TIDEGATE_VERSION = "v1alpha1"


@dataclass(frozen=True, slots=True)
class Served:
    """One served resource: where it lives and how it is discovered."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = True
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """The controller's name of the kind: ``<plural>.<group>`` or a core ``<plural>``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


THIRD_PARTY: tuple[Served, ...] = (
    Served("image.toolkit.fluxcd.io", "v1", "imagepolicies", "ImagePolicy"),
    Served("image.toolkit.fluxcd.io", "v1", "imagerepositories", "ImageRepository"),
    Served("source.toolkit.fluxcd.io", "v1", "ocirepositories", "OCIRepository"),
    Served(
        "kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization", short_names=("ks",)
    ),
    Served("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",)),
    Served("", "v1", "events", "Event", status=False, short_names=("ev",)),
    Served("", "v1", "configmaps", "ConfigMap", status=False, short_names=("cm",)),
    Served(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd",),
    ),
)


def served() -> tuple[Served, ...]:
    """Every resource of the emulated API, tidegate's kinds first."""
    own = tuple(
        Served(
            k.group,
            TIDEGATE_VERSION,
            k.plural,
            k.kind,
            namespaced=k.scope == "Namespaced",
            short_names=k.short_names,
        )
        for k in kinds()
    )
    return own + THIRD_PARTY
