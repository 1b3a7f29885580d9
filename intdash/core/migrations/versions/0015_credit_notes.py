"""credit notes: a sales credit note is stored beside the invoices (kind "credit note") with the
external id of the invoice it credits, and fiscalized as a refund naming that invoice's sale; the
integration's cursor holds a second stream's (the credit notes') beside the invoices'.

Every invoice is kept; existing rows credit nothing (NULL). Existing cursors read as the
invoices' alone: the credit notes' stream starts from the sync-from date, or the beginning. A MYOB
integration that stored sales of negative amounts (credit notes, read as sales before) has its
cursor cleared: its next sync reads its sales again, and each such one, read as the credit note it
is, has a sale it made refunded and is credited against the invoice it names.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _cursor_length(length: int, before: int) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "integrations",
            "cursor",
            existing_type=sa.String(length=before),
            type_=sa.String(length=length),
            existing_nullable=True,
        )
        return
    # SQLite changes a column's type only by copying the table, which others reference (see
    # 0011): a new column takes the old one's place instead, each step done in place
    op.execute(f"ALTER TABLE integrations ADD COLUMN cursor_new VARCHAR({length})")
    op.execute("UPDATE integrations SET cursor_new = cursor")
    op.execute("ALTER TABLE integrations DROP COLUMN cursor")
    op.execute("ALTER TABLE integrations RENAME COLUMN cursor_new TO cursor")


def upgrade() -> None:
    op.add_column("invoices", sa.Column("credits", sa.String(length=200), nullable=True))
    waiting = sa.text("fiscal_status = 'awaiting invoice'")
    op.create_index(
        "ix_invoices_awaiting_invoice",
        "invoices",
        ["integration_id", "credits"],
        sqlite_where=waiting,
        postgresql_where=waiting,
    )
    _cursor_length(420, 200)
    integrations = sa.table(
        "integrations",
        sa.column("id", sa.Integer()),
        sa.column("type", sa.String()),
        sa.column("cursor", sa.String()),
    )
    invoices = sa.table(
        "invoices",
        sa.column("integration_id", sa.Integer()),
        sa.column("kind", sa.String()),
        sa.column("total", sa.BigInteger()),
    )
    negative_sales = (
        sa.select(invoices.c.integration_id)
        .where(invoices.c.kind == "sales", invoices.c.total < 0)
        .where(invoices.c.integration_id == integrations.c.id)
        .exists()
    )
    op.execute(
        sa.update(integrations)
        .where(integrations.c.type == "myob", negative_sales)
        .values(cursor=None)
    )


def downgrade() -> None:
    # a cursor of two streams is cut back to the invoices' (the credit notes' are read again)
    integrations = sa.table(
        "integrations", sa.column("id", sa.Integer()), sa.column("cursor", sa.String())
    )
    bind = op.get_bind()
    for row in bind.execute(sa.select(integrations.c.id, integrations.c.cursor)).all():
        if row.cursor and _MARK in row.cursor:
            invoices = row.cursor.partition(_MARK)[0] or None
            bind.execute(
                sa.update(integrations).where(integrations.c.id == row.id).values(cursor=invoices)
            )
    _cursor_length(200, 420)
    op.drop_index("ix_invoices_awaiting_invoice", table_name="invoices")
    op.drop_column("invoices", "credits")


_MARK = " ~credit-notes~ "  # intdash.providers.paging.STREAMS_MARK
