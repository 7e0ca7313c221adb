"""OCI registry metadata: the VersionInfo of a release read from its manifest.

Callers: the controller (and ``tidegate record``) build ``Rollout.status``
``VersionInfo`` entries and ``artifactType/source/title/description`` with
``OciMetadataSource.fetch``. A ``FactError`` from ``fetch`` is not fatal: the
controller records ``{tag, digest}`` (digest from ImagePolicy ``latestRef``)
and carries on, as Kuberik does (KUBERIK-SEMANTICS.md §2.1). This module must
not write to a registry, follow redirects, read a manifest past 4 MiB (over the
cap is ``FactInvalid``, never truncated), read the clock, or log or put
credentials and tokens into messages.

Why httpx and not the oras SDK: oras is synchronous (requests), reads whole
bodies without a cap, retries on its own schedule and folds failures into
generic exceptions; the distribution API needed here is two calls
(``HEAD``/``GET /v2/<repo>/manifests/<ref>``), so speaking it directly gives
async calls, one timeout per call, capped reads and exact error mapping. oras
stays the reference client that pushes the test artifacts.

Resolution: without a caller digest, ``HEAD`` resolves tag -> digest (tags
move); a digest already cached (LRU, bounded, keyed by registry, repository
and digest) is answered without a ``GET``. With a caller digest (ImagePolicy
``latestRef.digest``) a cached entry costs no request at all, else the
manifest is read by digest. An image index yields its own annotations and
``artifactType``/``mediaType``; its child manifests are not read (choosing a
platform would be arbitrary and costs a request per release).

Errors (``evaluators.base``)::

    FactUnavailable          connect error, timeout ("timed out"), 404 tag, 429, 5xx
    FactInvalid              malformed JSON or field, over 4 MiB, digest mismatch, bad created
    FactSourceMisconfigured  bad image/tag, malformed .dockerconfigjson, 401/403, other 4xx
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar

import httpx

from evaluators._http import Reply, send_capped
from evaluators.base import (
    FactError,
    FactInvalid,
    FactSourceMisconfigured,
    FactUnavailable,
    cap_message,
)

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT = 10.0
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
ANNOTATION = "org.opencontainers.image."
_DOCKER_HUB = "docker.io"
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])"
    r"(?::[0-9]{1,5})?$"
)
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A repository as Flux ImageRepository ``spec.image`` names it: registry and path."""

    registry: str
    repository: str

    @classmethod
    def parse(cls, image: str) -> ImageReference:
        """``host[:port]/path`` (Docker Hub when the first part is not a host); no tag."""
        shown = cap_message(repr(image), 120)
        if "://" in image or "@" in image:
            raise FactSourceMisconfigured(
                f"OCI image {shown}: use host[:port]/repository without a scheme or digest"
            )
        first, _, rest = image.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, rest
        else:
            registry, path = _DOCKER_HUB, image if rest else f"library/{image}"
        if not _HOST.match(registry) or not all(_COMPONENT.match(p) for p in path.split("/")):
            raise FactSourceMisconfigured(
                f"OCI image {shown} is not host[:port]/repository (lower-case path, no tag)"
            )
        return cls(registry=registry.lower(), repository=path)

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}"


@dataclass(frozen=True, slots=True)
class RegistryCredentials:
    """A user name and password for one registry host; the password is never shown."""

    username: str
    password: str = field(repr=False)

    def basic(self) -> str:
        """The value of an ``Authorization: Basic`` header."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A release as Kuberik's VersionInfo plus the Rollout's artifact fields."""

    tag: str
    digest: str
    version: str | None = None
    revision: str | None = None
    created: datetime | None = None
    artifact_type: str | None = None
    source: str | None = None
    title: str | None = None
    description: str | None = None


def parse_dockerconfigjson(data: bytes, host: str) -> RegistryCredentials | None:
    """The credentials for ``host`` in a ``.dockerconfigjson``, or None (anonymous).

    A key matches when, without an ``http(s)://`` prefix and a trailing path, it
    equals ``host`` (case-insensitive); ``docker.io`` also matches Docker's
    ``index.docker.io`` keys. ``auth`` (base64 ``user:password``) wins over
    ``username``/``password``. A malformed secret is FactSourceMisconfigured;
    messages never show its content.
    """
    where = f".dockerconfigjson for registry {cap_message(host, 100)}"
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise FactSourceMisconfigured(f"{where}: not valid JSON") from exc
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        raise FactSourceMisconfigured(f"{where}: no 'auths' object")
    wanted = {host.lower()}
    if host.lower() == _DOCKER_HUB:
        wanted |= {"index.docker.io", "registry-1.docker.io"}
    for key, entry in auths.items():
        bare = str(key).lower().removeprefix("https://").removeprefix("http://").split("/")[0]
        if bare in wanted:
            return _credentials(entry, where)
    return None


