"""A consent that works makes the integration Active at once and starts its first sync: in the
dashboard (the app's sync, with progress on the row and in details, whatever screen is shown)
and in ``intdash connect`` (in the foreground, unless --no-sync).

Every race here is held open by the sandbox's gate (``Faults.hold``), never by a delay: the
first listing page goes through and the sync waits at the second until the test releases it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from intdash.core.models import RunOutcome, SyncRun
from intdash.core.schedule import HANDOFF
from intdash.core.status import Reason
from intdash.core.workspace import Workspace
from intdash.providers.connect import ConnectService
from intdash.sandbox.server import Sandbox
from intdash.sync.engine import RunResult, SyncEngine, Trigger
from intdash.tui.app import IntdashApp
from intdash.tui.screens.connect import ConnectScreen
from intdash.tui.screens.details import DetailsScreen
from intdash.tui.screens.integrations import IntegrationsScreen
from tests.conftest import run_intdash
from tests.providers import connect, consent, pws, redirect_uri, sandbox, sandbox_env, start_intdash
from tests.waiting import until, wait_for_async

__all__ = ["pws", "redirect_uri", "sandbox", "sandbox_env"]  # fixtures

STATUS, NEXT = 3, 7  # the main table's Status and Next sync columns
SIZE = 2500  # the sandbox's invoices: three pages of Xero's 1,000


@pytest.fixture
def gate(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox, its gate opened again whatever the test did (a held call never hangs)."""
    yield sandbox
    sandbox.xero.faults.release()


def app_for(ws: Workspace, **options: Any) -> IntdashApp:
    return IntdashApp(ws, schedule=False, poll_seconds=0.2, **options)


def cell(app: IntdashApp, column: int, row: int = 0) -> str:
    return str(app.screen.query_one("#integrations").get_row_at(row)[column])  # type: ignore[attr-defined]


def summary(app: IntdashApp) -> str:
    return str(app.screen.query_one("#summary").render())


def notified(app: IntdashApp, words: str) -> bool:
    return any(words in n.message for n in app._notifications)


def finished(ws: Workspace, uid: str) -> list[SyncRun]:
    return [run for run in ws.integrations.runs(uid) if run.outcome != RunOutcome.RUNNING.value]


async def broken(ws: Workspace, box: Sandbox) -> str:
    """A Xero integration that was connected, then refused: "reconnect needed", its last sync
    failed. On Scale, so that no monthly limit holds its invoices."""
    ws.plans.set("scale")
    uid = ws.integrations.create("xero").integration.uid
    await connect(ws, uid)
    box.xero.oauth.revoke_all()
    failed = await SyncEngine(ws).run(uid)
    assert failed.outcome is RunOutcome.FAILED
    view = ws.integrations.get(uid)
    assert view.status.reason is Reason.RECONNECT_NEEDED and view.last_sync_error
    return uid


async def connected(ws: Workspace) -> str:
    ws.plans.set("scale")
    uid = ws.integrations.create("xero").integration.uid
    await connect(ws, uid)
    return uid


# -- the dashboard -----------------------------------------------------------------------------


async def test_a_reconnect_in_the_dashboard_is_active_at_once_and_syncs(
    pws: Workspace, gate: Sandbox
) -> None:
    uid = await broken(pws, gate)
    gate.xero.faults.hold(after=1)
    app = app_for(pws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "Inactive" in cell(app, STATUS))
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, ConnectScreen) and app.screen.flow)
        screen = app.screen
        assert isinstance(screen, ConnectScreen) and screen.flow is not None
        location = await consent(screen.flow.url)
        paste = screen.query_one("#paste")
        paste.value = location  # type: ignore[attr-defined]
        paste.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen))
        # Active while its first sync is still held at the second page: the consent did it
        await until(pilot, lambda: "Active" in cell(app, STATUS), message=lambda: cell(app, 3))
        assert pws.integrations.get(uid).status.active
        # the sync started at once, and its row shows how far it has come
        await until(pilot, lambda: "1,000" in cell(app, NEXT), message=lambda: cell(app, NEXT))
        assert gate.xero.faults.holding and not finished(pws, uid)[1:]
        gate.xero.faults.release()
        await until(pilot, lambda: app.syncs.get(uid) is None, timeout=60)
        await until(pilot, lambda: notified(app, f"fetched {SIZE:,}"))
        # the marker goes once the table has read what the run changed
        await until(pilot, lambda: not cell(app, NEXT).startswith(("⟳", "syncing")))
    run = finished(pws, uid)[0]  # newest first
    assert (run.outcome, run.trigger, run.fetched) == (RunOutcome.OK.value, "manual", SIZE)
    assert pws.integrations.get(uid).status.active


