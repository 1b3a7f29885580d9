"""daily API budget: what a platform last said is left of a tenant's daily calls, when it said
so, and when its day starts again, kept with the integration

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from intdash.core import dbtypes

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ALTER TABLE: SQLite adds and drops a column in place, without copying the table
    op.add_column("integrations", sa.Column("daily_remaining", sa.Integer(), nullable=True))
    op.add_column("integrations", sa.Column("daily_observed_at", dbtypes.UTCDateTime()))
    op.add_column("integrations", sa.Column("daily_resets_at", dbtypes.UTCDateTime()))


def downgrade() -> None:
    op.drop_column("integrations", "daily_resets_at")
    op.drop_column("integrations", "daily_observed_at")
    op.drop_column("integrations", "daily_remaining")
