"""The fiscal register: every fiscalized invoice gets a numbered, timed record whose SHA-256 hash
covers the invoice and the record before it, so that altering or removing any record breaks the
chain from there on.

A record is a sale, or a refund that names the sale it reverses (``refers_to``): an invoice voided
after it was fiscalized has a sale and its refund; one whose amounts changed has a sale, its
refund, and a new sale. A credit note's record is a credit: its own amounts refunded against
the standing sale of the invoice it credits, which it names (an invoice may be credited several
times, in part; its sale stands). A sale's hash is computed as it always was, so records made
before there were refunds verify unchanged; a refund's or a credit's hash covers its kind and
the sale it names as well.

:class:`FiscalRegister` is the interface the rest of intdash uses; :class:`HashChainRegister` is
the local implementation. A tax authority's fiscalization service can take its place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection, insert, select, text

from intdash.core.db import insert_rows
from intdash.core.invoices import InvoiceData, InvoiceKind, SourceState
from intdash.core.models import FiscalRecord, FiscalStatus, Invoice, RecordKind

GENESIS = "0" * 64
_sha256 = hashlib.sha256
_records = FiscalRecord.__table__  # type: ignore[attr-defined]
_invoices = Invoice.__table__  # type: ignore[attr-defined]


class Step(Enum):
    """What the register is asked to record when an invoice arrives or changes."""

    NOTHING = "nothing"
    SALE = "sale"  # its first sale: counts against the monthly limit (held if over it)
    SALE_AGAIN = "sale again"  # fiscalized before and refunded: counted already
    REFUND = "refund"  # its standing sale is refunded
    REFUND_AND_SALE = "refund and sale"  # new amounts: the old sale refunded, a new one made
    CREDIT = "credit"  # a credit note: credited against its invoice's standing sale


# (plain strings: an enum member's value is slow to reach, and this runs for every invoice)
_FISCALIZED = FiscalStatus.FISCALIZED.value
_REFUNDED = FiscalStatus.REFUNDED.value
_HELD = FiscalStatus.HELD.value
_RECEIVED = FiscalStatus.RECEIVED.value
_AWAITING = FiscalStatus.AWAITING_APPROVAL.value
_VOIDED = FiscalStatus.VOIDED.value
_SALES = InvoiceKind.SALES.value
_CREDIT_NOTE = InvoiceKind.CREDIT_NOTE.value
_APPROVED = SourceState.APPROVED.value
_PENDING = SourceState.PENDING.value
_VOID = SourceState.VOID.value
_SALE = RecordKind.SALE.value
_REFUND = RecordKind.REFUND.value
_CREDIT = RecordKind.CREDIT.value
_NOTHING, _FIRST_SALE, _SALE_AGAIN = Step.NOTHING, Step.SALE, Step.SALE_AGAIN
_REFUND_ONLY, _REFUND_AND_SALE = Step.REFUND, Step.REFUND_AND_SALE


def next_step(before: str | None, data: InvoiceData, amounts_changed: bool) -> tuple[str, Step]:
    """An invoice's fiscal status and what to record, from its status ``before`` (None: new)
    and the invoice as its source now has it.

    Only an approved sales invoice has a standing sale: one that stops being approved (voided,
    or back to a draft) is refunded, and one whose amounts (total, tax, currency) change while
    approved is refunded and sold again; other edits record nothing. An invoice counts against
    the monthly limit once, when first fiscalized. One never fiscalized follows its source:
    awaiting approval, voided (not fiscalized unless approved later), or fiscalized
    (``Step.SALE``: held instead when the month has no room; a held invoice stays held until
    released). Purchase invoices are received, never fiscalized.

    A credit note approved at its source is credited (``Step.CREDIT``: it waits, *awaiting
    invoice*, while the invoice it credits has no standing sale); once credited it stands
    (later edits record nothing). It never counts against the monthly limit.
    """
    if data.kind == _CREDIT_NOTE:
        return _credit_step(before, data)
    sales = data.kind == _SALES
    if before == _FISCALIZED:
        if not sales or data.state != _APPROVED:
            return _REFUNDED, _REFUND_ONLY
        return _FISCALIZED, _REFUND_AND_SALE if amounts_changed else _NOTHING
    if before == _REFUNDED:
        if sales and data.state == _APPROVED:
            return _FISCALIZED, _SALE_AGAIN
        return _REFUNDED, _NOTHING
    if not sales:
        return _RECEIVED, _NOTHING
    if data.state == _PENDING:
        return _AWAITING, _NOTHING
    if data.state == _VOID:
        return _VOIDED, _NOTHING
    if before == _HELD:
        return _HELD, _NOTHING  # released oldest first, as room allows
    return _FISCALIZED, _FIRST_SALE


def _credit_step(before: str | None, data: InvoiceData) -> tuple[str, Step]:
    if before == _FISCALIZED:
        return _FISCALIZED, _NOTHING
    if data.state == _PENDING:
        return _AWAITING, _NOTHING
    if data.state == _VOID:
        return _VOIDED, _NOTHING
    return _FISCALIZED, Step.CREDIT


class ToFiscalize(NamedTuple):
    """What the register is told about an invoice (a tuple: one is made for every invoice
    fiscalized, and a frozen dataclass costs twice as much to make)."""

    invoice_id: int
    integration_id: int
    external_id: str
    number: str | None
    issue_date: str | None
    currency: str
    total: str
    tax: str
    kind: RecordKind = RecordKind.SALE  # a refund reverses the invoice's latest sale
    credits: int | None = None  # a credit's: the invoice (id) whose standing sale it names


@dataclass(frozen=True)
class Verification:
    records: int
    first_broken: int | None  # the sequence number of the first bad record
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.first_broken is None


class FiscalRegister(Protocol):
    def fiscalize(
        self, conn: Connection, invoices: Sequence[ToFiscalize], at: datetime
    ) -> list[dict[str, Any]]:
        """Record ``invoices`` in this order, in the caller's transaction; returns the records.

        A refund reverses its invoice's latest sale, recorded before or earlier in ``invoices``;
        an invoice whose latest sale is already refunded (or that has none) gets no refund.
        """

    def verify(self, conn: Connection) -> Verification:
        """Check the whole register."""


def invoice_digest(invoice: ToFiscalize) -> str:
    """SHA-256 of the invoice as it is fiscalized: later edits at the source do not change it."""
    payload = (
        f"{invoice.integration_id}|{invoice.external_id}|{invoice.number or ''}|"
        f"{invoice.issue_date or ''}|{invoice.currency}|{invoice.total}|{invoice.tax}"
    )
    return _sha256(payload.encode("utf-8")).hexdigest()


def record_hash(
    seq: int,
    prev_hash: str,
    recorded_at: datetime | str,
    digest: str,
    kind: str = _SALE,
    refers_to: int | None = None,
) -> str:
    """The record's hash; ``recorded_at`` may come formatted (one batch shares one moment).

    A sale that names no other record is hashed as every record was before refunds existed;
    anything else folds its kind and the record it names in, so that neither can be altered.
    """
    stamp = recorded_at if isinstance(recorded_at, str) else stamp_of(recorded_at)
    payload = f"{seq}|{prev_hash}|{stamp}|{digest}"
    if kind != _SALE or refers_to is not None:
        payload += f"|{kind}|{'' if refers_to is None else refers_to}"
    return hashlib.sha256(payload.encode()).hexdigest()


def stamp_of(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


_SQLITE_SALES = (
    "INSERT INTO fiscal_records (seq, invoice_id, integration_id, recorded_at, invoice_digest, "
    "prev_hash, hash) VALUES"
)
_SQLITE_REFUNDS = (
    "INSERT INTO fiscal_records (seq, invoice_id, integration_id, recorded_at, kind, refers_to, "
    "invoice_digest, prev_hash, hash) VALUES"
)


_HEAD = select(_records.c.seq, _records.c.hash).order_by(_records.c.seq.desc()).limit(1)


REGISTER_LOCK = 4772002  # PostgreSQL's advisory lock of the register, held to its commit


class HashChainRegister:
    """A local, tamper-evident register: a SHA-256 chain over the records."""

    def _lock(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SELECT pg_advisory_xact_lock({REGISTER_LOCK})"))
        # SQLite: the caller's write transaction already holds the only write lock

    def fiscalize(
        self, conn: Connection, invoices: Sequence[ToFiscalize], at: datetime
    ) -> list[dict[str, Any]]:
        if not invoices:
            return []
        self._lock(conn)
        head = conn.execute(_HEAD).first()
        seq, prev = (head[0], head[1]) if head else (0, GENESIS)
        # each refunded invoice's sale not yet refunded: (its seq, its invoice digest)
        standing = self._standing_sales(
            conn,
            {i.invoice_id for i in invoices if i.kind == _REFUND}
            | {i.credits for i in invoices if i.kind == _CREDIT and i.credits is not None},
        )
        rows: list[dict[str, Any]] = []
        stamp = stamp_of(at)
        # SQLite takes the driver's executemany (see InvoiceService's bulk insert): its values
        # made in the same pass; sales take the columns' defaults (kind "sale", refers_to NULL),
        # two values fewer to bind for nearly every record; refunds, which name the sale, after
        sqlite = conn.dialect.name == "sqlite"
        db_stamp = at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        sales: list[tuple[Any, ...]] = []
        refunds: list[tuple[Any, ...]] = []
        for invoice in invoices:
            refers_to: int | None = None
            kind = _SALE if invoice.kind == _SALE else str(invoice.kind)
            if kind == _REFUND:
                sale = standing.get(invoice.invoice_id)
                if sale is None:
                    continue  # nothing standing to refund: never refund twice
                refers_to, content = sale  # a refund reverses exactly what was recorded
                standing[invoice.invoice_id] = None
            elif kind == _CREDIT:
                sale = standing.get(invoice.credits) if invoice.credits is not None else None
                if sale is None:
                    continue  # nothing standing to credit (the caller keeps it waiting)
                refers_to, content = sale[0], invoice_digest(invoice)  # its own amounts
            else:
                content = invoice_digest(invoice)
            seq += 1
            if refers_to is None and kind == _SALE:  # record_hash's first case, spelled out
                digest = _sha256(f"{seq}|{prev}|{stamp}|{content}".encode()).hexdigest()
            else:
                digest = record_hash(seq, prev, stamp, content, kind, refers_to)
            rows.append(
                {
                    "seq": seq,
                    "invoice_id": invoice.invoice_id,
                    "integration_id": invoice.integration_id,
                    "recorded_at": at,
                    "kind": kind,
                    "refers_to": refers_to,
                    "invoice_digest": content,
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            if sqlite:
                if kind == _SALE:
                    sales.append((seq, invoice.invoice_id, invoice.integration_id, db_stamp,
                                  content, prev, digest))  # fmt: skip
                else:
                    refunds.append((seq, invoice.invoice_id, invoice.integration_id, db_stamp,
                                    kind, refers_to, content, prev, digest))  # fmt: skip
            if kind == _SALE and invoice.invoice_id in standing:
                standing[invoice.invoice_id] = (seq, content)
            prev = digest
        if not rows:
            return rows
        if sqlite:
            for statement, values in ((_SQLITE_SALES, sales), (_SQLITE_REFUNDS, refunds)):
                insert_rows(conn, statement, values)
        else:
            conn.execute(insert(_records), rows)
        return rows

    @staticmethod
    def _standing_sales(
        conn: Connection, invoice_ids: set[int]
    ) -> dict[int, tuple[int, str] | None]:
        """Each of these invoices' latest sale record if no refund names it yet, else None."""
        if not invoice_ids:
            return {}
        latest: dict[int, tuple[int, str]] = {}
        refunded: set[int] = set()
        for row in conn.execute(
            select(
                _records.c.seq,
                _records.c.invoice_id,
                _records.c.kind,
                _records.c.refers_to,
                _records.c.invoice_digest,
            )
            .where(_records.c.invoice_id.in_(sorted(invoice_ids)))
            .order_by(_records.c.seq)
        ):
            if row.kind == _SALE:
                latest[row.invoice_id] = (row.seq, row.invoice_digest)
            elif row.refers_to is not None:
                refunded.add(row.refers_to)
        standing: dict[int, tuple[int, str] | None] = dict.fromkeys(invoice_ids)
        for invoice_id, sale in latest.items():
            if sale[0] not in refunded:
                standing[invoice_id] = sale
        return standing

    def verify(self, conn: Connection, batch: int = 5000) -> Verification:
        prev, expected, count = GENESIS, 1, 0
        refunded: set[int] = set()  # the sales refunded so far (few: refunds are rare)
        while True:
            rows = conn.execute(
                select(
                    _records.c.seq,
                    _records.c.recorded_at,
                    _records.c.kind,
                    _records.c.refers_to,
                    _records.c.invoice_id,
                    _records.c.invoice_digest,
                    _records.c.prev_hash,
                    _records.c.hash,
                    _invoices.c.id,
                )
                .join(_invoices, _invoices.c.id == _records.c.invoice_id, isouter=True)
                .where(_records.c.seq >= expected)
                .order_by(_records.c.seq)
                .limit(batch)
            ).all()
            if not rows:
                return Verification(count, None, None)
            originals = self._originals(conn, {r.refers_to for r in rows if r.refers_to})
            for row in rows:
                count += 1
                if row.seq != expected:
                    return Verification(count, expected, f"record {expected} is missing")
                if row.prev_hash != prev:
                    return Verification(
                        count, row.seq, f"record {row.seq} does not follow record {row.seq - 1}"
                    )
                content = (row.seq, prev, row.recorded_at, row.invoice_digest)
                if record_hash(*content, row.kind, row.refers_to) != row.hash:
                    return Verification(count, row.seq, f"record {row.seq} was altered")
                if row.id is None:
                    return Verification(count, row.seq, f"record {row.seq}'s invoice is gone")
                problem = self._refund_problem(row, originals, refunded)
                if problem is not None:
                    return Verification(count, row.seq, problem)
                prev, expected = row.hash, expected + 1

    @staticmethod
    def _originals(conn: Connection, seqs: set[int]) -> dict[int, Any]:
        if not seqs:
            return {}
        found = conn.execute(
            select(
                _records.c.seq, _records.c.kind, _records.c.invoice_id, _records.c.invoice_digest
            ).where(_records.c.seq.in_(sorted(seqs)))
        )
        return {r.seq: r for r in found}

    @staticmethod
    def _refund_problem(row: Any, originals: dict[int, Any], refunded: set[int]) -> str | None:
        """What is wrong with a record as a sale or a refund (its hash already checked)."""
        if row.kind == _SALE:
            if row.refers_to is not None:
                return f"record {row.seq} is a sale that names record {row.refers_to}"
            return None
        named = row.refers_to
        original = originals.get(named) if named is not None else None
        if row.kind == _CREDIT:  # a credit note's own amounts, against another invoice's sale
            if (
                original is None
                or named >= row.seq
                or original.kind != _SALE
                or original.invoice_id == row.invoice_id
            ):
                return f"record {row.seq} credits no earlier sale of another invoice"
            return None
        if row.kind != _REFUND:
            return f"record {row.seq} is of no kind the register knows ({row.kind!r})"
        if (
            original is None
            or named >= row.seq
            or original.kind != _SALE
            or original.invoice_id != row.invoice_id
        ):
            return f"record {row.seq} refunds no earlier sale of its invoice"
        if original.invoice_digest != row.invoice_digest:
            return f"record {row.seq} does not refund what record {named} recorded"
        if named in refunded:
            return f"record {row.seq} refunds record {named} a second time"
        refunded.add(named)
        return None
