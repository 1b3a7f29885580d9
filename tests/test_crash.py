"""Crash recovery at once: a claim whose holder is dead is taken over at the next sync (by the
process's id and start time on one host, by a session advisory lock on PostgreSQL), the dead
run is recorded as interrupted, and no message names a dead process as running."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import NullPool, create_engine, text, update
from sqlmodel import func, select

from intdash.core import liveness
from intdash.core.liveness import (
    ProcessId,
    holder_dead,
    hostname,
    parse_holder,
    process_alive,
    process_identity,
    start_time,
)
from intdash.core.models import Integration, Invoice, RunOutcome, SyncRun
from intdash.core.services.leases import SessionLock, advisory_keys
from intdash.core.workspace import Workspace
from intdash.sandbox.server import Sandbox
from intdash.sync.engine import SYNC_LOCKS, AlreadyRunning, SyncEngine, claim_name
from intdash.sync.steps import Begun
from intdash.tui.app import IntdashApp
from intdash.tui.screens.details import DetailsScreen
from intdash.tui.screens.details_history import RunHistory
from tests.conftest import ON_POSTGRES, FakeClock, run_intdash
from tests.providers import (
    connect,
    free_port,
    pws,
    redirect_uri,
    sandbox,
    sandbox_env,
    start_intdash,
)
from tests.waiting import until, wait_for

__all__ = ["pws", "redirect_uri", "sandbox", "sandbox_env"]  # fixtures

TTL = timedelta(seconds=120)


@pytest.fixture(autouse=True)
def pages_of_a_hundred(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Xero pages of 100, so that 2,500 invoices make 25 pages (here and in the processes these
    tests start), and a run can be stopped between them."""
    monkeypatch.setenv("INTDASH_XERO__PAGE_SIZE", "100")
    env["INTDASH_XERO__PAGE_SIZE"] = "100"


# -- a process's liveness, and leases ---------------------------------------------------------


def _me() -> ProcessId:
    found = parse_holder(process_identity())
    assert found is not None and found.started is not None
    return found


def _holder(host: str, pid: int, started: int | None) -> str:
    return f"{host}:{pid}:{'-' if started is None else started}:abcdef:engine"


def test_a_holder_is_read_as_host_pid_and_start_time() -> None:
    me = _me()
    assert (me.host, me.pid, me.started) == (hostname(), os.getpid(), start_time(os.getpid()))
    assert parse_holder(f"{process_identity()}:scheduler") == me
    assert str(me) == f"{hostname()}:{os.getpid()}"
    assert parse_holder("vm:42:-:0a1b2c:engine") == ProcessId("vm", 42, None)
    assert parse_holder("host-a:4242:abc") == ProcessId("host-a", 4242, None)  # older intdash
    for task in ("cancel", "a", "test-a", "runner"):  # a task's own name names no process
        assert parse_holder(task) is None and not holder_dead(task)


def test_a_process_is_alive_while_its_pid_runs_with_its_start_time() -> None:
    me = _me()
    assert me.started is not None
    assert process_alive(me.pid, me.started) and process_alive(me.pid)
    assert not process_alive(me.pid, me.started + 1)  # the pid, given to a later process
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    started = start_time(child.pid)
    assert started is not None and process_alive(child.pid, started)
    child.kill()
    wait_for(lambda: not process_alive(child.pid, started))  # a zombie is dead already
    child.wait()
    assert not process_alive(child.pid, started) and not process_alive(child.pid)
    assert not holder_dead(_holder(f"not-{hostname()}", child.pid, started))  # can't tell


