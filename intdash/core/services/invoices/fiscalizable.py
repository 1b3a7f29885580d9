"""What the register is told of an invoice or a credit note, from new ones (InvoiceData) and
stored rows alike."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Protocol

from intdash.core.dbtypes import canonical_text
from intdash.core.fiscal import ToFiscalize
from intdash.core.models import Invoice, RecordKind

_INVOICES = Invoice.__table__  # type: ignore[attr-defined]
# what :func:`to_fiscalize` reads of a stored row (a held invoice released, a waiting credit note)
STORED_COLUMNS = tuple(
    _INVOICES.c[name]
    for name in ("id", "external_id", "number", "issue_date", "currency", "total", "tax")
)


class Fiscalizable(Protocol):
    """What the register needs of an invoice: new ones (InvoiceData) and stored rows alike."""

    @property
    def external_id(self) -> str: ...
    @property
    def number(self) -> str | None: ...
    @property
    def issue_date(self) -> date | None: ...
    @property
    def currency(self) -> str: ...
    @property
    def total(self) -> Decimal: ...
    @property
    def tax(self) -> Decimal | None: ...


def to_fiscalize(
    invoice_id: int,
    integration_id: int,
    data: Fiscalizable,
    kind: RecordKind = RecordKind.SALE,
    credits: int | None = None,
) -> ToFiscalize:
    """What the register is told of an invoice (a credit note's credit: ``credits``, the
    invoice whose standing sale it names)."""
    if data.tax is None:  # the rules never get here: a record states the tax its source told
        what = "credit note" if kind == RecordKind.CREDIT else "invoice"
        raise ValueError(f"{what} {data.external_id} cannot be fiscalized: its tax is not known")
    return ToFiscalize(  # by position: a third of the cost of naming each field
        invoice_id,
        integration_id,
        data.external_id,
        data.number,
        data.issue_date.isoformat() if data.issue_date else None,
        data.currency,
        canonical_text(data.total),
        canonical_text(data.tax),
        kind,
        credits,
    )