async def test_sync_now_belongs_to_the_app(pws: Workspace, gate: Sandbox) -> None:
    """Leaving details during Sync Now neither stops the sync nor crashes the app, and `s`
    again says it is running rather than stopping it."""
    uid = await connected(pws)
    gate.xero.faults.hold(after=1)
    app = app_for(pws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: cell(app, 0) == uid)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.view)
        await pilot.press("s")
        await until(pilot, lambda: "1,000" in summary(app), message=lambda: summary(app))
        running = app.syncs.get(uid)
        assert running is not None and "Syncing now" in summary(app)
        await pilot.press("s")
        await until(pilot, lambda: notified(app, "already syncing"))
        assert app.syncs.get(uid) is running and not running.cancel.is_set()
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen))
        await until(pilot, lambda: "1,000" in cell(app, NEXT), message=lambda: cell(app, NEXT))
        gate.xero.faults.release()
        await until(pilot, lambda: finished(pws, uid), timeout=60)
        await until(pilot, lambda: app.syncs.get(uid) is None)
        await until(pilot, lambda: "1,000" not in cell(app, NEXT))
        assert app.is_running
    [run] = finished(pws, uid)
    assert (run.outcome, run.fetched, run.error) == (RunOutcome.OK.value, SIZE, None)


async def test_stop_sync_by_key_and_never_in_read_only(pws: Workspace, gate: Sandbox) -> None:
    """`ctrl+x` stops a running sync, the dashboard's or another process's, after the page it
    is waiting for; in --read-only it is greyed and stops nothing."""
    uid = await connected(pws)
    gate.xero.faults.hold(after=1)
    app = app_for(pws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: cell(app, 0) == uid)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.view)
        await pilot.press("s")
        await until(pilot, lambda: "1,000" in summary(app), message=lambda: summary(app))
        assert app.screen.check_action("cancel_sync", ()) is True
        await pilot.press("ctrl+x")
        await until(pilot, lambda: notified(app, "stops after its current page"))
        gate.xero.faults.release()
        await until(pilot, lambda: app.syncs.get(uid) is None, timeout=60)
    [mine] = finished(pws, uid)  # stopped once the page it waited for was stored
    assert mine.outcome == RunOutcome.CANCELLED.value and 1000 < mine.fetched < SIZE
    # a stop asked for is a cancelled run, not a failure, and says who stopped it
    assert mine.error == "stopped by tester in the dashboard"
    view = pws.integrations.get(uid)
    assert view.status.active and view.last_sync_error is None

    # another process's sync (here, an engine beside the dashboard), held at its first call
    gate.xero.faults.hold(after=0)
    elsewhere = asyncio.create_task(SyncEngine(pws).run(uid, Trigger.SCHEDULE))
    try:
        await wait_for_async(lambda: len(pws.integrations.runs(uid)) == 2)
        watching = app_for(pws, read_only=True)
        async with watching.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: cell(watching, 0) == uid)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(watching.screen, DetailsScreen))
            details = watching.screen
            await until(pilot, lambda: details.check_action("cancel_sync", ()) is not False)
            assert details.check_action("cancel_sync", ()) is None  # offered, greyed
            assert "Syncing now" in summary(watching)
            await pilot.press("ctrl+x")
            await pilot.pause()
        assert len(finished(pws, uid)) == 1 and not elsewhere.done()

        app = app_for(pws)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: cell(app, 0) == uid)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailsScreen))
            details = app.screen
            await until(pilot, lambda: details.check_action("cancel_sync", ()) is True)
            await pilot.press("ctrl+x")
            await until(pilot, lambda: notified(app, "stops after its current page"))
            gate.xero.faults.release()
            stopped: RunResult = await asyncio.wait_for(elsewhere, 60)
            await until(pilot, lambda: details.check_action("cancel_sync", ()) is False)
        assert stopped.outcome is RunOutcome.CANCELLED and stopped.fetched > 0
        assert stopped.error == "stopped by tester in the dashboard"  # asked from another one
        assert pws.integrations.get(uid).status.active
    finally:
        gate.xero.faults.release()
        await asyncio.wait_for(elsewhere, 60)


