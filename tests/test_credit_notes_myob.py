"""MYOB's credit notes: a negative sale synced as a credit note in its own terms (its amounts and
lines positive), naming the invoice its credit settlement applies it to; one settled after it was
synced names it at the next sync, though settling changes no ``LastModified`` of a sale; a sync
gives nothing twice, and one that finds nothing changed makes three calls. The emulator serves
``Sale/CreditSettlement`` as strictly as the sales, and refuses what MYOB refuses."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.requests import Request
from starlette.responses import Response

from intdash.core.invoices import InvoiceData, InvoiceKind
from intdash.core.models import RunOutcome
from intdash.core.workspace import Workspace
from intdash.providers.connect import ConnectService
from intdash.providers.errors import ProviderUnavailable
from intdash.providers.paging import cursor_time, split_streams
from intdash.providers.ratelimit import RateLimits
from intdash.sandbox.common import RateWindow
from intdash.sandbox.dataset import Dataset, SourceInvoice
from intdash.sandbox.myob import COMPANY_FILE_ID, MyobEmulator, layout_of, status_of
from intdash.sandbox.myob_credits import Query
from intdash.sandbox.server import Sandbox
from intdash.sync.engine import SyncEngine
from tests.providers import connect, pws, redirect_uri, sandbox_env

__all__ = ["pws", "redirect_uri", "sandbox_env"]  # fixtures

SIZE = 120
START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
UNPACED = {"myob": RateLimits(per_window=10**9, window=1.0)}
Handler = Callable[[Request, Any], Awaitable[Response]]


@dataclass
class BooksClock:
    """MYOB's clock, moved by the test: what it stamps (sales, settlements) it stamps with this."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 5) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Books:
    box: Sandbox
    myob: MyobEmulator
    data: Dataset
    clock: BooksClock


@pytest.fixture
def books(request: pytest.FixtureRequest) -> Iterator[Books]:
    """The sandbox, its MYOB on an API key of its own, without MYOB's rate limits (tested
    elsewhere) so that only the calls are counted, its books on a clock of the test's; with
    ``credit_every`` from the test's ``indirect`` parameter (0: no credit note to begin with)."""
    every = int(getattr(request, "param", 0))
    myob = MyobEmulator(size=SIZE, client_id=f"key-{uuid.uuid4().hex[:12]}", credit_every=every)
    myob.second = RateWindow(10**9, 1.0)
    clock = BooksClock(START + timedelta(minutes=5))
    myob.dataset = Dataset(SIZE, seed="myob-credit-notes", epoch_end=START, clock=clock)
    box = Sandbox(size=SIZE, myob=myob).start()
    yield Books(box, myob, myob.dataset, clock)
    box.stop()


@pytest.fixture
def sandbox(books: Books) -> Sandbox:
    return books.box


async def _connected(ws: Workspace) -> tuple[ConnectService, str]:
    uid = ws.integrations.create("myob").integration.uid
    service = await connect(ws, uid, ConnectService(ws, limits=UNPACED))
    return service, uid


@dataclass
class Synced:
    invoices: list[InvoiceData]
    cursor: str | None
    reads: list[str]  # each call's path below the company file, and its query

    def paths(self) -> list[str]:
        return [urlsplit(read).path.split(f"{COMPANY_FILE_ID}/", 1)[1] for read in self.reads]

    def given(self, external_id: str) -> list[InvoiceData]:
        return [i for i in self.invoices if i.external_id == external_id]


async def _sync(
    service: ConnectService, uid: str, myob: MyobEmulator, cursor: str | None
) -> Synced:
    """One sync's pages from ``cursor``, as the connector gives them, and the calls made."""
    invoices: list[InvoiceData] = []
    myob.reads.clear()
    async with await service.api(uid) as api:
        calls = api.calls
        async for page in api.connector.pages(api, cursor, None):
            invoices.extend(page.invoices)
            cursor = page.cursor
        assert api.calls - calls == len(myob.reads)
    return Synced(invoices, cursor, list(myob.reads))


