"""Xero's webhook, as the Xero emulator plays it: signed events posted to a URL when invoices
change.

Like Xero, a webhook has a URL and a key that Xero makes (a given one may be used instead), and
every post carries ``x-xero-signature``: base64 of HMAC-SHA256 of the raw body, keyed with it.
Its "intent to receive" (:meth:`XeroWebhook.intent`) posts a delivery without events signed right
and one signed wrong, and the webhook is fine when they are answered 200 and 401.

Changes are batched as Xero batches them: the events of a short window go in one post
(``{"events": [...], "firstEventSequence", "lastEventSequence", "entropy"}``), each event
numbered in sequence. Posting happens on a thread of its own, so the emulator's answers never
wait for it; a post not answered 200 is sent again, the same bytes, after a growing delay, while
new events keep going out.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import json
import logging
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx2 as httpx

from intdash.sandbox.dataset import SourceInvoice

log = logging.getLogger("intdash.sandbox")

SIGNATURE = "x-xero-signature"
WINDOW = 0.2  # seconds of changes that go in one post
MAX_EVENTS = 500  # events a post carries at most
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)  # then the delivery is dropped
TIMEOUT = 5.0  # Xero waits 5 seconds for an answer
KEPT = 100  # the latest posts reported


def signature(key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def new_key() -> str:
    """A key shaped like the ones Xero shows for a webhook (88 characters of base64)."""
    return base64.b64encode(secrets.token_bytes(64)).decode()


def _entropy() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(20))


def event_date(moment: datetime) -> str:
    """``eventDateUtc`` as Xero writes it: UTC, to the millisecond, without an offset."""
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}"


def invoice_events(
    tenant_id: str, api_base: str, kind: str, invoices: list[SourceInvoice], now: datetime
) -> list[dict[str, Any]]:
    """The events of a change (``create``, ``update``, ``void``, ``delete``) to invoices of the
    organisation ``tenant_id``, as Xero words them (a deletion is an update: Xero keeps the
    record, as DELETED)."""
    return [
        {
            "resourceUrl": f"{api_base}/api.xro/2.0/Invoices/{invoice.id}",
            "resourceId": invoice.id,
            "eventDateUtc": event_date(now if kind == "delete" else invoice.updated),
            "eventType": "CREATE" if kind == "create" else "UPDATE",
            "eventCategory": "INVOICE",
            "tenantId": tenant_id,
            "tenantType": "ORGANISATION",
        }
        for invoice in invoices
    ]


@dataclass(order=True)
class _Delivery:
    due: float
    first: int  # its first event's sequence: unique, and the order of equal due times
    last: int = field(compare=False)
    body: bytes = field(compare=False)
    events: int = field(compare=False)
    attempts: int = field(default=0, compare=False)


@dataclass
class Post:
    """One post made, as :meth:`XeroWebhook.status` reports it."""

    first: int
    last: int
    events: int
    attempt: int
    status: int | None  # None: no answer (refused, timed out)
    seconds: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "firstEventSequence": self.first,
            "lastEventSequence": self.last,
            "events": self.events,
            "attempt": self.attempt,
            "status": self.status,
            "seconds": round(self.seconds, 4),
            "error": self.error,
        }


class XeroWebhook:
    """Where the Xero emulator posts its events, the events waiting, and the thread posting."""

    def __init__(
        self,
        *,
        window: float = WINDOW,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        timeout: float = TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.retry_delays = retry_delays
        self.timeout = timeout
        self.clock = clock
        self.url: str | None = None
        self.key: str | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._events: deque[dict[str, Any]] = deque()  # not yet in a post
        self._first_at: float | None = None  # when the oldest of them came
        self._retries: list[_Delivery] = []  # a heap by due time
        self._sequence = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self.delivered = 0  # posts answered 200
        self.failed = 0  # attempts not answered 200
        self.dropped = 0  # events never delivered (no URL, or out of retries)
        self.posts: deque[Post] = deque(maxlen=KEPT)

    # -- configuration -----------------------------------------------------------------------

    def configure(self, url: str, key: str | None = None) -> str:
        """Post to ``url`` from now on, signed with ``key`` (a new one when None); returns the
        key."""
        if not url.startswith(("http://", "https://")):
            raise ValueError("the webhook URL must be http:// or https://")
        with self._lock:
            self.url, self.key = url, key or new_key()
            if self._thread is None:
                self._closed = False
                self._thread = threading.Thread(
                    target=self._run, name="sandbox-xero-webhook", daemon=True
                )
                self._thread.start()
            return self.key

    def clear(self) -> None:
        """No webhook: nothing is posted, and what was waiting is dropped."""
        with self._lock:
            self.url = self.key = None
            self.dropped += len(self._events) + sum(d.events for d in self._retries)
            self._events.clear()
            self._retries.clear()
            self._first_at = None

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)
            self._thread = None

    @property
    def active(self) -> bool:
        return self.url is not None

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "url": self.url,
                "key_set": self.key is not None,
                "waiting": len(self._events),
                "retrying": len(self._retries),
                "delivered": self.delivered,
                "failed": self.failed,
                "dropped": self.dropped,
                "sequence": self._sequence,
                "posts": [p.to_json() for p in self.posts],
            }

    # -- events ------------------------------------------------------------------------------

    def add(self, events: list[dict[str, Any]]) -> None:
        """Events to post (each without its sequence); quick, never waits on the network."""
        if not events:
            return
        with self._changed:
            if self.url is None:
                return  # no webhook: Xero has nowhere to send them
            for event in events:
                self._sequence += 1
                self._events.append({**event, "_sequence": self._sequence})
            if self._first_at is None:
                self._first_at = self.clock()
            self._changed.notify_all()

    def body(self, events: list[dict[str, Any]], first: int = 0, last: int = 0) -> bytes:
        payload = {
            "events": events,
            "firstEventSequence": first,
            "lastEventSequence": last,
            "entropy": _entropy(),
        }
        return json.dumps(payload, separators=(",", ":")).encode()

    # -- intent to receive -------------------------------------------------------------------

    def intent(self) -> dict[str, Any]:
        """Xero's check when a webhook is saved: an empty delivery signed right, then one
        signed wrong; the webhook is fine when they are answered 200 and 401. Blocking: run it
        off the emulator's event loop."""
        url, key = self.url, self.key
        if url is None or key is None:
            return {"ok": False, "error": "no webhook URL is set"}
        answers: dict[str, Any] = {"url": url}
        with httpx.Client(timeout=self.timeout, trust_env=False) as client:
            for name, sign_with in (("right", key), ("wrong", new_key())):
                body = self.body([])
                started = time.monotonic()
                try:
                    response = client.post(
                        url, content=body, headers=self._headers(sign_with, body)
                    )
                except httpx.HTTPError as exc:
                    answers[name] = {"status": None, "error": type(exc).__name__}
                    continue
                answers[name] = {
                    "status": response.status_code,
                    "body": response.text[:500],
                    "seconds": round(time.monotonic() - started, 4),
                }
        right, wrong = answers["right"], answers["wrong"]
        answers["ok"] = (
            right.get("status") == 200
            and wrong.get("status") == 401
            and right.get("seconds", TIMEOUT) < TIMEOUT
        )
        return answers

    # -- the posting thread ------------------------------------------------------------------

    @staticmethod
    def _headers(key: str, body: bytes) -> dict[str, str]:
        return {
            "content-type": "application/json; charset=utf-8",
            SIGNATURE: signature(key, body),
            "user-agent": "intdash-sandbox Xero webhook",
        }

    def _next(self) -> _Delivery | None:
        """The next delivery to attempt, once it is due (None when closing)."""
        with self._changed:
            while not self._closed:
                now = self.clock()
                waits: list[float] = []
                if self._events and self._first_at is not None:
                    ready = self._first_at + self.window
                    if now >= ready or len(self._events) >= MAX_EVENTS:
                        return self._batch(now)
                    waits.append(ready - now)
                if self._retries:
                    if self._retries[0].due <= now:
                        return heapq.heappop(self._retries)
                    waits.append(self._retries[0].due - now)
                self._changed.wait(min(waits) if waits else None)
            return None

    def _batch(self, now: float) -> _Delivery:
        taken = [self._events.popleft() for _ in range(min(MAX_EVENTS, len(self._events)))]
        self._first_at = now if self._events else None
        sequences = [event.pop("_sequence") for event in taken]
        body = self.body(taken, sequences[0], sequences[-1])
        return _Delivery(now, sequences[0], sequences[-1], body, len(taken))

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout, trust_env=False) as client:
            while (delivery := self._next()) is not None:
                self._attempt(client, delivery)

    def _attempt(self, client: httpx.Client, delivery: _Delivery) -> None:
        url, key = self.url, self.key
        if url is None or key is None:
            return
        delivery.attempts += 1
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            response = client.post(
                url, content=delivery.body, headers=self._headers(key, delivery.body)
            )
            status = response.status_code
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        post = Post(
            delivery.first,
            delivery.last,
            delivery.events,
            delivery.attempts,
            status,
            time.monotonic() - started,
            error,
        )
        with self._changed:
            self.posts.append(post)
            if status == 200:
                self.delivered += 1
                return
            self.failed += 1
            if self.url is None:
                return  # cleared meanwhile
            if delivery.attempts > len(self.retry_delays):
                self.dropped += delivery.events
                log.warning("sandbox Xero webhook: gave up on a delivery to %s", url)
                return
            delivery.due = self.clock() + self.retry_delays[delivery.attempts - 1]
            heapq.heappush(self._retries, delivery)
