"""No invoice lost, whatever the books do during a sync: each connector pages through its
emulator over loopback while invoices are edited, created, voided and deleted between its pages
(edits move an invoice to the end of the listing, as the platforms do), many of them sharing one
second. After the sync and one more incremental sync, what is stored is exactly what the platform
holds; and the cursor stored with every page never passes an invoice that was not stored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intdash.core.invoices import InvoiceData
from intdash.core.workspace import Workspace
from intdash.providers.api import ApiClient
from intdash.providers.connect import ConnectService
from intdash.providers.myob import parse_invoice as parse_myob
from intdash.providers.paging import cursor_time
from intdash.providers.ratelimit import RateLimits
from intdash.providers.xero import parse_invoice as parse_xero
from intdash.providers.zoho import parse_invoice as parse_zoho
from intdash.sandbox import myob as myob_emulator
from intdash.sandbox import xero as xero_emulator
from intdash.sandbox import zoho as zoho_emulator
from intdash.sandbox.common import RateWindow
from intdash.sandbox.dataset import Dataset, SourceInvoice
from intdash.sandbox.server import Sandbox
from tests.providers import connect, pws, redirect_uri, sandbox, sandbox_env

__all__ = ["pws", "redirect_uri", "sandbox", "sandbox_env"]  # fixtures

PLATFORMS = ["xero", "myob", "zoho"]
START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@dataclass
class BooksClock:
    """The platform's clock, moved by the test (edits are stamped with it)."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


def _wire(body: dict[str, Any]) -> Any:
    return json.loads(json.dumps(body), parse_float=Decimal)


def _expected(kind: str, invoice: SourceInvoice) -> InvoiceData:
    """An invoice as the connector reads it from the platform's rendering of it."""
    if kind == "xero":
        return parse_xero(_wire(xero_emulator.render_invoice(invoice)))
    if kind == "myob":
        return parse_myob(_wire(myob_emulator.render_invoice(invoice, "http://sandbox")), "NZD")
    return parse_zoho(_wire(zoho_emulator.render_invoice(invoice)))


def _key(invoice: InvoiceData) -> tuple[Any, ...]:
    return (invoice.source_updated_at, invoice.total, invoice.source_status, invoice.number)


@dataclass
class Store:
    """What a sync stores: the latest copy of each invoice, and the cursor."""

    invoices: dict[str, InvoiceData] = field(default_factory=dict)
    cursor: str | None = None


def _live(data: Dataset) -> list[SourceInvoice]:
    return list(data.iter_all())


def _check_cursor(kind: str, data: Dataset, store: Store) -> None:
    """Every invoice the platform shows as modified at or before the cursor is stored as it is
    now (an edit since would have moved it past the cursor)."""
    at = cursor_time(store.cursor)
    if at is None:
        return
    for invoice in _live(data):
        expected = _expected(kind, invoice)
        assert expected.source_updated_at is not None
        if expected.source_updated_at <= at:
            stored = store.invoices.get(expected.external_id)
            assert stored is not None, f"cursor {at} passed {expected.number}, never stored"
            assert _key(stored) == _key(expected), f"cursor {at} passed an edit of {invoice}"


async def _sync(
    api: ApiClient, store: Store, after_page: Callable[[int], None], check: Callable[[], None]
) -> int:
    """One incremental sync; returns the listing calls it made."""
    before = api.calls
    pages = 0
    async for page in api.connector.pages(api, store.cursor, None):
        for invoice in page.invoices:
            store.invoices[invoice.external_id] = invoice
        store.cursor = page.cursor
        check()
        pages += 1
        after_page(pages)
    return api.calls - before


def _apply(data: Dataset, clock: BooksClock, kind: str, ops: list[tuple[str, int]]) -> set[int]:
    """Change the books; returns the indices deleted (gone from every listing)."""
    deleted: set[int] = set()
    for op, value in ops:
        live = [i for i in range(data.size) if data.exists(i)]
        if op == "tick":
            clock.now += timedelta(milliseconds=value)
        elif op == "create":
            data.create(value)
        elif not live:
            continue
        elif op == "edit":
            data.touch([live[value % len(live)]])
        elif op == "void" or (op == "delete" and kind == "xero"):  # Xero never deletes outright
            data.void([live[value % len(live)]])
        elif op == "delete":
            index = live[value % len(live)]
            data.delete([index])
            deleted.add(index)
    return deleted


OPS = st.one_of(
    st.tuples(st.sampled_from(["edit", "edit", "void", "delete"]), st.integers(0, 10_000)),
    st.tuples(st.just("create"), st.integers(1, 3)),
    st.tuples(st.just("tick"), st.sampled_from([0, 1, 250, 999, 1000, 1500, 60_000])),
)


@dataclass
class Case:
    size: int
    step_ms: int
    page_size: int
    changes: dict[int, list[tuple[str, int]]]  # after the Nth page of the first sync


