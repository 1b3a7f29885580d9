"""The sync engine against the emulators: crash safety, claims, limits, licence, cancel, retries,
and the fiscal register."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import signal
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import func, select

from intdash.core.models import Invoice, RunOutcome, SyncRun
from intdash.core.status import Reason
from intdash.core.workspace import Workspace
from intdash.sandbox.dataset import SourceInvoice
from intdash.sandbox.server import Sandbox
from intdash.sandbox.xero import render_invoice
from intdash.sync.engine import AlreadyRunning, RunResult, SyncEngine, SyncRefused
from tests.conftest import run_intdash
from tests.providers import connect, pws, redirect_uri, sandbox, sandbox_env, start_intdash
from tests.waiting import wait_for, wait_for_async

__all__ = ["pws", "redirect_uri", "sandbox", "sandbox_env"]  # fixtures


@pytest.fixture(autouse=True)
def pages_of_a_hundred(monkeypatch: pytest.MonkeyPatch, sandbox_env: dict[str, str]) -> None:
    """Xero pages of 100, so that 2,500 invoices make 25 pages (in this process and in the
    ones these tests start) for the tests that act between pages."""
    monkeypatch.setenv("INTDASH_XERO__PAGE_SIZE", "100")
    sandbox_env["INTDASH_XERO__PAGE_SIZE"] = "100"


@pytest.fixture
def fast_claims(monkeypatch: pytest.MonkeyPatch, sandbox_env: dict[str, str]) -> dict[str, str]:
    """Claims that lapse two seconds after a dead process's last page."""
    monkeypatch.setenv("INTDASH_SYNC__CLAIM_SECONDS", "5")
    return {**sandbox_env, "INTDASH_SYNC__CLAIM_SECONDS": "5"}


def _issued(invoice: SourceInvoice) -> bool:
    """An issued sales invoice (AUTHORISED or PAID): the only kind fiscalized."""
    status = render_invoice(invoice)["Status"]
    return invoice.sales and status in ("AUTHORISED", "PAID")


def _count(ws: Workspace) -> tuple[int, int]:
    with ws.db.read() as session:
        total = session.exec(select(func.count()).select_from(Invoice)).one()
        distinct = session.exec(select(func.count(func.distinct(Invoice.external_id)))).one()
    return total, distinct


async def _connected(ws: Workspace, kind: str = "xero") -> str:
    ws.plans.set("scale")  # room for every invoice: nothing held
    uid = ws.integrations.create(kind).integration.uid
    await connect(ws, uid)
    return uid


async def test_full_then_incremental_sync(pws: Workspace, sandbox: Sandbox) -> None:
    uid = await _connected(pws)
    engine = SyncEngine(pws)
    first = await engine.run(uid)
    assert (first.outcome, first.fetched, first.created, first.updated) == (
        RunOutcome.OK,
        2500,
        2500,
        0,
    )
    data = sandbox.xero.dataset
    issued = {i for i in range(2500) if _issued(data.invoice(i))}
    sandbox.xero.dataset.touch([10, 20, 30])
    second = await engine.run(uid)
    assert (second.fetched, second.created, second.updated) == (3, 0, 3)
    assert _count(pws) == (2500, 2500)
    view = pws.integrations.get(uid)
    assert view.status.active
    now_issued = {i for i in (10, 20, 30) if _issued(data.invoice(i))}
    fiscalized = issued | now_issued  # each counted once, drafts and bills never
    assert view.last_successful_sync is not None
    assert view.invoices_this_month == len(fiscalized) < 2500
    with pws.db.read() as session:
        runs = session.exec(select(SyncRun).order_by(SyncRun.id)).all()  # type: ignore[arg-type]
    assert [(r.trigger, r.outcome, r.fetched) for r in runs] == [
        ("manual", "ok", 2500),
        ("manual", "ok", 3),
    ]
    # an edit of an issued invoice's amounts refunds its sale and records a new one; one that
    # takes it back out of issue refunds it; one that issues it records its sale
    edits = sum(2 if i in now_issued else 1 for i in issued & {10, 20, 30})
    edits += len(now_issued - issued)
    assert pws.invoices.verify().records == len(issued) + edits


async def test_sigkill_mid_sync_then_a_new_sync_leaves_exactly_the_emulators_invoices(
    pws: Workspace, sandbox: Sandbox, fast_claims: dict[str, str]
) -> None:
    uid = await _connected(pws)
    sandbox.xero.faults.hold(after=3)  # three pages, then the sync waits at the gate
    proc = start_intdash("sync", uid, env=fast_claims)
    wait_for(lambda: sandbox.xero.faults.holding and _count(pws)[0] >= 250)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    sandbox.xero.faults.release()
    partial, _ = _count(pws)
    assert 0 < partial < 2500
    engine = SyncEngine(pws)

    async def claimed() -> RunResult | None:  # the dead process's claim lapses on its own
        try:
            return await engine.run(uid)
        except AlreadyRunning:
            return None

    result = await wait_for_async(claimed, every=0.2)
    assert result.outcome is RunOutcome.OK
    assert result.fetched == 2500 - partial  # resumed from the last committed page
    assert _count(pws) == (2500, 2500)
    emulator_ids = {sandbox.xero.dataset.invoice(i).id for i in range(2500)}
    with pws.db.read() as session:
        stored = set(session.exec(select(Invoice.external_id)))
    assert stored == emulator_ids
    with pws.db.read() as session:
        runs = session.exec(select(SyncRun).order_by(SyncRun.id)).all()  # type: ignore[arg-type]
    assert runs[0].outcome == "interrupted"  # never "ok"
    assert runs[0].error is not None and runs[0].error.startswith("its process (")
    assert runs[1].outcome == "ok"
    assert pws.invoices.verify().ok


