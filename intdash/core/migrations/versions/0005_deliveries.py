"""deliveries: the outbox of Custom/Webhook integrations; monthly usage kept as a count;
integrations note when their invoices last changed and a webhook's failures in a row

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from intdash.core import dbtypes

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", dbtypes.UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", dbtypes.UTCDateTime(), nullable=False),
        sa.Column("last_attempt_at", dbtypes.UTCDateTime(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=400), nullable=True),
        sa.Column("delivered_at", dbtypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_deliveries_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"], ["integrations.id"], name=op.f("fk_deliveries_webhook_id_integrations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("event_id", name=op.f("uq_deliveries_event_id")),
        sa.UniqueConstraint(
            "webhook_id", "invoice_id", name=op.f("uq_deliveries_webhook_id_invoice_id")
        ),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deliveries_state_next_attempt_at"), ["state", "next_attempt_at"]
        )
        batch_op.create_index(batch_op.f("ix_deliveries_webhook_id_id"), ["webhook_id", "id"])
    op.create_table(
        "monthly_usage",
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("fiscalized", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_monthly_usage_integration_id_integrations"),
        ),
        sa.PrimaryKeyConstraint("integration_id", "month", name=op.f("pk_monthly_usage")),
    )
    month = (
        "date_trunc('month', recorded_at AT TIME ZONE 'UTC')::date"
        if op.get_bind().dialect.name == "postgresql"
        else "strftime('%Y-%m-01', recorded_at)"
    )
    op.execute(
        "INSERT INTO monthly_usage (integration_id, month, fiscalized) "  # noqa: S608 - fixed
        f"SELECT integration_id, {month}, COUNT(*) FROM fiscal_records "
        f"GROUP BY integration_id, {month}"
    )
    # the dashboard's change check reads this, not max(invoices.updated_at) (a scan)
    # (plain ALTER TABLE: SQLite adds and drops a column in place, so the table, which others
    # reference, is not copied)
    op.add_column("integrations", sa.Column("invoices_changed_at", dbtypes.UTCDateTime()))
    op.add_column(
        "integrations",
        sa.Column("delivery_failures", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute(
        "UPDATE integrations SET invoices_changed_at = (SELECT MAX(updated_at) FROM invoices "
        "WHERE invoices.integration_id = integrations.id)"
    )


def downgrade() -> None:
    op.drop_table("monthly_usage")
    op.drop_column("integrations", "delivery_failures")
    op.drop_column("integrations", "invoices_changed_at")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_webhook_id_id"))
        batch_op.drop_index(batch_op.f("ix_deliveries_state_next_attempt_at"))
    op.drop_table("deliveries")