CASES = st.builds(
    Case,
    size=st.integers(0, 45),
    step_ms=st.sampled_from([0, 100, 400, 1000, 30_000]),
    page_size=st.integers(2, 7),
    changes=st.dictionaries(st.integers(1, 15), st.lists(OPS, min_size=1, max_size=6), max_size=6),
)


@pytest.fixture
def connected(
    pws: Workspace, sandbox: Sandbox
) -> Iterator[tuple[Workspace, Sandbox, dict[str, str]]]:
    for emulator in sandbox.emulators.values():  # no rate limit gets in the way here
        for name in ("minute", "second", "day"):
            if hasattr(emulator, name):
                setattr(emulator, name, RateWindow(10**9, 1.0))
    uids = {}
    for kind in PLATFORMS:
        uid = pws.integrations.create(kind).integration.uid
        asyncio.run(connect(pws, uid))
        uids[kind] = uid
    yield pws, sandbox, uids


async def _run_case(ws: Workspace, box: Sandbox, uid: str, kind: str, case: Case) -> None:
    clock = BooksClock()
    step = timedelta(milliseconds=case.step_ms)
    data = Dataset(case.size, seed=f"paging-{kind}", step=step, epoch_end=START, clock=clock)
    box.emulators[kind].dataset = data
    if kind == "xero":  # the dataset of the organisation the integration reads
        box.xero.organisations[xero_emulator.TENANT_ID].dataset = data
    store = Store()
    deleted: set[int] = set()

    def after_page(n: int) -> None:
        deleted.update(_apply(data, clock, kind, case.changes.get(n, [])))

    def check() -> None:
        _check_cursor(kind, data, store)

    unpaced = {kind: RateLimits(per_window=10**9, window=1.0)}  # nor any pacing on our side
    async with await ConnectService(ws, limits=unpaced).api(uid) as api:
        api.connector.settings = api.connector.settings.model_copy(
            update={"page_size": case.page_size}
        )
        await _sync(api, store, after_page, check)
        await _sync(api, store, lambda _: None, check)
    expected = {e.external_id: e for e in (_expected(kind, i) for i in _live(data))}
    gone = {_expected(kind, data.invoice(i)).external_id for i in deleted}
    assert set(store.invoices) - gone == set(expected)
    for external_id, invoice in expected.items():
        assert _key(store.invoices[external_id]) == _key(invoice), invoice.number


@pytest.mark.parametrize("kind", PLATFORMS)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=CASES)
def test_no_invoice_is_lost_whatever_changes_between_pages(
    connected: tuple[Workspace, Sandbox, dict[str, str]], kind: str, case: Case
) -> None:
    ws, box, uids = connected
    asyncio.run(_run_case(ws, box, uids[kind], kind, case))


@pytest.mark.parametrize(("kind", "page_size"), [("xero", 100), ("myob", 1000), ("zoho", 200)])
def test_edits_between_two_pages_lose_nothing(
    connected: tuple[Workspace, Sandbox, dict[str, str]], kind: str, page_size: int
) -> None:
    """The measured loss: edits landing between two pages of a sync push invoices across the page
    boundary. Paging by page number (at these, the platforms' usual page sizes) loses them and
    stores a cursor past them; keyset paging does not."""
    ws, box, uids = connected
    edits = [("edit", k * 7) for k in range(30)]
    case = Case(size=2500, step_ms=30_000, page_size=page_size, changes={1: edits})
    asyncio.run(_run_case(ws, box, uids[kind], kind, case))


@pytest.mark.parametrize("kind", PLATFORMS)
def test_a_thousand_invoices_in_one_second_are_read_whole(
    connected: tuple[Workspace, Sandbox, dict[str, str]], kind: str
) -> None:
    """More invoices share one second than a page holds (an import), and some are edited while
    that second is read page by page."""
    ws, box, uids = connected
    changes = {2: [("edit", 3), ("tick", 5000), ("delete", 1)], 4: [("edit", 0)]}
    case = Case(size=60, step_ms=0, page_size=7, changes=changes)
    asyncio.run(_run_case(ws, box, uids[kind], kind, case))


def test_a_full_sync_of_5000_xero_invoices_takes_six_listing_calls(
    connected: tuple[Workspace, Sandbox, dict[str, str]],
) -> None:
    """Xero serves pages of up to 1,000 invoices (since July 2024): 5,000 take five pages and
    the call that finds nothing more (within 6, where pages of 100 took 51); then one listing
    of its credit notes, which finds none."""
    ws, box, uids = connected
    data = Dataset(5000, seed="calls")
    box.xero.organisations[xero_emulator.TENANT_ID].dataset = data
    store = Store()

    async def run() -> int:
        async with await ConnectService(ws).api(uids["xero"]) as api:
            return await _sync(api, store, lambda _: None, lambda: None)

    calls = asyncio.run(run())
    assert len(store.invoices) == 5000
    assert calls <= 6 + 1
