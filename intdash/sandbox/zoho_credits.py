"""Zoho Books' credit notes in the sandbox company, beside its invoices.

Zoho keeps credit notes apart from invoices (``/books/v3/creditnotes``). The list carries, as the
invoice list does, the totals but no tax and no lines: ``creditnote_id``, ``creditnote_number``,
``status`` (draft, open, closed, void), ``date``, ``customer_id``, ``customer_name``,
``currency_code``, ``total``, ``balance``, ``reference_number``, ``created_time`` and
``last_modified_time``. The credit note itself (``/creditnotes/{creditnote_id}``) adds its
``line_items``, ``taxes``, ``sub_total`` and ``tax_total``, and, when it was raised from an invoice,
that invoice's ``invoice_id`` and ``invoice_number``. The invoices it has been applied to are at
``/creditnotes/{creditnote_id}/invoices`` (``invoices_credited``): a credit note raised on its own
names an invoice only there, once applied.

A company's credit notes are few beside its invoices, so they are kept in memory, each one made
by :meth:`CreditNotes.seed` (a mix of every kind: raised from an invoice and open or wholly
applied, raised on their own and open or applied later, drafts, voids) or by the changes a test
makes (:meth:`CreditNotes.create`, :meth:`~CreditNotes.edit`, :meth:`~CreditNotes.apply`,
:meth:`~CreditNotes.approve`, :meth:`~CreditNotes.void`, :meth:`~CreditNotes.delete`), stamped
with the invoices' clock as Zoho stamps both with its own.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from intdash.sandbox.dataset import CONTACTS, CURRENCIES, Dataset, SourceInvoice, SourceLine
from intdash.sandbox.dataset import make_lines as _make_lines

CREDIT_ID_BASE = 460000002000000
TAX_ID = "460000000057001"  # the organisation's one tax: GST at 15 %
CREDIT_STATUSES = ("draft", "open", "closed", "void")
# what :meth:`CreditNotes.seed` makes, in turn
SHAPES = ("raised", "applied", "alone", "draft", "void", "alone-applied")
# the columns Zoho's lists sort by (``sort_column``), and what each sorts on
_SORTS: dict[str, Callable[[SourceCredit], Any]] = {
    "last_modified_time": lambda c: (c.updated, c.order),
    "created_time": lambda c: (c.created, c.index),
    "date": lambda c: (c.issue_date, c.index),
    "creditnote_number": lambda c: c.number,
    "customer_name": lambda c: (c.contact, c.index),
    "total": lambda c: (c.total, c.index),
    "balance": lambda c: (c.balance, c.index),
}
SORT_COLUMNS = frozenset(_SORTS)
_CENT = Decimal("0.01")


def zoho_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def render_line(line: SourceLine, inclusive: bool, line_item_id: str, n: int) -> dict[str, Any]:
    """A line as Zoho has it: ``rate`` and ``item_total`` with tax when the document is
    ``is_inclusive_tax``; a discount as both a percentage and an amount."""
    rate, total = (line.gross, line.gross) if inclusive else (line.unit_price, line.net)
    discount = line.quantity * line.unit_price - line.net
    return {
        "line_item_id": line_item_id,
        "name": line.description,
        "sku": line.item_code,
        "item_order": n + 1,
        "quantity": float(line.quantity),
        "rate": float(rate),
        "discount": f"{line.discount_rate:.2f}%" if line.discount_rate else 0.0,
        "discount_amount": float(discount),
        "tax_id": TAX_ID,
        "tax_name": "GST (15%)",
        "tax_type": "tax",
        "tax_percentage": 15,
        "item_total": float(total),
    }


@dataclass(frozen=True)
class Application:
    """Part of a credit note applied to an invoice (Zoho's ``invoices_credited``)."""

    invoice: int  # the invoice's index in the company's dataset
    amount: Decimal
    on: date


@dataclass(frozen=True)
class SourceCredit:
    """A credit note in neutral terms."""

    index: int
    number: str
    invoice: int | None  # the invoice it was raised from (None: raised on its own)
    contact: str
    contact_id: str
    contact_tax_id: str | None
    currency: str
    issue_date: date
    lines: tuple[SourceLine, ...]
    inclusive: bool
    status: str  # one of CREDIT_STATUSES
    created: datetime
    updated: datetime
    order: int  # among those of one modified time, the order of their changes
    revision: int = 0
    applied: tuple[Application, ...] = ()

    @property
    def id(self) -> str:
        return str(CREDIT_ID_BASE + self.index)

    @property
    def subtotal(self) -> Decimal:
        return sum((line.net for line in self.lines), Decimal(0))

    @property
    def tax(self) -> Decimal:
        return sum((line.tax for line in self.lines), Decimal(0))

    @property
    def total(self) -> Decimal:
        return self.subtotal + self.tax

    @property
    def balance(self) -> Decimal:
        """What is left to apply or refund (nothing of a void, all of a draft)."""
        if self.status in ("void", "closed"):
            return Decimal(0)
        return self.total - sum((a.amount for a in self.applied), Decimal(0))


InvoiceRef = Callable[[int], tuple[str, str]]  # an invoice's index -> its invoice_id and number


def render_credit_note(note: SourceCredit) -> dict[str, Any]:
    """The credit note as Zoho's list has it: no tax, no lines, no invoice."""
    return {
        "creditnote_id": note.id,
        "creditnote_number": note.number,
        "status": note.status,
        "date": note.issue_date.isoformat(),
        "customer_id": str(460000001000000 + int(note.contact_id[:6], 16) % 1000),
        "customer_name": note.contact,
        "currency_code": note.currency,
        "total": float(note.total),
        "balance": float(note.balance),
        "reference_number": f"Ref-{note.index + 1:05d}",
        "created_time": zoho_time(note.created),
        "last_modified_time": zoho_time(note.updated),
    }


def render_credit_note_detail(note: SourceCredit, invoice_ref: InvoiceRef) -> dict[str, Any]:
    """The credit note itself: the list's fields, its lines, taxes and amounts before and after
    tax, the customer's tax number where it has one, and the invoice it was raised from."""
    body = render_credit_note(note)
    body.update(
        sub_total=float(note.subtotal),
        tax_total=float(note.tax),
        is_inclusive_tax=note.inclusive,
        taxes=[{"tax_name": "GST (15%)", "tax_amount": float(note.tax)}],
        line_items=[
            render_line(
                line, note.inclusive, str(CREDIT_ID_BASE + 5_000_000 + note.index * 10 + n), n
            )
            for n, line in enumerate(note.lines)
        ],
    )
    if note.invoice is not None:
        body["invoice_id"], body["invoice_number"] = invoice_ref(note.invoice)
    if note.contact_tax_id:
        body["tax_reg_no"] = note.contact_tax_id
    return body


def render_credited(note: SourceCredit, invoice_ref: InvoiceRef) -> list[dict[str, Any]]:
    """``invoices_credited``: the invoices the credit note has been applied to."""
    credited: list[dict[str, Any]] = []
    for n, applied in enumerate(note.applied):
        invoice_id, invoice_number = invoice_ref(applied.invoice)
        credited.append(
            {
                "creditnote_id": note.id,
                "creditnote_invoice_id": str(CREDIT_ID_BASE + 8_000_000 + note.index * 10 + n),
                "invoice_id": invoice_id,
                "invoice_number": invoice_number,
                "date": applied.on.isoformat(),
                "amount_applied": float(applied.amount),
            }
        )
    return credited


def _digest(*parts: object) -> bytes:
    return hashlib.sha256(":".join(map(str, parts)).encode()).digest()


class CreditNotes:
    """The company's credit notes. ``books`` gives the company's invoices (a test may replace
    them), ``issued`` says which of those a credit note may be raised from."""

    def __init__(
        self, books: Callable[[], Dataset], issued: Callable[[SourceInvoice], bool]
    ) -> None:
        self.books = books
        self.issued = issued
        self._notes: dict[int, SourceCredit] = {}
        self._deleted: set[int] = set()
        self._count = 0  # every credit note ever made, deleted ones included
        self._changes = 0
        self._last_stamp: datetime | None = None
        self._lock = threading.RLock()

    # -- time --------------------------------------------------------------------------------

    def _stamp(self) -> tuple[datetime, int]:
        """Now, to the millisecond, never before a stamp already given (nor the books' end)."""
        books = self.books()
        now = books.clock().astimezone(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        latest = max(filter(None, (self._last_stamp, books.epoch_end)))
        self._last_stamp = max(latest, now)
        self._changes += 1
        return self._last_stamp, self._changes

    # -- making ------------------------------------------------------------------------------

    def _spread(self, count: int) -> list[int]:
        """``count`` issued invoices spread over the company (the next issued one after each
        even step), fewer when it has fewer."""
        books = self.books()
        stride, picked = max(1, books.size // max(count, 1)), dict[int, None]()
        for k in range(count):
            for index in range(k * stride + stride // 2, books.size):
                fits = index not in picked and books.exists(index)
                if fits and self.issued(books.invoice(index)):
                    picked[index] = None
                    break
        return list(picked)

    def _make(
        self,
        invoice: int | None,
        status: str,
        at: datetime,
        order: int,
        *,
        share: int = 0,
    ) -> SourceCredit:
        """A credit note of the invoice's first line (all of it when ``share`` is 0, else that
        many hundredths of it), or of lines of its own when raised alone."""
        books = self.books()
        index = self._count
        self._count += 1
        raw = _digest(books.seed, "creditnote", index)
        if invoice is not None:
            source = books.invoice(invoice)
            line = source.lines[0]
            if share:
                line = _part(line, share)
            lines: tuple[SourceLine, ...] = (line,)
            inclusive = source.inclusive
            contact, currency = source.contact, source.currency
            contact_id, tax_id = source.contact_id, source.contact_tax_id
            issued = max(source.issue_date, at.date())
        else:
            subtotal = (Decimal(int.from_bytes(raw[0:3], "big") % 50_000 + 500) / 100).quantize(
                _CENT
            )
            tax = (subtotal * Decimal("0.15")).quantize(_CENT, ROUND_HALF_EVEN)
            inclusive = raw[3] % 4 == 0
            lines = _make_lines(raw[4:], subtotal, tax, inclusive)
            contact = CONTACTS[raw[4] % len(CONTACTS)]
            contact_id = str(uuid.UUID(bytes=_digest(books.seed, "contact", contact)[:16]))
            currency, tax_id, issued = CURRENCIES[raw[5] % len(CURRENCIES)], None, at.date()
        note = SourceCredit(
            index=index,
            number=f"CN-{index + 1:05d}",
            invoice=invoice,
            contact=contact,
            contact_id=contact_id,
            contact_tax_id=tax_id,
            currency=currency,
            issue_date=issued,
            lines=lines,
            inclusive=inclusive,
            status=status,
            created=at,
            updated=at,
            order=order,
        )
        self._notes[index] = note
        return note

    def seed(self, count: int) -> list[int]:
        """``count`` credit notes of every shape in turn (:data:`SHAPES`), each a second after
        the invoice it credits was last modified (a company's history, not changes made now)."""
        with self._lock:
            invoices = self._spread(count)
            if not invoices and count:
                raise ValueError("the company has no issued invoice to credit")
            made: list[int] = []
            for k in range(count):
                invoice = invoices[k % len(invoices)]
                at = self.books().invoice(invoice).updated + timedelta(seconds=1)
                self._changes += 1
                shape = SHAPES[k % len(SHAPES)]
                raised = None if shape.startswith("alone") else invoice
                status = {"applied": "closed", "draft": "draft", "void": "void"}.get(shape, "open")
                note = self._make(raised, status, at, self._changes, share=50 if k % 4 else 0)
                if shape in ("applied", "alone-applied"):
                    note = self._put(
                        replace(
                            note,
                            status="closed",
                            applied=(Application(invoice, note.total, note.issue_date),),
                        )
                    )
                made.append(note.index)
                if self._last_stamp is None or at > self._last_stamp:
                    self._last_stamp = at
            return made

    def _put(self, note: SourceCredit) -> SourceCredit:
        self._notes[note.index] = note
        return note

    # -- changes -----------------------------------------------------------------------------

    def create(self, invoice: int | None = None, *, status: str = "open", share: int = 0) -> int:
        """Raise a credit note now, from ``invoice`` (its first line; ``share`` hundredths of it
        when given) or on its own; returns its index."""
        if status not in CREDIT_STATUSES:
            raise ValueError(f"a credit note's status is one of {CREDIT_STATUSES}")
        with self._lock:
            books = self.books()
            if invoice is not None and not books.exists(invoice):
                raise IndexError(f"no invoice {invoice} in this dataset")
            at, order = self._stamp()
            return self._make(invoice, status, at, order, share=share).index

    def _change(self, indices: list[int], change: Callable[[SourceCredit], SourceCredit]) -> None:
        with self._lock:
            for index in indices:
                self.get(index)  # (each must exist before any changes)
            for index in indices:
                at, order = self._stamp()
                note = change(self.get(index))
                self._put(replace(note, updated=at, order=order, revision=note.revision + 1))

    def edit(self, indices: list[int]) -> list[int]:
        """Edit these credit notes now (a line's description: the amounts stay)."""

        def edited(note: SourceCredit) -> SourceCredit:
            first = note.lines[0]
            renamed = replace(first, description=f"{first.description} (rev. {note.revision + 1})")
            return replace(note, lines=(renamed, *note.lines[1:]))

        self._change(indices, edited)
        return indices

    def approve(self, indices: list[int]) -> list[int]:
        """Turn these drafts into open credit notes, now."""
        self._change(indices, lambda note: replace(note, status="open"))
        return indices

    def void(self, indices: list[int]) -> list[int]:
        self._change(indices, lambda note: replace(note, status="void"))
        return indices

    def apply(self, index: int, invoice: int, amount: Decimal | None = None) -> None:
        """Apply the credit note to an invoice now (its whole balance unless ``amount`` says);
        a credit note with nothing left to apply is closed."""
        books = self.books()
        if not books.exists(invoice):
            raise IndexError(f"no invoice {invoice} in this dataset")

        def applied(note: SourceCredit) -> SourceCredit:
            part = note.balance if amount is None else amount
            if not 0 < part <= note.balance:
                raise ValueError(f"credit note {index} has {note.balance} to apply, not {part}")
            found = (*note.applied, Application(invoice, part, books.clock().date()))
            done = replace(note, applied=found)
            return replace(done, status="closed") if done.balance == 0 else done

        self._change([index], applied)

    def delete(self, indices: list[int]) -> list[int]:
        with self._lock:
            for index in indices:
                self.get(index)
            self._deleted.update(indices)
        return indices

    def control(self, change: str, count: int) -> dict[str, int]:
        """A control endpoint's change of ``count`` credit notes: ``create`` raises them from
        issued invoices spread over the company, ``edit``, ``void`` and ``delete`` take live
        ones spread over the credit notes."""
        if change == "create":
            return {"created": len([self.create(i) for i in self._spread(count)])}
        live = [note.index for note in self.iter_all()]
        stride = max(1, len(live) // max(count, 1))
        picked = live[stride // 2 :: stride][:count]
        if change == "edit":
            return {"edited": len(self.edit(picked))}
        if change == "void":
            return {"voided": len(self.void(picked))}
        if change == "delete":
            return {"deleted": len(self.delete(picked))}
        raise ValueError(f"no change {change!r}: create, edit, void or delete")

    # -- reading -----------------------------------------------------------------------------

    def exists(self, index: int) -> bool:
        return index in self._notes and index not in self._deleted

    def get(self, index: int) -> SourceCredit:
        if not self.exists(index):
            raise IndexError(f"no credit note {index}")
        return self._notes[index]

    def find(self, creditnote_id: str) -> SourceCredit | None:
        index = int(creditnote_id) - CREDIT_ID_BASE if creditnote_id.isdigit() else -1
        return self._notes[index] if self.exists(index) else None

    def listing(
        self, since: datetime | None, sort_column: str, descending: bool
    ) -> list[SourceCredit]:
        """The live credit notes modified at or after ``since`` (all when None), sorted."""
        with self._lock:
            found = [
                note
                for note in self._notes.values()
                if note.index not in self._deleted and (since is None or note.updated >= since)
            ]
        return sorted(found, key=_SORTS[sort_column], reverse=descending)

    def iter_all(self) -> Iterator[SourceCredit]:
        """Every live credit note, oldest change first."""
        yield from self.listing(None, "last_modified_time", descending=False)

    def __len__(self) -> int:
        return len(self._notes) - len(self._deleted)


def _part(line: SourceLine, share: int) -> SourceLine:
    """``share`` hundredths of a line: its quantity's when it has several, else its price's."""
    if line.quantity > 1:
        quantity = max(Decimal(1), (line.quantity * share / 100).to_integral_value())
        ratio = quantity / line.quantity
        return replace(
            line,
            quantity=quantity,
            net=(line.net * ratio).quantize(_CENT),
            tax=(line.tax * ratio).quantize(_CENT, ROUND_HALF_EVEN),
        )
    net = (line.net * share / 100).quantize(_CENT)
    unit = (
        net if not line.discount_rate else (net * 100 / (100 - line.discount_rate)).quantize(_CENT)
    )
    return replace(
        line,
        unit_price=unit,
        net=net,
        tax=(net * Decimal("0.15")).quantize(_CENT, ROUND_HALF_EVEN),
    )
