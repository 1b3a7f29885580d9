"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from intdash.core import dbtypes

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", dbtypes.UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("integration_uid", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_events_integration_uid"), ["integration_uid"], unique=False
        )

    op.create_table(
        "integrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", dbtypes.UTCDateTime(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("sync_enabled", sa.Boolean(), nullable=False),
        sa.Column("sync_from", sa.Date(), nullable=True),
        sa.Column("cursor", sa.String(length=200), nullable=True),
        sa.Column("last_attempted_sync", dbtypes.UTCDateTime(), nullable=True),
        sa.Column("last_successful_sync", dbtypes.UTCDateTime(), nullable=True),
        sa.Column("last_sync_error", sa.Text(), nullable=True),
        sa.Column("auth_error", sa.Text(), nullable=True),
        sa.Column("removed_at", dbtypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations")),
        sa.UniqueConstraint("uid", name=op.f("uq_integrations_uid")),
    )
    op.create_table(
        "plan",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("monthly_limit", sa.Integer(), nullable=True),
        sa.Column("licence_expires", sa.Date(), nullable=True),
        sa.Column("updated_at", dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_at", dbtypes.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", dbtypes.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", dbtypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_api_keys_integration_id_integrations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_keys_key_id")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_keys_integration_id"), ["integration_id"], unique=False
        )

    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", dbtypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_credentials_integration_id_integrations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
        sa.UniqueConstraint(
            "integration_id", "name", name=op.f("uq_credentials_integration_id_name")
        ),
    )
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_credentials_integration_id"), ["integration_id"], unique=False
        )

    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("number", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("contact", sa.String(length=400), nullable=True),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal", dbtypes.Money(), nullable=False),
        sa.Column("tax", dbtypes.Money(), nullable=False),
        sa.Column("total", dbtypes.Money(), nullable=False),
        sa.Column("source_status", sa.String(length=32), nullable=True),
        sa.Column("source_updated_at", dbtypes.UTCDateTime(), nullable=True),
        sa.Column("fiscal_status", sa.String(length=16), nullable=False),
        sa.Column("received_at", dbtypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", dbtypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_invoices_integration_id_integrations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint(
            "integration_id", "external_id", name=op.f("uq_invoices_integration_id_external_id")
        ),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invoices_integration_id_received_at"),
            ["integration_id", "received_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_invoices_received_at_id"), ["received_at", "id"], unique=False
        )

    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("started_at", dbtypes.UTCDateTime(), nullable=False),
        sa.Column("ended_at", dbtypes.UTCDateTime(), nullable=True),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_sync_runs_integration_id_integrations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_runs_integration_id_started_at"),
            ["integration_id", "started_at"],
            unique=False,
        )

    op.create_table(
        "fiscal_records",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("recorded_at", dbtypes.UTCDateTime(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_fiscal_records_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_fiscal_records")),
        sa.UniqueConstraint("invoice_id", name=op.f("uq_fiscal_records_invoice_id")),
    )


def downgrade() -> None:
    op.drop_table("fiscal_records")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_runs_integration_id_started_at"))

    op.drop_table("sync_runs")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoices_received_at_id"))
        batch_op.drop_index(batch_op.f("ix_invoices_integration_id_received_at"))

    op.drop_table("invoices")
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credentials_integration_id"))

    op.drop_table("credentials")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_integration_id"))

    op.drop_table("api_keys")
    op.drop_table("plan")
    op.drop_table("integrations")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_integration_uid"))
        batch_op.drop_index(batch_op.f("ix_audit_events_at"))

    op.drop_table("audit_events")
