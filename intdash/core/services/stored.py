"""Invoices as the ingest API answers with them: each as stored, with its latest sale record,
that sale's refund, and (the V-SDC being the register) what the SDC made of them."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select

from intdash.core.fiscal_models import FiscalOutbox
from intdash.core.models import FiscalRecord, Invoice, RecordKind

INVOICES = Invoice.__table__  # type: ignore[attr-defined]
RECORDS = FiscalRecord.__table__  # type: ignore[attr-defined]
OUTBOX = FiscalOutbox.__table__  # type: ignore[attr-defined]


# built once: every push answers with what it stored
_STORED_ONE = select(INVOICES).where(
    INVOICES.c.integration_id == bindparam("b_integration"),
    INVOICES.c.external_id == bindparam("b_id"),
)
_STORED = (
    select(INVOICES)
    .where(INVOICES.c.integration_id == bindparam("b_integration"))
    .where(INVOICES.c.external_id.in_(bindparam("b_ids", expanding=True)))
)
_RECORDS_OF = (
    select(RECORDS)
    .where(RECORDS.c.invoice_id.in_(bindparam("b_ids", expanding=True)))
    .order_by(RECORDS.c.seq)
)
_RECORDS_OF_ONE = (
    select(RECORDS).where(RECORDS.c.invoice_id == bindparam("b_id")).order_by(RECORDS.c.seq)
)
# with the V-SDC as the register: each record with its outbox row (what the SDC made of it), in
# the same statement
SDC_COLUMNS = ("status", "sdc_invoice_number", "sdc_time", "invoice_counter", "verification_url",
               "error")  # fmt: skip
_RECORDS_WITH_SDC = (
    select(RECORDS, OUTBOX.c.id.label("sdc_row"),
           *(OUTBOX.c[name].label(f"sdc_{name}") for name in SDC_COLUMNS))
    .join(OUTBOX, OUTBOX.c.record_seq == RECORDS.c.seq, isouter=True)
    .where(RECORDS.c.invoice_id.in_(bindparam("b_ids", expanding=True)))
    .order_by(RECORDS.c.seq)
)  # fmt: skip


@dataclass(frozen=True)
class StoredInvoice:
    """An invoice as intdash holds it, with its fiscal record when it has one."""

    external_id: str
    number: str | None
    kind: str
    contact: str | None
    issue_date: Any
    due_date: Any
    currency: str
    subtotal: Any
    tax: Any
    total: Any
    source_status: str | None
    source_updated_at: datetime | None
    fiscal_status: str
    received_at: datetime
    updated_at: datetime
    fiscal: dict[str, Any] | None  # its latest sale record
    outcome: str | None = None  # created, updated or unchanged, when just accepted
    refund: dict[str, Any] | None = None  # the refund of that sale, when refunded
    items: str | None = None  # as stored: JSON text, the ingest API's own shape
    buyer_tax_id: str | None = None
    payments: str | None = None
    # what the V-SDC made of its sale (and of that sale's refund, as "refund"); None with the
    # local register, or when the SDC has nothing of it
    sdc: dict[str, Any] | None = None
    credits: str | None = None  # a credit note's: the external id of the invoice it credits

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "external_id": self.external_id,
            "number": self.number,
            "kind": self.kind,
            "contact": self.contact,
            "issue_date": self.issue_date.isoformat() if self.issue_date else None,
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "currency": self.currency,
            "subtotal": None if self.subtotal is None else str(self.subtotal),
            "tax": None if self.tax is None else str(self.tax),
            "total": str(self.total),
            "status": self.source_status,
            "updated_at": self.source_updated_at.isoformat() if self.source_updated_at else None,
            "fiscal_status": self.fiscal_status,
            "received_at": self.received_at.isoformat(),
            "fiscal_record": self.fiscal,
            "refund_record": self.refund,
            "items": json.loads(self.items) if self.items else [],
            "buyer_tax_id": self.buyer_tax_id,
            "payments": json.loads(self.payments) if self.payments else [],
            "sdc": self.sdc,
            "credits": self.credits,
        }
        if self.outcome is not None:
            body = {"outcome": self.outcome, **body}
        return body


def read_stored(
    conn: Any, integration_id: int, external_ids: list[str], *, vsdc: bool
) -> dict[str, StoredInvoice]:
    """The invoices of ``external_ids`` as stored, each with its latest sale record and that
    sale's refund, and (``vsdc``: the V-SDC being the register) what the SDC made of them: two
    statements, whatever the register."""
    wanted = sorted(set(external_ids))
    if len(wanted) == 1:  # a single push: no list to expand into the statement
        rows = conn.execute(_STORED_ONE, {"b_integration": integration_id, "b_id": wanted[0]}).all()
    else:
        rows = conn.execute(_STORED, {"b_integration": integration_id, "b_ids": wanted}).all()
    records = _records(conn, [r.id for r in rows], vsdc=vsdc)
    found: dict[str, StoredInvoice] = {}
    for r in rows:
        sale, refund, sdc = records.get(r.id, (None, None, None))
        found[r.external_id] = StoredInvoice(
            r.external_id, r.number, r.kind, r.contact, r.issue_date, r.due_date,
            r.currency, r.subtotal, r.tax, r.total, r.source_status, r.source_updated_at,
            r.fiscal_status, r.received_at, r.updated_at, sale, refund=refund,
            items=r.items, buyer_tax_id=r.buyer_tax_id, payments=r.payments, sdc=sdc,
            credits=r.credits,
        )  # fmt: skip
    return found


def _records(conn: Any, invoice_ids: list[int], *, vsdc: bool) -> dict[int, tuple[Any, Any, Any]]:
    """Each invoice's latest sale record, the refund of that sale if it has one, and (``vsdc``)
    what the SDC made of them: ``{status, sdc_invoice_number, ..., refund}`` of the sale's
    outbox row (its refund's row, without ``refund``, under ``refund``), or None when the sale
    has no row (recorded while the register was the local one alone)."""
    if not invoice_ids:
        return {}
    sales: dict[int, dict[str, Any]] = {}
    refunds: dict[int, dict[str, Any]] = {}  # by the sale they refund
    sdc: dict[int, dict[str, Any]] = {}  # by the record's seq
    if vsdc:
        rows = conn.execute(_RECORDS_WITH_SDC, {"b_ids": invoice_ids})
    elif len(invoice_ids) == 1:  # a single push's
        rows = conn.execute(_RECORDS_OF_ONE, {"b_id": invoice_ids[0]})
    else:
        rows = conn.execute(_RECORDS_OF, {"b_ids": invoice_ids})
    for r in rows:
        if vsdc and r.sdc_row is not None:
            sdc[r.seq] = {name: getattr(r, f"sdc_{name}") for name in SDC_COLUMNS}
        record = {
            "seq": r.seq,
            "kind": r.kind,
            "refers_to": r.refers_to,
            "recorded_at": r.recorded_at.isoformat(),
            "invoice_digest": r.invoice_digest,
            "prev_hash": r.prev_hash,
            "hash": r.hash,
        }
        if r.kind == RecordKind.REFUND.value:
            refunds[r.refers_to] = record
        else:
            sales[r.invoice_id] = record
    found: dict[int, tuple[Any, Any, Any]] = {}
    for i, sale in sales.items():
        refund = refunds.get(sale["seq"])
        signed = sdc.get(sale["seq"])
        if signed is not None:
            signed = {**signed, "refund": sdc.get(refund["seq"]) if refund else None}
        found[i] = (sale, refund, signed)
    return found


def with_outcome(invoice: StoredInvoice, outcome: str | None) -> StoredInvoice:
    return replace(invoice, outcome=outcome or "unchanged")
