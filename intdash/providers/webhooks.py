"""Outbound webhooks, signed as Standard Webhooks sign them.

``webhook-id`` names the message (the same on every attempt), ``webhook-timestamp`` is the
attempt's unix time, and ``webhook-signature`` is ``v1,<base64 HMAC-SHA256>`` of
``"<id>.<timestamp>.<body>"`` for each secret that signs now, space-separated (two during a
secret rotation). A ``whsec_`` secret's key is its base64-decoded remainder.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from intdash import __version__
from intdash.core.redact import redact
from intdash.core.tokens import TokenSource
from intdash.providers.http import httpx

TIMEOUT = 10.0
TOLERANCE_SECONDS = 300


def secret_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    signing: Sequence[str], event_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, event_id, timestamp, body) for s in signing),
    }


def verify(
    secret: str, headers: Any, body: bytes, now: float, tolerance: int = TOLERANCE_SECONDS
) -> bool:
    """What a receiver does (and the tests): one of the signatures matches, the time is near."""
    try:
        event_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        offered = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, event_id, timestamp, body)
    return any(hmac.compare_digest(expected, sig) for sig in offered)


def event_body(kind: str, at: datetime, data: dict[str, Any]) -> bytes:
    return json.dumps(
        {"type": kind, "timestamp": at.isoformat(), "data": data}, separators=(",", ":")
    ).encode()


async def send(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    signing: Sequence[str],
    event_id: str,
    at: datetime,
    body: bytes,
) -> tuple[int | None, str | None]:
    """POST one signed event; the HTTP status, or None and what went wrong."""
    timestamp = int(at.timestamp())
    sent = {
        **headers,
        "Content-Type": "application/json",
        "User-Agent": f"intdash/{__version__}",
        **signed_headers(signing, event_id, timestamp, body),
    }
    try:
        answer = await client.post(url, content=body, headers=sent, timeout=TIMEOUT)
    except httpx.TimeoutException:
        return None, f"no answer within {TIMEOUT:.0f} s"
    except httpx.HTTPError as exc:
        return None, redact(f"{type(exc).__name__}: {exc}")[:300]
    error = None if 200 <= answer.status_code < 300 else redact(answer.text[:200])
    return answer.status_code, error


def test_event_id(tokens: TokenSource) -> str:
    """A test event's ``webhook-id``: ``msg_test_`` and a random tag from ``tokens``."""
    return "msg_test_" + tokens.token_urlsafe(12)
