"""The HTTP client module: the same one authlib's httpx integration uses.

authlib takes ``httpx2`` when it can be imported (and it always can: it is a dependency of
intdash); importing it through here keeps intdash's exception types and clients the same as the
OAuth client's.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import urllib.request
import weakref
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx2 as httpx

from intdash.providers.transport import PlatformTransport

__all__ = ["close_clients", "httpx", "shared_client", "shared_tls"]


@functools.cache
def shared_tls() -> ssl.SSLContext:
    """The process's one TLS context for platform APIs: building one (and loading the CA
    bundle) costs more CPU than a whole sync that changes nothing, so clients share it."""
    return httpx.create_ssl_context()


# each event loop's clients, by platform: a client's connections belong to the loop that made
# them, and a loop that ends takes its clients with it
_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, int], httpx.AsyncClient]
] = weakref.WeakKeyDictionary()


def _no_cookies() -> CookieJar:
    """A jar that keeps none: one client serves every tenant of a platform, and a cookie one
    tenant's answer sets must not go with another's requests."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def _proxied() -> bool:
    """Whether the environment names a proxy (``HTTPS_PROXY`` and the like): httpx's own
    transports then carry the calls, through it (or not, as ``NO_PROXY`` says); httpx reads
    those settings only for a client given no transport."""
    return any(scheme in urllib.request.getproxies() for scheme in ("http", "https", "all"))


def shared_client(
    platform: str, timeout: httpx.Timeout, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The process's one client (its connection pool kept alive between calls) for a platform,
    on the running loop: a sync that changes nothing costs one request, not a new client, a
    TLS handshake and a connection. ``transport`` (a test's) gets a client of its own. Its calls
    go through :class:`PlatformTransport`, unless the environment names a proxy."""
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (platform, id(transport) if transport is not None else 0)
    client = per_loop.get(key)
    if client is None or client.is_closed:
        if transport is None and not _proxied():
            transport = PlatformTransport(shared_tls())
        client = per_loop[key] = httpx.AsyncClient(
            timeout=timeout, transport=transport, verify=shared_tls(), cookies=_no_cookies()
        )
    return client


async def close_clients() -> None:
    """Close the running loop's shared clients (at the end of a process's work on it)."""
    clients = _clients.pop(asyncio.get_running_loop(), {})
    for client in clients.values():
        await client.aclose()
