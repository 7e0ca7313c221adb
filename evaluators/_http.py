"""The shared HTTP client: timeouts, pool limits and capped reads for every httpx source.

Callers: fact sources that speak HTTP (prometheus, oci, github). Failures become ``FactError``
subclasses whose messages start with the caller's ``where`` text. Must not log
request URLs with credentials or read a response past its cap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from evaluators.base import FactInvalid, FactUnavailable, cap_message

MAX_RESPONSE_BYTES = 8 * 1024 * 1024
DEFAULT_TIMEOUT = 5.0


def make_client(
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_connections: int = 10,
    transport: httpx.AsyncBaseTransport | None = None,
    event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
) -> httpx.AsyncClient:
    """An ``AsyncClient`` with connect/read timeouts and a bounded pool; the caller closes it."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=5),
        transport=transport,
        event_hooks=dict(event_hooks or {}),
        follow_redirects=False,
        trust_env=False,
    )


class TransportFailure(FactUnavailable):
    """The request did not get an answer; ``detail`` says why without the ``where`` prefix."""

    def __init__(self, where: str, detail: str) -> None:
        self.detail = detail
        super().__init__(f"{where}: {detail}")


@dataclass(frozen=True)
class Reply:
    """One HTTP answer read within its cap."""

    status: int
    headers: httpx.Headers
    body: bytes


async def send_capped(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    where: str,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    json: Any = None,
    limit: int = MAX_RESPONSE_BYTES,
) -> Reply:
    """Sends one request and reads the answer; a body over ``limit`` bytes is FactInvalid.

    A HEAD answer's Content-Length describes the resource, not a body, so only
    other methods are refused on it before reading.
    """
    try:
        async with client.stream(method, url, headers=headers, params=params, json=json) as answer:
            declared = answer.headers.get("content-length", "")
            if method != "HEAD" and declared.isdigit() and int(declared) > limit:
                raise FactInvalid(f"{where}: response over {_size(limit)}")
            body = bytearray()
            async for chunk in answer.aiter_bytes():
                body.extend(chunk)
                if len(body) > limit:
                    raise FactInvalid(f"{where}: response over {_size(limit)}")
            return Reply(answer.status_code, answer.headers, bytes(body))
    except httpx.TimeoutException as exc:
        raise TransportFailure(where, f"timed out ({type(exc).__name__})") from exc
    except httpx.ConnectError as exc:
        raise TransportFailure(where, f"cannot connect: {cap_message(str(exc), 120)}") from exc
    except httpx.HTTPError as exc:
        raise TransportFailure(where, f"request failed: {type(exc).__name__}") from exc


async def get_capped(
    client: httpx.AsyncClient,
    url: str,
    *,
    where: str,
    params: Mapping[str, str] | None = None,
    limit: int = MAX_RESPONSE_BYTES,
) -> tuple[int, bytes]:
    """GETs ``url`` and returns (status, body); a body over ``limit`` bytes is FactInvalid."""
    reply = await send_capped(client, "GET", url, where=where, params=params, limit=limit)
    return reply.status, reply.body


def _size(limit: int) -> str:
    mib, rest = divmod(limit, 1024 * 1024)
    return f"{mib} MiB" if rest == 0 else f"{limit} bytes"


__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_RESPONSE_BYTES",
    "Reply",
    "TransportFailure",
    "get_capped",
    "make_client",
    "send_capped",
]
