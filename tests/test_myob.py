"""MYOB as it is: the company file of a consent for API keys old and new, the scope from the
settings, one pacer per API key across company files, the daily limit told from the per-second
one, and ``expires_in`` as text."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from starlette.responses import JSONResponse

from intdash.core.config import MyobSettings, load_settings
from intdash.core.invoices import InvoiceData
from intdash.core.models import RunOutcome
from intdash.core.services.credentials import OAUTH_TOKEN
from intdash.core.status import Reason
from intdash.core.workspace import Workspace
from intdash.providers.base import TokenSet
from intdash.providers.connect import ConnectService
from intdash.providers.connector import RateProblem
from intdash.providers.errors import AuthorisationFailed, ProviderUnavailable, RateLimited
from intdash.providers.http import httpx
from intdash.providers.myob import MyobConnector, parse_invoice
from intdash.providers.ratelimit import RateLimits
from intdash.sandbox.common import RateWindow
from intdash.sandbox.myob import COMPANY_FILE_ID, DAILY_MESSAGE, SECOND_MESSAGE, MyobEmulator
from intdash.sandbox.server import Sandbox
from intdash.sync.engine import SyncEngine
from tests.providers import consent, pws, redirect_uri, sandbox_env

__all__ = ["pws", "redirect_uri", "sandbox_env"]  # fixtures

SIZE = 200  # invoices in each company file
PAGE = 20
OLD_KEY = {"key_kind": "old"}
SECOND_FILE = "5d4b1ce0-bb9f-4f4c-9578-2b168b7295db"


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """The sandbox, its MYOB built with the test's options (``indirect`` parameters); an API
    key of its own, so that no pacer of another test's key is met."""
    options: dict[str, Any] = {"client_id": f"key-{uuid.uuid4().hex[:12]}"}
    options.update(getattr(request, "param", {}))
    box = Sandbox(size=SIZE, myob=MyobEmulator(size=SIZE, **options)).start()
    yield box
    box.stop()


def _myob(box: Sandbox) -> MyobEmulator:
    return box.myob


async def _redirected(service: ConnectService, uid: str) -> tuple[Any, str]:
    flow = await service.begin(uid)
    return flow, await consent(flow.url)


def _without(location: str, *names: str) -> str:
    base, query = location.split("?", 1)
    params = {k: v[0] for k, v in parse_qs(query).items() if k not in names}
    return f"{base}?{urlencode(params)}"


async def _fetch(service: ConnectService, uid: str) -> list[InvoiceData]:
    """Every invoice, in pages of ``PAGE``."""
    invoices: list[InvoiceData] = []
    async with await service.api(uid) as api:
        api.connector.settings = api.connector.settings.model_copy(update={"page_size": PAGE})
        async for page in api.connector.pages(api, None, None):
            invoices.extend(page.invoices)
    return invoices


def _stored_token(ws: Workspace, uid: str) -> TokenSet:
    with ws.db.read() as session:
        row = ws.integrations.find(session, uid)
        assert row.id is not None
        stored = ws.credentials.get(session, row.id, OAUTH_TOKEN)
    assert stored is not None
    return TokenSet.from_json(stored.value)


# -- the company file of a consent ---------------------------------------------------------------


async def test_a_new_key_connects_through_the_consents_business_id(
    pws: Workspace, sandbox: Sandbox
) -> None:
    uid = pws.integrations.create("myob").integration.uid
    service = ConnectService(pws)
    flow, location = await _redirected(service, uid)
    assert parse_qs(urlsplit(flow.url).query)["prompt"] == ["consent"]
    assert parse_qs(urlsplit(location).query)["businessId"] == [COMPANY_FILE_ID]
    result = await service.complete(flow, location)
    assert (result.tenant.id, result.tenant.name) == (COMPANY_FILE_ID, "Bay Traders Ltd")
    assert result.tenant.extra["currency"] == "NZD"  # the file's country, read from the file
    assert all(file for _, file in _myob(sandbox).arrivals)  # never asked for the file list
    view = pws.integrations.get(uid)
    assert view.status.active and view.settings["company_file_id"] == COMPANY_FILE_ID
    token = _stored_token(pws, uid)  # expires_in came as the text "1200"
    assert 1100 < token.expires_at - time.time() <= 1200
    assert len(await _fetch(service, uid)) == SIZE
    async with httpx.AsyncClient() as client:  # what such a key is shown of its files
        listed = await client.get(
            f"{pws.settings.myob.api_url}/accountright/",
            headers={
                "Authorization": f"Bearer {token.access_token}",
                "x-myobapi-key": pws.settings.myob.client_id,
                "x-myobapi-version": "v2",
            },
        )
    assert listed.status_code == 200 and listed.json() == []


