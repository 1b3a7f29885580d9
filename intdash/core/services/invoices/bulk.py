"""The invoice rows the upsert writes, and the bulk path that inserts new ones: SQLite through
the driver's executemany, its values converted exactly as the column types would, because
per-row processing dominates the cost of a large sync; PostgreSQL through the ordinary
statement with RETURNING."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select

from intdash.core.db import insert_rows
from intdash.core.dbtypes import MONEY_PLACES, Money
from intdash.core.invoices import InvoiceData, items_to_json, line_columns, payments_to_json
from intdash.core.models import Invoice

INVOICES = Invoice.__table__  # type: ignore[attr-defined]
FIELDS = (
    "number",
    "kind",
    "contact",
    "issue_date",
    "due_date",
    "currency",
    "subtotal",
    "tax",
    "total",
    "source_status",
    "source_updated_at",
    "items",
    "buyer_tax_id",
    "payments",
    "credits",
)


_INSERT_COLUMNS = (
    "integration_id", "external_id", "received_at", "updated_at", "fiscal_status", *FIELDS,
)  # fmt: skip
_SQLITE_INTO = f"INSERT INTO invoices ({', '.join(_INSERT_COLUMNS)}) VALUES"
_SQLITE_INSERT = f"{_SQLITE_INTO} ({', '.join('?' for _ in _INSERT_COLUMNS)})"


def sqlite_time(moment: datetime | None) -> str | None:
    """As SQLAlchemy stores a UTC time in SQLite (the same text, so comparisons hold)."""
    if moment is None:
        return None
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # naive, made by position: replace(tzinfo=None) costs as much as the rest together
    return datetime(
        moment.year, moment.month, moment.day,
        moment.hour, moment.minute, moment.second, moment.microsecond,
    ).isoformat(" ", "microseconds")  # fmt: skip


_SCALE: int = 10**MONEY_PLACES


def _sqlite_money(amount: Decimal | None) -> int | None:
    """The amount in ten-thousandths, as the Money column stores it (exactly, or an error that
    names the amount); through its integer ratio, the cheapest exact route."""
    if amount is None:
        return None
    numerator, denominator = amount.as_integer_ratio()
    scaled, rest = divmod(numerator * _SCALE, denominator)
    if rest:
        Money._exact(amount)  # raises, naming the amount
    return scaled


def _sqlite_row(
    integration_id: int, data: InvoiceData, status: str, stamp: str | None
) -> tuple[Any, ...]:
    issue, due = data.issue_date, data.due_date
    return (
        integration_id,
        data.external_id,
        stamp,
        stamp,
        status,
        data.number,
        data.kind,  # a StrEnum: the driver binds it as the text it is
        data.contact,
        issue.isoformat() if issue else None,
        due.isoformat() if due else None,
        data.currency,
        _sqlite_money(data.subtotal),
        _sqlite_money(data.tax),
        _sqlite_money(data.total),
        data.source_status,
        sqlite_time(data.source_updated_at),
        # line_columns(data), spelled out: this runs for every invoice of a sync
        items_to_json(data.items) if data.items else None,
        data.buyer_tax_id or None,
        payments_to_json(data.payments) if data.payments else None,
        data.credits,
    )


def values_of(data: InvoiceData) -> dict[str, Any]:
    return {
        "number": data.number,
        "kind": data.kind.value,
        "contact": data.contact,
        "issue_date": data.issue_date,
        "due_date": data.due_date,
        "currency": data.currency,
        "subtotal": data.subtotal,
        "tax": data.tax,
        "total": data.total,
        "source_status": data.source_status,
        "source_updated_at": data.source_updated_at,
        **line_columns(data),
        "credits": data.credits,
    }


def insert_new(
    conn: Connection,
    integration_id: int,
    new: list[InvoiceData],
    statuses: list[str],
    now: datetime,
) -> list[int]:
    """Insert new invoices; returns their ids in order.

    SQLite takes them through the driver's executemany, the values converted exactly as the
    column types would, because per-row processing dominates the cost of a large sync;
    PostgreSQL takes the ordinary statement with RETURNING.
    """
    if conn.dialect.name != "sqlite":
        rows = [
            {"integration_id": integration_id, "external_id": data.external_id,
             "received_at": now, "updated_at": now, "fiscal_status": status, **values_of(data)}
            for data, status in zip(new, statuses, strict=True)
        ]  # fmt: skip
        return list(conn.execute(insert(INVOICES).returning(INVOICES.c.id), rows).scalars())
    stamp = sqlite_time(now)  # one batch, one moment
    if len(new) == 1:  # a single push: the driver tells the id
        one = _sqlite_row(integration_id, new[0], statuses[0], stamp)
        inserted = conn.exec_driver_sql(_SQLITE_INSERT, one).lastrowid
        assert inserted is not None
        return [int(inserted)]
    before = conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM invoices").scalar_one()
    insert_rows(
        conn,
        _SQLITE_INTO,
        [
            _sqlite_row(integration_id, data, status, stamp)
            for data, status in zip(new, statuses, strict=True)
        ],
    )
    after = conn.exec_driver_sql("SELECT MAX(id) FROM invoices").scalar_one()
    if after - before == len(new):
        # under the write lock SQLite numbers new rows on from the largest id, in order
        return list(range(before + 1, after + 1))
    found: dict[str, int] = dict(
        conn.execute(
            select(INVOICES.c.external_id, INVOICES.c.id)
            .where(INVOICES.c.integration_id == integration_id)
            .where(INVOICES.c.external_id.in_([data.external_id for data in new]))
        ).all()
    )
    return [found[data.external_id] for data in new]
