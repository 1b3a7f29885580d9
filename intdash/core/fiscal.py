"""The fiscal register: every fiscalized invoice gets a numbered, timed record whose SHA-256 hash
covers the invoice and the record before it, so that altering or removing any record breaks the
chain from there on.

:class:`FiscalRegister` is the interface the rest of intdash uses; :class:`HashChainRegister` is
the local implementation. A tax authority's fiscalization service can take its place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, insert, select, text

from intdash.core.models import FiscalRecord, Invoice

GENESIS = "0" * 64
_records = FiscalRecord.__table__  # type: ignore[attr-defined]
_invoices = Invoice.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ToFiscalize:
    """What the register is told about an invoice."""

    invoice_id: int
    integration_id: int
    external_id: str
    number: str | None
    issue_date: str | None
    currency: str
    total: str
    tax: str


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
        """Record ``invoices`` in this order, in the caller's transaction; returns the records."""

    def verify(self, conn: Connection) -> Verification:
        """Check the whole register."""


def invoice_digest(invoice: ToFiscalize) -> str:
    """SHA-256 of the invoice as it is fiscalized: later edits at the source do not change it."""
    payload = "|".join(
        [
            str(invoice.integration_id),
            invoice.external_id,
            invoice.number or "",
            invoice.issue_date or "",
            invoice.currency,
            invoice.total,
            invoice.tax,
        ]
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def record_hash(seq: int, prev_hash: str, recorded_at: datetime | str, digest: str) -> str:
    """The record's hash; ``recorded_at`` may come formatted (one batch shares one moment)."""
    stamp = recorded_at if isinstance(recorded_at, str) else stamp_of(recorded_at)
    return hashlib.sha256(f"{seq}|{prev_hash}|{stamp}|{digest}".encode()).hexdigest()


def stamp_of(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


class HashChainRegister:
    """A local, tamper-evident register: a SHA-256 chain over the records."""

    def _lock(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(4772002)"))
        # SQLite: the caller's write transaction already holds the only write lock

    def fiscalize(
        self, conn: Connection, invoices: Sequence[ToFiscalize], at: datetime
    ) -> list[dict[str, Any]]:
        if not invoices:
            return []
        self._lock(conn)
        head = conn.execute(
            select(_records.c.seq, _records.c.hash).order_by(_records.c.seq.desc()).limit(1)
        ).first()
        seq, prev = (head[0], head[1]) if head else (0, GENESIS)
        rows: list[dict[str, Any]] = []
        stamp = stamp_of(at)
        for invoice in invoices:
            seq += 1
            content = invoice_digest(invoice)
            digest = record_hash(seq, prev, stamp, content)
            rows.append(
                {
                    "seq": seq,
                    "invoice_id": invoice.invoice_id,
                    "integration_id": invoice.integration_id,
                    "recorded_at": at,
                    "invoice_digest": content,
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            prev = digest
        if conn.dialect.name == "sqlite":  # the driver's executemany: see InvoiceService._insert
            db_stamp = at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
            conn.exec_driver_sql(
                "INSERT INTO fiscal_records (seq, invoice_id, integration_id, recorded_at, "
                "invoice_digest, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (r["seq"], r["invoice_id"], r["integration_id"], db_stamp,
                     r["invoice_digest"], r["prev_hash"], r["hash"])
                    for r in rows
                ],
            )  # fmt: skip
        else:
            conn.execute(insert(_records), rows)
        return rows

    def verify(self, conn: Connection, batch: int = 5000) -> Verification:
        prev, expected, count = GENESIS, 1, 0
        while True:
            rows = conn.execute(
                select(
                    _records.c.seq,
                    _records.c.recorded_at,
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
            for row in rows:
                count += 1
                if row.seq != expected:
                    return Verification(count, expected, f"record {expected} is missing")
                if row.prev_hash != prev:
                    return Verification(
                        count, row.seq, f"record {row.seq} does not follow record {row.seq - 1}"
                    )
                if record_hash(row.seq, prev, row.recorded_at, row.invoice_digest) != row.hash:
                    return Verification(count, row.seq, f"record {row.seq} was altered")
                if row.id is None:
                    return Verification(count, row.seq, f"record {row.seq}'s invoice is gone")
                prev, expected = row.hash, expected + 1
