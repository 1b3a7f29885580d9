"""Platforms' signed events: Xero's webhooks at ``POST /v1/webhooks/xero``.

Xero signs each delivery with the app's webhook key (``x-xero-signature``: base64 of HMAC-SHA256
over the raw body) and wants an answer within 5 seconds, 200 with an empty body, else it retries
for a day and then disables the webhook. So:

- with no key set (``INTDASH_XERO__WEBHOOK_KEY``) the route answers 503 ``webhooks_off``, naming
  the setting: the route exists, this intdash is not set up to take events (and Xero retries);
- the body is read up to the server's size limit (413 beyond it), and its signature checked over
  those raw bytes, in constant time, before anything is parsed: a wrong or missing signature is
  401 with an empty body (Xero's "intent to receive" sends one signed wrong on purpose);
- a signed body that is not a delivery Xero sends (not JSON, no ``events`` list, an event without
  its category or tenant) is 400, naming what is wrong;
- a delivery with no events (Xero's "intent to receive") is 200 at once, with no database work;
- a delivery whose bytes were received before (a replay) is 200 and ignored;
- invoice and credit-note events bring their organisations' integrations' next sync forward (on
  Scale; on other plans they wait for their slot), and the process's dispatcher is woken for
  them; other events (contacts, …) are acknowledged and ignored; an organisation no integration
  is connected to is 200 too (Xero disables a webhook that keeps failing), logged once;
- what cannot be stored now (the database's disk is full) is 503 with ``Retry-After``, so that
  Xero delivers again; database work slower than :data:`ANSWER_WITHIN` is finished after the
  200 has gone, so the answer stays well within Xero's 5 seconds.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from intdash.core.schedule import EVENT_DELAY
from intdash.core.services.schedule import Received
from intdash.server.body import BodyError, parse_json, read_body
from intdash.server.ingest import problem

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace
    from intdash.sync.scheduler import SyncScheduler

log = logging.getLogger("intdash.server")

XERO_SIGNATURE = "x-xero-signature"
XERO_CATEGORIES = frozenset({"INVOICE", "CREDITNOTE"})  # the events that change invoices
XERO_SOURCE = "xero"
ANSWER_WITHIN = 2.0  # seconds of database work awaited before answering; the rest goes on after
UNKNOWN_REMEMBERED = 10_000  # organisations already warned about, at most


def xero_signature(key: str, body: bytes) -> str:
    """What Xero sends in ``x-xero-signature``: base64 of HMAC-SHA256 of the raw body."""
    digest = hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_right(key: str, body: bytes, header: str) -> bool:
    """Whether ``header`` is the body's signature under ``key`` (compared in constant time)."""
    # headers arrive decoded as latin-1, so they encode back to the bytes that were sent
    presented = header.strip().encode("latin-1")
    return hmac.compare_digest(xero_signature(key, body).encode("ascii"), presented)


@dataclass(frozen=True)
class XeroDelivery:
    """What a delivery says: how many events, and the organisations whose invoices changed."""

    events: int
    tenants: frozenset[str]


def _bad(message: str) -> BodyError:
    return BodyError(400, "invalid", f"not a Xero webhook delivery: {message}")


def parse_xero(raw: bytes) -> XeroDelivery:
    """A signed body as Xero sends it: ``{"events": [{eventCategory, tenantId, …}], …}``."""
    if not raw.strip():
        raise BodyError(400, "empty", "the body is empty: Xero sends a JSON object with events")
    body: Any = parse_json(raw)
    if not isinstance(body, dict):
        raise _bad("the body is not a JSON object")
    events = body.get("events")
    if not isinstance(events, list):
        raise _bad("it has no events list")
    tenants: set[str] = set()
    for n, event in enumerate(events):
        if not isinstance(event, dict):
            raise _bad(f"events[{n}] is not an object")
        category, tenant = event.get("eventCategory"), event.get("tenantId")
        if not isinstance(category, str) or not category:
            raise _bad(f"events[{n}] has no eventCategory")
        if not isinstance(tenant, str) or not tenant:
            raise _bad(f"events[{n}] has no tenantId")
        if category.upper() in XERO_CATEGORIES and tenant.strip():
            tenants.add(tenant.strip().lower())  # as /connections gives it
    return XeroDelivery(len(events), frozenset(tenants))


