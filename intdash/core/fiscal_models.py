"""The tables of fiscalization by TaxCore's V-SDC (migration 0014): the outbox of what the SDC
is to sign, what intdash knows of the SDC, each integration's tax codes mapped to TaxCore's
labels, and the taxpayer's secrets (encrypted by the vault).

They live beside :mod:`intdash.core.models` on the same metadata; the workspace imports this
module, so every process that opens one knows them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from intdash.core import models as _models  # the naming convention, set on the metadata
from intdash.core.dbtypes import UTCDateTime

metadata = _models.metadata


class OutboxStatus(StrEnum):
    PENDING = "pending"  # to be sent (again) at next_attempt_at
    SENT = "sent"  # claimed and sent; no answer recorded yet (reconciled if none comes)
    SIGNED = "signed"  # the SDC's whole response is stored
    FAILED = "failed"  # refused by the SDC (or not buildable): the operator must act
    # a sale the SDC refused, refunded before it was ever signed: nothing to sign or refund
    WITHDRAWN = "withdrawn"


class FiscalOutbox(SQLModel, table=True):
    """One sale or refund the SDC is to sign, written in the transaction that records it in the
    local register (``record_seq``), sent from outside any transaction.

    ``content`` is the invoice as it stood when recorded (its items, payments, buyer); the
    ``request`` is built from it at the first send and kept, with its ``request_id``, so that a
    retry after a time-out is the same request.
    """

    __tablename__: ClassVar[str] = "fiscal_outbox"
    __table_args__ = (
        Index(None, "status", "next_attempt_at"),  # what is due
        Index(None, "invoice_id", "id"),  # an invoice's rows, in order
        Index(None, "integration_id", "status"),  # what an integration waits for
    )

    id: int | None = Field(default=None, primary_key=True)
    record_seq: int = Field(foreign_key="fiscal_records.seq", unique=True)
    invoice_id: int = Field(foreign_key="invoices.id")
    integration_id: int = Field(foreign_key="integrations.id")
    kind: str = Field(max_length=8)  # sale or refund
    refers_to: int | None = Field(default=None, foreign_key="fiscal_outbox.id")  # a refund's sale
    status: str = Field(default=OutboxStatus.PENDING.value, max_length=16)
    request_id: str = Field(max_length=64, unique=True)
    content: str = Field(sa_type=Text)  # JSON
    request: str | None = Field(default=None, sa_type=Text)  # JSON, as sent
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    signed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sdc_invoice_number: str | None = Field(default=None, max_length=100, unique=True)
    sdc_time: str | None = Field(default=None, max_length=64)  # sdcDateTime, as the SDC wrote it
    invoice_counter: str | None = Field(default=None, max_length=100)
    total_counter: int | None = None
    verification_url: str | None = Field(default=None, sa_type=Text)
    qr: str | None = Field(default=None, sa_type=Text)  # base64 image
    journal: str | None = Field(default=None, sa_type=Text)
    signature: str | None = Field(default=None, sa_type=Text)
    response: str | None = Field(default=None, sa_type=Text)  # JSON, whole


class FiscalState(SQLModel, table=True):
    """What intdash knows of the SDC, by name: its last status (tax labels, group), whether
    it is reachable (since when not), as JSON."""

    __tablename__: ClassVar[str] = "fiscal_state"

    name: str = Field(primary_key=True, max_length=32)
    value: str = Field(sa_type=Text)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class TaxLabelMap(SQLModel, table=True):
    """An integration's tax code and the TaxCore label it is fiscalized with."""

    __tablename__: ClassVar[str] = "tax_label_map"

    integration_id: int = Field(foreign_key="integrations.id", primary_key=True)
    tax_code: str = Field(primary_key=True, max_length=100)
    label: str = Field(max_length=8)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class FiscalSecret(SQLModel, table=True):
    """One of the taxpayer's secrets (the .pfx, its password, the PAC), encrypted by the vault
    and bound to its name; rotated and checked with every other secret."""

    __tablename__: ClassVar[str] = "fiscal_secrets"

    name: str = Field(primary_key=True, max_length=32)
    ciphertext: str = Field(sa_type=Text)
    updated_at: datetime = Field(sa_type=UTCDateTime)
