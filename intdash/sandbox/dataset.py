"""Deterministic invoice data of any size, computed on demand, that changes as a real company's
books do.

Invoice ``i`` of the first ``size`` is a pure function of the seed and ``i``, so a million
invoices cost no memory. Their modification times rise with ``i`` (``step`` apart; a step of zero
gives them all one time) and end at ``epoch_end``. Changes are stamped with the dataset's clock,
as the platforms stamp them with theirs, and never earlier than the latest stamp already given:

- an edit (:meth:`Dataset.touch`) gives an invoice a new revision and the current time, so it
  moves to the end of a listing ordered by modification time, and every invoice after its old
  place moves up one;
- a creation (:meth:`Dataset.create`) adds an invoice at the current time;
- a deletion (:meth:`Dataset.delete`) removes an invoice from every listing, and the ones after
  it move up one;
- a void (:meth:`Dataset.void`) is an edit that marks the invoice voided.

Whoever watches the company (the Xero emulator's webhook) is told of each change after it is
made (:meth:`Dataset.on_change`).

Listing "modified after T" in modification order is therefore: the untouched original invoices
past an index found from T, then the changed ones after T in (time, index) order.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

EPOCH_END = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=30)
_CENT = Decimal("0.01")
_LAST = 1 << 62  # larger than any change number: sorts after every key of one time

CONTACTS = (
    "Bayside Plumbing", "Kowhai Cafe", "Harbour Logistics", "Totara Builders", "Marlow & Sons",
    "Pukeko Print", "Rata Health", "Southern Cross Legal", "Tui Electrical", "Westgate Motors",
    "Aroha Florist", "Coastal Joinery", "Fernleaf Dairy", "Glenview Vets", "Ironbark Timber",
)  # fmt: skip
CURRENCIES = ("NZD", "NZD", "NZD", "AUD", "USD", "GBP")
PRODUCTS = (
    ("CONSULT", "Consulting (hours)"), ("WEBHOST", "Web hosting, monthly"),
    ("INSTALL", "Installation and set-up"), ("MAINT", "Maintenance visit"),
    ("PAPER-A4", "A4 copier paper, box"), ("TONER-K", "Toner cartridge, black"),
    ("FREIGHT", "Freight"), ("TRAIN", "Training (half day)"), ("LIC-STD", "Licence, standard seat"),
    ("SUPPORT", "Support plan"),
)  # fmt: skip
TAX_RATE = Decimal(15)  # every line is standard-rated (NZ GST, as Fiji's VAT: 15 %)
DISCOUNT_RATE = Decimal(10)  # a discounted line's rate (percent)

# what changed ("create", "update", "void" or "delete") and the indices of the invoices
Listener = Callable[[str, list[int]], None]


@dataclass(frozen=True)
class SourceLine:
    """One line in neutral terms: ``net`` = ``quantity`` x ``unit_price`` less
    ``discount_rate`` percent, exactly, before tax; ``tax`` is the line's (the lines' taxes add
    up to the invoice's, the last one taking the rounding). An inclusive invoice's lines are one
    unit each, undiscounted, so that a platform's prices with tax are exact too."""

    item_code: str
    description: str
    quantity: Decimal
    unit_price: Decimal  # before tax
    discount_rate: Decimal  # percent, 0 when none
    net: Decimal
    tax: Decimal

    @property
    def gross(self) -> Decimal:
        return self.net + self.tax


def _cents(count: int) -> Decimal:
    return (Decimal(count) / 100).quantize(_CENT)


