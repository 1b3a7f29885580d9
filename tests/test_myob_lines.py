"""A MYOB sync brings each invoice's lines: ``Sale/Invoice`` lists invoices without them, so each
page is followed by one read per layout on it (``Sale/Invoice/Item``, ``…/Service``), filtered
to the page's seconds of ``LastModified``; a layout read that fails fails the page; an invoice
edited between the two reads is met again later, never stored with another version's lines.
The emulator takes the filter as MYOB's OData does, and nothing kinder."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import Response

from intdash.core.invoices import InvoiceData, LineItem
from intdash.core.models import RunOutcome
from intdash.core.workspace import Workspace
from intdash.providers.api import ApiClient
from intdash.providers.connect import ConnectService
from intdash.providers.errors import ProviderUnavailable
from intdash.providers.myob import parse_invoice
from intdash.providers.paging import cursor_time
from intdash.providers.ratelimit import RateLimits
from intdash.sandbox.common import RateWindow
from intdash.sandbox.dataset import Dataset, SourceInvoice
from intdash.sandbox.myob import COMPANY_FILE_ID, MyobEmulator, layout_of, render_layout
from intdash.sandbox.server import Sandbox
from intdash.sync.engine import SyncEngine
from tests.providers import connect, pws, redirect_uri, sandbox_env

__all__ = ["pws", "redirect_uri", "sandbox_env"]  # fixtures

SIZE = 200
PAGE = 20
START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
UNPACED = {"myob": RateLimits(per_window=10**9, window=1.0)}
Handler = Callable[[Request, Any], Awaitable[Response]]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The sandbox, its MYOB on an API key of its own and without MYOB's rate limits (they
    are tested elsewhere), so that only the calls themselves are counted here."""
    myob = MyobEmulator(size=SIZE, client_id=f"key-{uuid.uuid4().hex[:12]}")
    myob.second = RateWindow(10**9, 1.0)
    box = Sandbox(size=SIZE, myob=myob).start()
    yield box
    box.stop()


def _wire(body: dict[str, Any]) -> Any:
    return json.loads(json.dumps(body), parse_float=Decimal)


def _expected(invoice: SourceInvoice) -> InvoiceData:
    """The invoice with its lines, as its layout's endpoint has it."""
    return parse_invoice(_wire(render_layout(invoice, "http://sandbox")), "NZD")


def _lines_of(invoice: SourceInvoice) -> list[tuple[Any, ...]]:
    """The lines in the dataset's own terms, as a MYOB line carries them."""
    item = layout_of(invoice) == "Item"
    return [
        (
            line.description,
            line.quantity,
            line.gross if invoice.inclusive else line.unit_price,
            line.gross if invoice.inclusive else line.net,
            line.quantity * line.unit_price * line.discount_rate / 100,
            "GST",
            line.item_code if item else None,
            invoice.inclusive,
        )
        for line in invoice.lines
    ]


def _terms(item: LineItem) -> tuple[Any, ...]:
    return (
        item.name,
        item.quantity,
        item.unit_price,
        item.total,
        item.discount,
        item.tax_code,
        item.item_code,
        item.tax_inclusive,
    )


async def _connected(ws: Workspace) -> tuple[ConnectService, str]:
    uid = ws.integrations.create("myob").integration.uid
    service = await connect(ws, uid, ConnectService(ws, limits=UNPACED))
    return service, uid


def _sized(api: ApiClient, size: int) -> None:
    api.connector.settings = api.connector.settings.model_copy(update={"page_size": size})


# -- a sync's lines and its calls -------------------------------------------------------------


def _listings(myob: MyobEmulator, monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, Any]]]:
    """What each ``Sale/Invoice`` read answers, kept as it is answered."""
    answered: list[list[dict[str, Any]]] = []
    original: Handler = MyobEmulator._invoices.__get__(myob)

    async def keep(request: Request, file: Any) -> Response:
        response = await original(request, file)
        if "layout" not in request.path_params and response.status_code == 200:
            answered.append(json.loads(bytes(response.body))["Items"])
        return response

    monkeypatch.setattr(myob, "_invoices", keep)
    return answered