def _open_invoices(books: Books) -> list[SourceInvoice]:
    """Sales that owe their whole total: credit can be applied to them."""
    book = books.myob.book_of(books.data)
    return [
        inv
        for inv in books.data.iter_all()
        if not book.is_credit_note(inv.index) and book.standing(inv).status == "Open"
    ]


def _source(books: Books, uid: str) -> SourceInvoice:
    index = books.data.index_of(uid)
    assert index is not None
    return books.data.invoice(index)


def _settled(books: Books, note: str, invoice: str) -> str:
    """A credit note's status once applied to an invoice, all of it that the invoice owes."""
    return "Closed" if _source(books, note).total <= _source(books, invoice).total else "Credit"


def _check_own_terms(note: InvoiceData, source: SourceInvoice) -> None:
    """A credit note as its own document: the dataset's amounts, positive, line by line."""
    assert note.kind is InvoiceKind.CREDIT_NOTE
    assert (note.subtotal, note.tax, note.total) == (source.subtotal, source.tax, source.total)
    assert note.total > 0 and note.tax is not None and note.tax > 0
    assert len(note.items) == len(source.lines)
    for item, line in zip(note.items, source.lines, strict=True):
        price = line.gross if source.inclusive else line.unit_price
        assert (item.name, item.quantity, item.unit_price) == (
            line.description,
            line.quantity,
            price,
        )
        assert item.total == (line.gross if source.inclusive else line.net) > 0
        assert item.discount >= 0 and item.total == item.quantity * item.unit_price - item.discount


# -- a credit note, settled -------------------------------------------------------------------


async def test_a_settled_credit_note_is_a_credit_note_in_its_own_terms_naming_its_invoice(
    pws: Workspace, books: Books
) -> None:
    """Credit notes of both layouts (an Item line's quantity returned, a Service line's price
    credited), each settled against the invoice it was raised for: each is given once, its
    amounts and lines positive, ``credits`` that invoice; every other sale is a sale."""
    service, uid = await _connected(pws)
    myob, targets = books.myob, iter(_open_invoices(books))
    made: dict[str, str] = {}  # credit note -> the invoice it credits
    while {layout_of(_source(books, note)) for note in made} != {"Item", "Service"}:
        target = next(targets)
        note = myob.credit_note(target.id)
        books.clock.tick()
        myob.settle(note, target.id)
        made[note] = target.id
    synced = await _sync(service, uid, myob, None)
    assert len(synced.invoices) == SIZE + len(made)
    for note, invoice in made.items():
        (given,) = synced.given(note)  # once, though both streams met it
        _check_own_terms(given, _source(books, note))
        assert (given.credits, given.source_status) == (invoice, _settled(books, note, invoice))
    others = [i for i in synced.invoices if i.external_id not in made]
    assert all(i.kind is InvoiceKind.SALES and i.credits is None for i in others)
    assert {i.source_status for i in others} <= {"Open", "Closed"}  # "Credit": a credit note's


async def test_credit_applied_in_parts_names_the_first_invoice_it_was_applied_to(
    pws: Workspace, books: Books
) -> None:
    service, uid = await _connected(pws)
    myob = books.myob
    by_customer: dict[tuple[str, str], list[SourceInvoice]] = {}
    for invoice in _open_invoices(books):
        by_customer.setdefault((invoice.contact_id, invoice.currency), []).append(invoice)
    first, second = next(group for group in by_customer.values() if len(group) >= 2)[:2]
    note = myob.credit_note(second.id)
    books.clock.tick()
    myob.settle(note, first.id, "1.00")  # partly: the credit note stays in Credit
    books.clock.tick()
    myob.settle(note, second.id, "2.00")
    (given,) = (await _sync(service, uid, myob, None)).given(note)
    assert (given.credits, given.source_status) == (first.id, "Credit")