def make_lines(
    digest: bytes, subtotal: Decimal, tax: Decimal, inclusive: bool
) -> tuple[SourceLine, ...]:
    """One to four lines whose net amounts add up to ``subtotal`` and taxes to ``tax``."""
    total_cents, tax_cents = int(subtotal * 100), int(tax * 100)
    count = max(1, min(1 + digest[0] % 4, total_cents // 100))
    weights = [1 + digest[2 + j] % 9 for j in range(count)]
    lines: list[SourceLine] = []
    spent = taxed = 0
    for j in range(count):
        code, description = PRODUCTS[digest[14 + j] % len(PRODUCTS)]
        last = j == count - 1
        part = total_cents - spent if last else total_cents * weights[j] // sum(weights)
        quantity, rate = 1, Decimal(0)
        if not (last or inclusive):
            quantity = 1 + digest[6 + j] % 5
            part -= part % quantity
            if digest[10 + j] % 4 == 0 and part >= 9 * quantity:
                part -= part % (9 * quantity)
                rate = DISCOUNT_RATE
        gross_cents = part * 10 // 9 if rate else part  # before the discount
        net = _cents(part)
        line_tax = (
            _cents(tax_cents - taxed)
            if last
            else (net * TAX_RATE / 100).quantize(_CENT, ROUND_HALF_EVEN)
        )
        spent += part
        taxed += int(line_tax * 100)
        lines.append(
            SourceLine(code, description, Decimal(quantity), _cents(gross_cents // quantity),
                       rate, net, line_tax)
        )  # fmt: skip
    return tuple(lines)


def _tax_number(digest: bytes) -> str:
    digits = f"{int.from_bytes(digest[16:20], 'big') % 1_000_000_000:09d}"
    return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"


@dataclass(frozen=True)
class SourceInvoice:
    """An invoice in neutral terms; each emulator renders it in its platform's shape."""

    index: int
    id: str
    number: str
    sales: bool
    contact: str
    contact_id: str
    issue_date: date
    due_date: date
    currency: str
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    status: int  # an index into the platform's own list of statuses
    revision: int
    updated: datetime
    created: datetime
    voided: bool = False  # the platform shows its void status, whatever ``status`` says
    lines: tuple[SourceLine, ...] = ()
    inclusive: bool = False  # its lines are priced with tax (Xero's LineAmountTypes Inclusive)
    contact_tax_id: str | None = None  # the customer's tax number, which one contact in three has


def _digest(seed: str, *parts: object) -> bytes:
    return hashlib.sha256(":".join([seed, *map(str, parts)]).encode()).digest()


def _now() -> datetime:
    return datetime.now(UTC)


class Dataset:
    """One platform's sandbox company: ``size`` invoices to begin with, then what changes."""

    def __init__(
        self,
        size: int,
        seed: str = "intdash",
        *,
        step: timedelta = STEP,
        epoch_end: datetime = EPOCH_END,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        if not 0 <= size <= 10_000_000:
            raise ValueError("size must be between 0 and 10,000,000")
        if step < timedelta(0):
            raise ValueError("step must not be negative")
        self.base_size = size
        self.seed = seed
        self.step = step
        self.epoch_end = epoch_end
        self.clock = clock
        self._lock = threading.RLock()
        # invoices whose time is no longer their original one: index -> (revision, updated)
        self._late: dict[int, tuple[int, datetime]] = {}
        self._moved: list[int] = []  # original indices out of the original order, ascending
        # live changed invoices in order: (time, change number, index); one time, change order
        self._late_keys: list[tuple[datetime, int, int]] = []
        self._key_of: dict[int, tuple[datetime, int, int]] = {}
        self._changes = 0
        self._born: dict[int, datetime] = {}  # created invoices: index -> creation time
        self._voided: set[int] = set()
        self._deleted: set[int] = set()
        self._last_stamp = epoch_end
        self._ids: dict[str, int] | None = None
        self._listeners: list[Listener] = []

    def on_change(self, listener: Listener) -> None:
        """Call ``listener`` after every change (on the changing thread: it must be quick)."""
        self._listeners.append(listener)

    def _changed(self, kind: str, indices: list[int]) -> None:
        if indices:
            for listener in list(self._listeners):
                listener(kind, list(indices))

    # -- size and time -----------------------------------------------------------------------

    @property
    def size(self) -> int:
        """How many invoices there have ever been (deleted ones included)."""
        return self.base_size + len(self._born)

    @property
    def live_count(self) -> int:
        return self.size - len(self._deleted)

    @property
    def touched_count(self) -> int:
        """How many of the original invoices have been edited."""
        return sum(1 for index in self._late if index < self.base_size)

    def base_updated(self, index: int) -> datetime:
        return self.epoch_end - self.step * (self.base_size - index)

    def _stamp(self) -> datetime:
        """The clock's time to the millisecond (as the platforms keep it), never earlier than
        the latest stamp given: a platform's clock does not run backwards."""
        now = self.clock().astimezone(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        self._last_stamp = max(self._last_stamp, now)
        return self._last_stamp

    # -- single invoices ---------------------------------------------------------------------

    def exists(self, index: int) -> bool:
        return 0 <= index < self.size and index not in self._deleted

    def invoice(self, index: int) -> SourceInvoice:
        raw = _digest(self.seed, index)
        created = self._born.get(index) or self.base_updated(index)
        revision, updated = self._late.get(index, (0, created))
        subtotal = (Decimal(int.from_bytes(raw[0:4], "big") % 2_000_000 + 500) / 100).quantize(
            _CENT
        )
        if revision:  # an edit: amounts move a little
            subtotal = (subtotal + Decimal(revision * 7) / 100).quantize(_CENT)
        tax = (subtotal * Decimal("0.15")).quantize(_CENT, ROUND_HALF_EVEN)
        contact = raw[5] % len(CONTACTS)
        issued = created.date() - timedelta(days=raw[6] % 5)
        of_lines = _digest(self.seed, "lines", index, revision)
        inclusive = of_lines[1] % 4 == 0
        contact_digest = _digest(self.seed, "contact", contact)
        return SourceInvoice(
            index=index,
            id=str(uuid.UUID(bytes=raw[8:24], version=4)),
            number=f"INV-{index + 1:07d}",
            sales=raw[4] % 10 != 0,  # one in ten is a bill
            contact=CONTACTS[contact],
            contact_id=str(uuid.UUID(bytes=contact_digest[:16], version=4)),
            issue_date=issued,
            due_date=issued + timedelta(days=20 + raw[7] % 3 * 5),
            currency=CURRENCIES[raw[24] % len(CURRENCIES)],
            subtotal=subtotal,
            tax=tax,
            total=subtotal + tax,
            status=raw[25] + revision,
            revision=revision,
            updated=updated,
            created=created,
            voided=index in self._voided,
            lines=make_lines(of_lines, subtotal, tax, inclusive),
            inclusive=inclusive,
            contact_tax_id=_tax_number(contact_digest) if contact % 3 == 0 else None,
        )

    def index_of(self, invoice_id: str) -> int | None:
        """The live invoice with this id, if there is one (the map is built on first use)."""
        with self._lock:
            if self._ids is None or len(self._ids) < self.size:
                ids = self._ids or {}
                for index in range(len(ids), self.size):
                    ids[str(uuid.UUID(bytes=_digest(self.seed, index)[8:24], version=4))] = index
                self._ids = ids
            found = self._ids.get(invoice_id)
        return found if found is not None and self.exists(found) else None

    # -- changes -----------------------------------------------------------------------------

    def _check(self, index: int) -> None:
        if not self.exists(index):
            raise IndexError(f"no invoice {index} in this dataset")

    def _unlist(self, index: int) -> None:
        """Take the invoice out of its place in the order (it is about to move or go)."""
        key = self._key_of.pop(index, None)
        if key is not None:
            del self._late_keys[bisect.bisect_left(self._late_keys, key)]
        elif index < self.base_size and index not in self._late:
            bisect.insort(self._moved, index)

    def _list_at(self, index: int, stamp: datetime) -> None:
        self._changes += 1
        key = self._key_of[index] = (stamp, self._changes, index)
        bisect.insort(self._late_keys, key)

    def touch(self, indices: list[int], *, void: bool = False) -> list[int]:
        """Edit these invoices now (in list order); returns them."""
        with self._lock:
            for index in indices:
                self._check(index)
            for index in indices:
                self._unlist(index)
                revision = self._late.get(index, (0, self.epoch_end))[0] + 1
                stamp = self._stamp()
                self._late[index] = (revision, stamp)
                self._list_at(index, stamp)
                if void:
                    self._voided.add(index)
        self._changed("void" if void else "update", indices)
        return indices

    def void(self, indices: list[int]) -> list[int]:
        """Void these invoices now (an edit that the platform shows as its void status)."""
        return self.touch(indices, void=True)

    def create(self, count: int) -> list[int]:
        """Add ``count`` invoices now; returns their indices."""
        with self._lock:
            made: list[int] = []
            for _ in range(count):
                index = self.size
                stamp = self._stamp()
                self._born[index] = stamp
                self._late[index] = (0, stamp)
                self._list_at(index, stamp)
                made.append(index)
        self._changed("create", made)
        return made

    def delete(self, indices: list[int]) -> list[int]:
        """Remove these invoices from the company; returns them."""
        with self._lock:
            for index in indices:
                self._check(index)
            for index in indices:
                self._unlist(index)
                self._deleted.add(index)
        self._changed("delete", indices)
        return indices

    def touch_spread(self, count: int) -> list[int]:
        """Edit ``count`` live invoices spread evenly over the dataset."""
        live = self.live_count
        if live == 0 or count <= 0:
            return []
        stride = max(1, self.size // count)
        picked: list[int] = []
        seen: set[int] = set()
        for k in range(self.size):
            index = (k * stride + stride // 2) % self.size
            while not self.exists(index) or index in seen:
                index = (index + 1) % self.size
            picked.append(index)
            seen.add(index)
            if len(picked) == min(count, live):
                break
        return self.touch(picked)

    # -- listing -----------------------------------------------------------------------------

    def _first_index_after(self, after: datetime | None) -> int:
        """The first original index whose original time is later than ``after``."""
        if after is None:
            return 0
        lo, hi = 0, self.base_size
        while lo < hi:  # base_updated rises (or stays) with the index
            mid = (lo + hi) // 2
            if self.base_updated(mid) > after:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _late_after(self, after: datetime | None) -> int:
        """Where the changed invoices later than ``after`` begin in ``_late_keys``."""
        if after is None:
            return 0
        return bisect.bisect_right(self._late_keys, (after, _LAST, _LAST))

    def count_after(self, after: datetime | None) -> int:
        """How many live invoices were modified strictly after ``after`` (all when None)."""
        with self._lock:
            lo = self._first_index_after(after)
            moved = len(self._moved) - bisect.bisect_left(self._moved, lo)
            return (self.base_size - lo - moved) + (len(self._late_keys) - self._late_after(after))

    def list_after(self, after: datetime | None, offset: int, limit: int) -> list[SourceInvoice]:
        """Live invoices modified after ``after``, oldest modification first, from ``offset``."""
        return [self.invoice(i) for i in self._indices_after(after, offset, limit)]

    def _indices_after(self, after: datetime | None, offset: int, limit: int) -> list[int]:
        with self._lock:
            lo = self._first_index_after(after)
            moved = self._moved
            first_moved = bisect.bisect_left(moved, lo)
            untouched_total = (self.base_size - lo) - (len(moved) - first_moved)
            found: list[int] = []
            if offset < untouched_total:
                # the offset-th original index at or after lo that has not moved
                start = lo + offset
                while True:
                    skipped = bisect.bisect_right(moved, start) - first_moved
                    candidate = lo + offset + skipped
                    if candidate == start:
                        break
                    start = candidate
                index = start
                at = bisect.bisect_left(moved, index)
                while index < self.base_size and len(found) < limit:
                    if at < len(moved) and moved[at] == index:
                        at += 1
                    else:
                        found.append(index)
                    index += 1
            begin = self._late_after(after) + max(0, offset - untouched_total)
            found.extend(i for _, _, i in self._late_keys[begin : begin + (limit - len(found))])
            return found

    def iter_all(self) -> Iterator[SourceInvoice]:
        """Every live invoice, in modification order."""
        offset = 0
        while True:
            batch = self.list_after(None, offset, 1000)
            if not batch:
                return
            yield from batch
            offset += len(batch)