async def test_the_business_name_names_a_file_that_does_not_name_itself(
    pws: Workspace, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def nameless(_request: Any, _file: Any) -> Any:
        return JSONResponse({"CompanyFile": {"Id": COMPANY_FILE_ID}})

    monkeypatch.setattr(_myob(sandbox), "_company_file", nameless)
    uid = pws.integrations.create("myob").integration.uid
    service = ConnectService(pws)
    flow, location = await _redirected(service, uid)
    assert (await service.complete(flow, location)).tenant.name == "Bay Traders Ltd"
    flow, location = await _redirected(service, uid)
    unnamed = await service.complete(flow, _without(location, "businessName"))
    assert unnamed.tenant.name == COMPANY_FILE_ID  # nothing names it: its id does


@pytest.mark.parametrize("sandbox", [OLD_KEY], indirect=True)
async def test_an_old_key_connects_through_the_file_list(pws: Workspace, sandbox: Sandbox) -> None:
    uid = pws.integrations.create("myob").integration.uid
    service = ConnectService(pws)
    flow, location = await _redirected(service, uid)
    assert "businessId" not in parse_qs(urlsplit(location).query)
    result = await service.complete(flow, location)
    assert (result.tenant.id, result.tenant.name) == (COMPANY_FILE_ID, "Bay Traders Ltd")
    assert result.tenant.extra["currency"] == "NZD"
    assert len(await _fetch(service, uid)) == SIZE
    # a second file: the setting chooses, and without it the operator is asked to
    _myob(sandbox).add_company_file("Harbour Books Pty", SECOND_FILE)
    other = pws.integrations.create("myob").integration.uid
    flow, location = await _redirected(service, other)
    with pytest.raises(AuthorisationFailed, match=r"allows 2 company files \(Bay Traders Ltd, "):
        await service.complete(flow, location)
    chosen = pws.integrations.create("myob", values={"company_file_id": SECOND_FILE})
    flow, location = await _redirected(service, chosen.integration.uid)
    result = await service.complete(flow, location)
    assert (result.tenant.id, result.tenant.name) == (SECOND_FILE, "Harbour Books Pty")
    assert result.tenant.extra["currency"] == "AUD"


async def test_a_new_key_whose_redirect_names_no_file_fails_clearly(
    pws: Workspace, sandbox: Sandbox
) -> None:
    uid = pws.integrations.create("myob").integration.uid
    service = ConnectService(pws)
    flow, location = await _redirected(service, uid)
    with pytest.raises(AuthorisationFailed, match=r"carried no businessId.*lists no company files"):
        await service.complete(flow, _without(location, "businessId", "businessName"))
    flow, location = await _redirected(service, uid)
    forged = _without(location, "businessId") + "&businessId=..%2F..%2FSale"
    with pytest.raises(AuthorisationFailed, match="businessId is not a company file GUID"):
        await service.complete(flow, forged)
    assert pws.integrations.get(uid).status.reason is Reason.NEEDS_AUTHORISATION


async def test_a_consent_for_another_file_than_the_integrations_is_refused(
    pws: Workspace, sandbox: Sandbox
) -> None:
    _myob(sandbox).add_company_file("Harbour Books Pty", SECOND_FILE)
    made = pws.integrations.create("myob", values={"company_file_id": SECOND_FILE})
    service = ConnectService(pws)
    flow, location = await _redirected(service, made.integration.uid)  # approves the first file
    with pytest.raises(AuthorisationFailed, match=f"reads {SECOND_FILE}"):
        await service.complete(flow, location)
    _myob(sandbox).consent_pick = SECOND_FILE
    flow, location = await _redirected(service, made.integration.uid)
    assert (await service.complete(flow, location)).tenant.name == "Harbour Books Pty"


# -- the scope -----------------------------------------------------------------------------------


def _workspace(monkeypatch: pytest.MonkeyPatch, scope: str) -> Workspace:
    monkeypatch.setenv("INTDASH_MYOB__SCOPE", scope)
    return Workspace.open(load_settings(), actor="tester")


async def test_the_scope_comes_from_the_settings(
    pws: Workspace, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert pws.settings.myob.scope == "sme-company-file sme-sales"
    uid = pws.integrations.create("myob").integration.uid
    flow = await ConnectService(pws).begin(uid)
    assert parse_qs(urlsplit(flow.url).query)["scope"] == ["sme-company-file sme-sales"]
    ws = _workspace(monkeypatch, "sme-company-file sme-contacts-customer")
    try:
        service = ConnectService(ws)
        flow, location = await _redirected(service, uid)
        assert parse_qs(urlsplit(flow.url).query)["scope"] == [
            "sme-company-file sme-contacts-customer"
        ]
        await service.complete(flow, location)  # the company file is within the scope
        with pytest.raises(ProviderUnavailable, match=r"HTTP 403.*scopes do not allow"):
            await _fetch(service, uid)  # its invoices are not
        assert (await service.test(uid)).ok
    finally:
        ws.close()


async def test_a_new_key_cannot_ask_for_the_legacy_scope(
    pws: Workspace, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _workspace(monkeypatch, "CompanyFile")
    try:
        uid = ws.integrations.create("myob").integration.uid
        service = ConnectService(ws)
        flow, location = await _redirected(service, uid)
        with pytest.raises(AuthorisationFailed, match="unknown scope CompanyFile"):
            await service.complete(flow, location)
    finally:
        ws.close()


@pytest.mark.parametrize("sandbox", [OLD_KEY], indirect=True)
async def test_an_old_key_reads_invoices_with_the_legacy_scope(
    pws: Workspace, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _workspace(monkeypatch, "CompanyFile")
    try:
        uid = ws.integrations.create("myob").integration.uid
        service = ConnectService(ws)
        flow, location = await _redirected(service, uid)
        assert (await service.complete(flow, location)).tenant.id == COMPANY_FILE_ID
        assert len(await _fetch(service, uid)) == SIZE
        token = _stored_token(ws, uid)
        assert token.scope == "CompanyFile"
    finally:
        ws.close()


def test_the_scope_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTDASH_MYOB__SCOPE", "CompanyFile")
    assert load_settings().myob.scope == "CompanyFile"
    connector = MyobConnector(MyobSettings(scope="sme-company-file sme-invoice"))
    assert connector.oauth_client().scope == "sme-company-file sme-invoice"


# -- limits per API key --------------------------------------------------------------------------


def _busiest_second(arrivals: list[float]) -> int:
    """The most calls that arrived within any one second."""
    times = sorted(arrivals)
    return max(
        (sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times)), default=0
    )


@pytest.mark.parametrize("sandbox", [OLD_KEY], indirect=True)
async def test_two_company_files_on_one_key_share_its_eight_calls_a_second(
    pws: Workspace, sandbox: Sandbox
) -> None:
    myob = _myob(sandbox)
    myob.add_company_file("Harbour Books Pty", SECOND_FILE)
    uids = [
        pws.integrations.create("myob", values={"company_file_id": file}).integration.uid
        for file in (COMPANY_FILE_ID, SECOND_FILE)
    ]
    # MYOB's 8 a second, with room for a loaded machine's scheduling between a call leaving
    # the pacer and reaching the emulator (two pacers would still send 16 in that time)
    service = ConnectService(pws, limits={"myob": RateLimits(8, 1.2)})
    for uid in uids:
        flow, location = await _redirected(service, uid)
        await service.complete(flow, location)
    async with await service.api(uids[0]) as first, await service.api(uids[1]) as second:
        assert first.tenant and second.tenant and first.tenant.id != second.tenant.id
        assert first.pacer is second.pacer  # one key, one pacer
    myob.arrivals.clear()
    fetched = await asyncio.gather(*(_fetch(service, uid) for uid in uids))
    assert [len(invoices) for invoices in fetched] == [SIZE, SIZE]
    assert myob.rate_limited == 0  # no 403 RateLimitError
    arrivals = list(myob.arrivals)
    assert _busiest_second([t for t, _ in arrivals]) <= 8
    by_file = {f: [t for t, g in arrivals if g == f] for f in (COMPANY_FILE_ID, SECOND_FILE)}
    assert min(by_file[SECOND_FILE]) < max(by_file[COMPANY_FILE_ID])  # the syncs overlapped
    assert min(by_file[COMPANY_FILE_ID]) < max(by_file[SECOND_FILE])


def _rate_limit_answer(message: str) -> httpx.Response:
    errors = [{"Name": "RateLimitError", "Message": message, "AdditionalDetails": ""}]
    return httpx.Response(403, json={"Errors": errors})


def test_the_daily_limit_is_told_from_the_per_second_one() -> None:
    noon = datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp()
    connector = MyobConnector(MyobSettings(), clock=lambda: noon)
    assert connector.rate_problem(_rate_limit_answer(SECOND_MESSAGE)) == RateProblem(1.0)
    assert connector.rate_problem(_rate_limit_answer(DAILY_MESSAGE)) == RateProblem(
        12 * 3600.0, daily=True
    )  # until the next midnight UTC
    refused = httpx.Response(403, json={"Errors": [{"Name": "AccessDenied", "Message": "no"}]})
    assert connector.rate_problem(refused) is None
    assert connector.rate_problem(httpx.Response(403, text="<html>")) is None


async def test_the_daily_limit_stops_the_sync_at_once(pws: Workspace, sandbox: Sandbox) -> None:
    uid = pws.integrations.create("myob").integration.uid
    service = ConnectService(pws)
    flow, location = await _redirected(service, uid)
    await service.complete(flow, location)
    myob = _myob(sandbox)
    myob.day = RateWindow(3, 86_400)
    calls = myob.api_calls
    with pytest.raises(RateLimited, match="daily call limit") as caught:
        await _fetch(service, uid)
    assert caught.value.daily and 0 < caught.value.retry_after <= 86_400
    assert myob.api_calls == calls + 4  # a page and its two layouts, then the refusal: no loop
    result = await SyncEngine(pws, service).run(uid)
    assert result.outcome is RunOutcome.FAILED and not result.retryable
    assert result.error is not None and "daily call limit" in result.error
    assert myob.api_calls == calls + 5


async def test_the_per_second_limit_is_waited_out(pws: Workspace, sandbox: Sandbox) -> None:
    uid = pws.integrations.create("myob").integration.uid
    unpaced = ConnectService(pws, limits={"myob": RateLimits(10**9, 1.0)})  # only MYOB's limit
    flow, location = await _redirected(unpaced, uid)
    await unpaced.complete(flow, location)
    invoices = await _fetch(unpaced, uid)
    assert len(invoices) == SIZE
    assert _myob(sandbox).rate_limited > 0  # refused now and then, a second waited each time


# -- what fiscalization needs ---------------------------------------------------------------------


async def test_an_invoice_read_by_its_layout_has_its_lines(
    pws: Workspace, sandbox: Sandbox
) -> None:
    """``Sale/Invoice/Service`` and ``…/Item`` list each invoice of their layout with its
    ``Lines`` (the all-layouts ``Sale/Invoice`` has none, its ``InvoiceType`` naming the
    layout): the connector's parsing keeps them as MYOB has them."""
    uid = pws.integrations.create("myob").integration.uid
    service = ConnectService(pws)
    flow, location = await _redirected(service, uid)
    await service.complete(flow, location)
    base = f"{pws.settings.myob.api_url}/accountright/{COMPANY_FILE_ID}/Sale/Invoice"
    async with await service.api(uid) as api:
        every = await api.get_json(base, params={"$top": "40"}, what="MYOB invoices")
        by_layout = {
            layout: await api.get_json(f"{base}/{layout}", params={"$top": "40"}, what="MYOB")
            for layout in ("Service", "Item", "Professional")
        }
    assert by_layout["Professional"]["Items"] == []
    assert {raw["InvoiceType"] for raw in every["Items"]} == {"Service", "Item"}
    assert all(parse_invoice(raw, "NZD").items == () for raw in every["Items"])
    seen: set[str] = set()
    dataset = sandbox.myob.dataset
    for layout in ("Service", "Item"):
        assert len(by_layout[layout]["Items"]) == 40
        for raw in by_layout[layout]["Items"]:
            assert raw["InvoiceType"] == layout
            read = parse_invoice(raw, "NZD")
            wanted = dataset.invoice(dataset.index_of(read.external_id) or 0)
            assert read.external_id == wanted.id and len(read.items) == len(wanted.lines)
            for item, line in zip(read.items, wanted.lines, strict=True):
                assert (item.name, item.quantity, item.tax_code) == (
                    line.description,
                    line.quantity,
                    "GST",
                )
                assert item.item_code == (line.item_code if layout == "Item" else None)
                assert item.tax_inclusive is wanted.inclusive
                net = (line.unit_price, line.net)
                gross = (line.gross,) * 2
                assert (item.unit_price, item.total) == (gross if wanted.inclusive else net)
                assert item.total == item.quantity * item.unit_price - item.discount
                if item.discount:
                    seen.add(f"{layout} discount")
            if wanted.inclusive:
                seen.add(f"{layout} inclusive")
    assert seen == {"Service discount", "Service inclusive", "Item discount", "Item inclusive"}