def _credentials(entry: Any, where: str) -> RegistryCredentials:
    if not isinstance(entry, dict):
        raise FactSourceMisconfigured(f"{where}: the entry is not an object")
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            decoded = base64.b64decode(entry["auth"], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise FactSourceMisconfigured(f"{where}: 'auth' is not base64 user:password") from exc
        user, sep, password = decoded.partition(":")
        if not sep or not user:
            raise FactSourceMisconfigured(f"{where}: 'auth' is not base64 user:password")
        return RegistryCredentials(user, password)
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and name and isinstance(secret, str):
        return RegistryCredentials(name, secret)
    raise FactSourceMisconfigured(f"{where}: the entry has neither 'auth' nor username/password")


@dataclass(slots=True)
class _Call:
    """One fetch: where it goes, the Authorization header it has earned, its messages."""

    base: str
    ref: ImageReference
    credentials: RegistryCredentials | None
    insecure: bool
    authorization: str | None = None
    bearer_tried: bool = False

    @property
    def where(self) -> str:
        return f"OCI registry {self.ref.registry} repository {self.ref.repository}"


class OciMetadataSource:
    """Reads release metadata from OCI registries; one instance per controller, shared."""

    name: ClassVar[str] = "oci"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        cache_size: int = 512,
        max_concurrency: int = 8,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """``client`` from ``evaluators._http.make_client`` (no redirects, no env proxies)."""
        if cache_size < 1 or max_concurrency < 1 or not timeout > 0:
            raise ValueError("cache_size and max_concurrency must be >= 1 and timeout > 0")
        self.client = client
        self.timeout = timeout
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str, str], VersionInfo] = OrderedDict()
        self._limit = asyncio.Semaphore(max_concurrency)

    async def fetch(
        self,
        image: str,
        tag: str,
        *,
        digest: str | None = None,
        credentials: RegistryCredentials | None = None,
        insecure: bool = False,
        timeout: float | None = None,
    ) -> VersionInfo:
        """The VersionInfo of ``image:tag``; ``digest`` (when known) pins the manifest.

        ``insecure`` speaks plain HTTP. Raises a ``FactError`` subclass (see the
        module docstring) naming the registry, repository and tag.
        """
        ref = ImageReference.parse(image)
        if not _TAG.match(tag):
            shown = cap_message(repr(tag), 140)
            raise FactSourceMisconfigured(f"OCI image {ref}: tag {shown} is not valid")
        if digest is not None and not _DIGEST.match(digest):
            shown = cap_message(repr(digest), 150)
            raise FactInvalid(f"OCI image {ref}:{tag}: digest {shown} is not sha256/sha512")
        if digest is not None and (hit := self._cached(ref, digest)) is not None:
            return replace(hit, tag=tag)
        api_host = "registry-1.docker.io" if ref.registry == _DOCKER_HUB else ref.registry
        call = _Call(f"{'http' if insecure else 'https'}://{api_host}", ref, credentials, insecure)
        seconds = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(seconds):
                async with self._limit:
                    return await self._fetch(call, tag, digest)
        except TimeoutError as exc:
            raise FactUnavailable(f"{call.where}: tag {tag}: timed out after {seconds:g}s") from exc

    async def _fetch(self, call: _Call, tag: str, digest: str | None) -> VersionInfo:
        if digest is None:
            head = await self._manifest(call, "HEAD", tag, tag)
            digest = head.headers.get("docker-content-digest")
            if digest is not None and not _DIGEST.match(digest):
                raise FactInvalid(f"{call.where}: tag {tag}: malformed Docker-Content-Digest")
            if digest is not None and (hit := self._cached(call.ref, digest)) is not None:
                return replace(hit, tag=tag)
        answer = await self._manifest(call, "GET", digest or tag, tag)
        declared = digest or answer.headers.get("docker-content-digest")
        actual = _digest_of(answer.body, declared or "sha256:")
        if declared is not None and actual != declared:
            shown = cap_message(declared, 140)
            raise FactInvalid(f"{call.where}: tag {tag}: manifest does not match digest {shown}")
        info = _version_info(_document(answer, f"{call.where}: tag {tag}"), tag, actual, answer)
        self._remember(call.ref, actual, info)
        return info

    async def _manifest(self, call: _Call, method: str, reference: str, tag: str) -> Reply:
        where = f"{call.where}: tag {tag}"
        url = f"{call.base}/v2/{call.ref.repository}/manifests/{reference}"
        answer = await self._send(call, method, url, where)
        if answer.status == 401 and not call.bearer_tried:
            challenge = answer.headers.get("www-authenticate", "")
            if challenge.lower().startswith("bearer "):
                call.authorization = await self._token(call, challenge, where)
                answer = await self._send(call, method, url, where)
        if answer.status == 200:
            return answer
        if answer.status == 404:
            raise FactUnavailable(f"{where}: manifest not found (HTTP 404)")
        raise _status_error(answer.status, where, call.credentials is not None)

    async def _token(self, call: _Call, challenge: str, where: str) -> str:
        """Bearer token per the distribution token spec, with Basic credentials if any."""
        call.bearer_tried = True
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.pop("realm", "")
        if not realm.startswith("https://") and not (call.insecure and realm.startswith("http://")):
            raise FactSourceMisconfigured(f"{where}: token realm is not an https URL")
        params.setdefault("scope", f"repository:{call.ref.repository}:pull")
        headers = {"Authorization": call.credentials.basic()} if call.credentials else {}
        answer = await self._capped("GET", realm, where, headers, params)
        if answer.status != 200:
            with_credentials = call.credentials is not None
            raise _status_error(answer.status, f"{where}: token service", with_credentials)
        document = _document(answer, f"{where}: token service")
        token = document.get("token") or document.get("access_token")
        if not isinstance(token, str) or not token:
            raise FactInvalid(f"{where}: token service answered without a token")
        return f"Bearer {token}"

    async def _send(self, call: _Call, method: str, url: str, where: str) -> Reply:
        headers = {"Accept": ACCEPT}
        if call.authorization is not None:
            headers["Authorization"] = call.authorization
        elif call.credentials is not None:
            headers["Authorization"] = call.credentials.basic()
        return await self._capped(method, url, where, headers, None)

    async def _capped(
        self,
        method: str,
        url: str,
        where: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None,
    ) -> Reply:
        return await send_capped(
            self.client,
            method,
            url,
            where=where,
            headers=headers,
            params=params,
            limit=MAX_MANIFEST_BYTES,
        )

    def _cached(self, ref: ImageReference, digest: str) -> VersionInfo | None:
        key = (ref.registry, ref.repository, digest)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
        return hit

    def _remember(self, ref: ImageReference, digest: str, info: VersionInfo) -> None:
        self._cache[(ref.registry, ref.repository, digest)] = info
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def _status_error(status: int, where: str, with_credentials: bool) -> FactError:
    if status in (401, 403):
        given = "credentials were refused" if with_credentials else "anonymous access refused"
        return FactSourceMisconfigured(f"{where}: HTTP {status}: {given}")
    if status == 429 or status >= 500:
        return FactUnavailable(f"{where}: HTTP {status}")
    return FactSourceMisconfigured(f"{where}: unexpected HTTP {status}")


