"""Invoices as intdash knows them, whatever platform they came from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum


class InvoiceKind(StrEnum):
    SALES = "sales"
    PURCHASE = "purchase"


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
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    source_status: str | None
    source_updated_at: datetime | None
