"""An organisation's credit notes in the Xero emulator, and the changes a test or the demo makes
to them (as Xero's own screens and ``PUT``/``POST /CreditNotes`` would).

A note is DRAFT, SUBMITTED or AUTHORISED when raised (:meth:`CreditNoteBook.create`); once
AUTHORISED it can be allocated (:meth:`CreditNoteBook.allocate`) to open (AUTHORISED) invoices of
its contact, in its currency and of its side (a sales note to a sales invoice), each allocation
an amount on a date and no more than the note's remaining credit nor the invoice's amount due,
until no credit remains: it is PAID then. An AUTHORISED note is voided (VOIDED), a draft or
submitted one deleted (DELETED), neither while it is allocated (:meth:`CreditNoteBook.void`); a
draft is submitted or approved, and a note's amounts change, by :meth:`CreditNoteBook.edit`.
Every change stamps the note with the organisation's clock (its dataset's), never earlier than
the last stamp, so a changed note moves to the end of a listing by modification time, as an
invoice does. The invoice's side of an allocation (its ``AmountCredited``) is not shown.

The book starts empty; :meth:`CreditNoteBook.seed_examples` raises a few of every kind against
the organisation's invoices (the emulator's ``credit_notes=True``).
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from intdash.sandbox.dataset import CONTACTS, CURRENCIES, Dataset, SourceInvoice, make_lines
from intdash.sandbox.xero_credit_notes import GONE, OPEN, Allocation, CreditNote
from intdash.sandbox.xero_invoices import xero_status as invoice_status

_CENT = Decimal("0.01")

# what changed ("create", "update", "void") and the credit notes as they are after it
Listener = Callable[[str, list[CreditNote]], None]


class Refused(ValueError):
    """A change Xero would refuse (the message says why, as Xero's validation errors do)."""


def _digest(seed: str, *parts: object) -> bytes:
    return hashlib.sha256(":".join([seed, *map(str, parts)]).encode()).digest()


def _taxed(subtotal: Decimal) -> Decimal:
    return (subtotal * Decimal("0.15")).quantize(_CENT, ROUND_HALF_EVEN)


class CreditNoteBook:
    """An organisation's credit notes: raised, allocated, edited and voided through its methods
    (each takes a note, its CreditNoteID or its number)."""

    def __init__(self, seed: str, dataset: Callable[[], Dataset]) -> None:
        self.seed = seed
        self._dataset = dataset  # the organisation's invoices, as they are now
        self._notes: list[CreditNote] = []
        self._by_key: dict[str, int] = {}
        self._lock = threading.RLock()
        self._changes = 0
        self._last_stamp: datetime | None = None
        self._listeners: list[Listener] = []

    def on_change(self, listener: Listener) -> None:
        """Call ``listener`` after every change (on the changing thread: it must be quick)."""
        self._listeners.append(listener)

    def _changed(self, kind: str, notes: list[CreditNote]) -> None:
        for listener in list(self._listeners):
            listener(kind, list(notes))

    def __len__(self) -> int:
        return len(self._notes)

    @property
    def notes(self) -> list[CreditNote]:
        """Every credit note as it is now, in the order they were raised."""
        with self._lock:
            return list(self._notes)

    def find(self, key: CreditNote | str) -> CreditNote | None:
        """The credit note with this CreditNoteID or number (or this one, as it is now)."""
        if isinstance(key, CreditNote):
            key = key.id
        with self._lock:
            try:
                key = str(uuid.UUID(key))
            except ValueError:
                key = key.upper()
            found = self._by_key.get(key)
            return None if found is None else self._notes[found]

    def _get(self, key: CreditNote | str) -> CreditNote:
        found = self.find(key)
        if found is None:
            raise Refused(f"no credit note {key if isinstance(key, str) else key.id}")
        return found

    def _stamp(self, at: datetime | None = None) -> tuple[datetime, int]:
        """The organisation's time to the millisecond, never before the last stamp given (or
        ``at``, for the notes an example book is raised with), and the change it numbers."""
        if at is None:
            now = self._dataset().clock().astimezone(UTC)
            at = now.replace(microsecond=now.microsecond // 1000 * 1000)
            if self._last_stamp is not None:
                at = max(at, self._last_stamp)
            self._last_stamp = at
        else:
            self._last_stamp = max(at, self._last_stamp or at)
        self._changes += 1
        return at, self._changes

    def _put(self, note: CreditNote) -> CreditNote:
        if note.index == len(self._notes):
            self._notes.append(note)
            self._by_key[note.id] = note.index
            self._by_key[note.number.upper()] = note.index
        else:
            self._notes[note.index] = note
        return note

    # -- changes -----------------------------------------------------------------------------

    def create(
        self,
        *,
        sales: bool = True,
        invoice: int | None = None,
        whole: bool = False,
        status: str = OPEN,
        issued: date | None = None,
        at: datetime | None = None,
    ) -> CreditNote:
        """Raise a credit note now. Against ``invoice`` (a dataset index) it is for that
        invoice's contact and currency and credits its first line (``whole``: every line); the
        invoice must be of the same side. Otherwise it is of lines of its own, for a contact of
        the dataset's. ``status``: DRAFT, SUBMITTED or AUTHORISED; ``issued``: its date (today by
        default)."""
        if status not in ("DRAFT", "SUBMITTED", OPEN):
            raise Refused(
                f"a credit note is raised as DRAFT, SUBMITTED or AUTHORISED, not {status}"
            )
        with self._lock:
            index = len(self._notes)
            raw = _digest(self.seed, "credit-note", index)
            source = self._invoice(invoice) if invoice is not None else None
            if source is not None and source.sales != sales:
                side = "a sales invoice" if source.sales else "a bill"
                raise Refused(f"{source.number} is {side}: a credit note of the other side")
            stamp, change = self._stamp(at)
            if source is not None:
                contact, contact_id, tax_id = (
                    source.contact,
                    source.contact_id,
                    source.contact_tax_id,
                )
                currency, inclusive = source.currency, source.inclusive
                lines = source.lines if whole else source.lines[:1]
                reference = f"Credit for {source.number}"
            else:
                contact, contact_id, tax_id = self._some_contact(raw)
                currency, inclusive = CURRENCIES[raw[1] % len(CURRENCIES)], raw[2] % 4 == 0
                subtotal = Decimal(int.from_bytes(raw[3:6], "big") % 50_000 + 500) / 100
                lines = make_lines(raw, subtotal, _taxed(subtotal), inclusive)
                reference = "Goodwill credit"
            number = f"CN-{index + 1:04d}" if sales else f"SC-{index + 1:05d}"
            note = CreditNote(
                index=index,
                id=str(uuid.UUID(bytes=raw[8:24], version=4)),
                number=number,
                sales=sales,
                contact=contact,
                contact_id=contact_id,
                contact_tax_id=tax_id,
                issue_date=issued or stamp.date(),
                currency=currency,
                status=status,
                inclusive=inclusive,
                lines=tuple(lines),
                reference=reference if sales else "",
                created=stamp,
                updated=stamp,
                change=change,
            )
            self._put(note)
        self._changed("create", [note])
        return note

    def _some_contact(self, raw: bytes) -> tuple[str, str, str | None]:
        """A contact of the organisation's (one of an invoice's), for a note of its own."""
        dataset = self._dataset()
        index = int.from_bytes(raw[:4], "big") % max(1, dataset.size)
        if dataset.exists(index):
            like = dataset.invoice(index)
            return like.contact, like.contact_id, like.contact_tax_id
        return CONTACTS[0], str(uuid.UUID(bytes=raw[24:], version=4)), None

    def _invoice(self, index: int) -> SourceInvoice:
        dataset = self._dataset()
        if not dataset.exists(index):
            raise Refused(f"no invoice {index} in this organisation")
        return dataset.invoice(index)

    def allocate(
        self,
        key: CreditNote | str,
        invoice: int,
        amount: Decimal | None = None,
        *,
        on: date | None = None,
        at: datetime | None = None,
    ) -> CreditNote:
        """Allocate ``amount`` of the note's remaining credit (all it can, by default) to the
        invoice with this dataset index, dated ``on`` (today by default), as Xero's
        ``PUT /CreditNotes/{id}/Allocations`` does; fully allocated, the note is PAID."""
        with self._lock:
            note = self._get(key)
            target = self._invoice(invoice)
            if note.status != OPEN:
                raise Refused(
                    f"{note.number} is {note.status}: only an AUTHORISED note is allocated"
                )
            if invoice_status(target) != "AUTHORISED":
                raise Refused(f"{target.number} is {invoice_status(target)}: nothing is due on it")
            if (target.sales, target.contact_id, target.currency) != (
                note.sales,
                note.contact_id,
                note.currency,
            ):
                raise Refused(
                    f"{note.number} is not allocated to {target.number}: another side, contact "
                    "or currency"
                )
            due = target.total - sum(
                (a.amount for n in self._notes for a in n.allocations if a.invoice_id == target.id),
                Decimal("0.00"),
            )
            amount = min(note.remaining, due) if amount is None else Decimal(amount)
            amount = amount.quantize(_CENT)
            if not Decimal(0) < amount <= min(note.remaining, due):
                raise Refused(
                    f"{amount} is more than {note.number}'s remaining credit ({note.remaining}) "
                    f"or {target.number}'s amount due ({due})"
                    if amount > 0
                    else f"an allocation of {amount}: it must be more than nothing"
                )
            stamp, change = self._stamp(at)
            allocation = Allocation(
                str(uuid.UUID(bytes=_digest(self.seed, note.id, change)[:16], version=4)),
                target.id,
                target.number,
                amount,
                on or stamp.date(),
            )
            allocations = (*note.allocations, allocation)
            note = replace(note, allocations=allocations, updated=stamp, change=change)
            if note.remaining == 0:
                note = replace(note, status="PAID")
            self._put(note)
        self._changed("update", [note])
        return note

    def void(self, key: CreditNote | str, *, at: datetime | None = None) -> CreditNote:
        """Void an AUTHORISED note (a DRAFT or SUBMITTED one is deleted instead, as in Xero);
        an allocated note must lose its allocations first."""
        with self._lock:
            note = self._get(key)
            if note.allocations:
                raise Refused(f"{note.number} is allocated: remove its allocations first")
            if note.status in GONE or note.status == "PAID":
                raise Refused(f"{note.number} is {note.status}: it cannot be voided")
            stamp, change = self._stamp(at)
            status = "VOIDED" if note.status == OPEN else "DELETED"
            note = self._put(replace(note, status=status, updated=stamp, change=change))
        self._changed("void", [note])
        return note

    def edit(self, key: CreditNote | str, *, status: str | None = None) -> CreditNote:
        """Edit a note now: with ``status`` (SUBMITTED or AUTHORISED, from a draft; DRAFT, from
        a submitted one) its status changes; without, its amounts move a little (lines are
        written again), never below what is allocated."""
        with self._lock:
            note = self._get(key)
            if note.status in GONE or note.status == "PAID":
                raise Refused(f"{note.number} is {note.status}: it cannot be edited")
            if status is not None:
                steps = {"DRAFT": ("SUBMITTED", OPEN), "SUBMITTED": ("DRAFT", OPEN)}
                if status not in steps.get(note.status, ()):
                    raise Refused(f"{note.number} is {note.status}: it cannot become {status}")
                stamp, change = self._stamp()
                note = replace(note, status=status, updated=stamp, change=change)
            else:
                revision = note.revision + 1
                subtotal = note.subtotal + Decimal(7) / 100
                raw = _digest(self.seed, "credit-note-lines", note.id, revision)
                lines = make_lines(raw, subtotal, _taxed(subtotal), note.inclusive)
                stamp, change = self._stamp()
                note = replace(note, lines=lines, revision=revision, updated=stamp, change=change)
            self._put(note)
        self._changed("update", [note])
        return note

    # -- examples ----------------------------------------------------------------------------

    def seed_examples(self) -> list[CreditNote]:
        """A few credit notes of every kind, raised against the organisation's invoices among
        their original ones (stamped a few seconds after the invoice each is for): one
        crediting a whole invoice and allocated to it (PAID), one allocated to part of an
        invoice, one allocated to two invoices (the later-dated allocation listed first), one
        not allocated, a draft, a submitted one, a voided one and a purchase one allocated to a
        bill. Those the invoices do not allow (too few open ones) are left out."""
        dataset = self._dataset()
        scan = [
            dataset.invoice(i) for i in range(min(dataset.base_size, 5000)) if dataset.exists(i)
        ]
        open_ = [i for i in scan if invoice_status(i) == "AUTHORISED" and not i.voided]
        sales = [i for i in open_ if i.sales]
        bills = [i for i in open_ if not i.sales]

        def at(invoice: SourceInvoice, seconds: int) -> datetime:
            return dataset.base_updated(invoice.index) + timedelta(seconds=seconds)

        made: list[CreditNote] = []

        def against(invoice: SourceInvoice, seconds: int, **how: Any) -> CreditNote:
            return self.create(
                invoice=invoice.index, issued=invoice.issue_date, at=at(invoice, seconds), **how
            )

        if len(sales) >= 4:
            whole = sales[len(sales) * 3 // 4]
            note = against(whole, 11, whole=True)
            made.append(self.allocate(note, whole.index, on=whole.issue_date, at=at(whole, 12)))
            part = sales[len(sales) // 4]
            note = against(part, 11)
            half = (note.total / 2).quantize(_CENT)
            made.append(self.allocate(note, part.index, half, on=part.issue_date, at=at(part, 12)))
            # (not those credited above: in a small organisation they may be among these)
            rest = [i for i in sales[len(sales) // 2 :] if i.index not in (whole.index, part.index)]
            pair = self._two_of_one_contact(rest)
            if pair is not None:
                first, second = pair
                note = against(first, 11, whole=True)
                share = min(note.total / 2, second.total).quantize(_CENT)
                day = max(first.issue_date, second.issue_date)
                self.allocate(
                    note, second.index, share, on=day + timedelta(days=1), at=at(first, 12)
                )
                made.append(self.allocate(note, first.index, on=day, at=at(first, 13)))
            for n, status in enumerate((OPEN, "DRAFT", "SUBMITTED", OPEN)):
                made.append(against(sales[(n * 2 + 1) * len(sales) // 10], 17, status=status))
            made[-1] = self.void(made[-1], at=made[-1].updated + timedelta(seconds=1))
        if bills:
            bill = bills[len(bills) // 2]
            note = against(bill, 11, sales=False)
            made.append(self.allocate(note, bill.index, on=bill.issue_date, at=at(bill, 12)))
        return made

    @staticmethod
    def _two_of_one_contact(
        invoices: list[SourceInvoice],
    ) -> tuple[SourceInvoice, SourceInvoice] | None:
        seen: dict[tuple[str, str], SourceInvoice] = {}
        for invoice in invoices:
            key = (invoice.contact_id, invoice.currency)
            if key in seen:
                return seen[key], invoice
            seen[key] = invoice
        return None