# -- a credit note settled after it was synced --------------------------------------------------


async def test_a_credit_note_settled_after_its_sync_names_its_invoice_at_the_next(
    pws: Workspace, books: Books
) -> None:
    """Settling changes no ``LastModified`` of a sale: the credit note is not listed again as a
    sale, and the settlements' own stream brings it again, naming its invoice; then a sync that
    finds nothing changed gives nothing and makes three calls."""
    service, uid = await _connected(pws)
    myob = books.myob
    invoice = _open_invoices(books)[0]
    note = myob.credit_note(invoice.id)
    books.clock.tick()
    myob.edit(_open_invoices(books)[1].id)  # the last second read is another sale's
    first = await _sync(service, uid, myob, None)
    (unsettled,) = first.given(note)
    assert (unsettled.kind, unsettled.credits, unsettled.source_status) == (
        InvoiceKind.CREDIT_NOTE,
        None,
        "Credit",
    )
    assert split_streams(first.cursor)[1] is None  # no settlement yet: the invoices' cursor
    books.clock.tick()
    settled_at = books.clock.now
    myob.settle(note, invoice.id)
    assert unsettled.source_updated_at == _source(books, note).updated < settled_at
    later = await _sync(service, uid, myob, first.cursor)
    assert [(i.external_id, i.credits, i.source_status) for i in later.invoices] == [
        (note, invoice.id, _settled(books, note, invoice.id))
    ]
    _check_own_terms(later.invoices[0], _source(books, note))
    assert later.paths()[-4:] == [
        "Sale/CreditSettlement",  # what was settled since: the one settlement
        "Sale/Invoice",  # its credit note, by UID
        f"Sale/Invoice/{layout_of(_source(books, note))}",  # its lines, by UID
        "Sale/CreditSettlement",  # all its settlements
    ]
    invoices_at, settlements_at = split_streams(later.cursor)
    assert invoices_at == split_streams(first.cursor)[0] and settlements_at is not None
    assert cursor_time(later.cursor) == cursor_time(first.cursor)
    quiet = await _sync(service, uid, myob, later.cursor)
    assert quiet.invoices == [] and quiet.cursor == later.cursor
    assert quiet.paths() == ["Sale/Invoice", quiet.paths()[1], "Sale/CreditSettlement"]
    assert quiet.paths()[1] in ("Sale/Invoice/Item", "Sale/Invoice/Service")


