"""What the benchmarks share."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from intdash.core.invoices import InvoiceData, InvoiceKind


def sample_invoice(n: int) -> InvoiceData:
    """The ``n``th of a run of ordinary sales invoices."""
    return InvoiceData(
        f"ext-{n}",
        f"INV-{n:07d}",
        InvoiceKind.SALES,
        "Kowhai Cafe",
        date(2026, 1, 5),
        date(2026, 2, 5),
        "NZD",
        Decimal("100.00"),
        Decimal("15.00"),
        Decimal("115.00"),
        "AUTHORISED",
        datetime(2026, 1, 5, tzinfo=UTC),
    )