class XeroWebhook:
    """``POST /v1/webhooks/xero``."""

    def __init__(self, workspace: Workspace, scheduler: SyncScheduler | None = None) -> None:
        self._ws = workspace
        self._scheduler = scheduler
        self._limit = workspace.settings.server.max_body_bytes
        self._warned: set[str] = set()  # organisations already logged as unknown
        self._off_warned = False
        self._pending: set[asyncio.Future[Any]] = set()  # work going on after the answer

    async def post(self, request: Request) -> Response:
        key = self._ws.settings.xero.webhook_key.get_secret_value()
        if not key:
            if not self._off_warned:
                self._off_warned = True
                log.warning("a Xero webhook delivery came, but INTDASH_XERO__WEBHOOK_KEY is unset")
            return problem(
                503,
                "webhooks_off",
                "Xero webhooks are off here: set INTDASH_XERO__WEBHOOK_KEY to the webhook key "
                "of the Xero app",
            )
        try:
            raw = await read_body(request, self._limit)
        except BodyError as exc:
            return problem(exc.status, exc.error, exc.message)
        if not signed_right(key, raw, request.headers.get(XERO_SIGNATURE, "")):
            log.info("refused a Xero webhook delivery: its signature is not the webhook key's")
            return Response(status_code=401)
        try:
            delivery = parse_xero(raw)
        except BodyError as exc:
            log.warning("refused a signed Xero webhook delivery: %s", exc.message)
            return problem(exc.status, exc.error, exc.message)
        if not delivery.tenants:  # intent to receive, or only events of no interest
            return Response(status_code=200)
        work = asyncio.ensure_future(asyncio.to_thread(self._receive, raw, delivery.tenants))
        done, _ = await asyncio.wait({work}, timeout=ANSWER_WITHIN)
        if work in done:
            self._settled(work.result(), delivery)  # a storage error: 503, Xero delivers again
        else:
            self._pending.add(work)
            work.add_done_callback(lambda w: self._finished_late(w, delivery))
        return Response(status_code=200)

    def _receive(self, raw: bytes, tenants: frozenset[str]) -> Received:
        """The database's part (a worker thread): the receipt and the schedule, together."""
        return self._ws.schedule.receive_events(XERO_SOURCE, raw, tenants)

    def _finished_late(self, work: asyncio.Future[Received], delivery: XeroDelivery) -> None:
        self._pending.discard(work)
        if work.cancelled():
            return
        exc = work.exception()
        if exc is not None:
            log.error("a Xero webhook delivery acknowledged could not be stored: %s", exc)
            return
        self._settled(work.result(), delivery)

    def _settled(self, received: Received, delivery: XeroDelivery) -> None:
        if received.replay:
            log.info("a Xero webhook delivery came again: ignored")
            return
        for tenant in received.unknown:
            if tenant not in self._warned:
                if len(self._warned) >= UNKNOWN_REMEMBERED:
                    self._warned.clear()
                self._warned.add(tenant)
                log.warning(
                    "Xero sent events of organisation %s, which no integration is connected to",
                    tenant,
                )
        if not received.uids:
            return
        log.debug(
            "Xero webhook: %d events for %s (%s)",
            delivery.events,
            ", ".join(received.uids),
            "syncing within seconds" if received.at_once else "at their next slots",
        )
        if received.at_once:
            self._wake()

    # -- waking the dispatcher ---------------------------------------------------------------

    def _wake(self) -> None:
        """Wake this process's dispatcher when the syncs brought forward fall due."""
        if self._scheduler is not None:  # else another process's finds them due at its tick
            self._scheduler.wake(EVENT_DELAY.total_seconds() + 0.05)
