"""The tables. Alembic migrations under ``migrations/versions`` create exactly these."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, Index, MetaData, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from intdash.core.dbtypes import Money, UTCDateTime

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


class FiscalStatus(StrEnum):
    """Where an invoice stands in the fiscal register.

    Only an approved sales invoice is fiscalized, once within the monthly limit; a fiscalized one
    that is voided (or no longer approved) at its source is refunded, and one whose amounts
    change is refunded and fiscalized again.
    """

    RECEIVED = "received"  # a purchase invoice: kept, never fiscalized
    HELD = "held"  # approved, over the monthly limit: released when there is room
    FISCALIZED = "fiscalized"  # its latest sale record stands
    AWAITING_APPROVAL = "awaiting approval"  # a sales invoice not yet approved at its source
    AWAITING_TAX = "awaiting tax"  # approved, its tax not read from its source yet (Zoho)
    REFUNDED = "refunded"  # fiscalized, then voided (or no longer approved): its sale refunded
    VOIDED = "voided"  # voided at its source before it was fiscalized: not fiscalized, not held
    # a credit note approved at its source whose invoice has no standing sale (it names none,
    # or that invoice is not fiscalized yet): fiscalized once it has one
    AWAITING_INVOICE = "awaiting invoice"


class RecordKind(StrEnum):
    """What a fiscal record says: an invoice sold, an earlier sale of it refunded, or a credit
    note's own amounts refunded against another invoice's sale."""

    SALE = "sale"
    REFUND = "refund"
    CREDIT = "credit"


class RunOutcome(StrEnum):
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    PARTIAL = "partial"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its process died mid-run (recorded by the run that took over)


class Integration(SQLModel, table=True):
    __tablename__: ClassVar[str] = "integrations"
    # the dashboard's change check reads the latest of these: index look-ups, not scans; and
    # every fiscalizing transaction (a push, a sync's page) looks up the webhooks by type
    __table_args__ = (
        Index(None, "invoices_changed_at"),
        Index(None, "last_attempted_sync"),
        Index(None, "type"),
    )

    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(max_length=32, unique=True)
    type: str = Field(max_length=16)
    name: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime)
    settings: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    sync_enabled: bool = True
    sync_from: date | None = None
    # the invoices' paging cursor, and the credit notes' beside it (providers.paging: streams)
    cursor: str | None = Field(default=None, max_length=420)
    last_attempted_sync: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_successful_sync: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_sync_error: str | None = Field(default=None, sa_type=Text)
    auth_error: str | None = Field(default=None, sa_type=Text)
    removed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # when any of its invoices was last written: what the dashboard's change check reads
    invoices_changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # a Custom/Webhook's failed delivery attempts since its last success
    delivery_failures: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # what its platform last said is left of the tenant's daily API calls (see core.budget)
    daily_remaining: int | None = None
    daily_observed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    daily_resets_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # when it is next due to sync (see core.schedule); None until it has been scheduled
    next_sync_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    # the platform's id of the organisation it is connected to (Xero's tenant): webhook events
    # name it, and it is no secret
    remote_id: str | None = Field(default=None, max_length=100, index=True)


class Credential(SQLModel, table=True):
    """One encrypted secret of an integration (token set, client secret, tenant id, ...).

    ``version`` grows on every write, so that a writer can compare-and-swap.
    """

    __tablename__: ClassVar[str] = "credentials"
    __table_args__ = (UniqueConstraint("integration_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    integration_id: int = Field(foreign_key="integrations.id", index=True)
    name: str = Field(max_length=64)
    ciphertext: str = Field(sa_type=Text)
    version: int = 1
    updated_at: datetime = Field(sa_type=UTCDateTime)


class VaultKey(SQLModel, table=True):
    """A version of the vault key the secrets are (or are about to be) under, known by its
    check value (an HMAC of a fixed label under the key; never the key itself)."""

    __tablename__: ClassVar[str] = "vault_keys"

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    check_value: str = Field(max_length=64)
    recorded_at: datetime = Field(sa_type=UTCDateTime)


class ApiKey(SQLModel, table=True):
    __tablename__: ClassVar[str] = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    key_id: str = Field(max_length=32, unique=True)
    integration_id: int = Field(foreign_key="integrations.id", index=True)
    secret_hash: str = Field(max_length=64)
    label: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Invoice(SQLModel, table=True):
    __tablename__: ClassVar[str] = "invoices"
    __table_args__ = (
        UniqueConstraint("integration_id", "external_id"),
        Index(None, "integration_id", "id"),  # one integration's history, newest first
        # the few credit notes waiting for their invoice (services.invoices.credits): an index
        # of those alone, which the writes of every other invoice never touch
        Index(
            "ix_invoices_awaiting_invoice",
            "integration_id",
            "credits",
            sqlite_where=text("fiscal_status = 'awaiting invoice'"),
            postgresql_where=text("fiscal_status = 'awaiting invoice'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    integration_id: int = Field(foreign_key="integrations.id")
    external_id: str = Field(max_length=200)
    number: str | None = Field(default=None, max_length=200)
    kind: str = Field(default="sales", max_length=16)  # sales, purchase or credit note
    contact: str | None = Field(default=None, max_length=400)
    issue_date: date | None = None
    due_date: date | None = None
    currency: str = Field(max_length=3)
    subtotal: Decimal | None = Field(default=None, sa_type=Money)  # None: not known yet
    tax: Decimal | None = Field(default=None, sa_type=Money)  # None: not known yet
    total: Decimal = Field(sa_type=Money)
    source_status: str | None = Field(default=None, max_length=32)
    source_updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # what fiscalization needs beyond the totals (see core.invoices: line_columns): JSON text of
    # its line items and payments, None where not read (one without items is one item of its
    # total), and the buyer's tax id where its platform has one
    items: str | None = Field(default=None, sa_type=Text)
    buyer_tax_id: str | None = Field(default=None, max_length=100)
    payments: str | None = Field(default=None, sa_type=Text)
    # a credit note's: the external id of the invoice it credits (None: names none yet)
    credits: str | None = Field(default=None, max_length=200)
    fiscal_status: str = Field(
        default=FiscalStatus.RECEIVED.value,
        max_length=32,
        sa_column_kwargs={"server_default": FiscalStatus.RECEIVED.value},
    )
    received_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class FiscalRecord(SQLModel, table=True):
    """An entry of the fiscal register: numbered, timed, and hash-chained to the one before.

    An invoice has a sale record once fiscalized; a refund record names the sale it reverses
    (``refers_to``), and an invoice whose amounts changed has a refund and a new sale.
    """

    __tablename__: ClassVar[str] = "fiscal_records"

    __table_args__ = (
        Index(None, "integration_id", "recorded_at"),
        # an invoice's records: an index look-up (no wider: every record written pays for it)
        Index(None, "invoice_id"),
    )

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    invoice_id: int = Field(foreign_key="invoices.id")
    integration_id: int = Field(foreign_key="integrations.id")
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    kind: str = Field(
        default=RecordKind.SALE.value,
        max_length=8,
        sa_column_kwargs={"server_default": RecordKind.SALE.value},
    )
    refers_to: int | None = Field(default=None, foreign_key="fiscal_records.seq")  # a refund's sale
    invoice_digest: str = Field(max_length=64)  # SHA-256 of the invoice as fiscalized
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class SyncRun(SQLModel, table=True):
    __tablename__: ClassVar[str] = "sync_runs"
    __table_args__ = (
        Index(None, "integration_id", "started_at"),
        Index(None, "ended_at"),  # the dashboard's change check: a look-up, not a scan
        # the runs going on now, apart: a sync's start looks for one of its integration left
        # running among these few, not among all its runs
        Index(
            "ix_sync_runs_running",
            "integration_id",
            sqlite_where=text("outcome = 'running'"),
            postgresql_where=text("outcome = 'running'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    integration_id: int = Field(foreign_key="integrations.id")
    trigger: str = Field(max_length=16)  # schedule or manual
    started_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    fetched: int = 0
    created: int = 0
    updated: int = 0
    held: int = 0
    outcome: str = Field(default=RunOutcome.RUNNING.value, max_length=16)
    error: str | None = Field(default=None, sa_type=Text)


class Plan(SQLModel, table=True):
    """The workspace's plan and licence: a single row."""

    __tablename__: ClassVar[str] = "plan"

    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    tier: str = Field(max_length=16)
    monthly_limit: int | None = None  # None: the tier's default from the settings
    licence_expires: date | None = None
    updated_at: datetime = Field(sa_type=UTCDateTime)


