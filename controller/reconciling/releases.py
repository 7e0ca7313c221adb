"""OCI metadata of a newly observed release: version, revision, created and the artifact fields.

Callers: ``reconciling.rollouts`` before planning. Reads the ImagePolicy's
ImageRepository from the stores and, when it names a ``secretRef``, that
Secret live; fetches the manifest through ``evaluators.oci``. A failed fetch
is not an error: the release keeps ``{tag, digest}`` (KUBERIK-SEMANTICS.md
§2.1 VersionInfo) and the failure is logged. Only a tag not yet in
``availableReleases`` is fetched, so a steady Rollout makes no registry call.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any

from controller.api.actions import IMAGEPOLICIES
from controller.applying import ApiError
from controller.planning.releases import latest_release
from controller.reconciling.runtime import Runtime
from evaluators.base import FactError, Object
from evaluators.oci import ImageReference, RegistryCredentials, VersionInfo, parse_dockerconfigjson
from policy_engine.model.times import format_timestamp

LOG = logging.getLogger("tidegate.releases")
IMAGEREPOSITORIES = "imagerepositories.image.toolkit.fluxcd.io"
DOCKERCONFIG = ".dockerconfigjson"


async def new_release_metadata(rollout: Object, rt: Runtime) -> dict[str, dict[str, Any]]:
    """``{tag: VersionInfo fields}`` for the ImagePolicy's latest tag when it is new."""
    if rt.oci is None:
        return {}
    meta = rollout["metadata"]
    namespace = meta.get("namespace")
    policy_name = ((rollout.get("spec") or {}).get("releasesImagePolicy") or {}).get("name")
    policy = rt.reader.get(IMAGEPOLICIES, namespace, policy_name) if policy_name else None
    latest = latest_release(policy) if policy else None
    known = {r.get("tag") for r in (rollout.get("status") or {}).get("availableReleases") or []}
    if policy is None or latest is None or latest["tag"] in known:
        return {}
    repository = _repository(policy, namespace, rt)
    if repository is None:
        return {}
    spec = repository.get("spec") or {}
    image = str(spec.get("image") or "")
    try:
        credentials = await _credentials(spec, namespace, image, rt)
        info = await rt.oci.fetch(
            image, latest["tag"], digest=latest.get("digest"), credentials=credentials,
            insecure=bool(spec.get("insecure")),
        )  # fmt: skip
    except (FactError, ApiError) as exc:
        LOG.warning("release %s of %s: metadata unavailable: %s", latest["tag"], image, exc)
        return {}
    return {latest["tag"]: version_fields(info)}


def _repository(policy: Mapping[str, Any], namespace: str | None, rt: Runtime) -> Object | None:
    ref = (policy.get("spec") or {}).get("imageRepositoryRef") or {}
    if not ref.get("name"):
        return None
    return rt.reader.get(IMAGEREPOSITORIES, ref.get("namespace") or namespace, ref["name"])


async def _credentials(
    spec: Mapping[str, Any], namespace: str | None, image: str, rt: Runtime
) -> RegistryCredentials | None:
    secret_name = (spec.get("secretRef") or {}).get("name")
    if not secret_name:
        return None
    secret = await rt.writer.get("secrets", namespace, secret_name)
    encoded = ((secret or {}).get("data") or {}).get(DOCKERCONFIG)
    if not encoded:
        return None
    return parse_dockerconfigjson(base64.b64decode(encoded), ImageReference.parse(image).registry)


def version_fields(info: VersionInfo) -> dict[str, Any]:
    """The VersionInfo and artifact fields as the Rollout's status spells them."""
    fields = {
        "tag": info.tag,
        "digest": info.digest,
        "version": info.version,
        "revision": info.revision,
        "created": format_timestamp(info.created) if info.created else None,
        "artifactType": info.artifact_type,
        "source": info.source,
        "title": info.title,
        "description": info.description,
    }
    return {key: value for key, value in fields.items() if value}
