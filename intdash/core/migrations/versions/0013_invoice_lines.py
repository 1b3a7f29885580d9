"""invoice lines: what fiscalization needs of an invoice beyond its totals: its line items (JSON
text, see ``intdash.core.invoices``), the buyer's tax id where the platform has one, and its
payments where known (JSON text).

Every invoice is kept; existing ones get none of these (NULL: not read yet) until their next
sync reads them, and one without items is fiscalized as one item of its total.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ALTER TABLE ADD COLUMN (SQLite too): the table, referenced by others, is not copied
    op.add_column("invoices", sa.Column("items", sa.Text(), nullable=True))
    op.add_column("invoices", sa.Column("buyer_tax_id", sa.String(length=100), nullable=True))
    op.add_column("invoices", sa.Column("payments", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("invoices", "payments")
    op.drop_column("invoices", "buyer_tax_id")
    op.drop_column("invoices", "items")
