"""The invoice history: invoices newest first, a page at a time, each with the numbers of its
latest sale and refund records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlmodel import col

from intdash.core.models import FiscalRecord, FiscalStatus, Integration, Invoice, RecordKind

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

INVOICES = Invoice.__table__  # type: ignore[attr-defined]
RECORDS = FiscalRecord.__table__  # type: ignore[attr-defined]
_FISCALIZED = FiscalStatus.FISCALIZED.value


def _latest_record(kind: RecordKind) -> Any:
    """The number of a listed invoice's latest record of this kind (an index look-up)."""
    return (
        select(func.max(RECORDS.c.seq))
        .where(RECORDS.c.invoice_id == INVOICES.c.id)
        .where(RECORDS.c.kind == kind.value)
        .scalar_subquery()
    )


@dataclass(frozen=True)
class InvoiceRow:
    """An invoice as the history lists it."""

    id: int
    integration_uid: str
    external_id: str
    number: str | None
    kind: str
    contact: str | None
    issue_date: Any
    currency: str
    total: Any
    source_status: str | None
    fiscal_status: str
    received_at: datetime
    fiscal_seq: int | None  # its latest sale record
    refund_seq: int | None = None  # its latest refund record
    subtotal: Any = None  # None: not known yet (never a made-up 0)
    tax: Any = None

    @property
    def record_seq(self) -> int | None:
        """The record that says where it stands: its refund when refunded, its sale when
        fiscalized, else none."""
        if self.fiscal_status == FiscalStatus.REFUNDED.value:
            return self.refund_seq
        return self.fiscal_seq if self.fiscal_status == _FISCALIZED else None

    def to_json(self) -> dict[str, Any]:
        return {
            "integration": self.integration_uid,
            "external_id": self.external_id,
            "number": self.number,
            "type": self.kind,
            "contact": self.contact,
            "date": self.issue_date.isoformat() if self.issue_date else None,
            "currency": self.currency,
            "subtotal": None if self.subtotal is None else str(self.subtotal),
            "tax": None if self.tax is None else str(self.tax),
            "total": str(self.total),
            "status": self.source_status,
            "fiscal_status": self.fiscal_status,
            "fiscal_seq": self.fiscal_seq,
            "refund_seq": self.refund_seq,
            "received": self.received_at.isoformat(),
        }


def page(
    ws: Workspace,
    *,
    integration_uid: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
    search: str | None = None,
) -> list[InvoiceRow]:
    """Invoices newest first, a page at a time (keyset: pass the last id as ``before_id``),
    each once, with its latest sale and refund records' numbers. Invoices of removed
    integrations stay listed."""
    query = (
        select(
            INVOICES.c.id,
            col(Integration.uid),
            INVOICES.c.external_id,
            INVOICES.c.number,
            INVOICES.c.kind,
            INVOICES.c.contact,
            INVOICES.c.issue_date,
            INVOICES.c.currency,
            INVOICES.c.total,
            INVOICES.c.source_status,
            INVOICES.c.fiscal_status,
            INVOICES.c.received_at,
            _latest_record(RecordKind.SALE),
            _latest_record(RecordKind.REFUND),
            INVOICES.c.subtotal,
            INVOICES.c.tax,
        )
        .join(Integration, col(Integration.id) == INVOICES.c.integration_id)
        .order_by(INVOICES.c.id.desc())
        .limit(limit)
    )
    if integration_uid is not None:
        with ws.db.read() as session:
            found = ws.integrations.find(session, integration_uid)
        query = query.where(INVOICES.c.integration_id == found.id)
    if before_id is not None:
        query = query.where(INVOICES.c.id < before_id)
    if search:
        like = f"%{search}%"
        query = query.where(
            INVOICES.c.number.ilike(like)
            | INVOICES.c.contact.ilike(like)
            | INVOICES.c.external_id.ilike(like)
        )
    with ws.db.read() as session:
        return [InvoiceRow(*row) for row in session.connection().execute(query)]
