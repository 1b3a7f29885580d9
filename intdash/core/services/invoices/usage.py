"""Each integration's count of invoices fiscalized in a month: what its plan's monthly limit
counts against."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from intdash.core.clock import month_start
from intdash.core.models import MonthlyUsage

USAGE = MonthlyUsage.__table__  # type: ignore[attr-defined]


def fiscalized_in_month(conn: Connection, integration_id: int, now: datetime) -> int:
    """Invoices the integration fiscalized in the month of ``now``."""
    found = conn.execute(
        select(USAGE.c.fiscalized)
        .where(USAGE.c.integration_id == integration_id)
        .where(USAGE.c.month == month_start(now).date())
    ).scalar()
    return int(found or 0)


def count_fiscalized(conn: Connection, integration_id: int, at: datetime, n: int) -> None:
    """Add ``n`` to the integration's count for the month of ``at``, in the caller's
    transaction (the one that writes the fiscal records)."""
    if n <= 0:
        return
    month = month_start(at).date()
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(USAGE).values(
        integration_id=integration_id, month=month, fiscalized=n
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["integration_id", "month"],
            set_={"fiscalized": USAGE.c.fiscalized + n},
        )
    )
