"""The in-process scheduler and ``intdash serve``."""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert
from sqlmodel import select

from intdash.core.models import Credential, Integration, SyncRun
from intdash.core.services.credentials import OAUTH_TOKEN
from intdash.core.workspace import Workspace
from intdash.providers.http import httpx
from intdash.sync.scheduler import LEASE, SyncScheduler, spread_offset
from tests.conftest import FakeClock
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


@pytest.fixture
async def scheduler(ws: Workspace) -> AsyncIterator[SyncScheduler]:
    made = SyncScheduler(ws, holder="test-a", lease_ttl=timedelta(seconds=30))
    await made.start(paused=True)
    yield made
    await made.stop()


def _bulk_integrations(ws: Workspace, count: int) -> None:
    """Authorised Xero integrations, written in bulk (as a big workspace would hold them)."""
    now = ws.clock()
    with ws.db.write() as session:
        conn = session.connection()
        conn.execute(
            insert(Integration.__table__),  # type: ignore[attr-defined]
            [
                {
                    "uid": f"xero-b{n:06d}",
                    "type": "xero",
                    "name": f"Bulk {n}",
                    "created_at": now,
                    "settings": {},
                    "sync_enabled": True,
                }
                for n in range(count)
            ],
        )
        ids = session.exec(select(Integration.id)).all()
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


async def test_ten_thousand_integrations_spread_over_their_interval(
    ws: Workspace, scheduler: SyncScheduler
) -> None:
    _bulk_integrations(ws, 10_000)
    started = datetime.now(UTC)
    await scheduler.tick()
    assert scheduler.leading
    jobs = scheduler.jobs()
    assert len(jobs) == 10_000
    interval = timedelta(minutes=60)  # Starter
    offsets = [(when - started).total_seconds() for when in jobs.values()]
    assert min(offsets) >= -1 and max(offsets) <= interval.total_seconds() + 1
    tenths = Counter(int(o // 360) for o in offsets)  # ten six-minute slices of the hour
    assert all(850 <= tenths[k] <= 1150 for k in range(10)), tenths
    busiest_second = Counter(int(o) for o in offsets).most_common(1)[0][1]
    assert busiest_second <= 12
    assert spread_offset("xero-b000001", interval) == spread_offset("xero-b000001", interval)


def _holder(scheduler: SyncScheduler) -> str | None:
    info = scheduler.holder_info()
    return info.holder if info else None


async def test_only_one_process_schedules_and_another_takes_over(
    ws: Workspace, clock: FakeClock
) -> None:
    first = SyncScheduler(ws, holder="a", lease_ttl=timedelta(seconds=1))
    second = SyncScheduler(ws, holder="b", lease_ttl=timedelta(seconds=1))
    await first.start(paused=True)
    await second.start(paused=True)
    try:
        await first.tick()
        await second.tick()
        assert (first.leading, second.leading) == (True, False)
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


async def test_jobs_follow_every_change(ws: Workspace, scheduler: SyncScheduler) -> None:
    uid = ws.integrations.create("xero").integration.uid
    await scheduler.tick()
    assert scheduler.jobs() == {}  # not authorised: nothing to sync
    with ws.db.write() as session:
        row = ws.integrations.find(session, uid)
        assert row.id is not None
        ws.credentials.put(session, row.id, OAUTH_TOKEN, '{"access_token":"a","expires_at":1}')
        ws.audit.record(session, "integration.connected", uid)
    await scheduler.tick()
    assert list(scheduler.jobs()) == [uid]
    ws.integrations.set_sync_enabled(uid, False)
    await scheduler.tick()
    assert scheduler.jobs() == {}
    ws.integrations.set_sync_enabled(uid, True)
    ws.plans.set("growth")
    await scheduler.tick()
    job = scheduler._scheduler.get_job(f"sync:{uid}")  # type: ignore[union-attr]
    assert job.trigger.interval == timedelta(minutes=5)
    ws.integrations.remove(uid)
    await scheduler.tick()
    assert scheduler.jobs() == {}


async def test_a_scheduled_job_runs_the_sync(pws: Workspace) -> None:
    pws.plans.set("scale")
    uid = pws.integrations.create("zoho").integration.uid
    await connect(pws, uid)
    scheduler = SyncScheduler(pws, holder="runner")
    await scheduler.start()
    try:
        await scheduler.tick()
        scheduler._scheduler.modify_job(f"sync:{uid}", next_run_time=datetime.now(UTC))  # type: ignore[union-attr]

        def finished() -> list[SyncRun]:
            with pws.db.read() as session:
                return list(session.exec(select(SyncRun).where(SyncRun.outcome == "ok")))

        run = (await wait_for_async(finished, every=0.1))[0]
        assert (run.trigger, run.fetched) == ("schedule", 2500)
        assert scheduler.next_run(uid) is not None
    finally:
        await scheduler.stop()


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
