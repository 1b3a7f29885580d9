"""Invoices that can be fiscalized: line items, the buyer's tax id and payments, stored as the
platforms have them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect

from intdash.core.db import Database
from intdash.core.dbtypes import Money, UTCDateTime
from intdash.core.invoices import (
    InvoiceData,
    InvoiceKind,
    LineItem,
    Payment,
    items_from_json,
    items_to_json,
    line_columns,
    payments_from_json,
    payments_to_json,
)
from intdash.core.migrations import HEAD

amounts = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: abs(d.adjusted()) < 40
)
texts = st.text(max_size=40)
line_items = st.builds(
    LineItem,
    name=texts,
    quantity=amounts,
    unit_price=amounts,
    total=amounts,
    discount=amounts,
    tax_code=st.none() | texts,
    tax_rate=st.none() | amounts,
    tax_amount=st.none() | amounts,
    item_code=st.none() | texts,
    tax_inclusive=st.none() | st.booleans(),
)
payments = st.builds(Payment, amount=amounts, method=st.none() | texts)


def _spelled(items: tuple[LineItem, ...] | tuple[Payment, ...]) -> list[list[str]]:
    """Every field as written (so that 1.50 and 1.5 differ, as the platforms wrote them)."""
    return [[repr(v) for v in vars(item).values()] for item in items]


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line_items, max_size=5).map(tuple))
def test_items_json_round_trip_is_exact(items: tuple[LineItem, ...]) -> None:
    back = items_from_json(items_to_json(items))
    assert back == items
    assert _spelled(back) == _spelled(items)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line_items, max_size=5).map(tuple))
def test_items_json_is_what_the_fields_say(items: tuple[LineItem, ...]) -> None:
    from intdash.core.invoices import _items_to_json_by_fields

    assert items_to_json(items) == _items_to_json_by_fields(items)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(payments, max_size=4).map(tuple))
def test_payments_json_round_trip_is_exact(paid: tuple[Payment, ...]) -> None:
    back = payments_from_json(payments_to_json(paid))
    assert back == paid
    assert _spelled(back) == _spelled(paid)


def _invoice(**extra: object) -> InvoiceData:
    return InvoiceData(
        "ext-1", "INV-1", InvoiceKind.SALES, "Kowhai Cafe", date(2026, 11, 30), None, "FJD",
        Decimal("100.00"), Decimal("15.00"), Decimal("115.00"), "AUTHORISED", None,
        **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def test_line_columns() -> None:
    assert line_columns(_invoice()) == {"items": None, "buyer_tax_id": None, "payments": None}
    item = LineItem(
        "Consulting", Decimal("2"), Decimal("50.00"), Decimal("100.00"),
        tax_code="OUTPUT2", tax_amount=Decimal("15.00"), tax_inclusive=False,
    )  # fmt: skip
    columns = line_columns(
        _invoice(items=(item,), buyer_tax_id="123-456-789", payments=(Payment(Decimal("115")),))
    )
    assert columns == {
        "items": '[{"name":"Consulting","quantity":"2","unit_price":"50.00","total":"100.00",'
        '"discount":"0","tax_code":"OUTPUT2","tax_amount":"15.00","tax_inclusive":false}]',
        "buyer_tax_id": "123-456-789",
        "payments": '[{"amount":"115"}]',
    }
    assert items_from_json(columns["items"]) == (item,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "items: not JSON"),
        ('{"name": "x"}', "items: not a list of objects"),
        ('[{"name": "x", "quantity": "1", "unit_price": "1"}]', r"items\[0\]: total is missing"),
        ('[{"name": "x", "quantity": 1.5, "unit_price": "1", "total": "1"}]',
         r"items\[0\].quantity is not a decimal string"),
        ('[{"name": "x", "quantity": "1", "unit_price": "1", "total": "NaN"}]',
         r"items\[0\].total is not a finite amount"),
        ('[{"name": "x", "qty": "1"}]', r"items\[0\]: unknown field 'qty'"),
    ],
)  # fmt: skip
def test_bad_items_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        items_from_json(text)


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
