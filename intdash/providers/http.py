"""The HTTP client module: the same one authlib's httpx integration uses.

authlib takes ``httpx2`` when it can be imported (and it always can: it is a dependency of
intdash); importing it through here keeps intdash's exception types and clients the same as the
OAuth client's.
"""

from __future__ import annotations

import functools
import ssl

import httpx2 as httpx

__all__ = ["httpx", "shared_tls"]


@functools.cache
def shared_tls() -> ssl.SSLContext:
    """The process's one TLS context for platform APIs: building one (and loading the CA
    bundle) costs more CPU than a whole sync that changes nothing, so clients share it."""
    return httpx.create_ssl_context()
