"""Paging through a platform's invoices without losing one while the books change under it.

Every platform lists invoices "modified since T", ordered by modification time, a page at a time
(Xero's ``page``, MYOB's ``$skip``, Zoho's ``page``). Paging by number over such a list loses
invoices: an invoice edited (or deleted) during the sync leaves its place for the end of the list,
everything after it moves up one, and the invoice that moves across the page boundary is never
fetched, while the cursor moves past it for good.

So each page continues from the last modification time stored rather than from a page number
(keyset paging): after a page whose last invoice was modified at ``t``, the next request asks for
what was modified since ``floor(t) - 1 s`` and starts again at page 1. An edit then only moves an
invoice later, where a later request finds it, and nothing it passes is skipped. Two details make
this exact:

- The platforms take the "since" time to the second while they keep milliseconds, and several
  invoices can share a second (an import writes hundreds at once). Going back to the start of the
  previous second re-reads the invoices of the boundary second, so one modified in the same second
  as the last one read, but not on its page, is not skipped. What is read twice is upserted
  unchanged.
- When a whole page falls within those two seconds (more invoices share them than a page holds),
  the time cannot move on, and the pages of that "band" are read by number under the same time,
  which an edit during the sync can upset. The band is then read again from its first page until
  two readings in a row find the same invoices in it: an edit or deletion during a reading takes
  an invoice out of the band, so two equal readings mean neither was disturbed. This is done only
  once a later invoice has been seen (a band that is still being written to is read again by the
  next sync instead: the cursor stays before it).

The cursor saved with each page is the "since" time the next sync may start from: every invoice
modified at or before it has been stored. It never passes an invoice that was not stored.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

from intdash.core.invoices import InvoiceData
from intdash.providers.base import InvoicePage
from intdash.providers.errors import MalformedResponse

log = logging.getLogger(__name__)

OVERLAP = timedelta(seconds=1)
BAND = 2 * OVERLAP  # a page that ends within this of its "since" time cannot move it on
MAX_BAND_READINGS = 5


@dataclass(frozen=True)
class Listing:
    """One page as a platform answered it: invoices in modification order, and whether more
    may follow."""

    invoices: Sequence[InvoiceData]
    more: bool


# (modified since, or None for everything; page number from 1) -> that page
Fetch = Callable[[datetime | None, int], Awaitable[Listing]]


CURSOR_LENGTH = 200  # what the integration's cursor column holds
Seen = tuple[datetime, str]  # an invoice's modified time and content digest


@dataclass
class Cursor:
    """Where the next sync starts: every invoice modified at or before ``since`` is stored, and
    so are the ``seen`` ones modified after it, which a sync that re-reads the boundary second
    can therefore pass over rather than count again. A seen invoice is known by its id, its
    modified time and a digest of its content (Zoho keeps whole seconds: an edit within the
    second of the last one has the same time)."""

    since: datetime | None = None
    seen: dict[str, Seen] = field(default_factory=dict)

    def encode(self) -> str | None:
        """``since`` in ISO 8601, then ``id@microseconds#digest`` of each seen invoice while
        they fit the column (a plain ISO time, as earlier versions stored, reads the same)."""
        if self.since is None:
            return None
        text = self.since.isoformat()
        for external_id, (moment, digest) in sorted(self.seen.items(), key=lambda item: item[1]):
            entry = f" {external_id}@{round(moment.timestamp() * 1_000_000)}#{digest}"
            if len(text) + len(entry) > CURSOR_LENGTH or " " in external_id:
                return self.since.isoformat()  # all or none: the rest are simply read again
            text += entry
        return text

    @classmethod
    def decode(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        first, *entries = text.split(" ")
        seen: dict[str, Seen] = {}
        for entry in entries:
            external_id, _, version = entry.rpartition("@")
            micros, _, digest = version.partition("#")
            if external_id and micros.isdigit() and digest:
                seen[external_id] = (datetime.fromtimestamp(int(micros) / 1_000_000, UTC), digest)
        return cls(_utc(datetime.fromisoformat(first)), seen)


def digest_of(invoice: InvoiceData) -> str:
    """A short digest of everything read of an invoice: two reads with the same are the same."""
    return hashlib.blake2s(repr(invoice).encode(), digest_size=6).hexdigest()


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def cursor_time(cursor: str | None) -> datetime | None:
    """The time a stored cursor's invoices start from."""
    return Cursor.decode(split_streams(cursor)[0]).since


def start_cursor(cursor: str | None, since: date | None) -> Cursor:
    """Where a sync begins: the stored cursor, else just before the sync-from date begins,
    else the beginning."""
    if cursor:
        return Cursor.decode(cursor)
    if since is not None:
        return Cursor(datetime.combine(since, datetime.min.time(), UTC) - OVERLAP)
    return Cursor()


def _floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def _modified(invoice: InvoiceData, label: str) -> datetime:
    if invoice.source_updated_at is None:
        raise MalformedResponse(f"{label}: invoice {invoice.external_id} has no modified time")
    return invoice.source_updated_at


def _in_order(invoices: Sequence[InvoiceData], label: str) -> list[datetime]:
    times = [_modified(invoice, label) for invoice in invoices]
    for before, after in pairwise(times):
        if after < before:
            raise MalformedResponse(
                f"{label}: the invoices are not in modification order ({before} before {after})"
            )
    return times


