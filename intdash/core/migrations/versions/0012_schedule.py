"""schedule: each integration's next sync is stored (derived from its last attempt, its plan's
interval and a phase from its UID, and brought forward by a platform's webhook event), so that
every process agrees on it and any of them may claim it when due; the platform's id of the
connected organisation (Xero's tenant) is kept in the clear, as webhook events name it; and the
digests of webhook bodies received, so that a replayed body is recognised.

Existing integrations get no next sync here: the first scheduler to run derives it from their
last attempt (a slot missed meanwhile runs once, soon).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from intdash.core import dbtypes

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ALTER TABLE ADD COLUMN (SQLite too): the table, referenced by others, is not copied
    op.add_column("integrations", sa.Column("next_sync_at", dbtypes.UTCDateTime(), nullable=True))
    op.add_column("integrations", sa.Column("remote_id", sa.String(length=100), nullable=True))
    op.create_index(op.f("ix_integrations_next_sync_at"), "integrations", ["next_sync_at"])
    op.create_index(op.f("ix_integrations_remote_id"), "integrations", ["remote_id"])
    op.create_table(
        "webhook_receipts",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("received_at", dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_webhook_receipts")),
    )
    op.create_index(op.f("ix_webhook_receipts_received_at"), "webhook_receipts", ["received_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_receipts_received_at"), table_name="webhook_receipts")
    op.drop_table("webhook_receipts")
    op.drop_index(op.f("ix_integrations_remote_id"), table_name="integrations")
    op.drop_index(op.f("ix_integrations_next_sync_at"), table_name="integrations")
    op.drop_column("integrations", "remote_id")
    op.drop_column("integrations", "next_sync_at")
