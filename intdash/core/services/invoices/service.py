"""Invoices: upserted in batches without duplicates; approved sales invoices fiscalized within
the monthly limit (held beyond it, released when there is room again), refunded when voided at
their source, refunded and fiscalized again when their amounts change (the rules:
:func:`intdash.core.fiscal.next_step`); an invoice whose tax its source has not told yet is never
fiscalized on a guess (:func:`_without_tax`); listed page by page, and the register verified.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, func, select, update

from intdash.core.clock import month_start
from intdash.core.db import WouldWait
from intdash.core.fiscal import (
    FiscalRegister,
    HashChainRegister,
    Step,
    ToFiscalize,
    Verification,
    next_step,
)
from intdash.core.heap import collections_paused
from intdash.core.invoices import InvoiceData, InvoiceKind, items_from_json, payments_from_json
from intdash.core.models import (
    FiscalRecord,
    FiscalStatus,
    Integration,
    Invoice,
    MonthlyUsage,
    RecordKind,
)
from intdash.core.services.invoices.bulk import FIELDS, insert_new, values_of
from intdash.core.services.invoices.credits import (
    AWAITING_INVOICE,
    credit_of,
    credit_waiting,
    stored_credited,
)
from intdash.core.services.invoices.fiscalizable import STORED_COLUMNS
from intdash.core.services.invoices.fiscalizable import to_fiscalize as _to_fiscalize
from intdash.core.services.invoices.listing import InvoiceRow, page
from intdash.core.services.invoices.usage import count_fiscalized, fiscalized_in_month
from intdash.core.services.plans import CURRENT

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

INVOICES = Invoice.__table__  # type: ignore[attr-defined]
RECORDS = FiscalRecord.__table__  # type: ignore[attr-defined]
USAGE = MonthlyUsage.__table__  # type: ignore[attr-defined]
INTEGRATIONS = Integration.__table__  # type: ignore[attr-defined]
_FISCALIZED = FiscalStatus.FISCALIZED.value
_HELD = FiscalStatus.HELD.value
_AWAITING_TAX = FiscalStatus.AWAITING_TAX.value
_SOLD_BEFORE = (_FISCALIZED, FiscalStatus.REFUNDED.value)
_REFUND = RecordKind.REFUND.value
_FIRST_SALE = Step.SALE  # (looked up once: an enum's members are slow to reach per invoice)
_REFUNDS = (Step.REFUND, Step.REFUND_AND_SALE)
_SALES_AGAIN = (Step.SALE_AGAIN, Step.REFUND_AND_SALE)
_SALES = (Step.SALE, *_SALES_AGAIN, Step.CREDIT)  # what needs the invoice's tax
_CREDIT = Step.CREDIT
_REFUNDING = (_REFUND, RecordKind.CREDIT.value)  # records that give back what was sold
_CREDIT_NOTE = InvoiceKind.CREDIT_NOTE
_WAIT = "wait"  # see _without_tax


@dataclass
class BatchResult:
    fetched: int = 0
    created: int = 0
    updated: int = 0
    held: int = 0
    fiscalized: int = 0  # fiscalized for the first time (what the monthly limit counts)
    released: int = 0
    refunded: int = 0  # refund records made (voided, or refunded to be fiscalized again)
    room: int | None = None  # what is left of the month's room after this batch
    outcomes: dict[str, str] | None = None  # external id: created, updated or unchanged

    def add(self, other: BatchResult) -> None:
        for name in ("fetched", "created", "updated", "held", "fiscalized", "released", "refunded"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.room is not None:
            self.room = other.room


def _amounts_changed(found: Any, data: InvoiceData) -> bool:
    """Whether what a sale records of the amounts changed (an edit of anything else does not
    make a new record)."""
    return bool(
        found.total != data.total or found.tax != data.tax or found.currency != data.currency
    )


def _as_read_before(found: Any, data: InvoiceData) -> InvoiceData:
    """An invoice whose source did not tell its tax this time (``data.tax`` is None: Zoho's list
    has none; its connector reads the invoice itself as its budgets allow), with the subtotal,
    tax, lines, buyer and payments read before kept when its total and currency are unchanged,
    rather than forgotten; so is the invoice a credit note credits (a list without tax does
    not tell it either)."""
    if found is not None and found.credits is not None and data.credits is None:
        data = replace(data, credits=found.credits)
    if (
        found is not None
        and found.tax is not None
        and (found.total, found.currency) == (data.total, data.currency)
    ):
        return replace(
            data,
            subtotal=found.subtotal,
            tax=found.tax,
            items=items_from_json(found.items) if found.items else (),
            buyer_tax_id=found.buyer_tax_id,
            payments=payments_from_json(found.payments) if found.payments else (),
        )
    return data


def _without_tax(found: Any, status: str, step: Step) -> tuple[str, Step]:
    """What becomes of an invoice whose tax its source did not tell, given what
    :func:`next_step` says of it. A record states the tax the source told, never a guess kept
    from an earlier version: one that would be fiscalized for the first time, or held (to be
    released later without another look), is stored with its tax unknown and waits, *awaiting
    tax*; one sold before (fiscalized, or refunded and approved again) stays as stored
    (``_WAIT``) until it is read with its tax, when its refund and new sale follow the usual
    rules. Anything else (nothing to record, or a refund of what was sold, which is stored)
    goes ahead."""
    if step not in _SALES and status != _HELD:
        return status, step
    if found is not None and found.fiscal_status in _SOLD_BEFORE:
        return _WAIT, Step.NOTHING
    return _AWAITING_TAX, Step.NOTHING


# built once: every push and every page reads the stored copies of what it brings
_STORED_OF = select(
    INVOICES.c.id,
    INVOICES.c.external_id,
    INVOICES.c.fiscal_status,
    *(INVOICES.c[f] for f in FIELDS),
).where(INVOICES.c.integration_id == bindparam("b_integration"))
_EXISTING = _STORED_OF.where(INVOICES.c.external_id.in_(bindparam("b_ids", expanding=True)))
# SQLite: the batch's ids as one JSON array, which SQLite unpacks, rather than a placeholder each
# (a thousand of them rendered into the statement for every page of a sync)
_IDS = func.json_each(bindparam("b_json")).table_valued("value")
_EXISTING_JSON = _STORED_OF.where(INVOICES.c.external_id.in_(select(_IDS.c.value)))
# a single push's: no list to expand into the statement
_EXISTING_ONE = _STORED_OF.where(INVOICES.c.external_id == bindparam("b_id"))


_TOUCH = (
    update(INTEGRATIONS)
    .where(INTEGRATIONS.c.id == bindparam("b_id"))
    .values(invoices_changed_at=bindparam("b_now"))
)


def _sale_stands(
    named: str,
    now_stands: dict[str, str],
    latest: dict[str, InvoiceData],
    existing: dict[str, Any],
    credited: dict[str, tuple[int, str, str]],
) -> bool:
    """Whether the document a credit note names is a sales invoice whose sale stands, as this
    batch leaves it (only a sale is credited: never another credit note, nor a purchase)."""
    if named in now_stands:
        return now_stands[named] == _FISCALIZED and latest[named].kind is InvoiceKind.SALES
    before = existing.get(named)
    if before is not None:
        return bool(before.fiscal_status == _FISCALIZED and before.kind == InvoiceKind.SALES)
    found = credited.get(named)
    return found is not None and found[1:] == (_FISCALIZED, InvoiceKind.SALES.value)


def _unrecorded_wait(
    conn: Connection, asked: list[ToFiscalize], records: list[dict[str, Any]], now: datetime
) -> None:
    """Credit notes the register was asked to credit and did not: awaiting invoice."""
    recorded = {r["invoice_id"] for r in records if r["kind"] == RecordKind.CREDIT.value}
    missed = [
        a.invoice_id for a in asked if a.kind == RecordKind.CREDIT and a.invoice_id not in recorded
    ]
    if missed:
        conn.execute(
            update(INVOICES)
            .where(INVOICES.c.id.in_(missed))
            .values(fiscal_status=AWAITING_INVOICE, updated_at=now)
        )


def _rows_of(
    existing: dict[str, Any], credited: dict[str, tuple[int, str, str]], new_ids: dict[str, int]
) -> dict[str, int]:
    """Row ids by external id: of the stored invoices read, and of the new ones."""
    rows = {external_id: row.id for external_id, row in existing.items()}
    rows.update((external_id, found[0]) for external_id, found in credited.items())
    rows.update(new_ids)
    return rows


class InvoiceService:
    def __init__(self, workspace: Workspace, register: FiscalRegister | None = None) -> None:
        self._ws = workspace
        self.register: FiscalRegister = register or HashChainRegister()
        # the month in which each integration's held invoices were last released by this
        # process: room comes back only when the month turns or the plan changes (which
        # releases for every integration at once), so a sync or a push looks once a month
        self._released: dict[int, date] = {}

    # -- the monthly limit -------------------------------------------------------------------

    def fiscalized_this_month(self, conn: Connection, integration_id: int, now: datetime) -> int:
        return fiscalized_in_month(conn, integration_id, now)

    @staticmethod
    def count_fiscalized(conn: Connection, integration_id: int, at: datetime, n: int) -> None:
        """Add ``n`` to the integration's count for the month of ``at``, in the caller's
        transaction (the one that writes the fiscal records)."""
        count_fiscalized(conn, integration_id, at, n)

    def room(
        self, conn: Connection, integration_id: int, now: datetime, limit: int | None = None
    ) -> int:
        """How many more invoices this integration may fiscalize this month: of ``limit``, the
        plan's monthly limit when the caller has read it in its transaction, else the plan read
        in the caller's transaction."""
        if limit is None:
            limit = self._ws.plans.view_of(conn.execute(CURRENT).first()).monthly_limit
        return max(0, limit - self.fiscalized_this_month(conn, integration_id, now))

    # -- writing -----------------------------------------------------------------------------

    def upsert(
        self,
        conn: Connection,
        integration_id: int,
        batch: Sequence[InvoiceData],
        now: datetime,
        room: int | None = None,
        *,
        limit: int | None = None,
        track: bool = False,
    ) -> BatchResult:
        """Insert new invoices and update changed ones, in the caller's transaction.

        Approved sales invoices are fiscalized while the month's limit allows (``room``, when
        the caller keeps count, else counted here, of ``limit`` when the caller has read the
        plan) and held beyond it; the rest follow
        :func:`~intdash.core.fiscal.next_step` (a void refunds, new amounts refund and fiscalize
        again); one whose tax its source did not tell is never fiscalized on a guess
        (:func:`_without_tax`). Within a batch the last copy of an invoice wins.
        ``result.room`` is what is left of the room afterwards; with ``track``,
        ``result.outcomes`` says what became of each invoice.

        On SQLite no collection of cyclic garbage runs meanwhile: a batch's rows and records
        are made and dropped here, cycle-free, and nothing here waits (the caller's transaction
        holds the write lock: :func:`~intdash.core.heap.collections_paused`). PostgreSQL's
        statements are round trips, and may wait for the register's lock or a row's.
        """
        if conn.dialect.name != "sqlite":
            return self._upsert(conn, integration_id, batch, now, room, limit, track)
        with collections_paused():
            return self._upsert(conn, integration_id, batch, now, room, limit, track)

    def _upsert(
        self,
        conn: Connection,
        integration_id: int,
        batch: Sequence[InvoiceData],
        now: datetime,
        room: int | None,
        limit: int | None,
        track: bool,
    ) -> BatchResult:
        latest: dict[str, InvoiceData] = {}
        credit_notes: list[InvoiceData] = []
        for data in batch:
            latest[data.external_id] = data
            if data.kind is _CREDIT_NOTE:
                credit_notes.append(data)
        result = BatchResult(fetched=len(batch))
        if not latest:
            return result
        credited: dict[str, tuple[int, str, str]] = {}  # what credit notes name, as stored
        if credit_notes:  # after the invoices they may credit, which this batch may bring
            for data in credit_notes:
                latest[data.external_id] = latest.pop(data.external_id)
            credited = stored_credited(
                conn, integration_id, {d.credits for d in credit_notes if d.credits} - set(latest)
            )
        wanted = list(latest)
        if len(wanted) == 1:
            one = {"b_integration": integration_id, "b_id": wanted[0]}
            rows = conn.execute(_EXISTING_ONE, one)
        elif conn.dialect.name == "sqlite" and not any("\x00" in i for i in wanted):
            # (SQLite's JSON text ends a string at a NUL: such an id goes in a list)
            listed = json.dumps(wanted)
            rows = conn.execute(_EXISTING_JSON, {"b_integration": integration_id, "b_json": listed})
        else:
            rows = conn.execute(_EXISTING, {"b_integration": integration_id, "b_ids": wanted})
        existing = {row.external_id: row for row in rows}
        changes: list[dict[str, Any]] = []
        new: list[InvoiceData] = []
        statuses: list[str] = []  # of the new ones
        to_register: list[ToFiscalize] = []  # in order: the stored invoices', then the new
        now_stands: dict[str, str] = {}  # with credit notes: this batch's fiscal statuses
        any_sold = False  # a sale recorded (a credit note may have waited for its invoice)
        credits: list[tuple[InvoiceData, str]] = []  # credit notes to credit, and their invoice
        first_time = held = 0  # fiscalized for the first time (what the month counts); held
        outcomes: dict[str, str] = {}
        for external_id, told in latest.items():
            found = existing.get(external_id)
            unsold = False
            data = told if told.tax is not None else _as_read_before(found, told)
            if found is None:
                status, step = next_step(None, data, False)
            else:
                values = values_of(data)
                if not any(getattr(found, f) != values[f] for f in FIELDS):
                    outcomes[external_id] = "unchanged"
                    continue
                status, step = next_step(found.fiscal_status, data, _amounts_changed(found, data))
                if data.kind is _CREDIT_NOTE and found.kind != _CREDIT_NOTE:
                    # stored as a sale before it was read as a credit note (MYOB's negative
                    # sales): a sale it made is refunded, and it is credited as one now is
                    unsold = found.fiscal_status == _FISCALIZED
                    status, step = next_step(None, data, False)
            if told.tax is None:
                status, step = _without_tax(found, status, step)
                if status == _AWAITING_TAX:
                    # not what an earlier version said: it waits for its own (but a credit
                    # note keeps the invoice it credits, which the list did not tell)
                    data = (
                        told
                        if told.credits or not data.credits
                        else replace(told, credits=data.credits)
                    )
                    values = values_of(data)
                if status == _WAIT or (
                    found is not None and not any(getattr(found, f) != values[f] for f in FIELDS)
                ):
                    outcomes[external_id] = "unchanged"
                    continue
            if step is _CREDIT:  # against its invoice's standing sale, or it waits
                named = data.credits
                if named and _sale_stands(named, now_stands, latest, existing, credited):
                    credits.append((data, named))
                else:
                    status, step = AWAITING_INVOICE, Step.NOTHING
            sold = step is _FIRST_SALE
            if sold:  # as far as the month's room goes
                if room is None:
                    room = self.room(conn, integration_id, now, limit)
                if room > 0:
                    room -= 1
                    first_time += 1
                else:
                    status, sold = _HELD, False
                    held += 1
            if credit_notes:
                now_stands[external_id] = status
            if sold or step in _SALES_AGAIN:
                any_sold = True
            if found is None:
                new.append(data)
                statuses.append(status)
                outcomes[external_id] = "created"
                continue
            if step in _REFUNDS or unsold:  # what was sold is refunded
                to_register.append(
                    _to_fiscalize(found.id, integration_id, found, RecordKind.REFUND)
                )
            if sold or step in _SALES_AGAIN:
                to_register.append(_to_fiscalize(found.id, integration_id, data))
            changes.append(
                {"row_id": found.id, "updated_at": now, "fiscal_status": status, **values}
            )
            outcomes[external_id] = "updated"
        if track:
            result.outcomes = outcomes
        if changes:
            conn.execute(
                update(INVOICES)
                .where(INVOICES.c.id == bindparam("row_id"))
                .values({f: bindparam(f) for f in (*FIELDS, "updated_at", "fiscal_status")}),
                changes,
            )
            result.updated = len(changes)
        new_ids: dict[str, int] = {}
        if new:
            ids = insert_new(conn, integration_id, new, statuses, now)
            to_register.extend(
                _to_fiscalize(invoice_id, integration_id, data)
                for invoice_id, data, status in zip(ids, new, statuses, strict=True)
                if status == _FISCALIZED and data.kind is not _CREDIT_NOTE
            )
            if credits:
                new_ids = {data.external_id: i for i, data in zip(ids, new, strict=True)}
            result.created = len(new)
        if credits:
            row_of = _rows_of(existing, credited, new_ids)
            to_register.extend(
                credit_of(row_of[d.external_id], integration_id, row_of[named], d)
                for d, named in credits
            )
        records = self.register.fiscalize(conn, to_register, now) if to_register else []
        if credits:  # one the register did not record (no standing sale after all) waits
            _unrecorded_wait(conn, to_register, records, now)
        if any_sold:  # credit notes that waited for an invoice of this batch
            records += credit_waiting(conn, integration_id, latest, self.register, now)
        if records:
            self.count_fiscalized(conn, integration_id, now, first_time)
            # each invoice whose record changed, once (delivered as it now stands)
            changed = dict.fromkeys([r["invoice_id"] for r in records])
            self._ws.deliveries.enqueue(conn, [(i, integration_id) for i in changed], now)
            result.refunded = sum(1 for r in records if r["kind"] in _REFUNDING)
        result.fiscalized, result.held, result.room = first_time, held, room
        if changes or new:
            self._touch(conn, integration_id, now)
        return result

    @staticmethod
    def _touch(conn: Connection, integration_id: int, now: datetime) -> None:
        """Note that the integration's invoices changed: the dashboard's change check."""
        conn.execute(_TOUCH, {"b_id": integration_id, "b_now": now})

    def release_due(self, conn: Connection, integration_id: int, now: datetime) -> int:
        """:meth:`release_held`, when this process has not yet for the month of ``now``."""
        month = month_start(now).date()
        if self._released.get(integration_id) == month:
            return 0
        released = self.release_held(conn, integration_id, now)
        if not released:  # nothing (more) to release: a release whose commit fails is retried
            self._released[integration_id] = month
        return released

    def release_held(self, conn: Connection, integration_id: int, now: datetime) -> int:
        """Fiscalize held invoices, oldest first, as far as this month's room allows."""
        room = self.room(conn, integration_id, now)
        if room <= 0:
            return 0
        rows = conn.execute(
            select(*STORED_COLUMNS)
            .where(INVOICES.c.integration_id == integration_id)
            .where(INVOICES.c.fiscal_status == FiscalStatus.HELD.value)
            .order_by(INVOICES.c.id)
            .limit(room)
        ).all()
        if not rows:
            return 0
        if not self._ws.db.may_wait:  # fiscalizing them is long work, not for the event loop
            raise WouldWait("held invoices to release")
        conn.execute(
            update(INVOICES)
            .where(INVOICES.c.id.in_([r.id for r in rows]))
            .values(fiscal_status=FiscalStatus.FISCALIZED.value, updated_at=now)
        )
        self.register.fiscalize(conn, [_to_fiscalize(r.id, integration_id, r) for r in rows], now)
        self.count_fiscalized(conn, integration_id, now, len(rows))
        self._touch(conn, integration_id, now)
        credited = credit_waiting(
            conn, integration_id, {r.external_id for r in rows}, self.register, now
        )
        self._ws.deliveries.enqueue(
            conn,
            [(i, integration_id) for i in dict.fromkeys([r.id for r in rows] +
                                                          [c["invoice_id"] for c in credited])],
            now,
        )  # fmt: skip
        return len(rows)

    def release_all(self) -> int:
        """Release what the limit now allows for every integration (after a plan change)."""
        now = self._ws.clock()
        released = 0
        with self._ws.db.write() as session:
            conn = session.connection()
            held = conn.execute(
                select(INVOICES.c.integration_id)
                .where(INVOICES.c.fiscal_status == FiscalStatus.HELD.value)
                .distinct()
            ).scalars()
            for integration_id in list(held):
                released += self.release_held(conn, integration_id, now)
        return released

    # -- reading -----------------------------------------------------------------------------

    def page(
        self,
        *,
        integration_uid: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
        search: str | None = None,
    ) -> list[InvoiceRow]:
        """Invoices newest first, a page at a time (keyset: pass the last id as ``before_id``),
        each once, with its latest sale and refund records' numbers. Invoices of removed
        integrations stay listed."""
        return page(
            self._ws,
            integration_uid=integration_uid,
            before_id=before_id,
            limit=limit,
            search=search,
        )

    def iter_all(
        self, integration_uid: str | None = None, batch: int = 1000
    ) -> Iterator[InvoiceRow]:
        before: int | None = None
        while rows := self.page(integration_uid=integration_uid, before_id=before, limit=batch):
            yield from rows
            before = rows[-1].id

    def verify(self) -> Verification:
        with self._ws.db.read() as session:
            return self.register.verify(session.connection())
