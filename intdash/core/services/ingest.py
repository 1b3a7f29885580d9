"""Invoices pushed by a Custom Integration: the same upsert, monthly limit and fiscal register as
synced ones (a pushed void refunds a fiscalized invoice), with each invoice's outcome and fiscal
records to answer with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from intdash.core.catalog import type_spec
from intdash.core.errors import ConflictError, FieldErrors, IntdashError, NotFoundError
from intdash.core.invoices import InvoiceData
from intdash.core.models import FiscalRecord, Integration, Invoice, RecordKind
from intdash.core.plans import LicenceState
from intdash.core.status import Reason

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

INVOICES = Invoice.__table__  # type: ignore[attr-defined]
RECORDS = FiscalRecord.__table__  # type: ignore[attr-defined]


class IntegrationRefused(IntdashError):
    """The key is good but its integration may not take invoices now (answered with 403)."""


@dataclass(frozen=True)
class StoredInvoice:
    """An invoice as intdash holds it, with its fiscal record when it has one."""

    external_id: str
    number: str | None
    kind: str
    contact: str | None
    issue_date: Any
    due_date: Any
    currency: str
    subtotal: Any
    tax: Any
    total: Any
    source_status: str | None
    source_updated_at: datetime | None
    fiscal_status: str
    received_at: datetime
    updated_at: datetime
    fiscal: dict[str, Any] | None  # its latest sale record
    outcome: str | None = None  # created, updated or unchanged, when just accepted
    refund: dict[str, Any] | None = None  # the refund of that sale, when refunded

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "external_id": self.external_id,
            "number": self.number,
            "kind": self.kind,
            "contact": self.contact,
            "issue_date": self.issue_date.isoformat() if self.issue_date else None,
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "currency": self.currency,
            "subtotal": None if self.subtotal is None else str(self.subtotal),
            "tax": None if self.tax is None else str(self.tax),
            "total": str(self.total),
            "status": self.source_status,
            "updated_at": self.source_updated_at.isoformat() if self.source_updated_at else None,
            "fiscal_status": self.fiscal_status,
            "received_at": self.received_at.isoformat(),
            "fiscal_record": self.fiscal,
            "refund_record": self.refund,
        }
        if self.outcome is not None:
            body = {"outcome": self.outcome, **body}
        return body


def repeated(external_ids: Sequence[str]) -> list[tuple[int, int]]:
    """Each position whose external id came before, with the position where it first came."""
    first: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []
    for at, external_id in enumerate(external_ids):
        if external_id in first:
            repeats.append((at, first[external_id]))
        else:
            first[external_id] = at
    return repeats


class IngestService:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def check(self, uid: str) -> None:
        """Raise unless ``uid`` is a Custom Integration that may take invoices now (asked on
        every request: the few facts that refuse one, not the whole status)."""
        ws = self._ws
        with ws.db.read() as session:
            row = ws.integrations.find(session, uid)
            plan = ws.plans.current(session)
        if not type_spec(row.type).pushes:
            raise IntegrationRefused(f"{uid} is not a Custom Integration")
        reason = (
            Reason.REMOVED
            if row.removed_at is not None
            else Reason.LICENCE_LAPSED
            if plan.licence is LicenceState.LAPSED
            else Reason.SYNC_DISABLED
            if not row.sync_enabled
            else None
        )
        # (a reached monthly limit refuses nothing: the invoices are taken, and held)
        if reason is not None:
            raise IntegrationRefused(f"{uid} takes no invoices: {reason.value}")

    def accept(self, uid: str, invoices: Sequence[InvoiceData]) -> list[StoredInvoice]:
        """Upsert ``invoices`` for ``uid`` in one transaction; returns each as stored, in the
        order given. An external id given twice is refused (which copy holds would be a guess,
        and only one would be fiscalized)."""
        repeats = repeated([data.external_id for data in invoices])
        if repeats:
            raise FieldErrors(
                {
                    f"invoices[{at}].external_id": f"the same as invoices[{first}].external_id"
                    for at, first in repeats
                }
            )
        for attempt in range(3):
            try:
                return self._accept(uid, invoices)
            except IntegrityError:
                # the same new invoice pushed twice at once: the other insert won; again, it
                # is now an update or nothing
                if attempt == 2:
                    raise ConflictError(
                        "the same invoices are being pushed concurrently; retry"
                    ) from None
        raise AssertionError("unreachable")

    def _accept(self, uid: str, invoices: Sequence[InvoiceData]) -> list[StoredInvoice]:
        ws = self._ws
        now = ws.clock()
        with ws.db.write() as session:
            conn = session.connection()
            # one push at a time per integration, so that the month's room is counted right
            row = conn.execute(
                select(Integration.__table__)  # type: ignore[attr-defined]
                .where(Integration.__table__.c.uid == uid)  # type: ignore[attr-defined]
                .with_for_update()
            ).first()
            if row is None:
                raise NotFoundError(f"no integration with UID {uid!r}")
            ws.invoices.release_held(conn, row.id, now)
            result = ws.invoices.upsert(conn, row.id, invoices, now, track=True)
            outcomes = result.outcomes or {}
            stored = self.read(conn, row.id, [data.external_id for data in invoices])
        return [
            _with_outcome(stored[data.external_id], outcomes.get(data.external_id))
            for data in invoices
        ]

    def get(self, uid: str, external_id: str) -> StoredInvoice:
        with self._ws.db.read() as session:
            row = self._ws.integrations.find(session, uid)
            assert row.id is not None
            found = self.read(session.connection(), row.id, [external_id])
        if external_id not in found:
            raise NotFoundError(f"{uid} has no invoice with external id {external_id!r}")
        return found[external_id]

    @staticmethod
    def read(conn: Any, integration_id: int, external_ids: list[str]) -> dict[str, StoredInvoice]:
        rows = conn.execute(
            select(INVOICES)
            .where(INVOICES.c.integration_id == integration_id)
            .where(INVOICES.c.external_id.in_(sorted(set(external_ids))))
        ).all()
        records = _records(conn, [r.id for r in rows])
        found: dict[str, StoredInvoice] = {}
        for r in rows:
            sale, refund = records.get(r.id, (None, None))
            found[r.external_id] = StoredInvoice(
                r.external_id, r.number, r.kind, r.contact, r.issue_date, r.due_date,
                r.currency, r.subtotal, r.tax, r.total, r.source_status, r.source_updated_at,
                r.fiscal_status, r.received_at, r.updated_at, sale, refund=refund,
            )  # fmt: skip
        return found


def _records(conn: Any, invoice_ids: list[int]) -> dict[int, tuple[Any, Any]]:
    """Each invoice's latest sale record, and the refund of that sale if it has one."""
    if not invoice_ids:
        return {}
    sales: dict[int, dict[str, Any]] = {}
    refunds: dict[int, dict[str, Any]] = {}  # by the sale they refund
    for r in conn.execute(
        select(RECORDS).where(RECORDS.c.invoice_id.in_(invoice_ids)).order_by(RECORDS.c.seq)
    ):
        record = {
            "seq": r.seq,
            "kind": r.kind,
            "refers_to": r.refers_to,
            "recorded_at": r.recorded_at.isoformat(),
            "invoice_digest": r.invoice_digest,
            "prev_hash": r.prev_hash,
            "hash": r.hash,
        }
        if r.kind == RecordKind.REFUND.value:
            refunds[r.refers_to] = record
        else:
            sales[r.invoice_id] = record
    return {i: (sale, refunds.get(sale["seq"])) for i, sale in sales.items()}


def _with_outcome(invoice: StoredInvoice, outcome: str | None) -> StoredInvoice:
    return replace(invoice, outcome=outcome or "unchanged")