async def test_a_sync_brings_every_invoices_lines_in_one_call_per_layout_on_a_page(
    pws: Workspace, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, uid = await _connected(pws)
    myob, dataset = sandbox.myob, sandbox.myob.dataset
    listings = _listings(myob, monkeypatch)
    pages: list[tuple[list[InvoiceData], int, list[str]]] = []
    async with await service.api(uid) as api:
        _sized(api, PAGE)
        myob.reads.clear()
        calls = api.calls
        async for page in api.connector.pages(api, None, None):
            pages.append((page.invoices, api.calls - calls, list(myob.reads)))
            calls = api.calls
            myob.reads.clear()
    invoices = [invoice for found, _, _ in pages for invoice in found]
    assert len(invoices) == SIZE == len({i.external_id for i in invoices})
    layouts: set[str] = set()
    for invoice in invoices:
        wanted = dataset.invoice(dataset.index_of(invoice.external_id) or 0)
        layouts.add(layout_of(wanted))
        assert invoice.items and [_terms(i) for i in invoice.items] == _lines_of(wanted)
        assert invoice == _expected(wanted)
    assert layouts == {"Item", "Service"}
    assert len(listings) == len(pages)  # one list read a page
    for (_, count, reads), listed in zip(pages, listings, strict=True):
        on_page = {raw["InvoiceType"] for raw in listed}
        assert count == 1 + len(on_page) == len(reads)  # the list, then one read per layout
        paths = [urlsplit(read).path.rsplit("/Sale/", 1)[1] for read in reads]
        assert paths == ["Invoice", *(f"Invoice/{layout}" for layout in sorted(on_page))]
        times = [datetime.fromisoformat(raw["LastModified"]) for raw in listed]
        for read in reads[1:]:  # each within the page's seconds
            (window,) = parse_qs(urlsplit(read).query)["$filter"]
            assert window.startswith("LastModified ge datetime'")
            assert " and LastModified lt datetime'" in window
            low, high = (
                datetime.fromisoformat(part.split("'")[1]) for part in window.split(" and ")
            )
            assert low <= min(times) and max(times) < high <= max(times) + timedelta(seconds=1)
    assert len(listings[-1]) < PAGE  # the last read was not full: nothing more


async def test_a_layout_read_failing_fails_its_page_and_the_sync_retries(
    pws: Workspace, sandbox: Sandbox
) -> None:
    """The Item layout answers 500 for as long as the client retries: the page is not given
    without lines; the sync fails as retryable, its cursor at the last whole page, and the next
    sync goes on from there with every line."""
    service, uid = await _connected(pws)
    myob = sandbox.myob
    yielded: list[InvoiceData] = []
    pages = 0
    async with await service.api(uid) as api:
        _sized(api, PAGE)
        with pytest.raises(ProviderUnavailable, match="HTTP 500"):
            async for page in api.connector.pages(api, None, None):
                yielded.extend(page.invoices)
                pages += 1
                if pages == 2:
                    myob.layout_failures["Item"] = 3  # the call and both retries
    assert pages == 2 and len(yielded) > PAGE and all(invoice.items for invoice in yielded)
    assert myob.layout_failures["Item"] == 0
    myob.layout_failures["Item"] = 3  # a sync's one page (of up to 1,000) fails whole
    failed = await SyncEngine(pws, service).run(uid)
    assert failed.outcome is RunOutcome.FAILED and failed.retryable
    assert failed.error is not None and "500" in failed.error and failed.fetched == 0
    done = await SyncEngine(pws, service).run(uid)
    assert done.outcome is RunOutcome.OK and done.fetched == SIZE, done.error


# -- the filter, as MYOB takes it ---------------------------------------------------------------


async def test_the_emulator_takes_the_filter_as_myob_does_and_nothing_kinder(
    pws: Workspace, sandbox: Sandbox
) -> None:
    service, uid = await _connected(pws)
    dataset = sandbox.myob.dataset
    every = list(dataset.iter_all())
    base = f"{pws.settings.myob.api_url}/accountright/{COMPANY_FILE_ID}/Sale/Invoice"

    def at(invoice: SourceInvoice) -> str:
        return invoice.updated.astimezone(UTC).replace(tzinfo=None).isoformat()

    first, tenth = every[0], every[9]
    async with await service.api(uid) as api:

        async def listed(path: str, text: str) -> list[str]:
            params = {"$filter": text, "$top": "1000"}
            data = await api.get_json(f"{base}{path}", params=params, what="MYOB")
            return [raw["UID"] for raw in data["Items"]]

        window = f"LastModified ge datetime'{at(first)}' and LastModified le datetime'{at(tenth)}'"
        assert await listed("", window) == [i.id for i in every[:10]]
        item = [i.id for i in every[:10] if layout_of(i) == "Item"]
        assert item and await listed("/Item", window) == item
        open_end = (
            f"LastModified gt datetime'{at(first)}' and LastModified lt datetime'{at(tenth)}'"
        )
        assert await listed("", open_end) == [i.id for i in every[1:9]]
        ticks = f"LastModified eq datetime'{at(first)}.0000000'"  # seven digits, as OData's
        assert await listed("", ticks) == [first.id]
        for kinder in (
            f"LastModified ge datetime'{at(first)}Z'",  # an offset: a datetimeoffset
            f"LastModified ge '{at(first)}'",  # a string, not a datetime
            f"LastModified >= datetime'{at(first)}'",
            f"LastModified ge datetime'{at(first)}' AND LastModified le datetime'{at(tenth)}'",
            f"LastModified ge datetime'{first.updated.date()}'",  # no time of day
            f"lastmodified ge datetime'{at(first)}'",
        ):
            with pytest.raises(ProviderUnavailable, match="HTTP 400"):
                await listed("/Item", kinder)


# -- nothing lost, nothing stored with another version's lines ---------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["edit", "edit", "delete"]), st.integers(0, 10_000)),
        st.tuples(st.just("create"), st.integers(1, 2)),
        st.tuples(st.just("tick"), st.sampled_from([0, 1, 400, 1000, 1500])),
    ),
    min_size=1,
    max_size=4,
)


