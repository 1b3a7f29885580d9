"""Xero's credit notes: how the emulator renders them, and which a ``GET /CreditNotes`` selects
(an organisation's book of them, and the changes made to it, are
:mod:`intdash.sandbox.xero_credit_book`'s).

A credit note is a sales one (``ACCRECCREDIT``, to a customer) or a purchase one
(``ACCPAYCREDIT``, from a supplier); its amounts are positive, its ``Allocations`` name the
invoices it was allocated to (``Invoice.InvoiceID``), each with an amount and a date, and its
``RemainingCredit`` is what is not allocated yet.

A listing honours ``If-Modified-Since``, ``page`` and ``pageSize`` (up to 1,000, as
``/Invoices``), ``order`` and ``where`` over a credit note's fields
(:data:`~intdash.sandbox.xero_query.CREDIT_NOTE`). Without ``order`` notes come in the order
they were raised, not by modification time. Ties in any order fall back to modification order.
Paged answers carry line items.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from intdash.sandbox.dataset import SourceLine
from intdash.sandbox.xero_invoices import ms_date, page_of, render_lines, sort_rows
from intdash.sandbox.xero_query import CREDIT_NOTE, Value, compile_order, compile_where
from intdash.sandbox.xero_webhooks import event_date

OPEN = "AUTHORISED"
GONE = frozenset({"VOIDED", "DELETED"})
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Allocation:
    id: str
    invoice_id: str
    invoice_number: str
    amount: Decimal
    date: date


@dataclass(frozen=True)
class CreditNote:
    """One credit note as it is now (a change makes a new one in its place)."""

    index: int  # the order it was raised in
    id: str
    number: str
    sales: bool
    contact: str
    contact_id: str
    contact_tax_id: str | None
    issue_date: date
    currency: str
    status: str
    inclusive: bool
    lines: tuple[SourceLine, ...]
    reference: str
    created: datetime
    updated: datetime
    change: int  # the change that stamped it: modification order among equal times
    revision: int = 0
    allocations: tuple[Allocation, ...] = ()

    @property
    def type(self) -> str:
        return "ACCRECCREDIT" if self.sales else "ACCPAYCREDIT"

    @property
    def subtotal(self) -> Decimal:
        return sum((line.net for line in self.lines), Decimal("0.00"))

    @property
    def tax(self) -> Decimal:
        return sum((line.tax for line in self.lines), Decimal("0.00"))

    @property
    def total(self) -> Decimal:
        return self.subtotal + self.tax

    @property
    def remaining(self) -> Decimal:
        """``RemainingCredit``: what is not allocated yet (nothing, once voided or deleted)."""
        if self.status in GONE:
            return Decimal("0.00")
        return self.total - sum((a.amount for a in self.allocations), Decimal("0.00"))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def credit_note_values(note: CreditNote) -> dict[str, Value]:
    """A credit note's fields as ``where`` and ``order`` see them."""
    return {
        "Type": note.type,
        "Status": note.status,
        "CreditNoteNumber": note.number,
        "Reference": note.reference,
        "CurrencyCode": note.currency,
        "Contact.Name": note.contact,
        "CreditNoteID": note.id,
        "Contact.ContactID": note.contact_id,
        "Date": _midnight(note.issue_date),
        "UpdatedDateUTC": note.updated,
        "SubTotal": note.subtotal,
        "TotalTax": note.tax,
        "Total": note.total,
        "RemainingCredit": note.remaining,
        "HasAttachments": False,
    }


def render_credit_note(note: CreditNote, *, lines: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Type": note.type,
        "CreditNoteID": note.id,
        "CreditNoteNumber": note.number,
        "Reference": note.reference,
        "Contact": {"ContactID": note.contact_id, "Name": note.contact},
        "Date": ms_date(_midnight(note.issue_date)),
        "Status": note.status,
        "LineAmountTypes": "Inclusive" if note.inclusive else "Exclusive",
        "SubTotal": float(note.subtotal),
        "TotalTax": float(note.tax),
        "Total": float(note.total),
        "UpdatedDateUTC": ms_date(note.updated),
        "CurrencyCode": note.currency,
        "CurrencyRate": 1.0,
        "RemainingCredit": float(note.remaining),
        "Allocations": [
            {
                "AllocationID": a.id,
                "Amount": float(a.amount),
                "Date": ms_date(_midnight(a.date)),
                "Invoice": {"InvoiceID": a.invoice_id, "InvoiceNumber": a.invoice_number},
            }
            for a in note.allocations
        ],
        "HasAttachments": False,
        "HasErrors": False,
    }
    if note.contact_tax_id:
        body["Contact"]["TaxNumber"] = note.contact_tax_id
    if note.status == "PAID" and note.allocations:
        body["FullyPaidOnDate"] = ms_date(_midnight(max(a.date for a in note.allocations)))
    if lines:
        body["LineItems"] = render_lines(note.id, note.lines, note.sales, note.inclusive)
        body["Payments"] = []
    return body


def credit_note_events(
    tenant_id: str, api_base: str, kind: str, notes: list[CreditNote]
) -> list[dict[str, Any]]:
    """The webhook events of a change to credit notes, as Xero words them (CREDITNOTE)."""
    return [
        {
            "resourceUrl": f"{api_base}/api.xro/2.0/CreditNotes/{note.id}",
            "resourceId": note.id,
            "eventDateUtc": event_date(note.updated),
            "eventType": "CREATE" if kind == "create" else "UPDATE",
            "eventCategory": "CREDITNOTE",
            "tenantId": tenant_id,
            "tenantType": "ORGANISATION",
        }
        for note in notes
    ]


def select(
    notes: list[CreditNote], since: datetime | None, query: Mapping[str, str]
) -> tuple[int, int, int, list[CreditNote]]:
    """``(page, page size, how many match, the notes of that page)`` of ``notes`` for a ``GET
    /CreditNotes`` with these parameters (an :class:`~intdash.sandbox.xero_invoices.Invalid`
    or a :class:`~intdash.sandbox.xero_query.QueryError` for what Xero refuses)."""
    page, size = page_of(query)
    order = compile_order(query["order"], CREDIT_NOTE) if query.get("order", "").strip() else None
    keep = compile_where(query["where"], CREDIT_NOTE) if query.get("where", "").strip() else None
    by_time = sorted(
        (n for n in notes if since is None or n.updated > since),
        key=lambda n: (n.updated, n.change),
    )
    rows = [(place, n, credit_note_values(n)) for place, n in enumerate(by_time)]
    if keep is not None:
        rows = [row for row in rows if keep(row[2])]
    if order is None:
        rows.sort(key=lambda row: row[1].index)
    else:
        sort_rows(rows, order)
    offset = (page - 1) * size
    return page, size, len(rows), [n for _, n, _ in rows[offset : offset + size]]
