"""Each integration's count of invoices fiscalized in a month: what its plan's monthly limit
counts against."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from intdash.core.clock import month_start
from intdash.core.models import MonthlyUsage

USAGE = MonthlyUsage.__table__  # type: ignore[attr-defined]

# built once: every push and every page that fiscalizes reads and adds to the month's count
_COUNT = select(USAGE.c.fiscalized).where(
    USAGE.c.integration_id == bindparam("b_integration"), USAGE.c.month == bindparam("b_month")
)
_ADD = {
    name: dialect_insert(USAGE)
    .values(integration_id=bindparam("b_integration"), month=bindparam("b_month"),
            fiscalized=bindparam("b_n"))
    .on_conflict_do_update(
        index_elements=["integration_id", "month"],
        set_={"fiscalized": USAGE.c.fiscalized + bindparam("b_n")},
    )
    for name, dialect_insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}  # fmt: skip


def fiscalized_in_month(conn: Connection, integration_id: int, now: datetime) -> int:
    """Invoices the integration fiscalized in the month of ``now``."""
    found = conn.execute(
        _COUNT, {"b_integration": integration_id, "b_month": month_start(now).date()}
    ).scalar()
    return int(found or 0)


def count_fiscalized(conn: Connection, integration_id: int, at: datetime, n: int) -> None:
    """Add ``n`` to the integration's count for the month of ``at``, in the caller's
    transaction (the one that writes the fiscal records)."""
    if n <= 0:
        return
    month = month_start(at).date()
    conn.execute(
        _ADD[conn.dialect.name], {"b_integration": integration_id, "b_month": month, "b_n": n}
    )
