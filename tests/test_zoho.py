"""Zoho Books as it really is: calls paced by its rate-limit headers, the day's limit told from the
minute's, and each invoice's real tax read from the invoice itself (its list has none) as far as
those limits allow; what cannot be read yet is stored with its tax unknown, not fiscalized, and
read by later syncs, oldest first. Never a made-up 0."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import pytest
from sqlalchemy import text

from intdash.core.config import ZohoSettings
from intdash.core.invoices import SourceState
from intdash.core.models import RunOutcome
from intdash.core.services.credentials import OAUTH_TOKEN
from intdash.core.services.invoices import InvoiceRow
from intdash.core.workspace import Workspace
from intdash.providers.base import TokenSet
from intdash.providers.connect import ConnectService
from intdash.providers.connector import Connector, RateProblem, parse_json
from intdash.providers.http import httpx
from intdash.providers.ratelimit import Pacer, RateLimits
from intdash.providers.zoho import ZohoConnector, parse_invoice, source_state
from intdash.providers.zoho_tax import TaxState
from intdash.sandbox import zoho as emulator
from intdash.sandbox.common import RateWindow
from intdash.sandbox.dataset import Dataset, SourceInvoice
from intdash.sandbox.server import Sandbox
from intdash.sync.engine import SyncEngine
from tests.conftest import run_intdash
from tests.providers import connect, pws, redirect_uri, sandbox_env
from tests.test_fiscal_rules import draft, listed, records, release, sale, source, upsert, voided
from tests.test_paging import BooksClock

__all__ = ["pws", "redirect_uri", "sandbox_env"]  # fixtures

SIZE = 150
UNPACED = {"zoho": RateLimits(per_window=10**6, window=60.0)}  # no pacing on our side
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The emulators with a company of 150 invoices each (the Zoho one is the one used)."""
    box = Sandbox(size=SIZE).start()
    yield box
    box.stop()


@dataclass
class Seconds:
    """A Unix clock the test moves (for the connector, the pacer and the emulator's windows)."""

    now: float = START.timestamp()

    def __call__(self) -> float:
        return self.now


class Service(ConnectService):
    """Connections whose Zoho connector has this test's clock and plan."""

    def __init__(
        self,
        ws: Workspace,
        *,
        clock: Seconds | None = None,
        daily_limit: int | None = None,
        limits: dict[str, RateLimits] | None = None,
    ) -> None:
        super().__init__(ws, limits=limits)
        self.zoho_clock = clock
        self.daily_limit = daily_limit

    def connector(self, type: str) -> Connector:
        made = super().connector(type)
        if isinstance(made, ZohoConnector):
            if self.daily_limit is not None:
                made.settings = made.settings.model_copy(update={"daily_limit": self.daily_limit})
            if self.zoho_clock is not None:
                made.clock = self.zoho_clock
        return made


def _approved(invoice: SourceInvoice) -> bool:
    """What is fiscalized: an approved sale (Zoho's are all sales)."""
    return source_state(emulator.render_invoice(invoice)["status"]) is SourceState.APPROVED


def _id(invoice: SourceInvoice) -> str:
    return str(emulator.render_invoice(invoice)["invoice_id"])


def _stored(ws: Workspace, uid: str) -> dict[str, InvoiceRow]:
    return {row.external_id: row for row in ws.invoices.iter_all(uid)}


def _check_no_made_up_tax(ws: Workspace, uid: str, box: Sandbox) -> dict[str, InvoiceRow]:
    """Every stored invoice's tax is the platform's or unknown; unknown only where not read."""
    stored = _stored(ws, uid)
    for invoice in box.zoho.dataset.iter_all():
        row = stored[_id(invoice)]
        if row.tax is None:
            assert row.subtotal is None
            assert row.fiscal_status in ("awaiting tax", "awaiting approval", "voided")
        else:
            assert (row.subtotal, row.tax) == (invoice.subtotal, invoice.tax), invoice.number
    return stored


def _token(ws: Workspace, uid: str) -> TokenSet:
    with ws.db.read() as session:
        row = ws.integrations.find(session, uid)
        assert row.id is not None
        stored = ws.credentials.get(session, row.id, OAUTH_TOKEN)
    assert stored is not None
    return TokenSet.from_json(stored.value)


# -- the emulator ------------------------------------------------------------------------------


