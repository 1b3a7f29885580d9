"""Deterministic invoice data of any size, computed on demand.

Invoice ``i`` of ``n`` is a pure function of the seed and ``i``, so a million invoices cost no
memory. Their modification times rise with ``i`` and end at :data:`EPOCH_END`; invoices that
are *touched* (edited, as a bookkeeper would) get a later modification time, in touch order,
and a new revision. Listing "modified after T" therefore is: the untouched invoices past an
index computed from T, then the touched ones after T.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

EPOCH_END = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=30)
_CENT = Decimal("0.01")

CONTACTS = (
    "Bayside Plumbing", "Kowhai Cafe", "Harbour Logistics", "Totara Builders", "Marlow & Sons",
    "Pukeko Print", "Rata Health", "Southern Cross Legal", "Tui Electrical", "Westgate Motors",
    "Aroha Florist", "Coastal Joinery", "Fernleaf Dairy", "Glenview Vets", "Ironbark Timber",
)  # fmt: skip
CURRENCIES = ("NZD", "NZD", "NZD", "AUD", "USD", "GBP")


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


def _digest(seed: str, *parts: object) -> bytes:
    return hashlib.sha256(":".join([seed, *map(str, parts)]).encode()).digest()


class Dataset:
    """``size`` invoices of one platform's sandbox company."""

    def __init__(self, size: int, seed: str = "intdash") -> None:
        if not 0 <= size <= 10_000_000:
            raise ValueError("size must be between 0 and 10,000,000")
        self.size = size
        self.seed = seed
        self._lock = threading.Lock()
        self._touched: dict[int, tuple[int, datetime]] = {}  # index -> (revision, updated)
        self._touched_sorted: list[int] = []  # indices, ascending
        self._touch_order: list[int] = []  # indices, in the order they were last touched
        self._touches = 0

    # -- single invoices ---------------------------------------------------------------------

    def base_updated(self, index: int) -> datetime:
        return EPOCH_END - STEP * (self.size - index)

    def invoice(self, index: int) -> SourceInvoice:
        raw = _digest(self.seed, index)
        revision, updated = self._touched.get(index, (0, self.base_updated(index)))
        created = self.base_updated(index)
        subtotal = (Decimal(int.from_bytes(raw[0:4], "big") % 2_000_000 + 500) / 100).quantize(
            _CENT
        )
        if revision:  # an edit: amounts move a little
            subtotal = (subtotal + Decimal(revision * 7) / 100).quantize(_CENT)
        tax = (subtotal * Decimal("0.15")).quantize(_CENT, ROUND_HALF_EVEN)
        contact = raw[5] % len(CONTACTS)
        issued = created.date() - timedelta(days=raw[6] % 5)
        return SourceInvoice(
            index=index,
            id=str(uuid.UUID(bytes=raw[8:24], version=4)),
            number=f"INV-{index + 1:07d}",
            sales=raw[4] % 10 != 0,  # one in ten is a bill
            contact=CONTACTS[contact],
            contact_id=str(uuid.UUID(bytes=_digest(self.seed, "contact", contact)[:16], version=4)),
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
        )

    # -- edits -------------------------------------------------------------------------------

    def touch(self, indices: list[int]) -> list[int]:
        """Edit these invoices now (in list order); returns them."""
        with self._lock:
            for index in indices:
                if not 0 <= index < self.size:
                    raise IndexError(f"no invoice {index} in a dataset of {self.size}")
                self._touches += 1
                revision = self._touched.get(index, (0, EPOCH_END))[0] + 1
                if index not in self._touched:
                    bisect.insort(self._touched_sorted, index)
                else:
                    self._touch_order.remove(index)
                self._touched[index] = (revision, EPOCH_END + timedelta(seconds=self._touches))
                self._touch_order.append(index)
        return indices

    def touch_spread(self, count: int) -> list[int]:
        """Edit ``count`` invoices spread evenly over the dataset."""
        if self.size == 0 or count <= 0:
            return []
        stride = max(1, self.size // count)
        return self.touch([(k * stride + stride // 2) % self.size for k in range(count)])

    @property
    def touched_count(self) -> int:
        return len(self._touched)

    # -- listing -----------------------------------------------------------------------------

    def _first_index_after(self, after: datetime | None) -> int:
        if after is None:
            return 0
        if after < self.base_updated(0):
            return 0
        # base_updated(i) > after  <=>  i > size - (EPOCH_END - after) / STEP
        steps = (EPOCH_END - after) / STEP
        first = self.size - int(steps)  # then nudged to the exact boundary
        while first > 0 and self.base_updated(first - 1) > after:
            first -= 1
        while first < self.size and self.base_updated(first) <= after:
            first += 1
        return first

    def _untouched_between(self, lo: int) -> int:
        return bisect.bisect_left(self._touched_sorted, lo)

    def count_after(self, after: datetime | None) -> int:
        """How many invoices were modified strictly after ``after`` (all when None)."""
        with self._lock:
            lo = self._first_index_after(after)
            touched_below = len(self._touched_sorted) - self._untouched_between(lo)
            untouched = (self.size - lo) - touched_below
            late = sum(1 for i in self._touch_order if after is None or self._touched[i][1] > after)
            return untouched + late

    def list_after(self, after: datetime | None, offset: int, limit: int) -> list[SourceInvoice]:
        """Invoices modified after ``after``, oldest modification first, from ``offset``."""
        return [self.invoice(i) for i in self._indices_after(after, offset, limit)]

    def _indices_after(self, after: datetime | None, offset: int, limit: int) -> list[int]:
        with self._lock:
            lo = self._first_index_after(after)
            touched = self._touched_sorted
            untouched_total = (self.size - lo) - (len(touched) - bisect.bisect_left(touched, lo))
            found: list[int] = []
            if offset < untouched_total:
                # the offset-th untouched index at or after lo
                start = lo + offset
                while True:
                    skipped = bisect.bisect_right(touched, start) - bisect.bisect_left(touched, lo)
                    candidate = lo + offset + skipped
                    if candidate == start:
                        break
                    start = candidate
                index = start
                while index < self.size and len(found) < limit:
                    if index not in self._touched:
                        found.append(index)
                    index += 1
            late = [i for i in self._touch_order if after is None or self._touched[i][1] > after]
            late_offset = max(0, offset - untouched_total)
            found.extend(late[late_offset : late_offset + (limit - len(found))])
            return found

    def iter_all(self) -> Iterator[SourceInvoice]:
        offset = 0
        while True:
            batch = self.list_after(None, offset, 1000)
            if not batch:
                return
            yield from batch
            offset += len(batch)
