"""integrations indexed by type: every transaction that fiscalizes (a push, a sync's page) asks
which webhooks take its invoices, and read every integration to find them (0.4 ms a push with
10,000 integrations).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_integrations_type", "integrations", ["type"])


def downgrade() -> None:
    op.drop_index("ix_integrations_type", table_name="integrations")
