"""Reading Zoho Books invoices' tax within its allowance of API calls, as its answers state it.

Zoho allows 100 calls a minute per organisation and a number a day that depends on the plan
(1,000 on Free up to 10,000 on Premium). Every answer carries ``X-Rate-Limit-Limit``,
``X-Rate-Limit-Remaining`` and ``X-Rate-Limit-Reset``. Zoho does not document which window they
describe nor how the reset is written, so both readings work: a reset read as seconds from now
(or as a Unix time, in seconds or milliseconds, when it is that large), and a window that frees a
call within :data:`LONG_WINDOW` is the minute's (it paces calls), a longer one the day's (it
tells what is left of the day). Over either limit Zoho answers 429; the day's is told from the
minute's by its message, which speaks of the day.

The invoice list carries no tax, so the tax of each invoice is read from the invoice itself, one
call each: more than a first sync of thousands of invoices can afford at 100 a minute and 1,000
a day. :class:`TaxBudget` says how many such reads a sync may make: only the calls the minute
leaves spare (half of it is kept for listing, and for other applications of the organisation),
and at most half of the day's allowance (``INTDASH_ZOHO__DAILY_LIMIT``), counted in the
integration's cursor by UTC day (:class:`TaxState`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from intdash.core.invoices import InvoiceData, InvoiceKind, SourceState
from intdash.providers.errors import MalformedResponse, RateLimited
from intdash.providers.headers import number, seconds_from_now
from intdash.providers.http import httpx
from intdash.providers.paging import CURSOR_LENGTH, Cursor, Listing, walk

log = logging.getLogger(__name__)

LONG_WINDOW = 120.0  # a window that frees a call later than this (seconds) is a day's
MINUTE_WAIT = 60.0  # a minute's limit met with no word of when it frees: a whole minute
MINUTE_KEPT = 10  # calls of the minute never spent on reading tax, however small the window
_DAY_WORDS = re.compile(r"\b(day|daily|today|tomorrow)\b", re.IGNORECASE)
_TAX_MARK = "~tax="  # in the cursor: where reading tax resumes
_READS_MARK = "~reads="  # in the cursor: tax reads made on a UTC day


@dataclass(frozen=True)
class Allowance:
    """One window of calls, as an answer stated it."""

    limit: int | None
    remaining: int
    reset: float | None  # seconds until it frees a call

    @property
    def daily(self) -> bool:
        return self.reset is not None and self.reset > LONG_WINDOW

    @classmethod
    def of(cls, response: httpx.Response, now: float) -> Allowance | None:
        remaining = number(response.headers.get("X-Rate-Limit-Remaining"))
        if remaining is None:
            return None
        limit = number(response.headers.get("X-Rate-Limit-Limit"))
        reset = seconds_from_now(response.headers.get("X-Rate-Limit-Reset"), now)
        return cls(None if limit is None else int(limit), max(0, int(remaining)), reset)


def refused_for_the_day(response: httpx.Response, allowance: Allowance | None) -> bool:
    """Whether a 429 says the day's calls are spent (rather than the minute's)."""
    if allowance is not None and allowance.daily and allowance.remaining == 0:
        return True
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return False
    message = str(body.get("message") or "") if isinstance(body, dict) else ""
    return bool(_DAY_WORDS.search(message)) and "minute" not in message.lower()


def until_next_utc_day(now: float) -> float:
    moment = datetime.fromtimestamp(now, UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return (midnight - moment).total_seconds()


class TaxBudget:
    """How many invoices' tax one sync may still read (see the module's docstring)."""

    def __init__(self, daily_limit: int, reads_today: int, fallback: int) -> None:
        self.cap = daily_limit // 2
        self.reads = reads_today  # today's, this sync's included
        self.fallback = fallback  # reads a sync may make when no answer stated the allowance
        self.made = 0  # this sync's
        self.allowance: Allowance | None = None

    def note(self, response: httpx.Response, now: float) -> None:
        """What an answer says of the allowance."""
        allowance = Allowance.of(response, now)
        if allowance is not None:
            self.allowance = allowance

    def allows(self) -> bool:
        if self.reads >= self.cap:
            return False
        allowance = self.allowance
        if allowance is None:
            return self.made < self.fallback
        limit = allowance.limit or 0
        kept = limit // 2 if allowance.daily else max(MINUTE_KEPT, limit // 2)
        return allowance.remaining > kept

    def spend(self) -> None:
        self.reads += 1
        self.made += 1


ANCHORS = 3  # how many of the invoices handled last in a second the cursor names
Position = tuple[datetime, tuple[str, ...]]  # a second, and the invoices of it handled last


@dataclass
class TaxState:
    """What the cursor keeps of reading tax, after the keyset paging's own part
    (:class:`intdash.providers.paging.Cursor`, which passes over these entries):

    - ``backlog``: where reading resumes. Every approved invoice listed after it (in the list's
      order: those of its second after the invoices named, the last handled, then every later
      one) may have been stored with its tax unknown; every one before it was read. None:
      nothing waits.
    - ``day`` and ``reads``: the tax reads made on that UTC day.
    """

    backlog: Position | None = None
    day: date | None = None
    reads: int = 0

    @classmethod
    def split(cls, cursor: str | None) -> tuple[str | None, TaxState]:
        """The keyset paging's cursor, and this state, from a stored cursor."""
        if not cursor:
            return None, cls()
        own: list[str] = []
        state = cls()
        for token in cursor.split(" "):
            if token.startswith(_TAX_MARK):
                moment, _, anchors = token.removeprefix(_TAX_MARK).partition("/")
                try:
                    named = tuple(a for a in anchors.split(",") if a)
                    state.backlog = (datetime.fromisoformat(moment), named)
                except ValueError:
                    state.backlog = None
            elif token.startswith(_READS_MARK):
                day, _, count = token.removeprefix(_READS_MARK).partition("/")
                try:
                    state.day, state.reads = date.fromisoformat(day), int(count)
                except ValueError:
                    state.day, state.reads = None, 0
            else:
                own.append(token)
        return " ".join(own) or None, state

    def encode(self, paging: str | None) -> str | None:
        """The cursor to store: the paging's, then this state (the paging's seen invoices are
        left out when both do not fit the column: they are only read again)."""
        if paging is None:
            return None
        tail = ""
        if self.backlog is not None:
            moment, anchors = self.backlog
            tail += f" {_TAX_MARK}{moment.isoformat()}"
            if anchors and not any(c in a for a in anchors for c in " /,"):
                tail += "/" + ",".join(anchors)
        if self.day is not None and self.reads:
            tail += f" {_READS_MARK}{self.day.isoformat()}/{self.reads}"
        if len(paging) + len(tail) > CURSOR_LENGTH:
            paging = Cursor(Cursor.decode(paging).since).encode() or paging
        return paging + tail

    def today(self, day: date) -> None:
        """Start counting afresh on a new day."""
        if self.day != day:
            self.day, self.reads = day, 0


