"""The in-process scheduler and ``intdash serve``."""

from __future__ import annotations

import json
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlmodel import col, select

from intdash.core.catalog import type_spec
from intdash.core.config import Settings
from intdash.core.models import Credential, Integration, SyncRun
from intdash.core.plans import TIERS, Tier
from intdash.core.schedule import BUSY_RETRY, poll_interval, slot_after
from intdash.core.services.credentials import OAUTH_TOKEN
from intdash.core.workspace import Workspace
from intdash.providers.http import httpx
from intdash.sandbox.server import Sandbox
from intdash.sync.scheduler import LEASE, Role, SyncScheduler
from tests.conftest import FakeClock, run_intdash
from tests.providers import (
    connect,
    free_port,
    pws,
    redirect_uri,
    sandbox,
    sandbox_env,
    start_intdash,
)
from tests.waiting import wait_for, wait_for_async

__all__ = ["pws", "redirect_uri", "sandbox", "sandbox_env"]  # fixtures


def _bulk_integrations(
    ws: Workspace, count: int, *, last_attempt: datetime | None = None, type_: str = "xero"
) -> list[str]:
    """Authorised integrations, written in bulk (as a big workspace would hold them)."""
    now = ws.clock()
    uids = [f"{type_}-b{n:06d}" for n in range(count)]
    with ws.db.write() as session:
        conn = session.connection()
        conn.execute(
            insert(Integration.__table__),  # type: ignore[attr-defined]
            [
                {
                    "uid": uid,
                    "type": type_,
                    "name": f"Bulk {n}",
                    "created_at": now,
                    "settings": {},
                    "sync_enabled": True,
                    "last_attempted_sync": last_attempt,
                }
                for n, uid in enumerate(uids)
            ],
        )
        ids = session.exec(select(Integration.id).where(col(Integration.uid).in_(uids))).all()
        token = '{"access_token": "a", "refresh_token": "r", "expires_at": 9999999999}'
        conn.execute(
            insert(Credential.__table__),  # type: ignore[attr-defined]
            [
                {
                    "integration_id": i,
                    "name": OAUTH_TOKEN,
                    "version": 1,
                    "updated_at": now,
                    "ciphertext": ws.vault.encrypt(token, f"credential:{i}:{OAUTH_TOKEN}"),
                }
                for i in ids
            ],
        )
    return uids


def _stored(ws: Workspace, uid: str) -> datetime | None:
    with ws.db.read() as session:
        return ws.integrations.find(session, uid).next_sync_at