async def test_the_list_has_no_tax_and_the_invoice_has(pws: Workspace, sandbox: Sandbox) -> None:
    uid = pws.integrations.create("zoho").integration.uid
    await connect(pws, uid)
    token = _token(pws, uid)
    base = f"{token.extra['api_domain']}/books/v3"
    auth = {"Authorization": f"Zoho-oauthtoken {token.access_token}"}
    org = {"organization_id": emulator.ORGANIZATION_ID}
    async with httpx.AsyncClient() as client:
        listing = await client.get(f"{base}/invoices", params=org, headers=auth)
        first = listing.json()["invoices"][0]
        detail = await client.get(
            f"{base}/invoices/{first['invoice_id']}", params=org, headers=auth
        )
        missing = await client.get(f"{base}/invoices/1", params=org, headers=auth)
    assert not {"tax_total", "sub_total", "taxes"} & set(first)
    invoice = detail.json()["invoice"]
    source = sandbox.zoho.dataset.invoice(0)
    assert invoice["invoice_id"] == first["invoice_id"]
    assert Decimal(str(invoice["sub_total"])) == source.subtotal
    assert Decimal(str(invoice["tax_total"])) == source.tax
    assert Decimal(str(invoice["total"])) == source.total == source.subtotal + source.tax
    assert invoice["taxes"][0]["tax_amount"] == invoice["tax_total"]
    amounts = sum(Decimal(str(line["item_total"])) for line in invoice["line_items"])
    assert amounts == (source.total if source.inclusive else source.subtotal)
    assert missing.status_code == 404
    remaining = [int(r.headers["X-Rate-Limit-Remaining"]) for r in (listing, detail, missing)]
    assert remaining == sorted(remaining, reverse=True) and remaining[0] < 100
    for answer in (listing, detail, missing):
        assert answer.headers["X-Rate-Limit-Limit"] == "100"
        assert 0 < int(answer.headers["X-Rate-Limit-Reset"]) <= 60


async def test_the_invoice_itself_has_its_lines_payments_and_tax_number(
    pws: Workspace, sandbox: Sandbox
) -> None:
    """What fiscalization needs, as the connector parses the invoice itself (the list has
    none of it)."""
    uid = pws.integrations.create("zoho").integration.uid
    await connect(pws, uid)
    token = _token(pws, uid)
    base = f"{token.extra['api_domain']}/books/v3"
    auth = {"Authorization": f"Zoho-oauthtoken {token.access_token}"}
    org = {"organization_id": emulator.ORGANIZATION_ID}
    books = [sandbox.zoho.dataset.invoice(n) for n in range(40)]
    async with httpx.AsyncClient() as client:
        listing = await client.get(f"{base}/invoices", params=org, headers=auth)
        answers = [
            await client.get(f"{base}/invoices/{_id(one)}", params=org, headers=auth)
            for one in books
        ]
    listed = parse_invoice(parse_json(listing, "Zoho")["invoices"][0])
    assert (listed.items, listed.payments, listed.buyer_tax_id) == ((), (), None)
    seen: set[str] = set()
    for wanted, answer in zip(books, answers, strict=True):
        read = parse_invoice(parse_json(answer, "Zoho")["invoice"])
        assert read.buyer_tax_id == wanted.contact_tax_id
        paid = answer.json()["invoice"]["status"] == "paid"
        assert [p.amount for p in read.payments] == ([wanted.total] if paid else [])
        assert all(p.method for p in read.payments)
        assert len(read.items) == len(wanted.lines)
        for item, line in zip(read.items, wanted.lines, strict=True):
            assert (item.name, item.item_code, item.quantity) == (
                line.description,
                line.item_code,
                line.quantity,
            )
            assert (item.tax_code, item.tax_rate) == (emulator.TAX_ID, Decimal(15))
            assert item.tax_inclusive is wanted.inclusive and item.tax_amount is None
            net = (line.unit_price, line.net)
            assert (item.unit_price, item.total) == ((line.gross,) * 2 if wanted.inclusive else net)
            assert item.total == item.quantity * item.unit_price - item.discount
            if item.discount:
                seen.add("discount")
        found = {"inclusive": wanted.inclusive, "tax id": bool(read.buyer_tax_id)}
        found |= {"paid": paid, "several": len(read.items) > 1}
        seen.update(name for name, there in found.items() if there)
    assert seen == {"inclusive", "tax id", "paid", "several", "discount"}