def test_without_proc_only_the_pid_is_asked_and_cannot_tell_is_alive(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    me = _me()
    assert me.started is not None
    monkeypatch.setattr(liveness, "PROC", tmp_path / "no-proc")
    assert start_time(me.pid) is None
    assert process_alive(me.pid, me.started + 1)  # a reused pid cannot be told: alive
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not process_alive(child.pid)
    assert process_alive(1)  # init: another user's (or ours): alive either way
    assert process_identity().split(":")[2] == "-"


def test_a_dead_holder_here_is_taken_over_at_once_one_elsewhere_when_its_lease_lapses(
    ws: Workspace, clock: FakeClock
) -> None:
    me = _me()
    assert me.started is not None
    leases, name = ws.leases, "sync:1"
    mine = f"{process_identity()}:engine"

    # this host, this pid, another start time: the pid was given to a later process
    reused = _holder(hostname(), me.pid, me.started - 1)
    assert leases.acquire(name, reused, TTL)
    assert leases.current(name) is None  # a dead process's lease is nobody's
    claim = leases.claim(name, mine, TTL)
    assert claim.granted and claim.over_dead
    assert claim.other is not None and claim.other.holder == reused
    now = leases.current(name)
    assert now is not None and now.holder == mine
    leases.release(name, mine)

    # another host: nothing can be told of it, so its lease is waited out
    elsewhere = _holder(f"not-{hostname()}", me.pid, me.started)
    assert leases.acquire(name, elsewhere, TTL)
    refused = leases.claim(name, mine, TTL)
    assert not refused.granted and refused.other is not None
    assert refused.other.who == f"not-{hostname()}:{me.pid}"
    assert leases.current(name) is not None
    clock.advance(seconds=119)
    assert not leases.acquire(name, mine, TTL)
    clock.advance(seconds=2)
    lapsed = leases.claim(name, mine, TTL)
    assert lapsed.granted and not lapsed.over_dead and lapsed.other is not None
    leases.release(name, mine)

    # a live process of this host keeps its lease, whoever asks
    assert leases.acquire(name, f"{process_identity()}:scheduler", TTL)
    assert not leases.acquire(name, mine, TTL)


def test_the_scheduler_and_token_leases_of_a_dead_process_are_taken_over(ws: Workspace) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    started = start_time(child.pid)
    assert started is not None
    for name in ("scheduler", "token-refresh:1"):
        assert ws.leases.acquire(name, _holder(hostname(), child.pid, started), TTL)
        assert not ws.leases.acquire(name, f"{process_identity()}:x", TTL)  # alive
    child.kill()
    child.wait()
    for name in ("scheduler", "token-refresh:1"):
        assert ws.leases.current(name) is None
        assert ws.leases.acquire(name, f"{process_identity()}:x", TTL)


# -- syncs, and the processes that run them ---------------------------------------------------


def _count(ws: Workspace) -> tuple[int, int]:
    with ws.db.read() as session:
        total = session.exec(select(func.count()).select_from(Invoice)).one()
        distinct = session.exec(select(func.count(func.distinct(Invoice.external_id)))).one()
    return total, distinct


def _runs(ws: Workspace) -> list[SyncRun]:
    with ws.db.read() as session:
        return list(session.exec(select(SyncRun).order_by(SyncRun.id)))  # type: ignore[arg-type]


async def _connected(ws: Workspace) -> tuple[str, int]:
    ws.plans.set("scale")  # room for every invoice: nothing held
    uid = ws.integrations.create("xero").integration.uid
    await connect(ws, uid)
    with ws.db.read() as session:
        row_id = ws.integrations.find(session, uid).id
    assert row_id is not None
    return uid, row_id


def _exactly_the_emulators(ws: Workspace, sandbox: Sandbox) -> None:
    assert _count(ws) == (2500, 2500)
    with ws.db.read() as session:
        stored = set(session.exec(select(Invoice.external_id)))
    assert stored == {sandbox.xero.dataset.invoice(i).id for i in range(2500)}
    assert ws.invoices.verify().ok


def _mid_sync(ws: Workspace, sandbox: Sandbox, proc: subprocess.Popen[str]) -> None:
    """Wait until ``proc`` syncs: pages committed, and the next held at the sandbox's gate."""
    wait_for(
        lambda: proc.poll() is None and sandbox.xero.faults.holding and _count(ws)[0] >= 200,
        timeout=60,
        message=lambda: f"not mid-sync: {_count(ws)}, exit {proc.poll()}",
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)


def _synced_at_once(ws: Workspace, sandbox: Sandbox, env: dict[str, str], uid: str) -> None:
    """A new ``intdash sync`` at once (no lease lapsing first) leaves exactly the emulator's
    invoices, and records the killed process's run as interrupted."""
    partial, _ = _count(ws)
    assert 0 < partial < 2500
    done = run_intdash("sync", uid, "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert "already syncing" not in done.stderr
    _exactly_the_emulators(ws, sandbox)
    runs = _runs(ws)
    assert [r.outcome for r in runs] == [RunOutcome.INTERRUPTED, RunOutcome.OK]
    dead = runs[0]
    assert dead.error is not None and dead.error.startswith("its process (")
    assert dead.error.endswith(") stopped mid-run")
    assert dead.ended_at is not None and dead.fetched >= 200  # the pages it committed
    assert runs[1].fetched == 2500 - partial  # resumed from the last committed page


async def test_sigkill_of_sync_mid_run_then_a_new_sync_at_once(
    pws: Workspace, sandbox: Sandbox, sandbox_env: dict[str, str]
) -> None:
    uid, _ = await _connected(pws)
    sandbox.xero.faults.hold(after=3)  # three pages, then the sync waits at the gate
    proc = start_intdash("sync", uid, env=sandbox_env)
    _mid_sync(pws, sandbox, proc)
    _kill(proc)
    sandbox.xero.faults.release()
    _synced_at_once(pws, sandbox, sandbox_env, uid)
    dead = _runs(pws)[0]
    assert dead.error == f"its process ({hostname()}:{proc.pid}) stopped mid-run"
    # the dashboard's run history shows it so, newest first
    app = IntdashApp(pws, schedule=False, poll_seconds=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.screen.query("#integrations"))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.view)
        history = app.screen.query_one("#runs", RunHistory)
        await until(pilot, lambda: history.row_count == 2)
        cells = [str(cell) for cell in history.get_row_at(1)]
        assert cells[2:] == ["interrupted", f"{dead.fetched:,} / {dead.created:,} / 0 / 0",
                             f"its process ({hostname()}:{proc.pid}) stopped mid-run"]  # fmt: skip
        assert str(history.get_row_at(0)[2]) == "ok"


async def test_cancel_says_plainly_when_nothing_runs(
    pws: Workspace, sandbox: Sandbox, sandbox_env: dict[str, str]
) -> None:
    uid, _ = await _connected(pws)
    never = run_intdash("sync", uid, "--cancel", env=sandbox_env)
    assert (never.returncode, never.stdout) == (1, "")
    assert never.stderr == f"intdash: {uid} is not syncing now\n"
    sandbox.xero.faults.hold(after=3)
    proc = start_intdash("sync", uid, env=sandbox_env)
    _mid_sync(pws, sandbox, proc)
    asked = run_intdash("sync", uid, "--cancel", env=sandbox_env)  # a live run is asked
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.startswith(f"Asked the running sync of {uid} to stop")
    _kill(proc)
    sandbox.xero.faults.release()
    after = run_intdash("sync", uid, "--cancel", env=sandbox_env)
    assert (after.returncode, after.stdout) == (1, "")
    assert after.stderr == f"intdash: {uid} is not syncing now\n"
    assert SyncEngine(pws).running(_runs(pws)[0].integration_id) is False


async def test_a_run_whose_claim_was_taken_over_stops_and_stores_nothing_more(
    pws: Workspace, sandbox: Sandbox
) -> None:
    uid, row_id = await _connected(pws)
    sandbox.xero.faults.hold(after=1)  # the first page, then the run waits at the gate
    run = asyncio.create_task(SyncEngine(pws).run(uid))
    await asyncio.to_thread(wait_for, lambda: sandbox.xero.faults.holding and _count(pws)[0])
    stored, _ = _count(pws)
    # another host took the claim over (its lease had lapsed, or this run's session ended)
    other = _holder("elsewhere.example", 4242, 1)
    assert pws.leases.claim(claim_name(row_id), other, TTL, others_dead=True).granted
    sandbox.xero.faults.release()
    result = await asyncio.wait_for(run, 60)
    assert result.outcome is RunOutcome.CANCELLED
    assert result.error == "stopped: another run (in elsewhere.example:4242) took its claim over"
    assert _count(pws)[0] == stored  # the page it was storing was not stored
    lease = pws.leases.current(claim_name(row_id))
    assert lease is not None and lease.holder == other  # not released by the stopped run
    assert pws.integrations.get(uid).last_sync_error is None  # not a failure of the integration


async def test_a_run_cancelled_while_it_claims_gives_the_claim_back(
    pws: Workspace, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid, row_id = await _connected(pws)
    engine = SyncEngine(pws)
    claimed, go_on = threading.Event(), threading.Event()
    begin = engine._begin

    def held_up(*args: Any) -> Begun:  # claimed, and not yet returned
        begun = begin(*args)
        claimed.set()
        go_on.wait(30)
        return begun

    monkeypatch.setattr(engine, "_begin", held_up)
    run = asyncio.create_task(engine.run(uid))
    assert await asyncio.to_thread(claimed.wait, 30)
    assert pws.leases.current(claim_name(row_id)) is not None
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    go_on.set()
    await asyncio.to_thread(wait_for, lambda: pws.leases.stored(claim_name(row_id)) is None)
    await asyncio.to_thread(wait_for, lambda: [r.outcome for r in _runs(pws)] == ["cancelled"])
    assert _runs(pws)[0].error == "stopped"
    lock = pws.leases.session_lock(SYNC_LOCKS, row_id)
    assert lock is None or not lock.held_elsewhere()
    assert (await SyncEngine(pws).run(uid)).outcome is RunOutcome.OK


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL (INTDASH_TEST_DATABASE_URL)")
async def test_on_postgres_a_claim_dies_with_its_holders_connection(
    pws: Workspace, sandbox: Sandbox, sandbox_env: dict[str, str]
) -> None:
    uid, row_id = await _connected(pws)
    # a holder on another host: its process cannot be asked, only its session
    other = _holder("elsewhere.example", 4242, 1)
    engine = create_engine(pws.db.url, poolclass=NullPool)
    held = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    a, b = advisory_keys(held, SYNC_LOCKS, row_id)
    assert held.execute(text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": a, "b": b}).scalar()
    assert pws.leases.acquire(claim_name(row_id), other, TTL)
    with pws.db.write() as session:
        session.add(SyncRun(integration_id=row_id, trigger="schedule", started_at=pws.clock()))
    try:
        with pytest.raises(AlreadyRunning, match=r"already syncing \(in elsewhere\.example:4242\)"):
            await SyncEngine(pws).run(uid)
        asked = run_intdash("sync", uid, "--cancel", env=sandbox_env)
        assert asked.returncode == 0, asked.stderr
        pws.leases.release(f"sync-cancel:{row_id}", "cancel")
    finally:
        held.close()  # the holder's connection ends, as it does when its process dies
        engine.dispose()
    lock = SessionLock(pws.db.engine, SYNC_LOCKS, row_id)
    wait_for(lambda: not lock.held_elsewhere(), message="the server kept the closed session")
    nothing = run_intdash("sync", uid, "--cancel", env=sandbox_env)
    assert (nothing.returncode, nothing.stderr) == (1, f"intdash: {uid} is not syncing now\n")
    result = await SyncEngine(pws).run(uid)  # at once: the lease is two minutes from lapsing
    assert result.outcome is RunOutcome.OK and result.fetched == 2500
    runs = _runs(pws)
    assert [r.outcome for r in runs] == [RunOutcome.INTERRUPTED, RunOutcome.OK]
    assert runs[0].error == "its process (elsewhere.example:4242) stopped mid-run"
    assert not lock.held_elsewhere()  # the run gave its lock back
    assert pws.leases.current(claim_name(row_id)) is None


# -- serve and the dashboard, killed mid-sync -------------------------------------------------


def _due(ws: Workspace, uid: str) -> None:
    """The integration's next sync is past: a scheduling process claims it at once."""
    with ws.db.write() as session:
        session.execute(
            update(Integration)
            .where(Integration.uid == uid)  # type: ignore[arg-type]
            .values(next_sync_at=ws.clock() - timedelta(minutes=5))
        )


@pytest.fixture
def dashboard_env(sandbox_env: dict[str, str]) -> dict[str, str]:
    return {**sandbox_env, "INTDASH_SERVER__PORT": str(free_port()), "TERM": "xterm-256color"}


@contextlib.contextmanager
def _dashboard(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """Bare ``intdash`` in a terminal of 120x40 (a pty), its screen read and dropped."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    base = {k: v for k, v in os.environ.items() if not k.startswith("INTDASH_")}
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("intdash"))],
        env={**base, **env},
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
        text=True,
    )
    os.close(follower)

    def drain() -> None:
        try:
            while os.read(leader, 65536):
                pass
        except OSError:
            pass

    threading.Thread(target=drain, daemon=True).start()
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)


# These two need the dispatcher (SyncScheduler.dispatch claiming due integrations through
# ws.schedule.claim_due): serve and the dashboard start a due integration's sync at once.


async def test_sigkill_of_serve_mid_sync_then_a_new_sync_at_once(
    pws: Workspace, sandbox: Sandbox, dashboard_env: dict[str, str]
) -> None:
    uid, _ = await _connected(pws)
    sandbox.xero.faults.hold(after=3)
    _due(pws, uid)
    proc = start_intdash("serve", env=dashboard_env)
    try:
        _mid_sync(pws, sandbox, proc)
    finally:
        _kill(proc)
    sandbox.xero.faults.release()
    assert pws.leases.current("scheduler") is None  # nobody named as scheduling
    _synced_at_once(pws, sandbox, dashboard_env, uid)


async def test_sigkill_of_the_dashboard_mid_sync_then_a_new_sync_at_once(
    pws: Workspace, sandbox: Sandbox, dashboard_env: dict[str, str]
) -> None:
    uid, _ = await _connected(pws)
    sandbox.xero.faults.hold(after=3)
    _due(pws, uid)
    with _dashboard(dashboard_env) as proc:
        _mid_sync(pws, sandbox, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    sandbox.xero.faults.release()
    assert pws.leases.current("scheduler") is None
    _synced_at_once(pws, sandbox, dashboard_env, uid)
