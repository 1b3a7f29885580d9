"""Delivering the outbox: claim what is due, POST it signed, record each answer."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import select

from intdash.core.catalog import type_spec
from intdash.core.errors import ConflictError
from intdash.core.models import FiscalStatus, Integration
from intdash.core.services.deliveries import Claimed
from intdash.providers.http import httpx
from intdash.providers.webhooks import event_body, send, test_event_id
from intdash.sync.rounds import drain as rounds_drain

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

log = logging.getLogger("intdash.deliveries")
BATCH = 50
CONCURRENCY = 8  # requests in flight at once, so that no receiver is flooded


class DeliveryWorker:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    async def run_once(self, limit: int = BATCH) -> int:
        """Attempt what is due now (up to ``limit``); returns how many were attempted."""
        claimed = await asyncio.to_thread(self._ws.deliveries.claim, limit)
        if not claimed:
            return 0
        at_once = asyncio.Semaphore(CONCURRENCY)

        async def attempt(client: httpx.AsyncClient, claimed: Claimed) -> None:
            async with at_once:
                await self._attempt(client, claimed)

        async with httpx.AsyncClient() as client:
            await asyncio.gather(*(attempt(client, c) for c in claimed))
        return len(claimed)

    async def drain(self, rounds: int = 100) -> int:
        """Attempt what is due until nothing is (or ``rounds`` batches)."""
        return await rounds_drain(self.run_once, rounds)

    async def _attempt(self, client: httpx.AsyncClient, claimed: Claimed) -> None:
        now = self._ws.clock()
        # the invoice as it stands: a refunded one says so (its refund record is in it)
        refunded = claimed.invoice.fiscal_status == FiscalStatus.REFUNDED.value
        body = event_body(
            "invoice.refunded" if refunded else "invoice.fiscalized",
            now,
            {"integration": claimed.source_uid, "invoice": claimed.invoice.to_json()},
        )
        status, error = await send(
            client, claimed.url, claimed.headers, claimed.secrets, claimed.event_id, now, body
        )
        if status is None or not 200 <= status < 300:
            log.info("delivery %s to %s: %s", claimed.event_id, claimed.webhook_uid,
                     f"HTTP {status}" if status else error)  # fmt: skip
        await asyncio.to_thread(self._ws.deliveries.record, claimed, status, error)


@dataclass(frozen=True)
class ProbeResult:
    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        if self.ok:
            return f"the endpoint answered HTTP {self.status}"
        if self.status is not None:
            return f"the endpoint answered HTTP {self.status}: {self.error or ''}".rstrip(": ")
        return f"no answer: {self.error}"


async def probe_webhook(ws: Workspace, uid: str) -> ProbeResult:
    """Send a signed test event to a Custom/Webhook integration's URL; nothing is recorded."""

    def read() -> tuple[str, dict[str, str], tuple[str, ...]]:
        with ws.db.read() as session:
            row = session.exec(select(Integration).where(Integration.uid == uid)).first()
            if row is None or not type_spec(row.type).delivers:
                raise ConflictError(f"{uid} is not a Custom/Webhook integration")
            return ws.deliveries.target(session, row, ws.clock())

    url, headers, signing = await asyncio.to_thread(read)
    now = ws.clock()
    body = event_body("test", now, {"integration": uid, "message": "a test from intdash"})
    event_id = test_event_id(ws.tokens)
    async with httpx.AsyncClient() as client:
        status, error = await send(client, url, headers, signing, event_id, now, body)
    return ProbeResult(status, error)