def second_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


class Handled:
    """The invoices handled last (read, or not needing it), in the list's order: what a position
    names."""

    def __init__(self) -> None:
        self.recent: list[tuple[datetime, str]] = []

    def add(self, moment: datetime, external_id: str) -> None:
        self.recent = [*self.recent[1 - ANCHORS :], (moment, external_id)]

    def _of(self, second: datetime) -> tuple[str, ...]:
        return tuple(i for at, i in self.recent if second_of(at) == second)

    def before(self, moment: datetime) -> Position:
        """Where reading resumes, for an invoice modified at ``moment`` left unread next: at its
        second, after the invoices of that second handled before it."""
        second = second_of(moment)
        return second, self._of(second)

    def after(self) -> Position | None:
        """Where reading resumes after the last invoice handled (None: none was)."""
        if not self.recent:
            return None
        second = second_of(self.recent[-1][0])
        return second, self._of(second)


def resume_in(
    invoices: list[InvoiceData], anchors: tuple[str, ...], handled: Handled
) -> list[InvoiceData]:
    """Of a second's invoices (in the list's order), those after the last of ``anchors`` still
    in it; all of them when none is (noted in ``handled`` as it goes)."""
    found = [n for n, invoice in enumerate(invoices) if invoice.external_id in anchors]
    if not found:
        if anchors:
            log.info("Zoho: the invoices where tax reading stopped have moved; reading on")
        return invoices
    for invoice in invoices[: found[-1] + 1]:
        handled.add(modified_at(invoice), invoice.external_id)
    return invoices[found[-1] + 1 :]