async def test_two_processes_syncing_one_integration(
    pws: Workspace, sandbox: Sandbox, sandbox_env: dict[str, str]
) -> None:
    uid = await _connected(pws)
    sandbox.xero.faults.hold(after=1)  # the first page, then the sync waits at the gate
    first = start_intdash("sync", uid, "--json", env=sandbox_env)
    wait_for(lambda: sandbox.xero.faults.holding and _count(pws)[0] > 0)
    second = run_intdash("sync", uid, env=sandbox_env)
    assert second.returncode == 1
    assert f"intdash: {uid} is already syncing" in second.stderr
    with pytest.raises(AlreadyRunning):
        await SyncEngine(pws).run(uid)
    sandbox.xero.faults.release()
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert json.loads(out)["fetched"] == 2500
    assert _count(pws) == (2500, 2500)


async def test_limit_reached_held_then_released(pws: Workspace, sandbox: Sandbox) -> None:
    uid = await _connected(pws)
    pws.plans.set("starter", monthly_limit=100)
    result = await SyncEngine(pws).run(uid)
    sales = sum(1 for i in range(2500) if _issued(sandbox.xero.dataset.invoice(i)))
    assert (result.created, result.held) == (2500, sales - 100)
    view = pws.integrations.get(uid)
    assert view.status.reason is Reason.LIMIT_REACHED
    assert [r.fiscal_status for r in pws.invoices.iter_all(uid)].count("held") == sales - 100
    pws.plans.set("scale")  # raised: released at once
    assert [r.fiscal_status for r in pws.invoices.iter_all(uid)].count("held") == 0
    assert pws.integrations.get(uid).status.active
    assert pws.invoices.verify().records == sales


async def test_held_invoices_released_when_the_month_turns(pws: Workspace) -> None:
    uid = await _connected(pws)
    pws.plans.set("starter", monthly_limit=10)
    await SyncEngine(pws).run(uid)
    held = [r.fiscal_status for r in pws.invoices.iter_all(uid)].count("held")
    assert held > 0
    later = pws.clock() + timedelta(days=32)
    pws.clock = lambda: later  # next month
    result = await SyncEngine(pws).run(uid)
    assert result.outcome is RunOutcome.OK
    statuses = [r.fiscal_status for r in pws.invoices.iter_all(uid)]
    assert statuses.count("held") == held - 10  # ten more fit in the new month
    assert pws.invoices.verify().ok


async def test_lapsed_licence_stops_syncing(pws: Workspace) -> None:
    uid = await _connected(pws)
    pws.plans.set("scale", licence_expires=(pws.clock() - timedelta(days=1)).date())
    with pytest.raises(SyncRefused, match="licence lapsed"):
        await SyncEngine(pws).run(uid)
    assert pws.integrations.get(uid).status.reason is Reason.LICENCE_LAPSED
    assert _count(pws) == (0, 0)


async def test_disabled_and_non_platform_integrations_do_not_sync(pws: Workspace) -> None:
    uid = await _connected(pws)
    pws.integrations.set_sync_enabled(uid, False)
    with pytest.raises(SyncRefused, match="sync is disabled"):
        await SyncEngine(pws).run(uid)
    custom = pws.integrations.create("custom").integration.uid
    with pytest.raises(SyncRefused, match="does not sync from a platform"):
        await SyncEngine(pws).run(custom)


async def test_cancel_keeps_what_was_committed_and_resumes(pws: Workspace) -> None:
    uid = await _connected(pws)
    engine = SyncEngine(pws)
    cancel = asyncio.Event()
    cancel.set()  # honoured after the first page
    result = await engine.run(uid, cancel=cancel)
    assert (result.outcome, result.fetched) == (RunOutcome.CANCELLED, 100)
    assert pws.integrations.get(uid).last_successful_sync is None
    again = await engine.run(uid)
    assert (again.outcome, again.fetched) == (RunOutcome.OK, 2400)
    assert _count(pws) == (2500, 2500)


