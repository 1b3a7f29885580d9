"""The invoice history: invoices newest first, a page at a time, each with the numbers of its
latest sale and refund records; how many there are; and the filter both go by."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlmodel import Session, col

from intdash.core.catalog import TYPES
from intdash.core.fiscal_models import FiscalOutbox
from intdash.core.invoices import InvoiceKind
from intdash.core.models import FiscalRecord, FiscalStatus, Integration, Invoice, RecordKind

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

INVOICES = Invoice.__table__  # type: ignore[attr-defined]
RECORDS = FiscalRecord.__table__  # type: ignore[attr-defined]
OUTBOX = FiscalOutbox.__table__  # type: ignore[attr-defined]
_FISCALIZED = FiscalStatus.FISCALIZED.value


# what stands for an invoice: its sale; for a credit note, its credit (it has no other kind)
_STANDING = (RecordKind.SALE.value, RecordKind.CREDIT.value)


def _latest_record(*kinds: str) -> Any:
    """The number of a listed invoice's latest record of these kinds (an index look-up)."""
    return (
        select(func.max(RECORDS.c.seq))
        .where(RECORDS.c.invoice_id == INVOICES.c.id)
        .where(RECORDS.c.kind.in_(kinds))
        .scalar_subquery()
    )


def _latest_outbox(*columns: Any, kinds: tuple[str, ...] = ()) -> list[Any]:
    """Columns of a listed invoice's latest outbox row (of ``kinds``, if given): index
    look-ups by (invoice_id, id)."""
    found = []
    for column in columns:
        query = select(column).where(OUTBOX.c.invoice_id == INVOICES.c.id)
        if kinds:
            query = query.where(OUTBOX.c.kind.in_(kinds))
        found.append(query.order_by(OUTBOX.c.id.desc()).limit(1).scalar_subquery())
    return found


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
    fiscal_seq: int | None  # its latest sale record (a credit note's: its credit)
    refund_seq: int | None = None  # its latest refund record
    subtotal: Any = None  # None: not known yet (never a made-up 0)
    tax: Any = None
    credits: str | None = None  # a credit note's: the external id of the invoice it credits
    # with the V-SDC as the register: its latest outbox row's status, SDC invoice number and
    # error (None: it has none), and when the SDC signed its latest sale
    sdc_status: str | None = None
    sdc_number: str | None = None
    sdc_error: str | None = None
    signed_at: datetime | None = None

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
            **({"credits": self.credits} if self.kind == InvoiceKind.CREDIT_NOTE.value else {}),
            **(
                {}
                if self.sdc_status is None
                else {
                    "sdc_status": self.sdc_status,
                    "sdc_invoice_number": self.sdc_number,
                    "sdc_error": self.sdc_error,
                    "signed_at": self.signed_at.isoformat() if self.signed_at else None,
                }
            ),
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
    integrations stay listed. ``search``: see :func:`matching`."""
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
            _latest_record(*_STANDING),
            _latest_record(RecordKind.REFUND.value),
            INVOICES.c.subtotal,
            INVOICES.c.tax,
            INVOICES.c.credits,
            *(
                [
                    *_latest_outbox(OUTBOX.c.status, OUTBOX.c.sdc_invoice_number, OUTBOX.c.error),
                    *_latest_outbox(OUTBOX.c.signed_at, kinds=_STANDING),
                ]
                if ws.settings.fiscal.register == "vsdc"
                else []
            ),
        )
        .join(Integration, col(Integration.id) == INVOICES.c.integration_id)
        .order_by(INVOICES.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(INVOICES.c.id < before_id)
    with ws.db.read() as session:
        for condition in _conditions(ws, session, integration_uid, search):
            query = query.where(condition)
        return [InvoiceRow(*row) for row in session.connection().execute(query)]


def count(
    ws: Workspace,
    *,
    integration_uid: str | None = None,
    search: str | None = None,
    through_id: int | None = None,
) -> int:
    """How many invoices :func:`page` lists, page after page, for the same arguments: those up
    to ``through_id`` (the first page's first), when given, so that invoices that came later
    are not counted among those the pages will reach."""
    query = select(func.count()).select_from(INVOICES)
    if through_id is not None:
        query = query.where(INVOICES.c.id <= through_id)
    with ws.db.read() as session:
        for condition in _conditions(ws, session, integration_uid, search):
            query = query.where(condition)
        return int(session.connection().execute(query).scalar_one())


def _conditions(
    ws: Workspace, session: Session, integration_uid: str | None, search: str | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if integration_uid is not None:
        found = ws.integrations.find(session, integration_uid)
        conditions.append(INVOICES.c.integration_id == found.id)
    words = (search or "").split()
    if words:
        conditions.append(matching(words))
    return conditions


def like(word: str) -> str:
    """A LIKE pattern that finds ``word`` anywhere, its own % and _ taken literally."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def matching(words: list[str]) -> ColumnElement[bool]:
    """Invoices that have every one of ``words`` (any case) in their number, contact or
    external id, or in their integration's UID, name or type (its value or its label: "zoho",
    "Zoho Books")."""
    per_word = []
    for word in words:
        pattern = like(word)
        per_word.append(
            INVOICES.c.number.ilike(pattern, escape="\\")
            | INVOICES.c.contact.ilike(pattern, escape="\\")
            | INVOICES.c.external_id.ilike(pattern, escape="\\")
            | INVOICES.c.integration_id.in_(_integrations_matching(word))
        )
    return and_(*per_word)


def _integrations_matching(word: str) -> Any:
    """The ids of the integrations whose UID, name or type has ``word`` (any case): a
    subquery over the few integrations, evaluated once rather than joined to every invoice."""
    return select(col(Integration.id)).where(integration_has(word))


def integration_has(word: str) -> ColumnElement[bool]:
    """Integrations whose UID, name or type (its value or its label) has ``word``, any case."""
    lowered = word.lower()
    types = [kind.value for kind, spec in TYPES.items()
             if lowered in kind.value or lowered in spec.label.lower()
             or lowered in spec.short.lower()]  # fmt: skip
    pattern = like(word)
    return (
        col(Integration.uid).ilike(pattern, escape="\\")
        | col(Integration.name).ilike(pattern, escape="\\")
        | col(Integration.type).in_(types)
    )
