"""fiscal records name their integration; invoice indexes for history pages

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fiscal_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("integration_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE fiscal_records SET integration_id = "
        "(SELECT integration_id FROM invoices WHERE invoices.id = fiscal_records.invoice_id)"
    )
    with op.batch_alter_table("fiscal_records", schema=None) as batch_op:
        batch_op.alter_column("integration_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_index(
            batch_op.f("ix_fiscal_records_integration_id_recorded_at"),
            ["integration_id", "recorded_at"],
            unique=False,
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_fiscal_records_integration_id_integrations"),
            "integrations",
            ["integration_id"],
            ["id"],
        )

    # history pages go by id (per integration or overall); the monthly count by fiscal record
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_integration_id_received_at")
        batch_op.drop_index("ix_invoices_received_at_id")
        batch_op.create_index("ix_invoices_integration_id_id", ["integration_id", "id"])


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_integration_id_id")
        batch_op.create_index("ix_invoices_received_at_id", ["received_at", "id"])
        batch_op.create_index(
            "ix_invoices_integration_id_received_at", ["integration_id", "received_at"]
        )
    with op.batch_alter_table("fiscal_records", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_fiscal_records_integration_id_integrations"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_fiscal_records_integration_id_recorded_at"))
        batch_op.drop_column("integration_id")
