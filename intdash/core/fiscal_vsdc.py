"""The register of TaxCore's V-SDC: every sale and refund is signed by the tax authority's SDC.

:class:`VsdcRegister` keeps the local hash chain as the journal of what intdash decided (which
sale a refund reverses, never a refund twice: the rules of :class:`HashChainRegister`, and the
records the history, the ingest API and the webhooks read), and beside each of its records
writes a row of the fiscal outbox, in the same transaction (the upsert's): nothing is sent from
inside it. The sender (:mod:`intdash.sync.fiscalize`) takes the rows outside any transaction and
stores the SDC's whole response. A refund's row names its sale's row; it is sent once that sale
is signed, naming the SDC's invoice number and time of it. A credit note's row (a credit) is a
refund of its own items naming the sale of the invoice it credits, sent once that is signed.

A refund of a sale recorded while the register was the local one alone has nothing to name at
the SDC: it stays in the local chain only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, event, insert, select, update

from intdash.core.fiscal import HashChainRegister, ToFiscalize, Verification
from intdash.core.fiscal_models import FiscalOutbox, OutboxStatus
from intdash.core.models import FiscalRecord, Invoice, RecordKind
from intdash.core.services.fiscal_requests import content_of
from intdash.core.tokens import TokenSource, system_tokens

OUTBOX = FiscalOutbox.__table__  # type: ignore[attr-defined]
RECORDS = FiscalRecord.__table__  # type: ignore[attr-defined]
INVOICES = Invoice.__table__  # type: ignore[attr-defined]
_SALE = RecordKind.SALE.value
_REFUND = RecordKind.REFUND.value
_CREDIT = RecordKind.CREDIT.value
_SIGNED = OutboxStatus.SIGNED.value
_FAILED = OutboxStatus.FAILED.value
_WITHDRAWN = OutboxStatus.WITHDRAWN.value


def new_request_id(tokens: TokenSource) -> str:
    """A RequestId: a UUID (version 4) from the workspace's token source, as 32 hex digits
    (a RequestId is at most 32 characters)."""
    return uuid.UUID(bytes=tokens.token_bytes(16), version=4).hex


class VsdcRegister:
    """The local chain as the journal, and an outbox row per record for the SDC to sign."""

    def __init__(
        self,
        tokens: TokenSource = system_tokens,
        chain: HashChainRegister | None = None,
    ) -> None:
        self._tokens = tokens
        self.chain = chain or HashChainRegister()
        # called once a transaction that queued rows commits (the sender's wake); set by the
        # process that sends
        self.on_queued: Callable[[], None] | None = None

    def fiscalize(
        self, conn: Connection, invoices: Sequence[ToFiscalize], at: datetime
    ) -> list[dict[str, Any]]:
        records = self.chain.fiscalize(conn, invoices, at)
        if records and self.enqueue(conn, records, at) and self.on_queued is not None:
            wake = self.on_queued
            event.listen(conn, "commit", lambda _conn: wake(), once=True)
        return records

    def enqueue(self, conn: Connection, records: Sequence[dict[str, Any]], at: datetime) -> int:
        """An outbox row for each of these records (just made, in ``conn``'s transaction):
        the sales at once, then the refunds and credits, each naming its sale's row (made
        before, or just now)."""
        sales = [r for r in records if r["kind"] == _SALE]
        credits = [r for r in records if r["kind"] == _CREDIT]
        contents: dict[int, str] = {}
        if sales or credits:  # what each will send: its invoice's (a credit note's own)
            columns = [INVOICES.c[name] for name in _CONTENT_COLUMNS]
            own = {r["invoice_id"] for r in sales} | {r["invoice_id"] for r in credits}
            contents = {
                row.id: json.dumps(content_of(row))
                for row in conn.execute(select(*columns).where(INVOICES.c.id.in_(own)))
            }
        if sales:
            conn.execute(
                insert(OUTBOX),
                [self._row(r, None, contents[r["invoice_id"]], at) for r in sales],
            )
        refunds = [r for r in records if r["kind"] == _REFUND]
        named: dict[int, tuple[int, str]] = {}  # a refunded sale's record -> (its row, content)
        if credits:
            for row in conn.execute(
                select(OUTBOX.c.id, OUTBOX.c.record_seq).where(
                    OUTBOX.c.record_seq.in_({r["refers_to"] for r in credits})
                )
            ):
                named[row.record_seq] = (row.id, "")
            # (a sale the SDC never had: the credit stays in the local chain only)
            credits = [r for r in credits if r["refers_to"] in named]
            if credits:
                conn.execute(
                    insert(OUTBOX),
                    [
                        self._row(r, named[r["refers_to"]][0], contents[r["invoice_id"]], at)
                        for r in credits
                    ],
                )
        if refunds:
            sold: dict[int, tuple[int, str]] = {}  # a refunded sale's record -> (row, content)
            refused: list[int] = []  # sales the SDC refused: withdrawn, never refunded there
            for row in conn.execute(
                select(OUTBOX.c.id, OUTBOX.c.record_seq, OUTBOX.c.content, OUTBOX.c.status).where(
                    OUTBOX.c.record_seq.in_({r["refers_to"] for r in refunds})
                )
            ):
                if row.status == _FAILED:
                    refused.append(row.id)
                else:
                    sold[row.record_seq] = (row.id, row.content)
            if refused:
                conn.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.id.in_(refused))
                    .values(status=_WITHDRAWN, next_attempt_at=at)
                )
            # a sale the SDC never had (recorded by the local register alone): nothing to
            # refund there
            refunds = [r for r in refunds if r["refers_to"] in sold]
            if refunds:
                conn.execute(
                    insert(OUTBOX),
                    [self._row(r, *sold[r["refers_to"]], at) for r in refunds],
                )
        return len(sales) + len(refunds) + len(credits)

    def _row(
        self, record: dict[str, Any], refers_to: int | None, content: str, at: datetime
    ) -> dict[str, Any]:
        return {
            "record_seq": record["seq"],
            "invoice_id": record["invoice_id"],
            "integration_id": record["integration_id"],
            "kind": record["kind"],
            "refers_to": refers_to,
            "status": OutboxStatus.PENDING.value,
            "request_id": new_request_id(self._tokens),
            "content": content,
            "attempts": 0,
            "next_attempt_at": at,
            "created_at": at,
        }

    def verify(self, conn: Connection) -> Verification:
        """The local chain, then the outbox: each row is of its record; each refund names a
        sale of its invoice, refunded once; a signed refund names its sale's SDC number; no SDC
        number appears twice."""
        chained = self.chain.verify(conn)
        if not chained.ok:
            return chained
        rows = conn.execute(
            select(
                OUTBOX.c.id,
                OUTBOX.c.record_seq,
                OUTBOX.c.invoice_id,
                OUTBOX.c.kind,
                OUTBOX.c.refers_to,
                OUTBOX.c.status,
                OUTBOX.c.request,
                OUTBOX.c.sdc_invoice_number,
                RECORDS.c.invoice_id.label("record_invoice"),
                RECORDS.c.kind.label("record_kind"),
            )
            .join(RECORDS, RECORDS.c.seq == OUTBOX.c.record_seq, isouter=True)
            .order_by(OUTBOX.c.id)
        ).all()
        by_id = {row.id: row for row in rows}
        refunded: set[int] = set()
        numbers: set[str] = set()
        for row in rows:
            seq = row.record_seq
            problem = None
            if row.record_invoice != row.invoice_id or row.record_kind != row.kind:
                problem = f"outbox row {row.id} is not of record {seq}"
            elif row.kind == _REFUND:
                sale = by_id.get(row.refers_to) if row.refers_to is not None else None
                if sale is None or sale.kind != _SALE or sale.invoice_id != row.invoice_id:
                    problem = f"outbox row {row.id} refunds no sale of its invoice"
                elif sale.id in refunded:
                    problem = f"outbox row {row.id} refunds row {sale.id} a second time"
                elif row.status == _SIGNED:
                    if sale.status != _SIGNED:
                        problem = f"outbox row {row.id} was signed before the sale it refunds"
                    else:
                        named = json.loads(row.request or "{}").get("ReferentDocumentNumber")
                        if named != sale.sdc_invoice_number:
                            problem = f"outbox row {row.id} names another sale at the SDC"
                refunded.add(row.refers_to or 0)
            elif row.kind == _CREDIT:
                sale = by_id.get(row.refers_to) if row.refers_to is not None else None
                if sale is None or sale.kind != _SALE or sale.invoice_id == row.invoice_id:
                    problem = f"outbox row {row.id} credits no sale of another invoice"
                elif row.status == _SIGNED:
                    named = json.loads(row.request or "{}").get("ReferentDocumentNumber")
                    if sale.status != _SIGNED:
                        problem = f"outbox row {row.id} was signed before the sale it credits"
                    elif named != sale.sdc_invoice_number:
                        problem = f"outbox row {row.id} names another sale at the SDC"
            elif row.refers_to is not None:
                problem = f"outbox row {row.id} is a sale that names row {row.refers_to}"
            if problem is None and row.sdc_invoice_number is not None:
                if row.sdc_invoice_number in numbers:
                    problem = f"SDC invoice {row.sdc_invoice_number} is recorded twice"
                numbers.add(row.sdc_invoice_number)
            if problem is not None:
                return Verification(chained.records, seq, problem)
        return chained


_CONTENT_COLUMNS = (
    "id", "external_id", "number", "issue_date", "currency", "total", "tax", "items",
    "buyer_tax_id", "payments",
)  # fmt: skip
