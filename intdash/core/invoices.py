"""Invoices as intdash knows them, whatever platform they came from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum


class InvoiceKind(StrEnum):
    SALES = "sales"
    PURCHASE = "purchase"


class SourceState(StrEnum):
    """Where an invoice stands at its source, as far as fiscalization cares.

    Only an issued (approved) sales invoice is fiscalized; a draft or one awaiting approval waits
    until an edit approves it; a voided or deleted one that was fiscalized is refunded. Each
    connector maps its platform's statuses to these.
    """

    APPROVED = "approved"  # issued: fiscalize it
    PENDING = "pending"  # a draft, or submitted for approval: not yet
    VOID = "void"  # voided or deleted at the source


@dataclass(frozen=True)
class InvoiceData:
    """One invoice normalised from a platform's own shape; what the sync engine upserts."""

    external_id: str
    number: str | None
    kind: InvoiceKind
    contact: str | None
    issue_date: date | None
    due_date: date | None
    currency: str
    # None: not known (Zoho's invoice list has no tax; the invoice itself has), never a made-up 0
    subtotal: Decimal | None
    tax: Decimal | None
    total: Decimal
    source_status: str | None
    source_updated_at: datetime | None
    state: SourceState = SourceState.APPROVED
