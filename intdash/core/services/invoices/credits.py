"""Credit notes and the invoices they credit: a credit note approved at its source is credited
against the standing sale of the invoice it names (a record of its own amounts, naming that
sale); while that invoice has no standing sale (it names none yet, the invoice is not stored
yet, or it is held, awaiting approval or refunded) the credit note waits, *awaiting invoice*,
and is credited as soon as its invoice is fiscalized (by a sync, a push, or a release of held
invoices), in the same transaction."""

from __future__ import annotations

from collections.abc import Collection, Container
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, text, update

from intdash.core.fiscal import FiscalRegister, ToFiscalize
from intdash.core.invoices import InvoiceKind
from intdash.core.models import FiscalStatus, Invoice, RecordKind
from intdash.core.services.invoices.fiscalizable import STORED_COLUMNS, to_fiscalize

INVOICES = Invoice.__table__  # type: ignore[attr-defined]
_FISCALIZED = FiscalStatus.FISCALIZED.value
_SALES = InvoiceKind.SALES.value  # only a sales invoice's sale is credited
AWAITING_INVOICE = FiscalStatus.AWAITING_INVOICE.value

_CREDITED = (
    select(INVOICES.c.id, INVOICES.c.external_id, INVOICES.c.fiscal_status, INVOICES.c.kind)
    .where(INVOICES.c.integration_id == bindparam("b_integration"))
    .where(INVOICES.c.external_id.in_(bindparam("b_ids", expanding=True)))
)

_WAITING = (
    select(*STORED_COLUMNS, INVOICES.c.credits)
    .where(INVOICES.c.integration_id == bindparam("b_integration"))
    # the partial index's own condition, word for word (a bound value would not use it)
    .where(text("fiscal_status = 'awaiting invoice'"))
    .where(INVOICES.c.credits.is_not(None))
)  # all of them (few, by the partial index), matched here: no list of ids to bind per batch


def stored_credited(
    conn: Connection, integration_id: int, external_ids: Collection[str]
) -> dict[str, tuple[int, str, str]]:
    """The stored documents of these external ids: each one's row id, fiscal status and kind."""
    if not external_ids:
        return {}
    return {
        row.external_id: (row.id, row.fiscal_status, row.kind)
        for row in conn.execute(
            _CREDITED, {"b_integration": integration_id, "b_ids": sorted(external_ids)}
        )
    }


def credit_of(credit_note_id: int, integration_id: int, credited_id: int, data: Any) -> ToFiscalize:
    """What the register is told of a credit note (``data``: an InvoiceData or a stored row)."""
    return to_fiscalize(credit_note_id, integration_id, data, RecordKind.CREDIT, credited_id)


def credit_waiting(
    conn: Connection,
    integration_id: int,
    sold: Container[str],
    register: FiscalRegister,
    now: datetime,
) -> list[dict[str, Any]]:
    """Credit the credit notes that were waiting for any of these invoices (``sold``: external
    ids, some just fiscalized) and whose invoice now has a standing sale, in the caller's
    transaction; returns the records. One look-up by the partial index when none waits."""
    found = conn.execute(_WAITING, {"b_integration": integration_id})
    waiting = [r for r in found if r.credits in sold]
    if not waiting:
        return []
    credited = stored_credited(conn, integration_id, {r.credits for r in waiting})
    rows = sorted(
        (r for r in waiting if credited.get(r.credits, (0, "", ""))[1:] == (_FISCALIZED, _SALES)),
        key=lambda r: r.id,
    )
    if not rows:
        return []
    conn.execute(
        update(INVOICES)
        .where(INVOICES.c.id.in_([r.id for r in rows]))
        .values(fiscal_status=_FISCALIZED, updated_at=now)
    )
    return register.fiscalize(
        conn, [credit_of(r.id, integration_id, credited[r.credits][0], r) for r in rows], now
    )
