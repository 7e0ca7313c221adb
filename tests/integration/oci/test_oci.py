"""The OCI metadata source against a real ``docker-registry`` and loopback fault servers.

Black-box through ``OciMetadataSource.fetch`` and ``parse_dockerconfigjson``.
Artifacts are pushed by the oras SDK (see conftest); request counts come from
a recording proxy in front of the real registry, never from internals.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest

from evaluators._http import make_client
from evaluators.base import FactError, FactInvalid, FactSourceMisconfigured, FactUnavailable
from evaluators.oci import (
    OciMetadataSource,
    RegistryCredentials,
    VersionInfo,
    parse_dockerconfigjson,
)

_T = TypeVar("_T")
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def run(work: Callable[[OciMetadataSource], Awaitable[_T]], **options: Any) -> _T:
    """Runs ``work`` with one source on a fresh, closed-after client."""

    async def main() -> _T:
        async with make_client(timeout=10.0) as client:
            return await work(OciMetadataSource(client, **options))

    return asyncio.run(main())


def fetch(image: str, tag: str, **kwargs: Any) -> VersionInfo:
    return run(lambda source: source.fetch(image, tag, insecure=True, **kwargs))


def failure(image: str, tag: str, **kwargs: Any) -> FactError:
    with pytest.raises(FactError) as caught:
        fetch(image, tag, **kwargs)
    return caught.value


def dockerconfig(host: str, user: str, password: str) -> bytes:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": auth}}}).encode()


# --- metadata read from real manifests ---------------------------------------------------


def test_manifest_annotations_and_config_media_type(registry: Any) -> None:
    info = fetch(registry.image(), "1.0.0")
    assert info == VersionInfo(
        tag="1.0.0",
        digest=registry.pushed["1.0.0"],
        version="1.0.0",
        revision="rev-1.0.0",
        created=CREATED,
        artifact_type="application/vnd.tidegate.config.v1+json",
        source="https://git.example.com/shop/app",
        title="app",
        description="the app, release 1.0.0",
    )
    assert info.created is not None
    assert info.created.tzinfo is not None


def test_manifest_artifact_type_wins_over_config_media_type(registry: Any) -> None:
    info = fetch(registry.image(), "1.1.0")
    assert (info.artifact_type, info.version) == ("application/vnd.tidegate.release.v1", "1.1.0")
    assert info.digest == registry.pushed["1.1.0"]


def test_config_annotations_are_the_fallback(registry: Any) -> None:
    info = fetch(registry.image(), "config-only")
    assert (info.version, info.revision) == ("0.9.0", "rev-0.9.0")
    assert info.created == datetime(2025, 12, 31, 23, tzinfo=timezone(timedelta(hours=1)))
    assert (info.source, info.title, info.description) == (None, None, None)
    assert info.artifact_type == "application/vnd.unknown.config.v1+json"  # oras' default
    assert info.digest == registry.pushed["config-only"]


def test_an_index_gives_its_own_annotations_and_media_type(registry: Any) -> None:
    info = fetch(registry.image(), "index")
    assert (info.version, info.digest) == ("2.0.0", registry.pushed["index"])
    assert info.artifact_type == INDEX_TYPE


def test_a_moved_tag_is_resolved_again(registry: Any) -> None:
    async def twice(source: OciMetadataSource) -> tuple[VersionInfo, VersionInfo]:
        first = await source.fetch(registry.image(), "moving", insecure=True)
        registry.push("moving", annotations={"org.opencontainers.image.version": "moved"})
        return first, await source.fetch(registry.image(), "moving", insecure=True)

    registry.push("moving", annotations={"org.opencontainers.image.version": "before"})
    first, second = run(twice)
    assert (first.version, second.version) == ("before", "moved")
    assert second.digest == registry.pushed["moving"] != first.digest


# --- credentials ---------------------------------------------------------------------------


def test_dockerconfigjson_credentials_open_the_htpasswd_registry(auth_registry: Any) -> None:
    user, password = auth_registry.credentials
    secret = dockerconfig(auth_registry.host, user, password)
    credentials = parse_dockerconfigjson(secret, auth_registry.host)
    assert credentials == RegistryCredentials(user, password)
    assert password not in repr(credentials)
    info = fetch(auth_registry.image("tidegate/private"), "1.0.0", credentials=credentials)
    assert (info.version, info.digest) == ("1.0.0", auth_registry.pushed["1.0.0"])


def test_anonymous_access_to_the_htpasswd_registry_is_misconfigured(auth_registry: Any) -> None:
    error = failure(auth_registry.image("tidegate/private"), "1.0.0")
    assert isinstance(error, FactSourceMisconfigured)
    assert auth_registry.host in error.message
    assert "tidegate/private" in error.message
    assert "HTTP 401" in error.message


def test_a_wrong_password_is_misconfigured_and_not_shown(auth_registry: Any) -> None:
    wrong = RegistryCredentials(auth_registry.credentials[0], "not-the-password")
    error = failure(auth_registry.image("tidegate/private"), "1.0.0", credentials=wrong)
    assert isinstance(error, FactSourceMisconfigured)
    assert "credentials were refused" in error.message
    assert "not-the-password" not in error.message


def test_dockerconfigjson_matches_the_host_exactly() -> None:
    secret = json.dumps(
        {
            "auths": {
                "registry.example.com": {"username": "u", "password": "p"},
                "https://other.example.com/v1/": {"auth": base64.b64encode(b"o:q").decode()},
            }
        }
    ).encode()
    assert parse_dockerconfigjson(secret, "registry.example.com") == RegistryCredentials("u", "p")
    assert parse_dockerconfigjson(secret, "other.example.com") == RegistryCredentials("o", "q")
    assert parse_dockerconfigjson(secret, "registry.example.com:5000") is None
    assert parse_dockerconfigjson(secret, "example.com") is None


@pytest.mark.parametrize(
    "secret",
    [b"{not json", b'{"auths": []}', b'{"auths": {"h": {"auth": "@@@"}}}', b'{"auths": {"h": {}}}'],
)
def test_a_malformed_dockerconfigjson_is_misconfigured(secret: bytes) -> None:
    with pytest.raises(FactSourceMisconfigured, match="dockerconfigjson for registry h"):
        parse_dockerconfigjson(secret, "h")


def test_a_bearer_challenge_is_answered_with_a_token(registry_proxy: Any) -> None:
    registry_proxy.require_bearer = True
    credentials = RegistryCredentials(*registry_proxy.credentials)
    info = fetch(registry_proxy.image(), "1.0.0", credentials=credentials)
    assert info.version == "1.0.0"
    assert any(path.startswith("/token?") for _, path in registry_proxy.requests)
    error = failure(registry_proxy.image(), "1.0.0")
    assert isinstance(error, FactSourceMisconfigured)
    assert "token service" in error.message
    assert "HTTP 401" in error.message


# --- failures ------------------------------------------------------------------------------


def test_an_unknown_tag_is_unavailable_naming_the_tag(registry: Any) -> None:
    error = failure(registry.image(), "9.9.9")
    assert isinstance(error, FactUnavailable)
    assert "tag 9.9.9" in error.message
    assert registry.host in error.message
    assert "HTTP 404" in error.message


def test_a_stopped_registry_is_unavailable(stoppable_registry: Any) -> None:
    assert fetch(stoppable_registry.image(), "1.0.0").version == "1.0.0"
    stoppable_registry.stop()
    error = failure(stoppable_registry.image(), "1.0.0")
    assert isinstance(error, FactUnavailable)
    assert "cannot connect" in error.message
    assert stoppable_registry.host in error.message


def test_a_closed_port_is_unavailable(free_loopback_url: str) -> None:
    host = free_loopback_url.removeprefix("http://")
    error = failure(f"{host}/tidegate/app", "1.0.0")
    assert isinstance(error, FactUnavailable)
    assert host in error.message


def test_a_slow_registry_times_out(oci_fault_server: Any) -> None:
    error = failure(oci_fault_server.image("slow"), "1.0.0", timeout=0.5)
    assert isinstance(error, FactUnavailable)
    assert "timed out" in error.message
    assert oci_fault_server.host in error.message


@pytest.mark.parametrize(
    ("mode", "kind", "text"),
    [
        ("status500", FactUnavailable, "HTTP 500"),
        ("malformed", FactInvalid, "malformed JSON"),
        ("huge", FactInvalid, "over 4 MiB"),
        ("hugestream", FactInvalid, "over 4 MiB"),
        ("wrongdigest", FactInvalid, "does not match digest"),
    ],
)
def test_faults_become_fact_errors(
    oci_fault_server: Any, mode: str, kind: type[FactError], text: str
) -> None:
    error = failure(oci_fault_server.image(mode), "1.0.0")
    assert type(error) is kind
    assert text in error.message
    assert f"repository {mode}" in error.message


@pytest.mark.parametrize(
    ("image", "tag", "digest"),
    [
        ("http://registry.example.com/app", "1.0.0", None),
        ("registry.example.com/App", "1.0.0", None),
        ("registry.example.com/app:1.0.0", "1.0.0", None),
        ("registry.example.com/app", "bad tag", None),
    ],
)
def test_bad_references_are_misconfigured(image: str, tag: str, digest: str | None) -> None:
    assert isinstance(failure(image, tag, digest=digest), FactSourceMisconfigured)


def test_a_malformed_digest_is_invalid() -> None:
    assert isinstance(failure("registry.example.com/app", "1", digest="md5:x"), FactInvalid)


# --- the digest cache ----------------------------------------------------------------------


def test_a_known_digest_is_not_fetched_again(registry_proxy: Any, registry: Any) -> None:
    image, digest = registry_proxy.image(), registry.pushed["1.0.0"]

    async def three(source: OciMetadataSource) -> list[VersionInfo]:
        first = await source.fetch(image, "1.0.0", insecure=True)
        after_first = len(registry_proxy.manifest_requests())
        second = await source.fetch(image, "also-1.0.0", digest=digest, insecure=True)
        assert len(registry_proxy.manifest_requests()) == after_first  # no request at all
        third = await source.fetch(image, "1.0.0", insecure=True)
        return [first, second, third]

    first, second, third = run(three)
    assert [m for m, _ in registry_proxy.manifest_requests()] == ["HEAD", "GET", "HEAD"]
    assert second.tag == "also-1.0.0"
    assert second.version == first.version == third.version
    assert first.digest == second.digest == third.digest == digest


def test_the_cache_is_bounded(registry_proxy: Any, registry: Any) -> None:
    image = registry_proxy.image()
    old, new = registry.pushed["1.0.0"], registry.pushed["1.1.0"]

    async def evict(source: OciMetadataSource) -> None:
        await source.fetch(image, "1.0.0", digest=old, insecure=True)
        await source.fetch(image, "1.1.0", digest=new, insecure=True)
        await source.fetch(image, "1.0.0", digest=old, insecure=True)

    run(evict, cache_size=1)
    assert registry_proxy.manifest_requests() == [
        ("GET", f"/v2/tidegate/app/manifests/{old}"),
        ("GET", f"/v2/tidegate/app/manifests/{new}"),
        ("GET", f"/v2/tidegate/app/manifests/{old}"),
    ]
