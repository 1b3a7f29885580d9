"""the runs going on now, indexed apart: a sync's start marks any run of its integration left
running as interrupted, and looked for it among all of that integration's runs (a month of
five-minute syncs is 8,640 of them, read on every sync).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUNNING = sa.text("outcome = 'running'")


def upgrade() -> None:
    op.create_index(
        "ix_sync_runs_running",
        "sync_runs",
        ["integration_id"],
        sqlite_where=_RUNNING,
        postgresql_where=_RUNNING,
    )


def downgrade() -> None:
    op.drop_index("ix_sync_runs_running", table_name="sync_runs")
