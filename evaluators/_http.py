"""The shared HTTP client: timeouts, pool limits and capped reads for every httpx source.

Callers: fact sources that speak HTTP (prometheus). Failures become ``FactError``
subclasses whose messages start with the caller's ``where`` text. Must not log
request URLs with credentials or read a response past its cap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


async def get_capped(
    client: httpx.AsyncClient,
    url: str,
    *,
    where: str,
    params: Mapping[str, str] | None = None,
    limit: int = MAX_RESPONSE_BYTES,
) -> tuple[int, bytes]:
    """GETs ``url`` and returns (status, body); a body over ``limit`` bytes is FactInvalid."""
    try:
        async with client.stream("GET", url, params=params) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise FactInvalid(f"{where}: response over {_size(limit)}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > limit:
                    raise FactInvalid(f"{where}: response over {_size(limit)}")
            return response.status_code, bytes(body)
    except httpx.TimeoutException as exc:
        raise FactUnavailable(f"{where}: timeout ({type(exc).__name__})") from exc
    except httpx.ConnectError as exc:
        raise FactUnavailable(f"{where}: cannot connect: {cap_message(str(exc), 120)}") from exc
    except httpx.HTTPError as exc:
        raise FactUnavailable(f"{where}: request failed: {type(exc).__name__}") from exc


def _size(limit: int) -> str:
    mib, rest = divmod(limit, 1024 * 1024)
    return f"{mib} MiB" if rest == 0 else f"{limit} bytes"


__all__ = ["DEFAULT_TIMEOUT", "MAX_RESPONSE_BYTES", "get_capped", "make_client"]
