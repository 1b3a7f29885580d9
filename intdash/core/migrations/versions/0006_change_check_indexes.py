"""indexes for the dashboard's change check: the latest finished sync run, the latest change
to an integration's invoices and its latest sync or delivery attempt are index look-ups, not
scans of tables that grow without bound

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("sync_runs", "ended_at"),
    ("integrations", "invoices_changed_at"),
    ("integrations", "last_attempted_sync"),
)


def upgrade() -> None:
    # plain CREATE INDEX: SQLite builds it in place, without copying the table
    for table, column in INDEXES:
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column])


def downgrade() -> None:
    for table, column in reversed(INDEXES):
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
