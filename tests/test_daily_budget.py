"""Xero's daily API allowance per tenant: kept from every answer, scheduled syncs wait for the
reset when only the reserve is left (or a 429 says the day is spent), Sync Now asks first."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select
from textual.widgets import Button, Static

from intdash.core.budget import DailyBudget
from intdash.core.config import load_settings
from intdash.core.models import RunOutcome, SyncRun
from intdash.core.status import Reason, StatusFacts, derive_status
from intdash.core.workspace import Workspace
from intdash.providers.connect import ConnectService
from intdash.providers.http import httpx
from intdash.sandbox.common import RateWindow
from intdash.sandbox.server import Sandbox
from intdash.sync.engine import SyncEngine
from intdash.sync.scheduler import SyncScheduler
from intdash.tui.screens.details import DetailsScreen
from intdash.tui.screens.modals import ConfirmScreen
from tests.conftest import FakeClock, run_intdash
from tests.providers import connect, pws, redirect_uri, sandbox, sandbox_env
from tests.test_tui import app_for, table, uids
from tests.waiting import until, wait_for_async

__all__ = ["pws", "redirect_uri", "sandbox", "sandbox_env"]  # fixtures

RESERVE = 50  # INTDASH_XERO__DAILY_RESERVE's default
MIDNIGHT = datetime(2026, 11, 16, tzinfo=UTC)  # the day after the FakeClock's


@pytest.fixture
def fws(sandbox_env: dict[str, str], clock: FakeClock) -> Iterator[Workspace]:
    """A workspace whose platforms are the sandbox's, on the test's clock."""
    ws = Workspace.open(load_settings(), clock=clock, actor="tester")
    yield ws
    ws.close()


@pytest.fixture
async def scheduler(fws: Workspace) -> AsyncIterator[SyncScheduler]:
    made = SyncScheduler(fws, holder="test-budget")
    await made.start(paused=True)
    yield made
    await made.stop()


async def _connected(ws: Workspace) -> str:
    ws.plans.set("scale")  # room for every invoice: nothing held
    uid = ws.integrations.create("xero").integration.uid
    await connect(ws, uid)
    return uid


def _day_limit(sandbox: Sandbox, limit: int) -> None:
    """Xero's day for the organisation, as the sandbox's control endpoint sets it."""
    answer = httpx.post(
        f"{sandbox.url}/_sandbox/xero/limits",
        json={"window": "day", "limit": limit, "seconds": 86_400},
    )
    assert answer.status_code == 200, answer.text


def _runs(ws: Workspace) -> list[SyncRun]:
    with ws.db.read() as session:
        return list(session.exec(select(SyncRun).order_by(SyncRun.id)))  # type: ignore[arg-type]


async def _scheduled(ws: Workspace, scheduler: SyncScheduler, uid: str) -> None:
    """What a worker does when the integration's slot comes: claims it and runs it."""
    with ws.db.read() as session:
        integration_id = ws.integrations.find(session, uid).id
    assert integration_id is not None
    ws.schedule.defer(integration_id, ws.clock())  # its slot has come
    await scheduler.tick()
    await wait_for_async(lambda: not scheduler.running, every=0.02)


def test_the_reason_reads_as_the_operator_needs_it() -> None:
    low = DailyBudget(12, MIDNIGHT - timedelta(hours=3), MIDNIGHT)
    facts = StatusFacts(oauth=True, authorised=True, daily_budget=low, daily_reserve=RESERVE)
    status = derive_status(facts)
    assert (status.active, status.reason) == (False, Reason.DAILY_LIMIT)
    assert status.explanation == "daily API limit: 12 calls left, resumes 00:00 UTC"
    plenty = DailyBudget(RESERVE + 1, low.observed_at, MIDNIGHT)
    assert derive_status(StatusFacts(oauth=True, authorised=True, daily_budget=plenty)).active
    disabled = StatusFacts(oauth=True, authorised=True, sync_enabled=False, daily_budget=low)
    assert derive_status(disabled).reason is Reason.SYNC_DISABLED  # more fundamental


