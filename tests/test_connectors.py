"""Each connector against its emulator over loopback: paging, incremental passes, tokens,
rate limits and faults."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlmodel import select

from intdash.core.models import Integration
from intdash.core.services.credentials import OAUTH_TOKEN
from intdash.core.status import Reason
from intdash.core.workspace import Workspace
from intdash.providers.base import TokenSet
from intdash.providers.connect import ConnectService
from intdash.providers.errors import (
    MalformedResponse,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    ReconnectNeeded,
    TokenThrottled,
)
from intdash.providers.http import httpx
from intdash.providers.paging import cursor_time
from intdash.providers.ratelimit import Pacer, RateLimits
from intdash.sandbox.common import RateWindow
from intdash.sandbox.server import Sandbox
from tests.providers import connect, fetch, pws, redirect_uri, sandbox, sandbox_env

__all__ = ["pws", "redirect_uri", "sandbox", "sandbox_env"]  # fixtures

PLATFORMS = ["xero", "myob", "zoho"]


def _emulator(sandbox: Sandbox, kind: str):  # type: ignore[no-untyped-def]
    return sandbox.emulators[kind]


def _row_id(ws: Workspace, uid: str) -> int:
    with ws.db.read() as session:
        row = ws.integrations.find(session, uid)
    assert row.id is not None
    return row.id


def _stored_token(ws: Workspace, uid: str) -> TokenSet:
    with ws.db.read() as session:
        stored = ws.credentials.get(session, _row_id(ws, uid), OAUTH_TOKEN)
    assert stored is not None
    return TokenSet.from_json(stored.value)


def _store_token(ws: Workspace, uid: str, token: TokenSet) -> None:
    with ws.db.write() as session:
        ws.credentials.put(session, _row_id(ws, uid), OAUTH_TOKEN, token.to_json())


@pytest.mark.parametrize("kind", PLATFORMS)
async def test_pages_through_2500_invoices(pws: Workspace, sandbox: Sandbox, kind: str) -> None:
    uid = pws.integrations.create(kind).integration.uid
    service = await connect(pws, uid)
    invoices, cursor = await fetch(service, uid)
    dataset = _emulator(sandbox, kind).dataset
    assert len(invoices) == 2500
    assert len({i.external_id for i in invoices}) == 2500
    first, source = invoices[0], dataset.invoice(0)
    assert first.number == source.number == "INV-0000001"
    assert first.contact == source.contact
    assert first.issue_date == source.issue_date
    assert first.source_updated_at == source.updated
    assert first.total == source.total
    assert (first.subtotal, first.tax) == (source.subtotal, source.tax)
    # Zoho's list has no tax: what its rate limit has not let be read yet is unknown, not 0
    for i in invoices:
        if i.tax is None:
            assert kind == "zoho"
        else:
            assert i.subtotal is not None and i.total == i.subtotal + i.tax
    # from the data, not the clock: the start of the second before the last change
    assert cursor_time(cursor) == dataset.invoice(2499).updated - timedelta(seconds=1)


@pytest.mark.parametrize("kind", PLATFORMS)
async def test_incremental_pass_returns_only_what_changed(
    pws: Workspace, sandbox: Sandbox, kind: str
) -> None:
    uid = pws.integrations.create(kind).integration.uid
    service = await connect(pws, uid)
    _, cursor = await fetch(service, uid)
    nothing, same = await fetch(service, uid, cursor)
    assert (nothing, same) == ([], cursor)
    dataset = _emulator(sandbox, kind).dataset
    touched = dataset.touch([17, 2400, 999, 3])
    changed, new_cursor = await fetch(service, uid, cursor)
    expected = [dataset.invoice(i) for i in touched]
    assert [i.number for i in changed] == [s.number for s in expected]
    assert [i.total for i in changed] == [s.total for s in expected]
    last_second = expected[-1].updated.replace(microsecond=0)
    assert cursor_time(new_cursor) == last_second - timedelta(seconds=1)


async def test_token_expiring_mid_sync_is_refreshed_once_with_rotation(
    pws: Workspace, sandbox: Sandbox
) -> None:
    uid = pws.integrations.create("xero").integration.uid
    service = await connect(pws, uid)
    before = _stored_token(pws, uid)
    seen = 0
    async with await service.api(uid) as api:
        api.connector.settings = api.connector.settings.model_copy(update={"page_size": 100})
        async for page in api.connector.pages(api, None, None):
            seen += len(page.invoices)
            if 500 <= seen < 600:  # the platform's clock says the access token is done
                sandbox.xero.oauth.expire_access_tokens()
    assert seen == 2500
    assert sandbox.xero.oauth.refresh_calls == 1
    after = _stored_token(pws, uid)
    assert after.refresh_token != before.refresh_token  # rotated, and stored
    assert pws.integrations.get(uid).status.active
    # the old refresh token is dead, as on Xero
    async with httpx.AsyncClient() as client:
        reuse = await client.post(
            pws.settings.xero.token_url,
            data={"grant_type": "refresh_token", "refresh_token": before.refresh_token or ""},
            auth=(pws.settings.xero.client_id, pws.settings.xero.client_secret.get_secret_value()),
        )
    assert reuse.json() == {"error": "invalid_grant"}


REFRESHER = """
import asyncio, json, sys
from intdash.core.workspace import Workspace
from intdash.providers.connect import ConnectService