async def walk(fetch: Fetch, start: Cursor, *, label: str) -> AsyncIterator[InvoicePage]:
    """Every invoice modified after ``start`` (all when it has no time), page by page, each
    invoice once (one read again at a page's boundary, unchanged, is passed over); each page
    carries the cursor that is safe to store with it."""
    since = _floor(start.since) if start.since is not None else None
    seen = dict(start.seen)

    def emit(
        invoices: list[InvoiceData], times: list[datetime], at: datetime | None
    ) -> InvoicePage:
        fresh: list[InvoiceData] = []
        for invoice, moment in zip(invoices, times, strict=True):
            if at is not None and moment <= at and invoice.external_id not in seen:
                fresh.append(invoice)  # new, and before the cursor: nothing to remember of it
                continue
            version = (moment, digest_of(invoice))
            if seen.get(invoice.external_id) != version:
                fresh.append(invoice)
                seen[invoice.external_id] = version
        for external_id in [k for k, (t, _) in seen.items() if at is not None and t <= at]:
            del seen[external_id]
        return InvoicePage(fresh, Cursor(at, seen).encode())

    page = 1
    band: _Band | None = None
    while True:
        listing = await fetch(since, page)
        invoices = list(listing.invoices)
        times = _in_order(invoices, label)
        if band is not None:
            if not band.read(invoices, times):  # still within the band
                yield emit(invoices, times, band.since)
                if not listing.more:  # the list ends inside it: the next sync reads it again
                    return
                page += 1
                continue
            if not band.settled():
                yield emit(invoices, times, band.since)
                if len(band.readings) >= MAX_BAND_READINGS:
                    log.warning(
                        "%s: invoices keep changing; the next sync goes on from here", label
                    )
                    return
                log.info("%s: invoices changed while a band was read; reading it again", label)
                page = 1
                continue
            band = None  # read alike twice: on from the first invoice past it
        if not invoices:
            yield emit([], [], since)
            return
        step = _floor(times[-1]) - OVERLAP
        if not listing.more:
            yield emit(invoices, times, max(step, since) if since is not None else step)
            return
        if since is None or step > since:
            yield emit(invoices, times, step)
            since, page = step, 1
            continue
        # a whole page within two seconds of ``since``: read the band by page number
        band = _Band(since)
        band.read(invoices, times)  # all of it within the band
        yield emit(invoices, times, since)
        page += 1


class _Band:
    """The invoices modified within :data:`BAND` after ``since``, read by page number."""

    def __init__(self, since: datetime) -> None:
        self.since = since
        self.end = since + BAND
        self.readings: list[set[str]] = []  # the band's invoices, each time it was read through
        self._current: set[str] = set()

    def read(self, invoices: list[InvoiceData], times: list[datetime]) -> bool:
        """Note a page of the band; True when the band ends on it (a later invoice is on it)."""
        for invoice, moment in zip(invoices, times, strict=True):
            if moment >= self.end:
                self.readings.append(self._current)
                self._current = set()
                return True
            self._current.add(invoice.external_id)
        return False

    def settled(self) -> bool:
        """Read through twice in a row with the same invoices: neither reading was upset."""
        return len(self.readings) >= 2 and self.readings[-1] == self.readings[-2]


# -- a second stream: credit notes -------------------------------------------------------------
#
# Where a platform keeps credit notes apart from invoices (Xero's /CreditNotes, Zoho's
# /creditnotes), a sync reads the invoices, then the credit notes, each stream by the same keyset
# paging with a cursor of its own; the integration's cursor holds both, the invoices' first (a
# cursor stored before credit notes were read is the invoices' alone: their stream starts from
# the sync-from date, or the beginning).

STREAMS_MARK = " ~credit-notes~ "
STREAMS_LENGTH = 2 * CURSOR_LENGTH + len(STREAMS_MARK)  # what the cursor column holds

StreamPages = Callable[[str | None], AsyncIterator[InvoicePage]]


def split_streams(cursor: str | None) -> tuple[str | None, str | None]:
    """A stored cursor's parts: the invoices' and the credit notes' (None: not read yet)."""
    if not cursor:
        return None, None
    invoices, mark, credit_notes = cursor.partition(STREAMS_MARK)
    if not mark:
        return cursor, None
    return invoices or None, credit_notes or None


def join_streams(invoices: str | None, credit_notes: str | None) -> str | None:
    """The cursor to store for both streams (the invoices' alone while credit notes have none)."""
    if credit_notes is None:
        return invoices
    return f"{invoices or ''}{STREAMS_MARK}{credit_notes}"


async def chain_streams(
    cursor: str | None, invoices: StreamPages, credit_notes: StreamPages
) -> AsyncIterator[InvoicePage]:
    """Every page of the invoices' stream, then every page of the credit notes', each from its
    own part of ``cursor``, each carrying the cursor of both that is safe to store with it."""
    invoices_at, credit_notes_at = split_streams(cursor)
    async for found in invoices(invoices_at):
        invoices_at = found.cursor
        yield InvoicePage(found.invoices, join_streams(invoices_at, credit_notes_at))
    async for found in credit_notes(credit_notes_at):
        credit_notes_at = found.cursor
        yield InvoicePage(found.invoices, join_streams(invoices_at, credit_notes_at))