async def test_the_budget_is_kept_from_a_syncs_answers(
    fws: Workspace, sandbox: Sandbox, clock: FakeClock
) -> None:
    uid = await _connected(fws)
    result = await SyncEngine(fws).run(uid)
    assert result.outcome is RunOutcome.OK
    left = sandbox.xero.day.remaining
    assert left < 5000
    with Workspace.open(load_settings(), clock=clock) as other:  # another process's view
        view = other.integrations.get(uid)
    assert view.daily_budget == DailyBudget(left, clock.now, MIDNIGHT)
    assert view.status.active  # plenty left
    assert ("Calls left today", f"{left:,}") in view.activity()
    assert view.to_json()["daily_api_calls"] == {
        "remaining": left,
        "observed_at": clock.now.isoformat(),
        "resets_at": MIDNIGHT.isoformat(),
    }
    clock.advance(minutes=5)
    assert (await ConnectService(fws).test(uid)).ok  # a connection test answers it too
    budget = fws.integrations.get(uid).daily_budget
    assert budget == DailyBudget(left - 1, clock.now, MIDNIGHT)
    clock.advance(hours=12)  # Xero's day has ended: the figure says nothing any more
    assert fws.integrations.get(uid).daily_budget is None


async def test_below_the_reserve_scheduled_syncs_wait_for_the_reset(
    fws: Workspace, sandbox: Sandbox, clock: FakeClock, scheduler: SyncScheduler
) -> None:
    uid = await _connected(fws)
    _day_limit(sandbox, RESERVE + 3)  # a few calls more than the reserve left today
    assert (await SyncEngine(fws).run(uid)).outcome is RunOutcome.OK  # Sync Now: all of it
    left = sandbox.xero.day.remaining
    assert left <= RESERVE
    view = fws.integrations.get(uid)
    assert view.status.reason is Reason.DAILY_LIMIT
    assert view.status.explanation == f"daily API limit: {left} calls left, resumes 00:00 UTC"

    calls = sandbox.xero.api_calls
    await _scheduled(fws, scheduler, uid)
    assert len(_runs(fws)) == 1  # no run, no call
    assert sandbox.xero.api_calls == calls

    clock.advance(hours=12, minutes=1)  # past 00:00 UTC: a new day at Xero
    _day_limit(sandbox, 5000)
    sandbox.xero.dataset.touch([3, 4])
    assert fws.integrations.get(uid).status.active
    await _scheduled(fws, scheduler, uid)
    last = _runs(fws)[-1]
    assert (last.trigger, last.outcome, last.fetched) == ("schedule", "ok", 2)
    budget = fws.integrations.get(uid).daily_budget
    assert budget is not None and budget.remaining == sandbox.xero.day.remaining
    assert budget.resets_at == MIDNIGHT + timedelta(days=1)


