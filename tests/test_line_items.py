"""Invoices that can be fiscalized: line items, the buyer's tax id and payments, stored as the
platforms have them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from sqlalchemy import inspect

from intdash.core.db import Database
from intdash.core.dbtypes import Money, UTCDateTime
from intdash.core.migrations import HEAD


def _at_0012_with_invoices(db: Database) -> None:
    """A database as intdash made it at revision 0012, holding two invoices."""
    config = db._alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0012")
    integrations = sa.table(
        "integrations",
        sa.column("id", sa.Integer()),
        sa.column("uid", sa.String()),
        sa.column("type", sa.String()),
        sa.column("name", sa.String()),
        sa.column("created_at", UTCDateTime()),
        sa.column("settings", sa.JSON()),
        sa.column("sync_enabled", sa.Boolean()),
    )
    invoices = sa.table(
        "invoices",
        sa.column("integration_id", sa.Integer()),
        sa.column("external_id", sa.String()),
        sa.column("number", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("currency", sa.String()),
        sa.column("issue_date", sa.Date()),
        sa.column("subtotal", Money()),
        sa.column("tax", Money()),
        sa.column("total", Money()),
        sa.column("fiscal_status", sa.String()),
        sa.column("received_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with db.engine.begin() as conn:
        conn.execute(
            integrations.insert().values(
                id=1,
                uid="xero-abcdef",
                type="xero",
                name="Kowhai",
                created_at=now,
                settings={},
                sync_enabled=True,
            )
        )
        for n, (subtotal, tax, total) in enumerate(
            [("100.00", "15.00", "115.00"), (None, None, "57.5012")]
        ):
            conn.execute(
                invoices.insert().values(
                    integration_id=1,
                    external_id=f"ext-{n}",
                    number=f"INV-{n}",
                    kind="sales",
                    currency="FJD",
                    issue_date=date(2026, 11, 30),
                    subtotal=None if subtotal is None else Decimal(subtotal),
                    tax=None if tax is None else Decimal(tax),
                    total=Decimal(total),
                    fiscal_status="fiscalized",
                    received_at=now,
                    updated_at=now,
                )
            )


def test_migration_0013_keeps_every_invoice(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir(exist_ok=True)
    db = Database(db_url)
    try:
        _at_0012_with_invoices(db)
        assert db.migrate() is True
        assert db.current_revision() == HEAD
        columns = {c["name"]: c for c in inspect(db.engine).get_columns("invoices")}
        assert {"items", "buyer_tax_id", "payments"} <= set(columns)
        assert all(columns[name]["nullable"] for name in ("items", "buyer_tax_id", "payments"))
        with db.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT external_id, number, subtotal, tax, total, fiscal_status, items, "
                    "buyer_tax_id, payments FROM invoices ORDER BY external_id"
                )
            ).all()
        money = Money()
        dialect = db.engine.dialect
        amounts = [
            tuple(
                None if v is None else money.process_result_value(v, dialect)
                for v in (r.subtotal, r.tax, r.total)
            )
            for r in rows
        ]
        assert [(r.external_id, r.number, r.fiscal_status) for r in rows] == [
            ("ext-0", "INV-0", "fiscalized"),
            ("ext-1", "INV-1", "fiscalized"),
        ]
        assert amounts == [
            (Decimal("100.00"), Decimal("15.00"), Decimal("115.00")),
            (None, None, Decimal("57.5012")),
        ]
        assert [(r.items, r.buyer_tax_id, r.payments) for r in rows] == [(None, None, None)] * 2
    finally:
        db.dispose()