# -- rate limits ------------------------------------------------------------------------------


def _answer(status: int, body: dict[str, Any], **headers: str) -> httpx.Response:
    names = {"limit": "X-Rate-Limit-Limit", "remaining": "X-Rate-Limit-Remaining"}
    names |= {"reset": "X-Rate-Limit-Reset", "retry_after": "Retry-After"}
    return httpx.Response(status, json=body, headers={names[k]: v for k, v in headers.items()})


def test_the_days_limit_is_told_from_the_minutes() -> None:
    clock = Seconds()
    zoho = ZohoConnector(ZohoSettings(), clock=clock)
    minute = {"code": 44, "message": "API calls per minute exceeded"}
    day = {"code": 45, "message": emulator.DAILY_LIMIT_MESSAGE}
    ok = _answer(200, {"code": 0}, limit="100", remaining="7", reset="12")
    assert (zoho.remaining_calls(ok), zoho.reset_after(ok)) == (7, 12)
    assert zoho.daily_remaining(ok) is None
    assert zoho.rate_problem(ok) is None
    # the minute's: Retry-After (seconds or an HTTP date) when given, else the window's reset
    assert zoho.rate_problem(_answer(429, minute, remaining="0", reset="17")) == RateProblem(17.0)
    assert zoho.rate_problem(_answer(429, minute, retry_after="5", reset="17")) == RateProblem(5.0)
    later = format_datetime(datetime.fromtimestamp(clock.now + 9, UTC), usegmt=True)
    assert zoho.rate_problem(_answer(429, minute, retry_after=later)) == RateProblem(9.0)
    assert zoho.rate_problem(_answer(429, {})) == RateProblem(60.0)
    # the day's, by its message: until the day ends (midnight UTC, 15 hours off)
    assert zoho.rate_problem(_answer(429, day)) == RateProblem(15 * 3600.0, daily=True)
    # headers that speak of a day (a reset hours off, as a Unix time): the day's remaining calls
    daily = _answer(200, {"code": 0}, limit="1000", remaining="40", reset=str(int(clock.now) + 600))
    assert (zoho.remaining_calls(daily), zoho.daily_remaining(daily)) == (None, 40)
    spent = _answer(
        429, {}, limit="1000", remaining="0", reset=str(int(clock.now * 1000) + 600_000)
    )
    assert zoho.rate_problem(spent) == RateProblem(600.0, daily=True)


async def test_a_sync_waits_for_the_reset_of_a_minute_another_client_nearly_spent(
    pws: Workspace, sandbox: Sandbox
) -> None:
    clock = Seconds()
    uid = pws.integrations.create("zoho").integration.uid
    service = await connect(pws, uid)
    sandbox.zoho.minute = RateWindow(100, 60.0, clock=clock)
    for _ in range(97):  # another application of the organisation, half a minute ago
        sandbox.zoho.minute.hit()
    clock.now += 30
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds

    async with await service.api(uid) as api:
        api.pacer = Pacer(RateLimits(100, 60.0), clock=clock, sleep=sleep)
        api.connector.settings = api.connector.settings.model_copy(update={"page_size": 25})
        listed = [i async for page in api.connector.pages(api, None, None) for i in page.invoices]
    assert len({i.external_id for i in listed}) == SIZE
    assert sandbox.zoho.rate_limited == 0  # three calls, then a wait for the window's reset
    assert waits == [pytest.approx(30.05)]  # not a minute from our first call


async def test_a_429_with_retry_after_is_honoured(pws: Workspace, sandbox: Sandbox) -> None:
    clock = Seconds()
    uid = pws.integrations.create("zoho").integration.uid
    service = await connect(pws, uid)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds

    sandbox.zoho.faults.storm_429 = 2  # answered with Retry-After: 1
    async with await service.api(uid) as api:
        api.pacer = Pacer(RateLimits(100, 60.0), clock=clock, sleep=sleep, jitter=lambda: 0.0)
        assert "Zylker Traders" in await api.connector.test(api)
    assert sandbox.zoho.rate_limited == 2
    assert waits == [1.0, 1.0]