async def test_a_scheduled_sync_stops_at_the_reserve(
    sandbox_env: dict[str, str],
    sandbox: Sandbox,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTDASH_XERO__PAGE_SIZE", "100")  # 25 pages
    with Workspace.open(load_settings(), clock=clock, actor="tester") as ws:
        uid = await _connected(ws)
        _day_limit(sandbox, RESERVE + 10)
        scheduler = SyncScheduler(ws, holder="test-reserve")
        await scheduler.start(paused=True)
        try:
            await _scheduled(ws, scheduler, uid)
        finally:
            await scheduler.stop()
        [run] = _runs(ws)
        assert run.outcome == "partial" and 0 < run.fetched < 2500
        assert run.error is not None and run.error.startswith("daily API limit: ")
        assert run.error.endswith("calls left, resumes 00:00 UTC; the rest is kept for Sync Now")
        assert sandbox.xero.day.remaining >= RESERVE - 3  # at most the pages fetched ahead
        view = ws.integrations.get(uid)
        assert view.status.reason is Reason.DAILY_LIMIT  # not "last sync failed"
        assert view.last_sync_error is None


async def test_a_day_429_stops_the_tenant_until_the_reset(
    fws: Workspace, sandbox: Sandbox, clock: FakeClock, scheduler: SyncScheduler
) -> None:
    uid = await _connected(fws)
    assert (await SyncEngine(fws).run(uid)).outcome is RunOutcome.OK
    assert fws.integrations.get(uid).status.active
    # the organisation's day is spent elsewhere (another app, another process)
    sandbox.xero.day = RateWindow(1, 86_400)
    sandbox.xero.day.hit()
    sandbox.xero.dataset.touch([5])
    calls, refused = sandbox.xero.api_calls, sandbox.xero.rate_limited

    result = await SyncEngine(fws).run_with_retries(uid)  # a scheduled run, with its retries
    assert sandbox.xero.rate_limited == refused + 1  # one 429, no retry loop
    assert result.outcome is RunOutcome.FAILED
    assert result.error == "Xero's daily call limit is spent; syncing resumes at 00:00 UTC"
    assert result.resumes_at == MIDNIGHT
    view = fws.integrations.get(uid)
    assert view.daily_budget == DailyBudget(0, clock.now, MIDNIGHT)
    assert view.status.explanation == "daily API limit: 0 calls left, resumes 00:00 UTC"
    assert view.last_sync_error is None

    calls = sandbox.xero.api_calls
    clock.advance(hours=6)
    await _scheduled(fws, scheduler, uid)
    assert len(_runs(fws)) == 2 and sandbox.xero.api_calls == calls  # no call before the reset

    clock.advance(hours=6, seconds=1)  # 00:00:01 UTC
    sandbox.xero.day = RateWindow(5000, 86_400)  # Xero's new day
    await _scheduled(fws, scheduler, uid)
    last = _runs(fws)[-1]
    assert (last.trigger, last.outcome, last.fetched) == ("schedule", "ok", 1)
    assert fws.integrations.get(uid).status.active


async def test_the_cli_refuses_to_spend_the_reserve_without_force(
    pws: Workspace, sandbox: Sandbox, sandbox_env: dict[str, str]
) -> None:
    uid = await _connected(pws)
    _day_limit(sandbox, RESERVE + 3)
    assert (await SyncEngine(pws).run(uid)).outcome is RunOutcome.OK
    left = sandbox.xero.day.remaining
    calls = sandbox.xero.api_calls

    refused = await asyncio.to_thread(run_intdash, "sync", uid, env=sandbox_env)
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert line == (
        f"intdash: Xero's daily API limit for {uid} is nearly spent: {left} calls left, "
        "resumes 00:00 UTC. A sync now may spend the last calls (scheduled syncs wait for the "
        "reset); --force syncs anyway"
    )
    assert sandbox.xero.api_calls == calls and len(pws.integrations.runs(uid)) == 1

    listed = await asyncio.to_thread(run_intdash, "integrations", "list", env=sandbox_env)
    assert f"daily API limit: {left} calls left, resumes 00:00 UTC" in listed.stdout
    shown = await asyncio.to_thread(
        run_intdash, "integrations", "show", uid, "--json", env=sandbox_env
    )
    data = json.loads(shown.stdout)
    assert (data["reason"], data["daily_api_calls"]["remaining"]) == ("daily API limit", left)

    forced = await asyncio.to_thread(run_intdash, "sync", uid, "--force", env=sandbox_env)
    assert forced.returncode == 0, forced.stderr
    assert sandbox.xero.api_calls > calls and len(pws.integrations.runs(uid)) == 2


async def test_sync_now_asks_first_when_the_budget_is_low(pws: Workspace, sandbox: Sandbox) -> None:
    uid = await _connected(pws)
    _day_limit(sandbox, RESERVE + 3)
    assert (await SyncEngine(pws).run(uid)).outcome is RunOutcome.OK
    left = sandbox.xero.day.remaining
    app = app_for(pws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        await until(pilot, lambda: "daily API limit" in str(table(app).get_row_at(0)[4]))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.view)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        body = str(app.screen.query_one(".dialog-body", Static).render())
        assert f"{left} calls left, resumes 00:00 UTC" in body
        assert app.focused is app.screen.query_one("#cancel", Button)
        await pilot.press("enter")  # the focus is on Cancel
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))
        assert len(pws.integrations.runs(uid)) == 1  # nothing ran
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.click("#confirm")

        def finished() -> list[SyncRun]:
            return [r for r in pws.integrations.runs(uid) if r.outcome != "running"]

        await until(pilot, lambda: len(finished()) == 2, timeout=90)
    assert finished()[0].outcome == RunOutcome.OK.value  # newest first
