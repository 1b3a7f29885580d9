"""refunds in the fiscal register: a record is a sale or a refund naming the sale it reverses,
so an invoice may have several; wider fiscal statuses ("awaiting approval"); held invoices that
are not approved at their source are no longer held; an invoice may be delivered more than once

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A held invoice is one over the monthly limit. Before this revision every sales invoice was
# held or fiscalized whatever its status at the source; from now on only approved ones are, so
# held invoices that are drafts or voided at their source stop being held (else they would be
# released, that is fiscalized). The statuses as each platform's connector maps them today:
# (integration type, statuses that are void, statuses that are approved or None for "any
# other", compared in lower case).
_XERO = ("xero", ("voided", "deleted"), ("authorised", "paid"))
_ZOHO = ("zoho", ("void",), ("sent", "viewed", "unpaid", "overdue", "partially_paid", "paid"))
_CUSTOM = ("custom", ("void",), None)  # pushed: "draft" waits, anything else is approved


def _unhold() -> None:
    invoices = sa.table(
        "invoices",
        sa.column("integration_id", sa.Integer()),
        sa.column("fiscal_status", sa.String()),
        sa.column("source_status", sa.String()),
    )
    integrations = sa.table("integrations", sa.column("id", sa.Integer()), sa.column("type"))
    status = sa.func.lower(sa.func.trim(sa.func.coalesce(invoices.c.source_status, "")))
    for kind, void, approved in (_XERO, _ZOHO, _CUSTOM):
        held = sa.and_(
            invoices.c.fiscal_status == "held",
            invoices.c.integration_id.in_(
                sa.select(integrations.c.id).where(integrations.c.type == kind)
            ),
        )
        op.execute(sa.update(invoices).where(held, status.in_(void)).values(fiscal_status="voided"))
        pending = (
            status == "draft"
            if approved is None
            else sa.and_(status.not_in(approved), status.not_in(void))
        )
        op.execute(
            sa.update(invoices).where(held, pending).values(fiscal_status="awaiting approval")
        )


def _fiscal_status_length(length: int, old: int, default: str | None) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "invoices",
            "fiscal_status",
            type_=sa.String(length=length),
            existing_type=sa.String(length=old),
            existing_nullable=False,
            server_default=default,
        )
        return
    # SQLite changes a column's declared type only by copying the table, and a copy cannot
    # replace a table that others reference (fiscal_records, deliveries) while foreign keys are
    # enforced: a new column takes the old one's place instead, each step done in place
    op.execute(
        f"ALTER TABLE invoices ADD COLUMN fiscal_status_new VARCHAR({length}) "
        "DEFAULT 'received' NOT NULL"
    )
    op.execute("UPDATE invoices SET fiscal_status_new = fiscal_status")
    op.execute("ALTER TABLE invoices DROP COLUMN fiscal_status")
    op.execute("ALTER TABLE invoices RENAME COLUMN fiscal_status_new TO fiscal_status")


def upgrade() -> None:
    _fiscal_status_length(32, 16, "received")
    _unhold()
    # every record so far is a sale (kind "sale", refers_to NULL): their hashes verify as they
    # were, since a record's hash covers its kind and refers_to only when it is a refund
    with op.batch_alter_table("fiscal_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="sale")
        )
        batch_op.add_column(sa.Column("refers_to", sa.Integer(), nullable=True))
        batch_op.drop_constraint("uq_fiscal_records_invoice_id", type_="unique")
        batch_op.create_index(batch_op.f("ix_fiscal_records_invoice_id"), ["invoice_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_fiscal_records_refers_to_fiscal_records"),
            "fiscal_records",
            ["refers_to"],
            ["seq"],
        )
    # an invoice fiscalized again (new amounts) or refunded is delivered again
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_deliveries_webhook_id_invoice_id", type_="unique")


def downgrade() -> None:
    bind = op.get_bind()
    several = bind.execute(
        sa.text("SELECT COUNT(*) FROM fiscal_records WHERE kind <> 'sale'")
    ).scalar_one()
    if several:
        raise RuntimeError(
            f"the fiscal register holds {several} refunds, which the schema before 0007 cannot "
            "hold: it cannot go back"
        )
    op.execute(
        "DELETE FROM deliveries WHERE id NOT IN "
        "(SELECT MIN(id) FROM deliveries GROUP BY webhook_id, invoice_id)"
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f("uq_deliveries_webhook_id_invoice_id"), ["webhook_id", "invoice_id"]
        )
    with op.batch_alter_table("fiscal_records", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_fiscal_records_refers_to_fiscal_records"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_fiscal_records_invoice_id"))
        batch_op.create_unique_constraint(
            batch_op.f("uq_fiscal_records_invoice_id"), ["invoice_id"]
        )
        batch_op.drop_column("refers_to")
        batch_op.drop_column("kind")
    # (not fiscalized, perhaps one day: what "held" meant before)
    op.execute(
        "UPDATE invoices SET fiscal_status = 'held' "
        "WHERE fiscal_status IN ('awaiting approval', 'voided')"
    )
    _fiscal_status_length(16, 32, None)
