"""vault keys: which key versions the stored secrets are under, each with its check value (an
HMAC of a fixed label under the key, never the key), so that intdash can tell a missing or
wrong key before it reads or writes a secret. A workspace from before has none recorded: intdash
records them when it first opens with keys that read its secrets.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from intdash.core import dbtypes

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vault_keys",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("check_value", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_vault_keys")),
    )


def downgrade() -> None:
    op.drop_table("vault_keys")