async def test_cancel_from_another_process(
    pws: Workspace, sandbox: Sandbox, sandbox_env: dict[str, str]
) -> None:
    uid = await _connected(pws)
    sandbox.xero.faults.hold(after=1)  # the first page, then the sync waits at the gate
    task = asyncio.create_task(SyncEngine(pws).run(uid))
    await asyncio.to_thread(wait_for, lambda: sandbox.xero.faults.holding and _count(pws)[0] > 0)
    asked = await asyncio.to_thread(run_intdash, "sync", uid, "--cancel", env=sandbox_env)
    sandbox.xero.faults.release()
    assert asked.returncode == 0, asked.stderr
    result = await task
    assert result.outcome is RunOutcome.CANCELLED
    user = getpass.getuser()  # who stopped it, and where: no failure
    assert result.error == f"stopped by {user} at the command line"
    assert pws.integrations.get(uid).status.active
    idle = await asyncio.to_thread(run_intdash, "sync", uid, "--cancel", env=sandbox_env)
    assert idle.returncode == 1 and "is not syncing now" in idle.stderr


async def test_time_limit(pws: Workspace, sandbox: Sandbox) -> None:
    uid = await _connected(pws)
    sandbox.xero.faults.slow_seconds = 0.2
    result = await SyncEngine(pws, time_limit=timedelta(seconds=0.5)).run(uid)
    assert result.outcome is RunOutcome.CANCELLED
    assert "time limit" in (result.error or "")


async def test_failures_retry_with_backoff_then_show(pws: Workspace, sandbox: Sandbox) -> None:
    uid = await _connected(pws)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    engine = SyncEngine(pws, sleep=sleep, jitter=lambda: 0.5)
    sandbox.xero.faults.fail_5xx = 10_000
    result = await engine.run_with_retries(uid, attempts=3)
    assert result.outcome is RunOutcome.FAILED and result.retryable
    assert [w for w in waits if w >= 30] == [45.0, 90.0]  # 30·2ⁿ·(1 + jitter)
    view = pws.integrations.get(uid)
    assert view.status.reason is Reason.LAST_SYNC_FAILED
    assert "HTTP 500" in (view.status.detail or "")
    sandbox.xero.faults.fail_5xx = 0
    assert (await engine.run_with_retries(uid)).outcome is RunOutcome.OK
    assert pws.integrations.get(uid).status.active


async def test_revoked_authorisation_is_not_retried(pws: Workspace, sandbox: Sandbox) -> None:
    uid = await _connected(pws)
    sandbox.xero.oauth.revoke_all()
    sandbox.xero.oauth.expire_access_tokens()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    result = await SyncEngine(pws, sleep=sleep).run_with_retries(uid)
    assert result.outcome is RunOutcome.FAILED and not result.retryable
    assert waits == []
    assert pws.integrations.get(uid).status.reason is Reason.RECONNECT_NEEDED


async def test_broken_hash_chain_is_detected(pws: Workspace, sandbox_env: dict[str, str]) -> None:
    uid = await _connected(pws)
    await SyncEngine(pws).run(uid)
    assert run_intdash("invoices", "verify", env=sandbox_env).returncode == 0
    with pws.db.write() as session:
        session.execute(
            text("UPDATE fiscal_records SET invoice_digest = :d WHERE seq = 7"), {"d": "0" * 64}
        )
    found = pws.invoices.verify()
    assert (found.ok, found.first_broken) == (False, 7)
    cli = run_intdash("invoices", "verify", env=sandbox_env)
    assert cli.returncode == 1 and "record 7 was altered" in cli.stderr
    with pws.db.write() as session:
        session.execute(text("DELETE FROM fiscal_records WHERE seq = 3"))
    assert pws.invoices.verify().problem == "record 3 is missing"


async def test_removing_keeps_fiscalized_invoices(
    pws: Workspace, sandbox_env: dict[str, str]
) -> None:
    uid = await _connected(pws)
    await SyncEngine(pws).run(uid)
    pws.integrations.remove(uid)
    assert _count(pws) == (2500, 2500)
    assert pws.invoices.verify().records == sum(
        1 for r in pws.invoices.iter_all(uid) if r.fiscal_status == "fiscalized"
    )
    listed = run_intdash("invoices", "list", "--integration", uid, "--json", env=sandbox_env)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert len(data) == 2500
    for key in ("external_id", "number", "date", "total", "currency", "status", "fiscal_status"):
        assert key in data[0]
    limited = run_intdash("invoices", "list", "--limit", "3", "--json", env=sandbox_env)
    assert len(json.loads(limited.stdout)) == 3
    with pytest.raises(Exception, match="was removed"):
        await SyncEngine(pws).run(uid)


def test_sync_command(pws: Workspace, sandbox_env: dict[str, str]) -> None:
    uid = asyncio.run(_connected(pws, "zoho"))
    result = run_intdash("sync", uid, "--json", env=sandbox_env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {k: data[k] for k in ("fetched", "created", "updated", "held", "outcome")} == {
        "fetched": 2500, "created": 2500, "updated": 0, "held": 0, "outcome": "ok",
    }  # fmt: skip
    human = run_intdash("sync", uid, env=sandbox_env)
    assert human.stdout.strip() == "ok: fetched 0, created 0, updated 0, held 0"