def listing_start(position: Position) -> Cursor:
    """A keyset cursor that lists from the position's second on (Zoho includes the time
    given)."""
    return Cursor(position[0])


FISCALIZED = frozenset({InvoiceKind.SALES, InvoiceKind.CREDIT_NOTE})


def needs_tax(invoice: InvoiceData) -> bool:
    """Whether its tax must be read: an approved sale or sales credit note (what is
    fiscalized) listed without it."""
    return (
        invoice.tax is None and invoice.kind in FISCALIZED and invoice.state is SourceState.APPROVED
    )


def modified_at(invoice: InvoiceData) -> datetime:
    if invoice.source_updated_at is None:  # (parse_invoice always gives one)
        raise MalformedResponse(f"Zoho: invoice {invoice.external_id} has no modified time")
    return invoice.source_updated_at


async def read_on(
    fetch: Callable[[datetime | None, int], Awaitable[Listing]],
    read: Callable[[InvoiceData], Awaitable[InvoiceData]],
    state: TaxState,
    budget: TaxBudget,
    ended: list[bool],
    *,
    label: str = "Zoho invoices",
) -> AsyncIterator[list[InvoiceData]]:
    """Read the tax of the invoices stored without it, oldest first, from where reading
    stopped (``state.backlog``, moved on as they are read), while the budget allows; each
    page of invoices read is handed on as it is done (``state`` then says where reading
    resumes). Listing from a second, its invoices up to the last of those named (the last
    handled) are passed over: Zoho lists the invoices of one second in the same order each
    time, and an old second only loses invoices, to edits and deletions. When all of those
    named have left the second, where reading stopped in it is not known any more, and its
    invoices are handled again from its start (some read again: calls spent, nothing stored
    twice)."""
    assert state.backlog is not None
    second, anchors = state.backlog
    of_second: list[InvoiceData] = []  # listed in ``second``, until where to resume is known
    resolved = not anchors
    handled = Handled()
    out: list[InvoiceData] = []

    async def handle(invoices: list[InvoiceData]) -> bool:
        """Read what needs reading; False when the budget stops it (``state`` says where)."""
        for invoice in invoices:
            at = modified_at(invoice)
            if needs_tax(invoice):
                if not budget.allows():
                    state.backlog = handled.before(at)
                    return False
                try:
                    out.append(await read(invoice))
                except RateLimited:
                    state.backlog = handled.before(at)
                    raise
            handled.add(at, invoice.external_id)
        state.backlog = handled.after() or state.backlog
        return True

    try:
        async for found in walk(fetch, listing_start(state.backlog), label=label):
            todo: list[InvoiceData] = []
            for listed in found.invoices:
                moment = modified_at(listed)
                if second_of(moment) < second:
                    continue  # (before where reading stopped)
                if not resolved and second_of(moment) == second:
                    of_second.append(listed)
                    continue
                if not resolved:
                    resolved = True
                    todo.extend(resume_in(of_second, anchors, handled))
                todo.append(listed)
            going = await handle(todo)
            yield out
            out = []
            if not going:
                return
        # the list ended within the second
        if not resolved and not await handle(resume_in(of_second, anchors, handled)):
            yield out
            return
        if ended[0]:
            state.backlog = None  # read to the end of the list: nothing waits
        yield out
    except RateLimited:
        yield out
        raise