# -- intdash connect ---------------------------------------------------------------------------


def _show(uid: str, env: dict[str, str]) -> dict[str, Any]:
    shown = run_intdash("integrations", "show", uid, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)  # type: ignore[no-any-return]


async def _connect_by_paste(uid: str, env: dict[str, str], *options: str) -> tuple[str, str, int]:
    """``intdash connect UID`` with the redirected URL pasted on its standard input."""
    proc = start_intdash("connect", uid, "--no-listen", *options, env=env)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http"), f"no authorisation URL but {url!r}"
    location = await consent(url)
    out, err = await asyncio.to_thread(proc.communicate, location + "\n", 90)
    return out, err, proc.returncode


async def test_connect_syncs_in_the_foreground(
    pws: Workspace, sandbox: Sandbox, sandbox_env: dict[str, str]
) -> None:
    uid = await broken(pws, sandbox)
    assert _show(uid, sandbox_env)["reason"] == "reconnect needed"
    out, err, code = await _connect_by_paste(uid, sandbox_env)
    assert code == 0, err
    assert out.strip().splitlines() == [
        f"Connected {uid} to Demo Company (NZ).",
        f"ok: fetched {SIZE:,}, created {SIZE:,}, updated 0, held 0",
    ]
    shown = _show(uid, sandbox_env)
    assert (shown["status"], shown["reason"]) == ("active", None)
    assert shown["last_successful_sync"] is not None
    # the next sync is the next slot after this one, not "now"
    assert datetime.fromisoformat(shown["next_sync"]) > datetime.now(UTC)
    assert len(list(pws.invoices.iter_all(uid))) == SIZE
    run = pws.integrations.runs(uid)[0]
    assert (run.outcome, run.fetched) == (RunOutcome.OK.value, SIZE)


async def test_connect_no_sync_leaves_the_first_sync_due(
    pws: Workspace, sandbox_env: dict[str, str]
) -> None:
    uid = pws.integrations.create("xero").integration.uid
    before = datetime.now(UTC)
    out, err, code = await _connect_by_paste(uid, sandbox_env, "--no-sync", "--json")
    assert code == 0, err
    data = json.loads(out[out.index("{") :])
    assert (data["uid"], data["tenant"], data["sync"]) == (uid, "Demo Company (NZ)", None)
    shown = _show(uid, sandbox_env)
    assert shown["status"] == "active"
    due = datetime.fromisoformat(shown["next_sync"])
    assert before - timedelta(seconds=1) <= due <= datetime.now(UTC)  # due now, for a worker
    assert pws.integrations.runs(uid) == []  # nothing ran


async def test_connect_when_another_process_is_syncing_says_so(
    pws: Workspace, gate: Sandbox, sandbox_env: dict[str, str]
) -> None:
    uid = await connected(pws)
    gate.xero.faults.hold(after=0)
    elsewhere = asyncio.create_task(SyncEngine(pws).run(uid, Trigger.SCHEDULE))
    try:
        await wait_for_async(lambda: pws.integrations.runs(uid) and gate.xero.faults.holding)
        out, err, code = await _connect_by_paste(uid, sandbox_env, "--json")
        assert code == 0, err
        data = json.loads(out[out.index("{") :])
        assert data["sync"] is None and "already syncing" in data["sync_skipped"]
    finally:
        gate.xero.faults.release()
        await asyncio.wait_for(elsewhere, 60)
    assert (await elsewhere).outcome is RunOutcome.OK


async def test_a_consent_whose_first_sync_runs_here_hands_it_off_a_minute_later(
    pws: Workspace,
) -> None:
    """Due a minute from now, so that no worker races the sync about to start here (and one
    takes it if this process dies first); without it, due now."""
    here = pws.integrations.create("xero").integration.uid
    service = ConnectService(pws)
    flow = await service.begin(here)
    before = datetime.now(UTC)
    await service.complete(flow, await consent(flow.url), first_sync_here=True)
    due = pws.integrations.get(here).next_sync.at
    assert due is not None and before + HANDOFF <= due <= datetime.now(UTC) + HANDOFF

    elsewhere = pws.integrations.create("xero").integration.uid
    flow = await service.begin(elsewhere)
    await service.complete(flow, await consent(flow.url))
    due = pws.integrations.get(elsewhere).next_sync.at
    assert due is not None and due <= datetime.now(UTC)
