"""What people are shown of fiscalization: one invoice in full (its fields, items, payments,
its local records and what the SDC signed of it), the way an operator names an invoice, and the
dashboard's fiscal warnings (the taxpayer's certificate, the SDC unreachable).

Read-only: the outbox and the records are written by the register and the sender alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select
from sqlmodel import Session

from intdash.core.errors import ConflictError, NotFoundError
from intdash.core.fiscal_models import FiscalOutbox, OutboxStatus
from intdash.core.invoices import LineItem, Payment, items_from_json, payments_from_json
from intdash.core.models import FiscalRecord, Integration, Invoice

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

OUTBOX = FiscalOutbox.__table__  # type: ignore[attr-defined]
RECORDS = FiscalRecord.__table__  # type: ignore[attr-defined]
INVOICES = Invoice.__table__  # type: ignore[attr-defined]
INTEGRATIONS = Integration.__table__  # type: ignore[attr-defined]

# what the history says of an outbox row not signed yet
STATE_WORDS = {
    OutboxStatus.PENDING.value: "pending",
    OutboxStatus.SENT.value: "sending",
    OutboxStatus.FAILED.value: "failed",
    OutboxStatus.WITHDRAWN.value: "withdrawn",  # refused, then refunded before it was signed
}


def vsdc(ws: Workspace) -> bool:
    """Whether the register is TaxCore's V-SDC (INTDASH_FISCAL__REGISTER=vsdc)."""
    return ws.settings.fiscal.register == "vsdc"


def delay_days(signed_at: datetime | None, issue_date: date | None) -> int | None:
    """Whole days from the invoice's issue date to the SDC's signature, on the local calendar.
    The issue date, not the time intdash received it: the rule is to fiscalize before issue, and
    the platforms give the issue as a date, without a time."""
    if signed_at is None or issue_date is None:
        return None
    return (signed_at.astimezone().date() - issue_date).days


def delay_text(days: int | None) -> str:
    return "—" if days is None else f"{days}d"


@dataclass(frozen=True)
class LocalRecord:
    """A record of the local hash chain (the register's journal)."""

    seq: int
    kind: str
    recorded_at: datetime
    refers_to: int | None
    hash: str
    prev_hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "recorded_at": self.recorded_at.isoformat(),
            "refers_to": self.refers_to,
            "hash": self.hash,
            "prev_hash": self.prev_hash,
        }