def _digest_of(body: bytes, like: str) -> str:
    algorithm = "sha512" if like.startswith("sha512:") else "sha256"
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


def _document(answer: Reply, where: str) -> dict[str, Any]:
    try:
        document = json.loads(answer.body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise FactInvalid(f"{where}: malformed JSON") from exc
    if not isinstance(document, dict):
        raise FactInvalid(f"{where}: malformed response: not a JSON object")
    return document


def _version_info(doc: dict[str, Any], tag: str, digest: str, answer: Reply) -> VersionInfo:
    where = f"manifest {digest} (tag {tag})"
    media_type = doc.get("mediaType") or answer.headers.get("content-type", "").split(";")[0]
    if media_type not in INDEX_TYPES and media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise FactInvalid(f"{where}: unsupported media type {cap_message(repr(media_type), 80)}")
    own = _strings(doc.get("annotations"), f"{where}: annotations")
    config: Any = {} if media_type in INDEX_TYPES else doc.get("config")
    if not isinstance(config, dict):
        raise FactInvalid(f"{where}: config is not a descriptor")
    from_config = _strings(config.get("annotations"), f"{where}: config.annotations")
    artifact_type = _text(doc.get("artifactType"), where) or _text(config.get("mediaType"), where)

    def pick(name: str) -> str | None:
        return own.get(ANNOTATION + name) or from_config.get(ANNOTATION + name)

    return VersionInfo(
        tag=tag,
        digest=digest,
        version=pick("version"),
        revision=pick("revision"),
        created=_created(pick("created"), where),
        artifact_type=artifact_type or media_type,
        source=own.get(ANNOTATION + "source"),
        title=own.get(ANNOTATION + "title"),
        description=own.get(ANNOTATION + "description"),
    )


def _strings(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise FactInvalid(f"{where}: not a map of strings")
    return {str(k): v for k, v in raw.items() if v}


def _text(raw: Any, where: str) -> str | None:
    if raw is not None and not isinstance(raw, str):
        raise FactInvalid(f"{where}: media type is not a string")
    return raw or None


def _created(raw: str | None, where: str) -> datetime | None:
    if raw is None:
        return None
    try:
        created = datetime.fromisoformat(raw)
    except ValueError as exc:
        shown = cap_message(repr(raw), 60)
        raise FactInvalid(f"{where}: created {shown} is not an RFC 3339 time") from exc
    if created.tzinfo is None:
        raise FactInvalid(f"{where}: created {raw!r} has no time-zone offset")
    return created


__all__ = [
    "ACCEPT",
    "MAX_MANIFEST_BYTES",
    "ImageReference",
    "OciMetadataSource",
    "RegistryCredentials",
    "VersionInfo",
    "parse_dockerconfigjson",
]
