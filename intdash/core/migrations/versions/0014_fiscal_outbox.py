"""fiscal outbox: what TaxCore's V-SDC is to sign (each sale and refund of the local register,
with the request kept for retries and the SDC's whole response), what intdash knows of the SDC
(its tax labels, whether it is reachable), each integration's tax codes mapped to TaxCore's
labels, and the taxpayer's secrets (encrypted by the vault).

Nothing existing changes: invoices fiscalized before stay in the local register only.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from intdash.core import dbtypes

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fiscal_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_seq", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("refers_to", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("request", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", dbtypes.UTCDateTime(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", dbtypes.UTCDateTime(), nullable=False),
        sa.Column("sent_at", dbtypes.UTCDateTime(), nullable=True),
        sa.Column("signed_at", dbtypes.UTCDateTime(), nullable=True),
        sa.Column("sdc_invoice_number", sa.String(length=100), nullable=True),
        sa.Column("sdc_time", sa.String(length=64), nullable=True),
        sa.Column("invoice_counter", sa.String(length=100), nullable=True),
        sa.Column("total_counter", sa.Integer(), nullable=True),
        sa.Column("verification_url", sa.Text(), nullable=True),
        sa.Column("qr", sa.Text(), nullable=True),
        sa.Column("journal", sa.Text(), nullable=True),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_fiscal_outbox_integration_id_integrations"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_fiscal_outbox_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["record_seq"],
            ["fiscal_records.seq"],
            name=op.f("fk_fiscal_outbox_record_seq_fiscal_records"),
        ),
        sa.ForeignKeyConstraint(
            ["refers_to"],
            ["fiscal_outbox.id"],
            name=op.f("fk_fiscal_outbox_refers_to_fiscal_outbox"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fiscal_outbox")),
        sa.UniqueConstraint("record_seq", name=op.f("uq_fiscal_outbox_record_seq")),
        sa.UniqueConstraint("request_id", name=op.f("uq_fiscal_outbox_request_id")),
        sa.UniqueConstraint("sdc_invoice_number", name=op.f("uq_fiscal_outbox_sdc_invoice_number")),
    )
    with op.batch_alter_table("fiscal_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fiscal_outbox_status_next_attempt_at"), ["status", "next_attempt_at"]
        )
        batch_op.create_index(batch_op.f("ix_fiscal_outbox_invoice_id_id"), ["invoice_id", "id"])
        batch_op.create_index(
            batch_op.f("ix_fiscal_outbox_integration_id_status"), ["integration_id", "status"]
        )
    op.create_table(
        "fiscal_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_fiscal_state")),
    )
    op.create_table(
        "tax_label_map",
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("tax_code", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=8), nullable=False),
        sa.Column("updated_at", dbtypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_tax_label_map_integration_id_integrations"),
        ),
        sa.PrimaryKeyConstraint("integration_id", "tax_code", name=op.f("pk_tax_label_map")),
    )
    op.create_table(
        "fiscal_secrets",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("updated_at", dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_fiscal_secrets")),
    )


def downgrade() -> None:
    op.drop_table("fiscal_secrets")
    op.drop_table("tax_label_map")
    op.drop_table("fiscal_state")
    with op.batch_alter_table("fiscal_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fiscal_outbox_integration_id_status"))
        batch_op.drop_index(batch_op.f("ix_fiscal_outbox_invoice_id_id"))
        batch_op.drop_index(batch_op.f("ix_fiscal_outbox_status_next_attempt_at"))
    op.drop_table("fiscal_outbox")