@dataclass(frozen=True)
class Signed:
    """One sale or refund of the outbox: where it stands, and what the SDC answered."""

    id: int
    record_seq: int
    kind: str
    status: str
    attempts: int
    error: str | None
    created_at: datetime
    signed_at: datetime | None
    sdc_invoice_number: str | None
    sdc_time: str | None
    invoice_counter: str | None
    total_counter: int | None
    verification_url: str | None
    journal: str | None
    signature: str | None
    response: Mapping[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        """signed, or the history's word: pending, sending, failed."""
        return STATE_WORDS.get(self.status, self.status)

    def to_json(self) -> dict[str, Any]:
        answered = self.response
        return {
            "record_seq": self.record_seq,
            "kind": self.kind,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
            "queued_at": self.created_at.isoformat(),
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
            "sdc_invoice_number": self.sdc_invoice_number,
            "sdc_time": self.sdc_time,
            "invoice_counter": self.invoice_counter,
            "invoice_counter_extension": answered.get("invoiceCounterExtension"),
            "total_counter": self.total_counter,
            "transaction_type_counter": answered.get("transactionTypeCounter"),
            "requested_by": answered.get("requestedBy"),
            "signed_by": answered.get("signedBy"),
            "total_amount": answered.get("totalAmount"),
            "tax_items": answered.get("taxItems"),
            "verification_url": self.verification_url,
            "journal": self.journal,
            "signature": self.signature,
            "messages": answered.get("messages"),
        }


@dataclass(frozen=True)
class InvoiceDetails:
    """One invoice in full, as the details screen and ``intdash invoices show`` give it."""

    id: int
    integration_uid: str
    integration_name: str
    external_id: str
    number: str | None
    kind: str
    contact: str | None
    issue_date: date | None
    due_date: date | None
    currency: str
    subtotal: Decimal | None
    tax: Decimal | None
    total: Decimal
    source_status: str | None
    fiscal_status: str
    received_at: datetime
    updated_at: datetime
    buyer_tax_id: str | None
    items: tuple[LineItem, ...]
    payments: tuple[Payment, ...]
    records: tuple[LocalRecord, ...]
    signed: tuple[Signed, ...]  # the outbox's rows, oldest first (none with the local register)
    items_error: str | None = None  # items or payments stored but unreadable
    credits: str | None = None  # a credit note's: the external id of the invoice it credits

    @property
    def sale(self) -> Signed | None:
        """Its latest sale at the SDC (a credit note's: its credit, signed as a refund)."""
        sales = [s for s in self.signed if s.kind in _STANDING]
        return sales[-1] if sales else None

    @property
    def latest(self) -> Signed | None:
        return self.signed[-1] if self.signed else None

    @property
    def delay_days(self) -> int | None:
        sale = self.sale
        return delay_days(sale.signed_at if sale else None, self.issue_date)

    def to_json(self) -> dict[str, Any]:
        def amount(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        sale = self.sale
        return {
            "integration": self.integration_uid,
            "external_id": self.external_id,
            "number": self.number,
            "type": self.kind,
            "contact": self.contact,
            "date": self.issue_date.isoformat() if self.issue_date else None,
            "due": self.due_date.isoformat() if self.due_date else None,
            "currency": self.currency,
            "subtotal": amount(self.subtotal),
            "tax": amount(self.tax),
            "total": str(self.total),
            "status": self.source_status,
            "fiscal_status": self.fiscal_status,
            "received": self.received_at.isoformat(),
            "updated": self.updated_at.isoformat(),
            "buyer_tax_id": self.buyer_tax_id,
            "items": [
                {
                    "name": i.name,
                    "quantity": str(i.quantity),
                    "unit_price": str(i.unit_price),
                    "discount": str(i.discount),
                    "tax_code": i.tax_code,
                    "tax_rate": amount(i.tax_rate),
                    "tax_amount": amount(i.tax_amount),
                    "label": self.label_of(i),
                    "total": str(i.total),
                    "item_code": i.item_code,
                    "tax_inclusive": i.tax_inclusive,
                }
                for i in self.items
            ],
            "payments": [{"amount": str(p.amount), "method": p.method} for p in self.payments],
            "records": [r.to_json() for r in self.records],
            "sdc": [s.to_json() for s in self.signed],
            "sdc_invoice_number": sale.sdc_invoice_number if sale else None,
            "verification_url": sale.verification_url if sale else None,
            "fiscalized_days_after_issue": self.delay_days,
            **({"credits": self.credits} if self.kind == "credit note" else {}),
        }

    def label_of(self, item: LineItem) -> str | None:
        """The TaxCore label the SDC was sent for this line (by its place in the request)."""
        sale = self.sale
        if sale is None or not self.items:
            return None
        index = self.items.index(item)
        return self.labels.get(index)

    labels: Mapping[int, str] = field(default_factory=dict)  # by item, as sent to the SDC


_STANDING = ("sale", "credit")  # what an invoice's (a credit note's) SDC signature is


def find(ws: Workspace, ref: str, uid: str | None = None) -> int:
    """The id of the invoice an operator names: with ``uid``, its integration's invoice of that
    external id (or number); without, the invoice of that number (as the history shows it) or
    SDC invoice number. NotFoundError or ConflictError (two of that number) in words."""
    ref = ref.strip()
    if not ref:
        raise NotFoundError("name an invoice: its number, or its external id with --integration")
    with ws.db.read() as session:
        conn = session.connection()
        if uid is not None:
            integration = ws.integrations.find(session, uid)
            for column in (INVOICES.c.external_id, INVOICES.c.number):
                found = (
                    conn.execute(
                        select(INVOICES.c.id)
                        .where(INVOICES.c.integration_id == integration.id)
                        .where(column == ref)
                        .order_by(INVOICES.c.id.desc())
                    )
                    .scalars()
                    .all()
                )
                if found:
                    return int(found[0])
            raise NotFoundError(f"{uid} has no invoice with external id or number {ref!r}")
        hits = conn.execute(
            select(INVOICES.c.id, INTEGRATIONS.c.uid)
            .join(INTEGRATIONS, INTEGRATIONS.c.id == INVOICES.c.integration_id)
            .where(
                or_(
                    INVOICES.c.number == ref,
                    INVOICES.c.id.in_(
                        select(OUTBOX.c.invoice_id).where(OUTBOX.c.sdc_invoice_number == ref)
                    ),
                )
            )
            .order_by(INVOICES.c.id)
        ).all()
        if not hits:
            raise NotFoundError(
                f"no invoice numbered {ref!r} (an external id needs --integration UID)"
            )
        if len(hits) > 1:
            where = ", ".join(sorted({h.uid for h in hits}))
            raise ConflictError(
                f"{len(hits)} invoices are numbered {ref!r} (of {where}): add --integration UID"
            )
        return int(hits[0].id)


def details(ws: Workspace, invoice_id: int) -> InvoiceDetails:
    """One invoice in full (NotFoundError if there is none of that id)."""
    with ws.db.read() as session:
        return _details(session, invoice_id)


def _details(session: Session, invoice_id: int) -> InvoiceDetails:
    conn = session.connection()
    row = conn.execute(
        select(INVOICES, INTEGRATIONS.c.uid.label("uid"), INTEGRATIONS.c.name.label("iname"))
        .join(INTEGRATIONS, INTEGRATIONS.c.id == INVOICES.c.integration_id)
        .where(INVOICES.c.id == invoice_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no invoice {invoice_id}")
    problem = None
    try:
        items = items_from_json(row.items)
        payments = payments_from_json(row.payments)
    except ValueError as exc:
        items, payments, problem = (), (), str(exc)
    records = tuple(
        LocalRecord(r.seq, r.kind, r.recorded_at, r.refers_to, r.hash, r.prev_hash)
        for r in conn.execute(
            select(RECORDS).where(RECORDS.c.invoice_id == invoice_id).order_by(RECORDS.c.seq)
        )
    )
    signed: list[Signed] = []
    labels: dict[int, str] = {}
    for r in conn.execute(
        select(OUTBOX).where(OUTBOX.c.invoice_id == invoice_id).order_by(OUTBOX.c.id)
    ):
        response = _object(r.response)
        entry = Signed(
            r.id, r.record_seq, r.kind, r.status, r.attempts, r.error, r.created_at,
            r.signed_at, r.sdc_invoice_number, r.sdc_time, r.invoice_counter,
            r.total_counter, r.verification_url, r.journal, r.signature, response,
        )  # fmt: skip
        signed.append(entry)
        if r.kind in _STANDING and r.request:
            sent = _object(r.request).get("Items") or []
            if len(sent) == len(items):
                labels = {
                    n: ",".join(str(x) for x in (item.get("Labels") or []))
                    for n, item in enumerate(sent)
                    if isinstance(item, dict)
                }
    return InvoiceDetails(
        id=row.id,
        integration_uid=row.uid,
        integration_name=row.iname,
        external_id=row.external_id,
        number=row.number,
        kind=row.kind,
        credits=row.credits,
        contact=row.contact,
        issue_date=row.issue_date,
        due_date=row.due_date,
        currency=row.currency,
        subtotal=row.subtotal,
        tax=row.tax,
        total=row.total,
        source_status=row.source_status,
        fiscal_status=row.fiscal_status,
        received_at=row.received_at,
        updated_at=row.updated_at,
        buyer_tax_id=row.buyer_tax_id,
        items=items,
        payments=payments,
        records=records,
        signed=tuple(signed),
        items_error=problem,
        labels=labels,
    )


def _object(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


# -- the dashboard's status ----------------------------------------------------------------------


def reasons(ws: Workspace, session: Session) -> dict[int, tuple[str | None, str | None]]:
    """Each integration's fiscal reasons (refused by the SDC, waiting for it) with the V-SDC as
    the register; none with the local one."""
    return ws.fiscal.reasons(session) if vsdc(ws) else {}


def warnings(ws: Workspace, now: datetime) -> list[str]:
    """What the dashboard's status line warns of with the V-SDC as the register, short: the
    taxpayer's certificate expired or expiring within 30 days (``intdash fiscal status`` says
    what to do), and the SDC unreachable, since when."""
    if not vsdc(ws):
        return []
    found = []
    setup = ws.fiscal.setup
    certificate = setup.certificate()
    if certificate is not None and certificate.warning(now) is not None:
        ends = f"{certificate.not_after:%Y-%m-%d}"
        if certificate.not_after <= now:
            found.append(f"certificate expired {ends}")
        else:
            days = max(certificate.days_left(now), 0)
            found.append(f"certificate expires {ends} (in {days} day{'' if days == 1 else 's'})")
    down = setup.unavailable()
    if down is not None:
        found.append(f"SDC unreachable since {down[0].astimezone():%H:%M}")
    return found


def fingerprint(ws: Workspace) -> tuple[Any, ...]:
    """What changes when an integration's fiscal reasons or the warnings do: the outbox's
    counts by status, and the SDC's state (reachable, the certificate)."""
    if not vsdc(ws):
        return ()
    from intdash.core.fiscal_models import FiscalState

    state = FiscalState.__table__  # type: ignore[attr-defined]
    with ws.db.read() as session:
        conn = session.connection()
        counts = tuple(
            conn.execute(
                select(OUTBOX.c.status, func.count(), func.max(OUTBOX.c.id))
                .group_by(OUTBOX.c.status)
                .order_by(OUTBOX.c.status)
            ).all()
        )
        states = tuple(
            conn.execute(select(state.c.name, state.c.updated_at).order_by(state.c.name)).all()
        )
    return (counts, states)
