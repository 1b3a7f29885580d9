"""unknown tax: an invoice's subtotal and tax may be unknown (NULL) rather than a made-up 0, and
an approved one whose tax is unknown is "awaiting tax" (not fiscalized until it is known)

Zoho Books's invoice list carries no tax, and intdash stored every Zoho invoice with tax 0 and
its total as subtotal. Every invoice is kept. Those never fiscalized (no sale on record) get
their subtotal and tax unknown; held ones, which would be released with that 0, await their
tax instead. Fiscalized and refunded ones keep what their records state (a refund reverses
what was sold): when their tax is read and differs, the usual rules refund the sale and make a
new one. Each Zoho integration's cursor is cleared, so that its next syncs list its invoices
again and read their tax as its rate limits allow, oldest first.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AMOUNTS = ("subtotal", "tax")


def _nullable(column: str, nullable: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "invoices",
            column,
            existing_type=sa.Numeric(20, 4),
            existing_nullable=not nullable,
            nullable=nullable,
        )
        return
    # SQLite changes a column's constraints only by copying the table, which others reference
    # (see 0007): a new column takes the old one's place instead, each step done in place
    declared = "BIGINT" if nullable else "BIGINT DEFAULT 0 NOT NULL"
    op.execute(f"ALTER TABLE invoices ADD COLUMN {column}_new {declared}")
    op.execute(f"UPDATE invoices SET {column}_new = {column}")  # noqa: S608 - fixed names
    op.execute(f"ALTER TABLE invoices DROP COLUMN {column}")
    op.execute(f"ALTER TABLE invoices RENAME COLUMN {column}_new TO {column}")


def upgrade() -> None:
    for column in _AMOUNTS:
        _nullable(column, True)
    invoices = sa.table(
        "invoices",
        sa.column("integration_id", sa.Integer()),
        sa.column("fiscal_status", sa.String()),
        sa.column("subtotal", sa.BigInteger()),
        sa.column("tax", sa.BigInteger()),
    )
    integrations = sa.table(
        "integrations",
        sa.column("id", sa.Integer()),
        sa.column("type", sa.String()),
        sa.column("cursor", sa.String()),
    )
    zoho = invoices.c.integration_id.in_(
        sa.select(integrations.c.id).where(integrations.c.type == "zoho")
    )
    op.execute(
        sa.update(invoices)
        .where(zoho, invoices.c.fiscal_status == "held")
        .values(fiscal_status="awaiting tax")
    )
    op.execute(
        sa.update(invoices)
        .where(zoho, invoices.c.fiscal_status.not_in(("fiscalized", "refunded")))
        .values(subtotal=None, tax=None)
    )
    op.execute(sa.update(integrations).where(integrations.c.type == "zoho").values(cursor=None))


def downgrade() -> None:
    unknown = (
        op.get_bind()
        .execute(sa.text("SELECT COUNT(*) FROM invoices WHERE subtotal IS NULL OR tax IS NULL"))
        .scalar_one()
    )
    if unknown:
        raise RuntimeError(
            f"{unknown} invoices have their tax unknown, which the schema before 0011 cannot "
            "hold (it would take a made-up 0): it cannot go back"
        )
    for column in _AMOUNTS:
        _nullable(column, False)