async def test_a_spent_day_stops_the_sync_and_says_so(pws: Workspace, sandbox: Sandbox) -> None:
    pws.plans.set("scale")
    uid = pws.integrations.create("zoho").integration.uid
    await connect(pws, uid)
    sandbox.zoho.day = RateWindow(6, 86_400.0)  # what is left of the organisation's day
    calls = sandbox.zoho.api_calls
    result = await SyncEngine(pws).run(uid)
    assert result.outcome is RunOutcome.PARTIAL and not result.retryable
    assert result.error is not None and "daily call limit is spent" in result.error
    assert sandbox.zoho.api_calls == calls + 7  # the list, five invoices, the refusal: no loop
    stored = _check_no_made_up_tax(pws, uid, sandbox)
    assert len(stored) == SIZE  # what was listed is kept
    read = [i for i in sandbox.zoho.dataset.iter_all() if stored[_id(i)].tax is not None]
    approved = [i for i in sandbox.zoho.dataset.iter_all() if _approved(i)]
    assert read == approved[:5]
    assert {stored[_id(i)].fiscal_status for i in approved[5:]} == {"awaiting tax"}
    # the next day, the next sync reads on from there
    sandbox.zoho.day = RateWindow(10_000, 86_400.0)
    assert (await SyncEngine(pws).run(uid)).outcome is RunOutcome.OK
    stored = _check_no_made_up_tax(pws, uid, sandbox)
    more = [i for i in sandbox.zoho.dataset.iter_all() if stored[_id(i)].tax is not None]
    assert len(more) > 5 and more == approved[: len(more)]


# -- the tax ----------------------------------------------------------------------------------


async def test_a_sync_stores_the_real_tax_of_every_invoice(
    pws: Workspace, sandbox: Sandbox, sandbox_env: dict[str, str]
) -> None:
    pws.plans.set("scale")
    sandbox.zoho.minute = RateWindow(10**6, 60.0)  # the budget allows every read
    uid = pws.integrations.create("zoho").integration.uid
    service = Service(pws, limits=UNPACED)
    await connect(pws, uid, service)
    result = await SyncEngine(pws, service).run(uid)
    assert (result.outcome, result.fetched, result.created) == (RunOutcome.OK, SIZE, SIZE)
    stored = _check_no_made_up_tax(pws, uid, sandbox)
    for invoice in sandbox.zoho.dataset.iter_all():
        row = stored[_id(invoice)]
        if _approved(invoice):
            assert (row.tax, row.fiscal_status) == (invoice.tax, "fiscalized")
        else:  # not fiscalized: its tax is not needed, and not read
            assert row.tax is None and row.fiscal_status in ("awaiting approval", "voided")
    assert pws.invoices.verify().records == sum(map(_approved, sandbox.zoho.dataset.iter_all()))
    listing = run_intdash("invoices", "list", "--integration", uid, "--json", env=sandbox_env)
    assert listing.returncode == 0, listing.stderr
    by_id = {i.id: i for i in sandbox.zoho.dataset.iter_all()}
    for item in json.loads(listing.stdout):
        invoice = by_id[next(i.id for i in by_id.values() if _id(i) == item["external_id"])]
        if _approved(invoice):
            assert Decimal(item["tax"]) == invoice.tax
            assert Decimal(item["subtotal"]) == invoice.subtotal
        else:
            assert (item["tax"], item["subtotal"]) == (None, None)  # unknown: null, not 0