async def main(integration_id: int) -> None:
    ws = Workspace.open()
    service = ConnectService(ws)
    connector = service.connector("xero")
    tokens = await asyncio.gather(
        *(service.tokens.valid(connector, integration_id) for _ in range(10))
    )
    print(json.dumps(sorted({t.access_token for t in tokens})))

asyncio.run(main(int(sys.argv[1])))
"""


async def test_ten_tasks_and_two_processes_refresh_exactly_once(
    pws: Workspace, sandbox: Sandbox, sandbox_env: dict[str, str]
) -> None:
    uid = pws.integrations.create("xero").integration.uid
    await connect(pws, uid)
    stale = _stored_token(pws, uid)
    _store_token(pws, uid, replace(stale, expires_at=0.0))  # everyone sees it expired
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REFRESHER, str(_row_id(pws, uid))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    service = ConnectService(pws)
    connector = service.connector("xero")
    here = await asyncio.gather(
        *(service.tokens.valid(connector, _row_id(pws, uid)) for _ in range(10))
    )
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    seen = {t.access_token for t in here}
    for out, _ in outputs:
        seen.update(json.loads(out))
    assert sandbox.xero.oauth.refresh_calls == 1
    assert len(seen) == 1
    assert seen != {stale.access_token}
    assert _stored_token(pws, uid).access_token in seen
    assert pws.integrations.get(uid).status.active


async def test_429_with_retry_after_is_honoured(pws: Workspace, sandbox: Sandbox) -> None:
    uid = pws.integrations.create("xero").integration.uid
    service = await connect(pws, uid)
    sandbox.xero.faults.storm_429 = 2
    async with await service.api(uid) as api:
        message = await api.connector.test(api)
        waited = api.pacer.waited
    assert "Demo Company" in message
    assert sandbox.xero.rate_limited == 2
    assert waited >= 2.0  # Retry-After: 1, twice, plus jitter


async def test_daily_limit_stops_at_once(pws: Workspace, sandbox: Sandbox) -> None:
    uid = pws.integrations.create("xero").integration.uid
    service = await connect(pws, uid)
    sandbox.xero.day = RateWindow(3, 86_400)
    with pytest.raises(RateLimited, match="daily call limit") as caught:
        await fetch(service, uid, page_size=100)
    assert caught.value.daily and caught.value.retry_after > 60
    calls = sandbox.xero.api_calls
    assert calls == 4  # three pages, then the refusal: no retry loop
    with pytest.raises(RateLimited):
        await fetch(service, uid)
    assert sandbox.xero.api_calls == calls + 1


async def test_pacing_keeps_a_sync_under_the_limit(pws: Workspace, sandbox: Sandbox) -> None:
    sandbox.xero.minute = RateWindow(10, 1.0)  # a 'minute' of one second, to keep this quick
    uid = pws.integrations.create("xero").integration.uid
    service = ConnectService(pws, limits={"xero": RateLimits(10, 1.0, 5)})
    await connect(pws, uid, service)
    invoices, _ = await fetch(service, uid)
    assert len(invoices) == 2500
    assert sandbox.xero.rate_limited == 0
    assert sandbox.xero.inflight.peak <= 5


async def test_myob_rate_limit_error_is_backed_off(pws: Workspace, sandbox: Sandbox) -> None:
    uid = pws.integrations.create("myob").integration.uid
    service = await connect(pws, uid)
    sandbox.myob.faults.storm_429 = 1  # answered, as MYOB does, with 403 RateLimitError
    invoices, _ = await fetch(service, uid)
    assert len(invoices) == 2500
    assert sandbox.myob.rate_limited == 1


async def test_revoked_token_means_reconnect_needed_without_a_loop(
    pws: Workspace, sandbox: Sandbox
) -> None:
    uid = pws.integrations.create("xero").integration.uid
    service = await connect(pws, uid)
    sandbox.xero.oauth.revoke_all()
    with pytest.raises(ReconnectNeeded, match="invalid_grant"):
        await fetch(service, uid)
    status = pws.integrations.get(uid).status
    assert status.reason is Reason.RECONNECT_NEEDED
    calls = sandbox.xero.oauth.refresh_calls
    assert calls == 1
    result = await service.test(uid)
    assert not result.ok and "reconnect" in result.message
    assert sandbox.xero.oauth.refresh_calls == calls  # never retried
    assert pws.audit.list(uid)[0].action == "integration.reconnect_needed"
    # connecting again clears it
    await connect(pws, uid, service)
    assert pws.integrations.get(uid).status.active
    assert pws.audit.list(uid)[0].action == "integration.reconnected"


@pytest.mark.parametrize("kind", PLATFORMS)
async def test_malformed_page_is_a_typed_error(pws: Workspace, sandbox: Sandbox, kind: str) -> None:
    uid = pws.integrations.create(kind).integration.uid
    service = await connect(pws, uid)
    _emulator(sandbox, kind).faults.malformed = 1
    with pytest.raises(MalformedResponse, match="not valid JSON"):
        await fetch(service, uid)


async def test_server_errors_are_retried_then_reported(pws: Workspace, sandbox: Sandbox) -> None:
    uid = pws.integrations.create("zoho").integration.uid
    service = await connect(pws, uid)
    sandbox.zoho.faults.fail_5xx = 2
    assert (await service.test(uid)).ok
    sandbox.zoho.faults.fail_5xx = 10
    with pytest.raises(ProviderUnavailable, match="HTTP 500 3 times"):
        await fetch(service, uid)


async def test_zoho_token_throttle_is_not_a_reconnect(pws: Workspace, sandbox: Sandbox) -> None:
    uid = pws.integrations.create("zoho").integration.uid
    service = await connect(pws, uid)
    sandbox.zoho.oauth.policy.token_throttle = 1  # one token already minted in ten minutes
    _store_token(pws, uid, replace(_stored_token(pws, uid), expires_at=0.0))
    with pytest.raises(TokenThrottled, match="throttling"):
        await fetch(service, uid)
    assert pws.integrations.get(uid).status.active  # not "reconnect needed"


async def test_zoho_refresh_keeps_its_refresh_token(pws: Workspace, sandbox: Sandbox) -> None:
    uid = pws.integrations.create("zoho").integration.uid
    service = await connect(pws, uid)
    before = _stored_token(pws, uid)
    _store_token(pws, uid, replace(before, expires_at=0.0))
    assert (await service.test(uid)).ok
    after = _stored_token(pws, uid)
    assert after.access_token != before.access_token
    assert after.refresh_token == before.refresh_token
    assert after.extra["api_domain"].endswith("/zoho/api")


async def test_myob_expires_in_as_text_and_company_file_sign_in(
    pws: Workspace, sandbox: Sandbox
) -> None:
    uid = pws.integrations.create(
        "myob", values={"company_file_username": "admin", "company_file_password": "cf-pass-1"}
    ).integration.uid
    service = await connect(pws, uid)
    token = _stored_token(pws, uid)
    assert 1100 < token.expires_at - time.time() <= 1200
    async with await service.api(uid) as api:
        assert api.tenant is not None
        headers = api.connector.auth_headers(token, api.tenant)
    assert headers["x-myobapi-cftoken"] == "YWRtaW46Y2YtcGFzcy0x"  # base64 of admin:cf-pass-1
    assert headers["x-myobapi-version"] == "v2"


async def test_tokens_are_stored_encrypted(pws: Workspace) -> None:
    uid = pws.integrations.create("xero").integration.uid
    await connect(pws, uid)
    token = _stored_token(pws, uid)
    path = pws.db.sqlite_path
    if path is None:
        with pws.db.read() as session:
            raw = repr(list(session.exec(select(Integration)))).encode()
    else:
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert token.access_token.encode() not in raw
    assert (token.refresh_token or "").encode() not in raw


def test_money_is_decimal() -> None:
    from intdash.providers.xero import parse_invoice

    invoice = parse_invoice(
        {
            "InvoiceID": "a",
            "Type": "ACCREC",
            "CurrencyCode": "NZD",
            "SubTotal": Decimal("0.1"),
            "TotalTax": Decimal("0.2"),
            "Total": Decimal("0.3"),
            "UpdatedDateUTC": "/Date(1539993600000+0000)/",
        }
    )
    assert invoice.subtotal is not None and invoice.tax is not None
    assert invoice.subtotal + invoice.tax == invoice.total
    with pytest.raises(MalformedResponse, match=r"not a \.NET date"):
        parse_invoice(
            {"InvoiceID": "a", "Type": "ACCREC", "CurrencyCode": "NZD", "UpdatedDateUTC": "x"}
        )


async def test_slow_answers_become_a_typed_timeout(pws: Workspace, sandbox: Sandbox) -> None:
    uid = pws.integrations.create("myob").integration.uid
    service = await connect(pws, uid)
    sandbox.myob.faults.slow_seconds = 2.0
    async with await service.api(uid) as api:
        api.connector.timeout = httpx.Timeout(0.3)
        api._http.timeout = api.connector.timeout
        with pytest.raises(ProviderTimeout, match="did not answer in time"):
            await api.connector.test(api)


async def test_pacer_waits_for_the_oldest_call_not_a_whole_window() -> None:
    now = [100.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    pacer = Pacer(RateLimits(3, 10.0), clock=lambda: now[0], sleep=sleep)
    for step in (0.0, 1.0, 1.0):
        now[0] += step
        async with pacer:
            pass
    pacer.remaining(0)  # the platform: nothing left in this window
    async with pacer:  # the oldest call (at 100) leaves the window at 110.05
        pass
    assert waits == [pytest.approx(8.05)]
    other = Pacer(RateLimits(3, 10.0), clock=lambda: now[0], sleep=sleep)
    other.remaining(0)  # spent by someone else: a whole window
    async with other:
        pass
    assert waits[-1] == pytest.approx(10.0)