async def test_settling_between_a_page_and_its_lines_loses_no_invoice(
    pws: Workspace, books: Books, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credit applied to an invoice right after ``Sale/Invoice`` lists it and before its lines
    are read moves its ``RowVersion``, not its ``LastModified``: it is given with its lines all
    the same (were it left for the paging to meet again, it never would be)."""
    service, uid = await _connected(pws)
    myob = books.myob
    invoice = _open_invoices(books)[3]
    note = myob.credit_note(invoice.id)
    original: Handler = MyobEmulator._invoices.__get__(myob)
    settled: list[str] = []

    async def between(request: Request, file: Any) -> Response:
        response = await original(request, file)
        if "layout" not in request.path_params and not settled:
            settled.append(myob.settle(note, invoice.id))
        return response

    monkeypatch.setattr(myob, "_invoices", between)
    synced = await _sync(service, uid, myob, None)
    (given,) = synced.given(invoice.id)
    assert given.kind is InvoiceKind.SALES and given.items and given.source_status == "Open"
    (credited,) = synced.given(note)
    assert credited.credits == invoice.id and credited.items
    assert len(synced.invoices) == SIZE + 1


# -- credit notes among the sales, and the calls --------------------------------------------------


@pytest.mark.parametrize("books", [3], indirect=True)
async def test_a_page_of_many_credit_notes_reads_their_settlements_twenty_at_a_time(
    pws: Workspace, books: Books
) -> None:
    """One sale in three a credit note, every other one of them settled: 40 on a page of 120
    take two reads of settlements by UID (20 each, a query within IIS's 2,048 characters)."""
    service, uid = await _connected(pws)
    book = books.myob.book_of(books.data)
    settled = {s.credit_note for s in book.settlements(Query())}
    synced = await _sync(service, uid, books.myob, None)
    assert len(synced.invoices) == SIZE
    notes = [i for i in synced.invoices if i.kind is InvoiceKind.CREDIT_NOTE]
    assert len(notes) == SIZE // 3
    for note in notes:
        source = _source(books, note.external_id)
        _check_own_terms(note, source)
        origin = books.data.invoice(source.index - 1)
        assert note.credits == (origin.id if source.index in settled else None)
    assert {n.credits is None for n in notes} == {True, False}
    by_uid = [
        read
        for read in synced.reads
        if "CreditFromInvoice/UID" in "".join(parse_qs(urlsplit(read).query).get("$filter", []))
    ]
    assert len(by_uid) == 2
    for read in by_uid:
        (text,) = parse_qs(urlsplit(read).query)["$filter"]
        assert text.count("guid'") <= 20 and len(urlsplit(read).query) <= 2048
    assert books.myob.rate_limited == 0


@pytest.mark.parametrize("books", [4], indirect=True)
async def test_syncs_count_nothing_twice_and_a_quiet_one_makes_three_calls(
    pws: Workspace, books: Books
) -> None:
    """Through the sync engine: the first sync stores every sale once (the settlements' stream
    meets every seeded settlement, each with a credit note given with it already); a credit
    note made and settled since is counted once; a sync that finds nothing changed counts
    nothing and makes three calls."""
    service, uid = await _connected(pws)
    myob = books.myob
    engine = SyncEngine(pws, service)
    first = await engine.run(uid)
    assert first.outcome is RunOutcome.OK, first.error
    assert (first.fetched, first.created, first.updated) == (SIZE, SIZE, 0)
    invoice = _open_invoices(books)[-1]
    books.clock.tick()
    note = myob.credit_note(invoice.id)
    books.clock.tick()
    myob.settle(note, invoice.id)
    second = await engine.run(uid)
    assert (second.fetched, second.created, second.updated) == (1, 1, 0), second.error
    myob.reads.clear()
    quiet = await engine.run(uid)
    assert quiet.outcome is RunOutcome.OK, quiet.error
    assert (quiet.fetched, quiet.created, quiet.updated) == (0, 0, 0)
    paths = [urlsplit(read).path.rsplit("/Sale/", 1)[1] for read in myob.reads]
    assert paths == ["Invoice", f"Invoice/{layout_of(_source(books, note))}", "CreditSettlement"]


# -- the emulator: truthful, and as strict as MYOB ------------------------------------------------


@pytest.mark.parametrize("books", [6], indirect=True)
async def test_the_emulator_shows_credit_notes_as_myob_does_and_refuses_what_it_refuses(
    pws: Workspace, books: Books
) -> None:
    service, uid = await _connected(pws)
    myob, data = books.myob, books.data
    base = f"{pws.settings.myob.api_url}/accountright/{COMPANY_FILE_ID}/Sale"
    async with await service.api(uid) as api:

        async def items(path: str, **params: str) -> list[dict[str, Any]]:
            found = await api.get_json(f"{base}/{path}", params=params, what="MYOB")
            listed: list[dict[str, Any]] = found["Items"]
            return listed

        sales = await items("Invoice", **{"$top": "1000"})
        assert len(sales) == SIZE
        for raw in sales:  # "Credit" is a negative sale's, unapplied
            negative = raw["TotalAmount"] < 0
            assert (raw["Status"] == "Credit") == (negative and raw["BalanceDueAmount"] < 0)
            assert negative == (raw["Subtotal"] < 0) == (raw["TotalTax"] < 0)
        notes = [raw for raw in sales if raw["TotalAmount"] < 0]
        assert {raw["Status"] for raw in notes} == {"Credit", "Closed"}
        settled = await items("CreditSettlement")
        applied = {s["CreditFromInvoice"]["UID"] for s in settled}
        closed = {raw["UID"] for raw in notes if raw["Status"] == "Closed"}
        assert closed and closed <= applied < {raw["UID"] for raw in notes}
        for raw in notes:  # unapplied: owed back whole
            assert (raw["UID"] in applied) == (raw["BalanceDueAmount"] > raw["TotalAmount"])
        one = settled[0]
        assert {"UID", "Number", "Date", "CreditFromInvoice", "Customer", "CreditAmount",
                "Lines", "LastModified", "RowVersion", "URI"} <= set(one)  # fmt: skip
        (line,) = one["Lines"]
        assert line["Type"] == "Invoice" and line["AmountApplied"] == one["CreditAmount"]
        credit_note = one["CreditFromInvoice"]["UID"]
        assert [s["UID"] for s in await items(
            "CreditSettlement", **{"$filter": f"CreditFromInvoice/UID eq guid'{credit_note}'"}
        )] == [one["UID"]]  # fmt: skip
        uids = [raw["UID"] for raw in sales[5:8]]
        either = " or ".join(f"UID eq guid'{u.upper()}'" for u in uids)
        assert [raw["UID"] for raw in await items("Invoice", **{"$filter": either})] == uids
        later = f"({either}) and LastModified gt datetime'{sales[5]['LastModified']}'"
        assert [raw["UID"] for raw in await items("Invoice", **{"$filter": later})] == uids[1:]
        moment = one["LastModified"]
        for refused in (
            f"CreditFromInvoice/UID eq '{credit_note}'",  # a string, not a guid
            f"CreditFromInvoice/UID eq guid'{credit_note[:-1]}'",
            f"CreditFromInvoice/UID eq guid'{credit_note}' or LastModified gt datetime'{moment}'",
            f"CreditFromInvoice/UID eq guid'{credit_note}' or UID eq guid'{credit_note}' and "
            f"LastModified gt datetime'{moment}'",  # "or" binds looser than "and"
            f"LastModified gt datetime'{moment}Z'",
            f"CreditFromInvoice eq guid'{credit_note}'",
        ):
            with pytest.raises(ProviderUnavailable, match="HTTP 400"):
                await items("CreditSettlement", **{"$filter": refused})
        with pytest.raises(ProviderUnavailable, match="HTTP 400"):  # not a sale's field
            await items("Invoice", **{"$filter": f"CreditFromInvoice/UID eq guid'{credit_note}'"})
        many = " or ".join(f"UID eq guid'{uuid.uuid4()}'" for _ in range(40))
        with pytest.raises(ProviderUnavailable, match="HTTP 404"):  # IIS's query string limit
            await items("Invoice", **{"$filter": f"({many})"})
    # what MYOB refuses to settle
    invoice = _open_invoices(books)[0]
    note = myob.credit_note(invoice.id)
    stranger = next(inv for inv in _open_invoices(books) if inv.contact_id != invoice.contact_id)
    paid = next(
        inv
        for inv in data.iter_all()
        if status_of(inv) == "Closed" and not myob.book_of(data).is_credit_note(inv.index)
    )
    for credit, target, amount, words in (
        (note, stranger.id, None, "customer|in [A-Z]{3}, invoice"),
        (myob.credit_note(paid.id), paid.id, None, "is Closed: nothing is owed"),
        (note, invoice.id, "0", "not between 0"),
        (note, invoice.id, str(_source(books, note).total + Decimal("0.01")), "not between 0"),
        (invoice.id, invoice.id, None, "is not a credit note"),
        (note, note, None, "not a live invoice"),
    ):
        with pytest.raises(ValueError, match=words):
            myob.settle(credit, target, amount)
    with pytest.raises(ValueError, match="at least 2"):
        MyobEmulator(credit_every=1)