def test_ten_thousand_next_syncs_spread_over_their_interval(ws: Workspace) -> None:
    now = ws.clock()
    _bulk_integrations(ws, 10_000, last_attempt=now)
    assert ws.schedule.claim_due(100) == []  # each was attempted just now: none is due
    with ws.db.read() as session:
        stored = session.exec(select(Integration.next_sync_at)).all()
    assert len(stored) == 10_000 and None not in stored
    offsets = [(at - now).total_seconds() for at in stored if at is not None]
    assert min(offsets) > 0 and max(offsets) <= 3600  # Starter: within the hour
    tenths = Counter(int(o // 360) for o in offsets)  # ten six-minute slices of the hour
    assert all(850 <= tenths[k] <= 1150 for k in range(10)), tenths
    busiest_second = Counter(int(o) for o in offsets).most_common(1)[0][1]
    assert busiest_second <= 12


def test_next_sync_follows_from_stored_facts_the_same_in_every_process(
    ws: Workspace, settings: Settings, clock: FakeClock
) -> None:
    last = clock() - timedelta(minutes=10)
    [uid] = _bulk_integrations(ws, 1, last_attempt=last)
    expected = slot_after(uid, timedelta(hours=1), last)
    other = Workspace.open(settings, clock=clock, actor="another process")
    try:
        assert ws.integrations.get(uid).next_sync.at == expected  # derived before it is stored
        assert other.integrations.get(uid).next_sync.at == expected
        ws.schedule.claim_due(10)  # a worker stores it (claiming it if it is due)
        assert _stored(ws, uid) == (
            expected if expected > clock() else slot_after(uid, timedelta(hours=1), clock())
        )
        assert other.integrations.get(uid).next_sync == ws.integrations.get(uid).next_sync
        shown = ws.integrations.get(uid).to_json()
        assert shown["next_sync"] == _stored(ws, uid).isoformat()  # type: ignore[union-attr]
        assert shown["next_sync_reason"] is None
    finally:
        other.close()


def test_a_slot_missed_while_nothing_ran_runs_once(ws: Workspace, clock: FakeClock) -> None:
    [uid] = _bulk_integrations(ws, 1, last_attempt=clock() - timedelta(hours=5))
    assert [c.uid for c in ws.schedule.claim_due(10)] == [uid]  # five slots missed: one run
    assert ws.schedule.claim_due(10) == []
    assert _stored(ws, uid) == slot_after(uid, timedelta(hours=1), clock())
    clock.now = slot_after(uid, timedelta(hours=1), clock())
    assert [c.uid for c in ws.schedule.claim_due(10)] == [uid]  # its next slot comes


def test_only_what_may_sync_is_claimed_and_why_not_is_said(ws: Workspace, clock: FakeClock) -> None:
    uid = ws.integrations.create("xero").integration.uid
    assert ws.schedule.claim_due(10) == []  # not authorised: nothing to sync
    view = ws.integrations.get(uid)
    assert (view.next_sync.at, view.next_sync.reason) == (None, "needs authorisation")
    with ws.db.write() as session:
        row = ws.integrations.find(session, uid)
        assert row.id is not None
        ws.credentials.put(session, row.id, OAUTH_TOKEN, '{"access_token":"a","expires_at":1}')
    assert [c.uid for c in ws.schedule.claim_due(10)] == [uid]  # never synced: due at once
    assert ws.schedule.claim_due(10) == []  # claimed: its next slot is an hour away at most
    ws.integrations.set_sync_enabled(uid, False)
    clock.advance(hours=2)
    assert ws.schedule.claim_due(10) == []
    assert ws.integrations.get(uid).to_json()["next_sync_reason"] == "sync disabled"
    ws.integrations.set_sync_enabled(uid, True)  # derived again from its last attempt: due
    assert [c.uid for c in ws.schedule.claim_due(10)] == [uid]
    with ws.db.write() as session:
        row = ws.integrations.find(session, uid)
        row.auth_error = "invalid_grant"
        session.add(row)
    clock.advance(hours=2)
    assert ws.schedule.claim_due(10) == []
    assert ws.integrations.get(uid).next_sync.reason == "reconnect needed: invalid_grant"
    custom = ws.integrations.create("custom", name="ERP").integration.uid
    assert ws.integrations.get(custom).to_json()["next_sync_reason"] == (
        "it does not sync: its invoices are pushed to intdash's API"
    )
    ws.integrations.remove(uid)
    assert ws.schedule.claim_due(10) == []


def test_a_plan_change_moves_every_next_sync(ws: Workspace, clock: FakeClock) -> None:
    [xero] = _bulk_integrations(ws, 1, last_attempt=clock())
    [myob] = _bulk_integrations(ws, 1, last_attempt=clock(), type_="myob")
    ws.schedule.claim_due(10)
    assert _stored(ws, xero) == slot_after(xero, timedelta(hours=1), clock())
    ws.plans.set("scale")
    # Xero is polled no more than every 5 minutes (its Starter app tier allows 1,000 calls a
    # day); MYOB's limits bear every minute
    assert _stored(ws, xero) == slot_after(xero, timedelta(minutes=5), clock())
    assert _stored(ws, myob) == slot_after(myob, timedelta(minutes=1), clock())


def test_the_poll_interval_by_plan_platform_and_events() -> None:
    xero, myob, zoho = (type_spec(t) for t in ("xero", "myob", "zoho"))
    minutes = {
        (tier, spec.type.value, events): poll_interval(TIERS[tier], spec, events=events)
        // timedelta(minutes=1)
        for tier in Tier
        for spec in (xero, myob, zoho)
        for events in (False, True)
    }
    assert minutes[(Tier.SCALE, "xero", True)] == 30  # events sync; polling is the backstop
    assert minutes[(Tier.SCALE, "xero", False)] == 5
    assert minutes[(Tier.GROWTH, "xero", True)] == 5  # events wait for the slot
    assert minutes[(Tier.STARTER, "xero", True)] == 60
    assert minutes[(Tier.SCALE, "myob", True)] == 1  # MYOB sends no events
    assert minutes[(Tier.SCALE, "zoho", False)] == 3  # 480 calls a day


def test_the_next_slot_is_fixed_by_uid_and_interval() -> None:
    hour = timedelta(hours=1)
    moment = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    slot = slot_after("xero-abc123", hour, moment)
    assert moment < slot <= moment + hour
    assert slot_after("xero-abc123", hour, slot - timedelta(microseconds=1)) == slot
    assert slot_after("xero-abc123", hour, slot) == slot + hour  # strictly after
    assert slot_after("xero-abc123", hour, moment - timedelta(days=400)).time() == slot.time()


async def test_a_due_sync_is_claimed_and_run_by_a_worker(pws: Workspace) -> None:
    pws.plans.set("scale")
    uid = pws.integrations.create("zoho").integration.uid
    await connect(pws, uid)  # a consent makes its first sync due at once
    scheduler = SyncScheduler(pws, holder="runner")
    await scheduler.start()
    try:

        def finished() -> list[SyncRun]:
            with pws.db.read() as session:
                return list(session.exec(select(SyncRun).where(SyncRun.outcome == "ok")))

        run = (await wait_for_async(finished, every=0.1))[0]
        assert (run.trigger, run.fetched) == ("schedule", 2500)
        assert run.started_at is not None
        next_at = _stored(pws, uid)
        assert next_at == slot_after(uid, timedelta(minutes=3), run.started_at)
    finally:
        await scheduler.stop()


async def test_workers_bound_how_many_syncs_run_at_once(pws: Workspace, sandbox: Sandbox) -> None:
    pws.plans.set("scale")
    uids = [pws.integrations.create("xero").integration.uid for _ in range(3)]
    for uid in uids:
        await connect(pws, uid)
    sandbox.xero.faults.hold(after=0)  # every listing waits at the gate
    scheduler = SyncScheduler(pws, holder="runner", workers=2)
    await scheduler.start()
    try:
        await wait_for_async(lambda: len(scheduler.running) == 2, every=0.05)
        await scheduler.tick()
        assert len(scheduler.running) == 2  # the third waits for a free worker
        sandbox.xero.faults.release()

        def done() -> int:
            with pws.db.read() as session:
                ok = session.exec(select(SyncRun).where(SyncRun.outcome == "ok")).all()
            return len({run.integration_id for run in ok})

        await wait_for_async(lambda: done() == 3, every=0.1)
    finally:
        sandbox.xero.faults.release()
        await scheduler.stop()


async def test_a_sync_already_running_elsewhere_is_looked_at_again_soon(
    pws: Workspace,
) -> None:
    from intdash.sync.engine import SYNC_LOCKS, claim_name

    uid = pws.integrations.create("zoho").integration.uid
    await connect(pws, uid)
    with pws.db.read() as session:
        integration_id = pws.integrations.find(session, uid).id
    assert integration_id is not None
    # a live run on another machine holds the claim
    pws.leases.acquire(
        claim_name(integration_id), "elsewhere:4242:1:x:engine", timedelta(minutes=2)
    )
    lock = pws.leases.session_lock(SYNC_LOCKS, integration_id)  # PostgreSQL: its session too
    if lock is not None:
        assert lock.try_acquire()
    scheduler = SyncScheduler(pws, holder="runner")
    await scheduler.start(paused=True)
    try:
        before = pws.clock()
        await scheduler.tick()
        await wait_for_async(lambda: not scheduler.running, every=0.05)
        stored = _stored(pws, uid)
        assert stored is not None
        assert before + BUSY_RETRY <= stored <= pws.clock() + BUSY_RETRY
    finally:
        await scheduler.stop()
        if lock is not None:
            lock.release()


def _holder(scheduler: SyncScheduler) -> str | None:
    info = scheduler.holder_info()
    return info.holder if info else None


async def test_one_process_leads_and_another_takes_over(ws: Workspace, clock: FakeClock) -> None:
    first = SyncScheduler(ws, holder="a", lease_ttl=timedelta(seconds=1))
    second = SyncScheduler(ws, holder="b", lease_ttl=timedelta(seconds=1))
    await first.start(paused=True)
    await second.start(paused=True)
    try:
        await first.tick()
        await second.tick()
        assert (first.leading, second.leading) == (True, False)
        assert (first.dispatching, second.dispatching) == (True, True)  # both are workers
        assert _holder(first) == "a"
        # the first process dies without a word: its lease lapses, the second takes over
        # (the flags compared as tuples: an `assert` on one flag would let mypy take the rest
        # of the test for unreachable)
        clock.advance(seconds=0.5)
        await second.tick()
        assert (first.leading, second.leading) == (True, False)
        clock.advance(seconds=1)
        await second.tick()
        assert (first.leading, second.leading) == (True, True)  # the first has not looked yet
        assert _holder(second) == "b"
        await first.tick()
        assert (first.leading, second.leading) == (False, True)
    finally:
        await first.stop()
        await second.stop()
    assert ws.leases.current(LEASE) is None  # released on stop


async def test_a_dashboard_leaves_syncs_to_a_serve(ws: Workspace) -> None:
    dashboard = SyncScheduler(ws, holder="d", role=Role.DASHBOARD)
    serve = SyncScheduler(ws, holder="s", role=Role.SERVE)
    await dashboard.start(paused=True)
    await serve.start(paused=True)
    try:
        await dashboard.tick()
        assert (dashboard.dispatching, dashboard.leading) == (True, True)  # nobody else
        await serve.tick()
        await dashboard.tick()
        assert (dashboard.dispatching, dashboard.leading) == (False, False)
        await serve.tick()
        assert (serve.dispatching, serve.leading) == (True, True)
        await serve.stop()
        await dashboard.tick()
        assert (dashboard.dispatching, dashboard.leading) == (True, True)
    finally:
        await dashboard.stop()
        await serve.stop()


def _shown_next(env: dict[str, str], uid: str) -> str:
    shown = run_intdash("integrations", "show", uid, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    value = json.loads(shown.stdout)["next_sync"]
    assert isinstance(value, str)
    return value


def test_next_sync_is_unchanged_across_restarts_of_serve(
    env: dict[str, str], settings: Settings
) -> None:
    real = Workspace.open(settings, actor="tester")  # the real clock, as the processes use
    try:
        now = real.clock()
        [uid] = _bulk_integrations(real, 1, last_attempt=now)
        hour = timedelta(hours=1)
        if slot_after(uid, hour, now) - now < timedelta(minutes=5):  # not due while we look
            with real.db.write() as session:
                row = real.integrations.find(session, uid)
                row.last_attempted_sync = slot_after(uid, hour, now)
                session.add(row)
    finally:
        real.close()
    before = _shown_next(env, uid)
    port = free_port()
    for _ in range(3):
        proc = start_intdash("serve", env={**env, "INTDASH_SERVER__PORT": str(port)})
        try:
            wait_for(lambda: _serving(port), message="serve did not start", every=0.1)
            wait_for(  # it has looked at what is due: the next sync is stored
                lambda: _stored_in(settings, uid) is not None,
                message="serve stored no next sync",
                every=0.1,
            )
            assert _shown_next(env, uid) == before
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert _shown_next(env, uid) == before
        with Workspace.open(settings, actor="tester") as look, look.db.read() as session:
            runs = session.exec(select(SyncRun)).all()
        assert runs == []  # nothing was due: nothing ran


def _serving(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/v1/health").status_code == 200
    except httpx.TransportError:
        return False


def _stored_in(settings: Settings, uid: str) -> datetime | None:
    with Workspace.open(settings, actor="tester") as look:
        return _stored(look, uid)


def test_serve_answers_health_and_stops_cleanly_on_sigterm(
    env: dict[str, str], ws: Workspace
) -> None:
    port = free_port()
    proc = start_intdash("serve", env={**env, "INTDASH_SERVER__PORT": str(port)})
    try:

        def leading() -> httpx.Response | None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health")
            except httpx.TransportError:
                return None
            return health if health.json()["scheduler"]["here"] else None

        health = wait_for(
            leading, message=lambda: proc.stderr.read() if proc.stderr else "", every=0.1
        )
        assert health.json()["status"] == "ok"
        assert ws.leases.current(LEASE) is not None

        # it serves the ingest API, and delivers what is fiscalized to webhooks
        from tests.test_webhooks import Receiver

        receiver = Receiver()
        try:
            ws.plans.set("scale")
            uid = ws.integrations.create("custom", name="ERP").integration.uid
            key = ws.keys.create(uid, "production").key
            ws.integrations.create("webhook", name="Archive", values={"url": receiver.url})
            pushed = httpx.post(
                f"http://127.0.0.1:{port}/v1/invoices",
                json={"external_id": "E-1", "currency": "NZD", "total": "10.00"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert pushed.status_code == 201, pushed.text
            # the leader delivers every few seconds
            wait_for(lambda: receiver.got, message="nothing delivered", every=0.1)
            assert receiver.got[0].event["data"]["invoice"]["external_id"] == "E-1"
        finally:
            receiver.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(entry["msg"] == "stopped" for entry in lines)
    assert ws.leases.current(LEASE) is None


def test_serve_reports_a_taken_port(env: dict[str, str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start_intdash("serve", env={**env, "INTDASH_SERVER__PORT": str(port)})
        _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "could not serve on 127.0.0.1" in err


async def test_a_sync_left_running_by_a_stopped_process_is_taken_up_at_once(
    pws: Workspace,
) -> None:
    from intdash.sync.engine import SyncEngine

    uid = pws.integrations.create("zoho").integration.uid
    await connect(pws, uid)
    await SyncEngine(pws).run(uid)  # synced: its next sync is a slot away
    with pws.db.write() as session:
        integration_id = pws.integrations.find(session, uid).id
        assert integration_id is not None
        # a process that died mid-run: its run row says running, its claim died with it
        session.add(
            SyncRun(integration_id=integration_id, trigger="schedule", started_at=pws.clock())
        )
    upcoming = _stored(pws, uid)
    assert upcoming is not None and upcoming > pws.clock()
    scheduler = SyncScheduler(pws, holder="runner")
    await scheduler.start(paused=True)
    try:
        await scheduler.tick()

        def outcomes() -> list[str] | None:
            with pws.db.read() as session:
                runs = session.exec(select(SyncRun).order_by(col(SyncRun.id))).all()
            found = [run.outcome for run in runs]
            return found if "running" not in found else None

        assert await wait_for_async(outcomes, every=0.05) == ["ok", "interrupted", "ok"]
    finally:
        await scheduler.stop()