class AuditEvent(SQLModel, table=True):
    __tablename__: ClassVar[str] = "audit_events"
    __table_args__ = (Index(None, "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    integration_uid: str | None = Field(default=None, max_length=32, index=True)
    detail: str | None = Field(default=None, sa_type=Text)


class WebhookReceipt(SQLModel, table=True):
    """A platform webhook body received (by its digest): a replayed body is acknowledged and
    ignored. Kept for a day."""

    __tablename__: ClassVar[str] = "webhook_receipts"

    digest: str = Field(primary_key=True, max_length=64)
    source: str = Field(max_length=16)
    received_at: datetime = Field(sa_type=UTCDateTime, index=True)


class Lease(SQLModel, table=True):
    """A named, expiring claim that one holder (a process, a task) has on something: refreshing
    an integration's token, running its sync, running the scheduler."""

    __tablename__: ClassVar[str] = "leases"

    name: str = Field(primary_key=True, max_length=120)
    holder: str = Field(max_length=120)
    acquired_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class DeliveryState(StrEnum):
    PENDING = "pending"  # to be attempted (again) at next_attempt_at
    DELIVERED = "delivered"
    FAILED = "failed"  # given up on: 24 hours of failures; Resend tries again


class Delivery(SQLModel, table=True):
    """The outbox of a Custom/Webhook integration: one row each time an invoice's fiscal record
    changes (fiscalized, fiscalized again with new amounts, refunded), written in the transaction
    that makes the record, so that a crash delivers it late, not never."""

    __tablename__: ClassVar[str] = "deliveries"
    __table_args__ = (
        Index(None, "state", "next_attempt_at"),  # what is due
        Index(None, "webhook_id", "id"),  # one webhook's deliveries, newest first
    )

    id: int | None = Field(default=None, primary_key=True)
    webhook_id: int = Field(foreign_key="integrations.id")
    invoice_id: int = Field(foreign_key="invoices.id")
    event_id: str = Field(max_length=64, unique=True)  # webhook-id: the same on every attempt
    created_at: datetime = Field(sa_type=UTCDateTime)
    state: str = Field(default=DeliveryState.PENDING.value, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_status: int | None = None
    last_error: str | None = Field(default=None, max_length=400)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class MonthlyUsage(SQLModel, table=True):
    """Invoices fiscalized per integration and calendar month (UTC): what the monthly limit
    counts, kept up in the transactions that fiscalize, so that reading it is one look-up
    rather than a count of the month's records."""

    __tablename__: ClassVar[str] = "monthly_usage"

    integration_id: int = Field(foreign_key="integrations.id", primary_key=True)
    month: date = Field(primary_key=True)  # the first day of the month
    fiscalized: int = 0
