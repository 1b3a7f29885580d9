"""The HTTP client module: the same one authlib's httpx integration uses.

authlib takes ``httpx2`` when it can be imported and falls back to ``httpx``; importing through
here keeps intdash's exception types and clients the same as the OAuth client's.
"""

from __future__ import annotations

try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover - httpx2 is a dependency
    import httpx  # type: ignore[no-redef]

__all__ = ["httpx"]
