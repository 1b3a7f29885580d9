"""What the three emulators share: faults to switch on, rate windows, and small helpers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from intdash.sandbox.dataset import Dataset
from intdash.sandbox.oauth import OAuthServer


@dataclass
class Faults:
    """Misbehaviour a test or the demo can switch on; counts are used up one call at a time."""

    fail_5xx: int = 0  # the next N API calls answer 500
    malformed: int = 0  # the next N invoice pages are not valid JSON
    storm_429: int = 0  # the next N API calls answer 429
    slow_seconds: float = 0.0  # every API call waits this long first

    def __post_init__(self) -> None:
        # a gate a test holds shut: after ``_hold_after`` more API calls, every call waits at
        # the gate until it is opened (a race held open without a delay)
        self._hold_after = -1
        self._gate = threading.Event()

    def hold(self, after: int = 0) -> None:
        """Let ``after`` more API calls through, then hold every call until :meth:`release`."""
        self._gate.clear()
        self._hold_after = after

    def release(self) -> None:
        self._hold_after = -1
        self._gate.set()

    @property
    def holding(self) -> bool:
        return self._hold_after == 0 and not self._gate.is_set()

    async def pass_gate(self) -> None:
        if self._hold_after > 0:
            self._hold_after -= 1
        elif self._hold_after == 0:
            await asyncio.to_thread(self._gate.wait)

    def take(self, name: str) -> bool:
        count: int = getattr(self, name)
        if count > 0:
            setattr(self, name, count - 1)
            return True
        return False


class RateWindow:
    """At most ``limit`` calls in any ``window`` seconds (sliding)."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def hit(self) -> tuple[bool, int, float]:
        """Count a call: (allowed, remaining after it, seconds until a slot frees)."""
        with self._lock:
            now = self.clock()
            while self._calls and self._calls[0] <= now - self.window:
                self._calls.popleft()
            if len(self._calls) >= self.limit:
                return False, 0, self._calls[0] + self.window - now
            self._calls.append(now)
            return True, self.limit - len(self._calls), 0.0

    @property
    def remaining(self) -> int:
        with self._lock:
            now = self.clock()
            # pruned as hit() does (calls are kept in time order), not counted one by one: a
            # wide window holds every call of a long run
            while self._calls and self._calls[0] <= now - self.window:
                self._calls.popleft()
            return self.limit - len(self._calls)


class InFlight:
    """Counts concurrent requests."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.current = 0
        self.peak = 0
        self._lock = threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if self.current >= self.limit:
                return False
            self.current += 1
            self.peak = max(self.peak, self.current)
            return True

    def leave(self) -> None:
        with self._lock:
            self.current -= 1


def bearer(request: Request, scheme: str = "Bearer") -> str:
    header = request.headers.get("authorization", "")
    prefix = f"{scheme} "
    return header[len(prefix) :] if header.startswith(prefix) else ""


async def form_of(request: Request) -> dict[str, str]:
    """A urlencoded form body (what OAuth token endpoints take)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


MALFORMED = b'{"Invoices": [{"InvoiceID": "truncated'


async def maybe_slow(faults: Faults) -> None:
    """The faults every API call meets first: a delay, then the test's gate."""
    if faults.slow_seconds > 0:
        await asyncio.sleep(faults.slow_seconds)
    await faults.pass_gate()


def parse_http_time(text: str) -> datetime | None:
    """An ISO 8601 time (UTC when no offset is given) or an HTTP date."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def ms_date(moment: datetime) -> str:
    """A .NET JSON date, as Xero writes them."""
    return f"/Date({int(moment.timestamp() * 1000)}+0000)/"


def base_of(request: Request) -> str:
    """The URL this emulator is mounted at (Starlette's ``base_url`` leaves the mount out)."""
    return str(request.base_url).rstrip("/") + str(request.scope.get("root_path", ""))


class PlatformEmulator:
    """What every emulator keeps: its company's invoices, its OAuth server, faults, counters."""

    def __init__(self, seed: str, size: int, oauth: OAuthServer) -> None:
        self.dataset = Dataset(size, seed=seed)
        self.oauth = oauth
        self.faults = Faults()
        self.api_calls = 0
        self.rate_limited = 0

    def consent_extra(self, request: Request) -> dict[str, str]:
        """Parameters the platform adds to the consent redirect."""
        return {}

    async def authorize(self, request: Request) -> Response:
        status, where = self.oauth.authorize(
            dict(request.query_params), self.consent_extra(request)
        )
        if status != 302:
            return Response(where, status_code=status, media_type="text/plain")
        return RedirectResponse(where, status_code=302)

    async def token(self, request: Request) -> Response:
        form = {**dict(request.query_params), **(await form_of(request))}
        status, body = self.oauth.token(form, request.headers.get("authorization"))
        return json_response(body, status)