async def test_with_a_tiny_daily_budget_invoices_await_their_tax_then_are_fiscalized(
    pws: Workspace, sandbox: Sandbox
) -> None:
    pws.plans.set("scale")
    clock = Seconds(time.time())  # (it stamps the tokens too, which are checked on the real one)
    sandbox.zoho.minute = RateWindow(10**6, 60.0)
    uid = pws.integrations.create("zoho").integration.uid
    service = Service(pws, clock=clock, daily_limit=24, limits=UNPACED)  # 12 reads a day
    await connect(pws, uid, service)
    sandbox.zoho.day = RateWindow(24, 86_400.0, clock=clock)  # the plan's, as Zoho counts it
    approved = [_id(i) for i in sandbox.zoho.dataset.iter_all() if _approved(i)]
    fiscalized: list[str] = []
    for day in range(1, 20):
        result = await SyncEngine(pws, service).run(uid)
        assert result.outcome is RunOutcome.OK, result.error
        stored = _check_no_made_up_tax(pws, uid, sandbox)
        now = [x for x in approved if stored[x].fiscal_status == "fiscalized"]
        waiting = [x for x in approved if stored[x].fiscal_status == "awaiting tax"]
        assert now == approved[: len(now)]  # oldest first
        assert len(now) == min(12 * day, len(approved)) and len(now) + len(waiting) == len(approved)
        assert all(stored[x].tax is None and stored[x].fiscal_seq is None for x in waiting)
        assert pws.invoices.verify().records == len(now)  # none fiscalized without its tax
        if day == 1:
            shown = stored[waiting[0]].to_json()
            assert (shown["fiscal_status"], shown["tax"], shown["subtotal"]) == (
                "awaiting tax",
                None,
                None,
            )
        fiscalized = now
        if not waiting:
            break
        clock.now += 86_400  # the next day
    assert fiscalized == approved and sandbox.zoho.rate_limited == 0
    assert day == -(-len(approved) // 12)


async def test_an_import_sharing_one_second_is_read_across_days_while_it_is_edited(
    pws: Workspace, sandbox: Sandbox
) -> None:
    """Sixty invoices modified in one second, read five a day, while some are edited (those
    where reading stopped among them, which leave the second) and one is voided: each approved
    invoice is read and fiscalized, with its current tax."""
    pws.plans.set("scale")
    books = BooksClock(START)
    data = Dataset(60, seed="zoho-import", step=timedelta(0), epoch_end=START, clock=books)
    sandbox.zoho.dataset = data
    clock = Seconds(time.time())
    uid = pws.integrations.create("zoho").integration.uid
    service = Service(pws, clock=clock, daily_limit=10, limits=UNPACED)  # 5 reads a day
    await connect(pws, uid, service)
    sandbox.zoho.minute = RateWindow(10**6, 60.0)
    for day in range(1, 40):
        result = await SyncEngine(pws, service).run(uid)
        assert result.outcome is RunOutcome.OK, result.error
        stored = _stored(pws, uid)
        waiting = [r for r in stored.values() if r.fiscal_status == "awaiting tax"]
        if not waiting:
            break
        books.now += timedelta(seconds=1)
        if day in (2, 5):  # those where reading stopped are edited, leaving the second: all
            with pws.db.read() as session:  # of them, then only the last
                _, state = TaxState.split(pws.integrations.find(session, uid).cursor)
            assert state.backlog is not None and len(state.backlog[1]) == 3
            named = state.backlog[1] if day == 2 else state.backlog[1][-1:]
            data.touch([int(n) - emulator.INVOICE_ID_BASE for n in named])
        if day == 3:
            data.touch([40])
            data.void([50])
        clock.now += 86_400
    stored = _check_no_made_up_tax(pws, uid, sandbox)
    for invoice in data.iter_all():
        row = stored[_id(invoice)]
        expected = "fiscalized" if _approved(invoice) else row.fiscal_status
        assert row.fiscal_status == expected, invoice.number
        assert row.fiscal_status != "awaiting tax"
    assert pws.invoices.verify().ok


# -- fiscal rules for an invoice whose tax is unknown ------------------------------------------


def _untold(invoice: Any) -> Any:
    """The invoice as Zoho's list has it: its tax unknown."""
    return replace(invoice, subtotal=None, tax=None)


def test_an_invoice_is_fiscalized_only_with_the_tax_its_source_told(ws: Workspace) -> None:
    uid = source(ws, kind="zoho")
    upsert(ws, uid, _untold(sale(1)), _untold(draft(2)), _untold(voided(3)))
    rows = listed(ws, uid)
    assert [rows[f"ext-{n}"].fiscal_status for n in (1, 2, 3)] == [
        "awaiting tax",
        "awaiting approval",
        "voided",
    ]
    assert all(r.tax is None and r.subtotal is None for r in rows.values()) and records(ws) == []
    upsert(ws, uid, sale(1))  # read: fiscalized with its tax
    assert records(ws) == [(1, "ext-1", "sale", None)]
    assert listed(ws, uid)["ext-1"].tax == Decimal("15.00")
    # paid since, listed without its tax: the same amounts, the tax read before is kept
    upsert(ws, uid, _untold(sale(1, status="PAID")))
    row = listed(ws, uid)["ext-1"]
    assert (row.fiscal_status, row.source_status, row.tax) == ("fiscalized", "PAID", Decimal(15))
    # new amounts, tax not read: the invoice waits as it was, until it is read
    upsert(ws, uid, _untold(sale(1, total="230.00", tax="30.00")))
    row = listed(ws, uid)["ext-1"]
    assert (row.total, row.tax, row.fiscal_status) == (Decimal(115), Decimal(15), "fiscalized")
    assert len(records(ws)) == 1
    upsert(ws, uid, sale(1, total="230.00", tax="30.00"))
    assert [r[2] for r in records(ws)] == ["sale", "refund", "sale"]
    # voided, listed without its tax: the sale (stored, with its tax) is refunded at once
    upsert(ws, uid, _untold(voided(1, total="230.00", tax="30.00")))
    row = listed(ws, uid)["ext-1"]
    assert (row.fiscal_status, row.tax) == ("refunded", Decimal(30))
    assert [r[2] for r in records(ws)] == ["sale", "refund", "sale", "refund"]
    # approved again, tax not read: the refund stands until it is read
    upsert(ws, uid, _untold(sale(1, total="230.00", tax="30.00", status="SENT")))
    assert listed(ws, uid)["ext-1"].fiscal_status == "refunded"
    upsert(ws, uid, sale(1, total="230.00", tax="30.00", status="SENT"))
    assert listed(ws, uid)["ext-1"].fiscal_status == "fiscalized" and len(records(ws)) == 5
    assert ws.integrations.get(uid).invoices_this_month == 1
    assert ws.invoices.verify().ok


def test_a_held_invoice_listed_without_its_tax_is_not_released_on_a_guess(ws: Workspace) -> None:
    uid = source(ws, limit=1, kind="zoho")
    upsert(ws, uid, sale(1), sale(2))
    assert [listed(ws, uid)[f"ext-{n}"].fiscal_status for n in (1, 2)] == ["fiscalized", "held"]
    upsert(ws, uid, _untold(sale(2, status="SENT")))  # edited since: its tax unread
    assert listed(ws, uid)["ext-2"].fiscal_status == "awaiting tax"
    ws.plans.set("scale", monthly_limit=10)
    assert release(ws, uid) == 0
    upsert(ws, uid, sale(2, status="SENT"))
    assert listed(ws, uid)["ext-2"].fiscal_status == "fiscalized"
    assert [r[1] for r in records(ws)] == ["ext-1", "ext-2"]


# -- existing invoices -------------------------------------------------------------------------


def test_the_migration_forgets_the_made_up_zero_tax_of_zoho_invoices(ws: Workspace) -> None:
    """Before, every Zoho invoice was stored with tax 0 and its total as subtotal."""
    from alembic import command

    def made_up(invoice: Any) -> Any:
        return replace(invoice, subtotal=invoice.total, tax=Decimal(0))

    zoho = source(ws, limit=1, kind="zoho")
    other = ws.integrations.create("custom").integration.uid
    upsert(ws, zoho, made_up(sale(1)), made_up(sale(2)), made_up(draft(3)), made_up(voided(4)))
    upsert(ws, other, sale(5))
    with ws.db.write() as session:
        session.execute(text("UPDATE integrations SET cursor = '2026-01-01T00:00:00+00:00'"))
    config = ws.db._alembic_config()
    with ws.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0010")
        command.upgrade(config, "head")
    rows = {**listed(ws, zoho), **listed(ws, other)}
    seen = {k: (r.fiscal_status, r.subtotal, r.tax) for k, r in rows.items()}
    assert seen == {
        "ext-1": ("fiscalized", Decimal(115), Decimal(0)),  # as its record states
        "ext-2": ("awaiting tax", None, None),  # was held: never released with a made-up 0
        "ext-3": ("awaiting approval", None, None),
        "ext-4": ("voided", None, None),
        "ext-5": ("fiscalized", Decimal(100), Decimal(15)),  # not Zoho: as it was
    }
    with ws.db.read() as session:
        cursors = dict(session.execute(text("SELECT type, cursor FROM integrations")).all())
    assert cursors == {"zoho": None, "custom": "2026-01-01T00:00:00+00:00"}
    assert ws.invoices.verify().ok
    with ws.db.engine.begin() as conn, pytest.raises(RuntimeError, match="cannot go back"):
        config.attributes["connection"] = conn
        command.downgrade(config, "0010")