@pytest.fixture
def wired(pws: Workspace, sandbox: Sandbox) -> tuple[Workspace, Sandbox, str]:
    return pws, sandbox, asyncio.run(_connected(pws))[1]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    size=st.integers(0, 30),
    step_ms=st.sampled_from([0, 300, 1000, 30_000]),
    page_size=st.integers(2, 6),
    changes=st.dictionaries(st.integers(1, 12), OPS, max_size=5),
)
def test_books_changing_between_a_page_and_its_lines_lose_nothing(
    wired: tuple[Workspace, Sandbox, str],
    monkeypatch: pytest.MonkeyPatch,
    size: int,
    step_ms: int,
    page_size: int,
    changes: dict[int, list[tuple[str, int]]],
) -> None:
    """The books change right after ``Sale/Invoice`` answers and before its layouts are read,
    during a sync: after it and one more, every invoice is stored as MYOB now has it, lines and
    all, and no stored cursor passes an invoice not stored as it is."""
    ws, box, uid = wired
    now = [START]
    data = Dataset(
        size, seed="myob-lines", step=timedelta(milliseconds=step_ms), epoch_end=START,
        clock=lambda: now[0],
    )  # fmt: skip
    box.myob.dataset = data
    listed = [0]
    original: Handler = MyobEmulator._invoices.__get__(box.myob)

    async def between(request: Request, file: Any) -> Response:
        response = await original(request, file)
        if "layout" not in request.path_params and listed[0] >= 0:  # the first sync only
            listed[0] += 1
            for op, value in changes.get(listed[0], []):
                live = [i for i in range(data.size) if data.exists(i)]
                if op == "tick":
                    now[0] += timedelta(milliseconds=value)
                elif op == "create":
                    data.create(value)
                elif live and op == "edit":
                    data.touch([live[value % len(live)]])
                elif live:
                    data.delete([live[value % len(live)]])
        return response

    monkeypatch.setattr(box.myob, "_invoices", between)
    stored: dict[str, InvoiceData] = {}

    async def sync(cursor: str | None) -> str | None:
        async with await ConnectService(ws, limits=UNPACED).api(uid) as api:
            _sized(api, page_size)
            async for page in api.connector.pages(api, cursor, None):
                stored.update((i.external_id, i) for i in page.invoices)
                cursor = page.cursor
                at = cursor_time(cursor)
                for invoice in data.iter_all():
                    if at is not None and invoice.updated <= at:
                        assert stored.get(invoice.id) == _expected(invoice), invoice.number
        return cursor

    async def both() -> None:
        cursor = await sync(None)
        listed[0] = -1  # the books rest: the next sync reads what the first left
        await sync(cursor)

    asyncio.run(both())
    live = {i.id: _expected(i) for i in data.iter_all()}
    assert {k: v for k, v in stored.items() if k in live} == live
