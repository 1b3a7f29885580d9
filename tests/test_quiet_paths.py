"""What the paths that run most often cost the database: a sync that finds nothing new (the
scheduler runs thousands an hour) and a single pushed invoice. Counted in statements and
transactions, not timed: the benchmarks under bench/ time them."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import event
from sqlmodel import col, select

from intdash.core.models import RunOutcome, SyncRun
from intdash.core.services.ingest import Push, Pushed
from intdash.core.workspace import Workspace
from intdash.providers import xero, zoho
from intdash.providers.http import httpx, shared_client
from intdash.providers.transport import PlatformTransport
from intdash.sandbox.server import Sandbox
from intdash.server.ingest import GroupWriter
from intdash.sync import steps
from intdash.sync.engine import SyncEngine, Trigger
from tests.conftest import ON_POSTGRES, FakeClock
from tests.providers import connect, pws, redirect_uri, sandbox, sandbox_env
from tests.test_ingest import LiveServer, bearer, custom, invoice, open_ws
from tests.test_integrations import invoice_data
from tests.waiting import wait_for, wait_for_async

__all__ = ["pws", "redirect_uri", "sandbox", "sandbox_env"]  # fixtures

T = TypeVar("T")


@dataclass
class Counted:
    statements: list[str] = field(default_factory=list)
    begins: int = 0  # transactions begun (reads and writes)
    commits: int = 0

    @property
    def writes(self) -> list[str]:
        return [s for s in self.statements if s.split()[0] in ("INSERT", "UPDATE", "DELETE")]


@contextmanager
def counting(ws: Workspace) -> Iterator[Counted]:
    counted = Counted()

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        counted.statements.append(sql)

    def commit(_conn: Any) -> None:
        counted.commits += 1

    def begin(_conn: Any) -> None:
        counted.begins += 1

    engine = ws.db.engine
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    event.listen(engine, "begin", begin)
    try:
        yield counted
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)
        event.remove(engine, "begin", begin)


def scans(ws: Workspace, statements: Sequence[str]) -> list[str]:
    """Those of ``statements`` that SQLite runs by reading a whole table (or all of an index),
    with the table read: their cost grows with the data (the runs, the integrations), where a
    path run thousands of times an hour must look up. Reading from one end of the primary key
    for a LIMIT (the register's last record) is a look-up, and reading the values a statement
    was given (a batch's ids through json_each, a multi-row insert's rows) is bounded by it."""
    found = []
    with ws.db.engine.connect() as conn:
        for sql in statements:
            # (an INSERT's plan names the tables that refer to the one it fills: read only where
            # a deferred foreign key is unresolved, which none of intdash's is)
            if sql.split()[0] not in ("SELECT", "UPDATE", "DELETE") and " SELECT " not in sql:
                continue
            unbound = (None,) * sql.count("?")
            for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", unbound):
                detail = str(row[-1])
                bounded = (
                    "LIMIT" in sql and detail.split()[:1] == ["SCAN"] and "INDEX" not in detail
                )
                # the statement's own values: a batch's ids (json_each), a multi-row insert's
                listed = "VIRTUAL TABLE" in detail or "CONSTANT ROW" in detail
                if detail.startswith("SCAN") and not listed and not (bounded and "ORDER BY" in sql):
                    found.append(f"{detail}: {' '.join(sql.split())[:160]}")
    return found


async def test_a_sync_that_finds_nothing_is_one_read_and_two_writes(
    pws: Workspace, sandbox: Sandbox
) -> None:
    pws.plans.set("scale")
    uid = pws.integrations.create("xero").integration.uid
    await connect(pws, uid)
    engine = SyncEngine(pws)
    with counting(pws) as first:  # pages of new invoices, fiscalized
        assert (await engine.run(uid)).outcome is RunOutcome.OK
    with counting(pws) as counted:
        second = await engine.run(uid)
    assert (second.outcome, second.fetched) == (RunOutcome.OK, 0)
    # the start (claim, run, next slot) and the end (outcome, claim given back)
    assert counted.commits == 2, counted.statements
    # (PostgreSQL: the claim's advisory lock taken and let go, its lease read for update)
    assert len(counted.statements) <= (14 if ON_POSTGRES else 11), "\n".join(
        s.split("\n")[0][:90] for s in counted.statements
    )
    assert not [s for s in counted.writes if "invoices" in s.split("SET")[0]], counted.writes
    if not ON_POSTGRES:  # (its plans depend on statistics: a small table is read whole)
        assert scans(pws, counted.statements) == []
        assert scans(pws, first.statements) == []


async def test_syncs_share_the_platforms_client_and_its_connection(
    pws: Workspace, sandbox: Sandbox, monkeypatch: Any
) -> None:
    pws.plans.set("scale")
    uid = pws.integrations.create("xero").integration.uid
    await connect(pws, uid)
    made: list[httpx.AsyncClient] = []
    real = httpx.AsyncClient.__init__

    def counting_init(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        real(self, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", counting_init)
    transport = shared_client("xero", httpx.Timeout(5.0))._transport
    assert isinstance(transport, PlatformTransport)
    connected = transport.connections_made
    engine = SyncEngine(pws)
    for _ in range(3):
        assert (await engine.run(uid)).outcome is RunOutcome.OK
    assert len(made) <= 1  # made once for the process (and loop), not once a sync
    # six requests (invoices and credit notes, three times) on the connection kept alive
    assert transport.connections_made - connected <= 1


def test_a_single_push_is_one_transaction_and_no_read_before_it(
    env: dict[str, str], clock: FakeClock
) -> None:
    ws = open_ws(env, clock)
    _uid, key = custom(ws)
    try:
        with LiveServer(ws) as live, httpx.Client(timeout=30) as client:
            first = client.post(f"{live.url}/v1/invoices", json=invoice(1), headers=bearer(key))
            assert first.status_code == 201, first.text
            with counting(ws) as counted:
                pushed = client.post(
                    f"{live.url}/v1/invoices", json=invoice(2), headers=bearer(key)
                )
            assert pushed.status_code == 201, pushed.text
            assert pushed.json()["fiscal_record"] is not None
    finally:
        ws.close()
    # the key, its integration, the invoice, its fiscal record and the answer: one transaction
    assert (counted.begins, counted.commits) == (1, 1), counted.statements
    # the plan read once; SQLite's BEGIN goes to the driver without a statement of
    # SQLAlchemy's; PostgreSQL takes the register's advisory lock in one more
    most = 14 if ON_POSTGRES else 13
    assert len(counted.statements) <= most, "\n".join(s[:80] for s in counted.statements)
    if not ON_POSTGRES:
        assert scans(ws, counted.statements) == []


def test_concurrent_pushes_are_committed_together_and_each_answered_after_it(
    env: dict[str, str], clock: FakeClock, monkeypatch: Any
) -> None:
    ws = open_ws(env, clock)
    _uid, key = custom(ws)
    groups: list[int] = []
    first_held, go_on = threading.Event(), threading.Event()
    real = ws.ingest.accept_group

    def gated(pushes: Sequence[Push]) -> list[Pushed]:
        groups.append(len(pushes))
        if len(groups) == 1:  # the first group waits while the others arrive
            first_held.set()
            assert go_on.wait(30)
        return real(pushes)

    monkeypatch.setattr(ws.ingest, "accept_group", gated)
    arrived: list[Push] = []
    submit = GroupWriter.submit

    async def counted_submit(self: GroupWriter, push: Push) -> Pushed:
        arrived.append(push)
        return await submit(self, push)

    monkeypatch.setattr(GroupWriter, "submit", counted_submit)
    answers: dict[int, httpx.Response] = {}

    # the first, more invoices than a group written on the event loop holds, is written in a
    # thread: the loop goes on reading the others meanwhile
    first = {"invoices": [invoice(100 + k) for k in range(GroupWriter.AT_ONCE_INVOICES + 1)]}

    def push(n: int) -> None:
        with httpx.Client(timeout=30) as client:
            answers[n] = client.post(
                f"{live.url}/v1/invoices", json=first if n == 1 else invoice(n), headers=bearer(key)
            )

    try:
        with LiveServer(ws) as live, counting(ws) as counted:
            threads = [threading.Thread(target=push, args=(1,))]
            threads[0].start()
            assert first_held.wait(30)
            threads += [threading.Thread(target=push, args=(n,)) for n in range(2, 9)]
            for thread in threads[1:]:
                thread.start()
            wait_for(lambda: len(arrived) == 8)
            assert not answers  # nothing answered before its group is committed
            go_on.set()
            for thread in threads:
                thread.join(30)
    finally:
        ws.close()
    assert sorted(answers) == list(range(1, 9))
    assert {answers[n].status_code for n in range(2, 9)} == {201}
    assert answers[1].status_code == 201, answers[1].text
    assert groups == [1, 7]  # the seven that came while the first was written, together
    assert counted.commits == 2
    # and the seven, of one integration, upserted as one batch: one look for what is stored
    looks = [
        s
        for s in counted.statements
        if s.startswith("SELECT invoices.id, invoices.external_id, invoices.fiscal_status")
    ]
    assert len(looks) == 2, looks
    # and the key of the seven checked once, not once a push (its state and its integration's)
    keys = [s for s in counted.statements if s.startswith("SELECT") and "api_keys.revoked_at" in s]
    assert len(keys) == 2, keys
    assert ws.invoices.verify().records == GroupWriter.AT_ONCE_INVOICES + 1 + 7


async def test_a_small_group_is_written_on_the_event_loop_and_a_large_one_in_a_thread(
    ws: Workspace,
) -> None:
    writers: list[tuple[int, bool]] = []

    def write(pushes: Sequence[Push]) -> list[Pushed]:
        size = sum(len(push.invoices) for push in pushes)
        writers.append((size, threading.current_thread() is threading.main_thread()))
        return [Pushed([]) for _ in pushes]

    writer = GroupWriter(write, ws.db)
    small = Push("key", "ITG-1", [invoice_data(n) for n in range(GroupWriter.AT_ONCE_INVOICES)])
    large = Push("key", "ITG-1", [invoice_data(n) for n in range(GroupWriter.AT_ONCE_INVOICES + 1)])
    await writer.submit(small)
    await writer.submit(large)
    # (PostgreSQL: every group is round trips to the server, in a thread)
    assert writers == [(len(small.invoices), not ON_POSTGRES), (len(large.invoices), False)]


async def test_a_push_a_turn_of_the_loop_behind_the_first_goes_in_its_group() -> None:
    groups: list[list[str]] = []

    def write(pushes: Sequence[Push]) -> list[Pushed]:
        groups.append([push.key_id for push in pushes])
        return [Pushed([]) for _ in pushes]

    writer = GroupWriter(write)

    async def behind() -> Pushed:
        await asyncio.sleep(0)  # its request still being read as the first is submitted
        return await writer.submit(Push("second", "ITG-1", []))

    await asyncio.gather(writer.submit(Push("first", "ITG-1", [])), behind())
    assert groups == [["first", "second"]]


def test_a_push_that_fails_as_it_is_written_leaves_the_rest_of_its_group(
    env: dict[str, str], clock: FakeClock, monkeypatch: Any
) -> None:
    from intdash.core.errors import ConflictError
    from intdash.core.services.invoices import InvoiceService
    from tests.test_line_items import _invoice

    ws = open_ws(env, clock)
    try:
        uid, key = custom(ws)
        check = ws.keys.check_secret(key)
        assert check.key_id is not None
        real = InvoiceService.upsert

        def failing(self: InvoiceService, conn: Any, integration_id: int, batch: Any,
                    *args: Any, **kwargs: Any) -> Any:  # fmt: skip
            if any(data.external_id == "bad" for data in batch):
                raise ConflictError("this one cannot be written")
            return real(self, conn, integration_id, batch, *args, **kwargs)

        monkeypatch.setattr(InvoiceService, "upsert", failing)
        pushes = [
            Push(check.key_id, uid, [replace(_invoice(), external_id=name)])
            for name in ("a", "bad", "c")
        ]
        with counting(ws) as counted:
            done = ws.ingest.accept_group(pushes)
        assert [p.error is None for p in done] == [True, False, True]
        assert str(done[1].error) == "this one cannot be written"
        assert [p.stored[0].external_id for p in (done[0], done[2]) if p.stored] == ["a", "c"]
        # the straight attempt rolled back, the guarded one committed
        assert (counted.begins, counted.commits) == (2, 1)
        assert sorted(r.external_id for r in ws.invoices.page()) == ["a", "c"]
        assert ws.invoices.verify().records == 2
    finally:
        ws.close()


async def test_a_run_starts_from_the_cursor_as_its_claim_stands(
    pws: Workspace, sandbox: Sandbox, monkeypatch: Any
) -> None:
    """A run that held the claim until a moment ago moved the cursor after this run read the
    integration: the cursor it starts from is read with its claim."""
    pws.plans.set("scale")
    uid = pws.integrations.create("xero").integration.uid
    await connect(pws, uid)
    engine = SyncEngine(pws)
    assert (await engine.run(uid)).outcome is RunOutcome.OK
    with pws.db.read() as session:
        row = pws.integrations.find(session, uid)
    claim = engine._claim

    def after_another_run(*args: Any) -> int:  # the other run ends between read and claim
        with pws.db.write() as session:
            moved = pws.integrations.find(session, uid)
            moved.cursor = "2099-01-01T00:00:00+00:00"
            session.add(moved)
        return claim(*args)

    monkeypatch.setattr(engine, "_claim", after_another_run)
    begun = await asyncio.to_thread(engine._begin, uid, Trigger.SCHEDULE)
    engine._finish(begun.row.id or 0, begun.run_id, RunOutcome.CANCELLED, "test", False)
    assert row.cursor != "2099-01-01T00:00:00+00:00"
    assert begun.row.cursor == "2099-01-01T00:00:00+00:00"


async def synced_once(pws: Workspace) -> tuple[str, SyncEngine]:
    """A Xero integration on Scale, synced once in full: its UID and the engine."""
    pws.plans.set("scale")
    uid = pws.integrations.create("xero").integration.uid
    await connect(pws, uid)
    engine = SyncEngine(pws)
    assert (await engine.run(uid)).outcome is RunOutcome.OK
    return uid, engine


class Threads(ThreadPoolExecutor):
    """The event loop's default executor, naming each function sent to a thread."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.sent: list[str] = []

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        # asyncio.to_thread sends functools.partial(context.run, function, *its args)
        inner = fn.args[0] if isinstance(fn, functools.partial) and fn.args else fn
        self.sent.append(getattr(inner, "__name__", repr(inner)))
        return super().submit(fn, *args, **kwargs)


def ident(ws: Workspace, uid: str) -> int:
    with ws.db.read() as session:
        found = ws.integrations.find(session, uid).id
    assert found is not None
    return found


@contextmanager
def threads_watched() -> Iterator[Threads]:
    threads = Threads()
    asyncio.get_running_loop().set_default_executor(threads)
    yield threads


@pytest.mark.skipif(ON_POSTGRES, reason="PostgreSQL's steps are round trips: in threads")
async def test_a_sync_that_finds_nothing_takes_no_thread_on_sqlite(
    pws: Workspace, sandbox: Sandbox
) -> None:
    """Its two writes and its read are short, and need not wait: run on the event loop, where
    a hop to a thread and back cost more than the statements."""
    uid, engine = await synced_once(pws)
    with threads_watched() as threads:
        result = await engine.run(uid)
    assert (result.outcome, result.fetched) == (RunOutcome.OK, 0)
    assert threads.sent == []


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's write lock")
async def test_a_step_that_would_wait_for_another_writer_waits_in_a_thread(
    pws: Workspace, sandbox: Sandbox
) -> None:
    """Another process holds SQLite's write lock: the sync's start waits for it in a thread,
    not on the event loop, and the sync goes on once it is let go."""
    uid, engine = await synced_once(pws)
    path = pws.db.sqlite_path
    assert path is not None
    other = sqlite3.connect(path, isolation_level=None)  # as another process would
    other.execute("BEGIN IMMEDIATE")
    with threads_watched() as threads:
        sync = asyncio.create_task(engine.run(uid))
        await wait_for_async(lambda: "_begin" in threads.sent, message="the start in a thread")
        ticks = 0
        while ticks < 3:  # the event loop is free while the start waits
            await asyncio.sleep(0)
            ticks += 1
        assert not sync.done()
        other.execute("COMMIT")
        result = await sync
    other.close()
    assert result.outcome is RunOutcome.OK
    with pws.db.read() as session:
        assert pws.integrations.find(session, uid).last_successful_sync is not None
    assert pws.db.may_wait  # the event loop's thread is left as it was


@pytest.mark.skipif(ON_POSTGRES, reason="this process's SQLite writers")
async def test_a_step_goes_to_a_thread_while_another_thread_of_the_process_writes(
    pws: Workspace, sandbox: Sandbox
) -> None:
    uid, engine = await synced_once(pws)
    writing, done = threading.Event(), threading.Event()

    def long_write() -> None:  # a page of a bulk sync, say
        with pws.db.write_connection():
            writing.set()
            done.wait(30)

    writer = threading.Thread(target=long_write)
    writer.start()
    assert writing.wait(30)
    with threads_watched() as threads:
        sync = asyncio.create_task(engine.run(uid))
        await wait_for_async(lambda: "_begin" in threads.sent, message="the start in a thread")
        done.set()
        result = await sync
    writer.join(30)
    assert result.outcome is RunOutcome.OK


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's steps on the event loop")
async def test_held_invoices_are_released_in_a_thread_not_on_the_event_loop(
    pws: Workspace, sandbox: Sandbox
) -> None:
    """Releasing what was held when the month turns fiscalizes many invoices: long work,
    taken off the event loop (the step begun there is rolled back and run again)."""
    pws.plans.set("starter", monthly_limit=10)
    uid = pws.integrations.create("xero").integration.uid
    await connect(pws, uid)
    engine = SyncEngine(pws)
    assert (await engine.run(uid)).outcome is RunOutcome.OK
    held = [r.fiscal_status for r in pws.invoices.iter_all(uid)].count("held")
    assert held > 10
    later = pws.clock() + timedelta(days=32)
    pws.clock = lambda: later  # next month
    with threads_watched() as threads:
        result = await engine.run(uid)
    assert result.outcome is RunOutcome.OK
    assert "_begin" in threads.sent
    assert [r.fiscal_status for r in pws.invoices.iter_all(uid)].count("held") == held - 10
    with pws.db.read() as session:
        runs = session.exec(select(SyncRun).where(col(SyncRun.outcome) == "ok")).all()
    assert len(runs) == 2  # the start rolled back on the event loop recorded no run
    assert pws.invoices.verify().ok


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's query plan")
def test_a_syncs_start_finds_a_run_left_running_by_index_not_among_all_runs(
    ws: Workspace,
) -> None:
    """A month of five-minute syncs is 8,640 runs of an integration: its start looks for one
    left running among the running runs alone."""
    with ws.db.engine.connect() as conn:
        compiled = steps.INTERRUPT.compile(conn)
        unbound = (None,) * len(compiled.positiontup or ())
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", unbound).all()
    assert any("ix_sync_runs_running" in str(row) for row in plan), plan


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's write lock")
async def test_a_runs_end_that_would_wait_keeps_its_claim_until_made_in_a_thread(
    pws: Workspace, sandbox: Sandbox
) -> None:
    uid, engine = await synced_once(pws)
    path = pws.db.sqlite_path
    assert path is not None
    other = sqlite3.connect(path, isolation_level=None)  # another process, writing
    seen: list[bool] = []

    def lock_before_the_end(_totals: object) -> None:  # after the last page, on the loop
        if not seen:
            other.execute("BEGIN IMMEDIATE")
        seen.append(True)

    with threads_watched() as threads:
        sync = asyncio.create_task(engine.run(uid, progress=lock_before_the_end))
        await wait_for_async(lambda: "_finish" in threads.sent, message="the end in a thread")
        integration_id = ident(pws, uid)
        assert engine.running(integration_id)  # still its claim, while the end waits
        assert integration_id in engine._held
        other.execute("COMMIT")
        result = await sync
    other.close()
    assert result.outcome is RunOutcome.OK
    assert not engine.running(integration_id)
    assert integration_id not in engine._held
    assert "_begin" not in threads.sent  # the start was made on the loop


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's steps on the event loop")
async def test_a_runs_end_that_fails_on_the_event_loop_fails_in_a_thread_and_lets_go(
    pws: Workspace, sandbox: Sandbox, monkeypatch: Any
) -> None:
    """Giving the claim back after a failed end is a write that may wait: not on the loop."""
    uid, engine = await synced_once(pws)
    integration_id = ident(pws, uid)
    failed: list[bool] = []

    def broken(*_args: Any, **_kwargs: Any) -> None:
        failed.append(threading.current_thread() is threading.main_thread())
        raise OSError("the end cannot be written")

    monkeypatch.setattr(steps, "ended", broken)
    with threads_watched() as threads, pytest.raises(OSError, match="cannot be written"):
        await engine.run(uid)
    assert failed == [True, False]  # on the loop, then again in a thread
    assert threads.sent == ["_finish"]
    assert not engine.running(integration_id)
    assert integration_id not in engine._held


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's write lock")
async def test_a_small_group_that_would_wait_for_another_writer_is_written_in_a_thread(
    ws: Workspace,
) -> None:
    uid, key = custom(ws)
    check = ws.keys.check_secret(key)
    assert check.key_id is not None
    writer = GroupWriter(ws.ingest.accept_group, ws.db)
    path = ws.db.sqlite_path
    assert path is not None
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with threads_watched() as threads:
        push = asyncio.create_task(writer.submit(Push(check.key_id, uid, [invoice_data(1)])))
        await wait_for_async(lambda: "accept_group" in threads.sent, message="in a thread")
        assert not push.done()
        other.execute("COMMIT")
        pushed = await push
    other.close()
    assert pushed.error is None
    assert [i.external_id for i in pushed.stored or []] == ["ext-1"]
    assert ws.invoices.verify().records == 1


async def test_a_large_page_is_made_into_invoices_off_the_event_loop(
    pws: Workspace, sandbox: Sandbox, monkeypatch: Any
) -> None:
    """A page of Xero's invoices is its JSON and then an invoice from each document: tens of
    milliseconds for a large page, all of it in a thread (the dashboard shares the loop)."""
    pws.plans.set("scale")
    uid = pws.integrations.create("xero").integration.uid
    await connect(pws, uid)
    on_loop: list[bool] = []
    real = xero.parse_invoice

    def noted(raw: Any) -> Any:
        on_loop.append(threading.current_thread() is threading.main_thread())
        return real(raw)

    monkeypatch.setattr(xero, "parse_invoice", noted)
    result = await SyncEngine(pws).run(uid)
    assert result.outcome is RunOutcome.OK
    assert len(on_loop) >= result.fetched > 0
    assert not any(on_loop)


async def test_a_myob_pages_lines_are_made_in_a_thread_a_layouts_answer_not_one_an_invoice(
    pws: Workspace, sandbox: Sandbox
) -> None:
    """MYOB's lines come from each layout's list: the lines of all the invoices of one answer
    are made in one hop to a thread (a hop an invoice was thousands a sync, each a turn of the
    loop and two handovers of the interpreter's lock)."""
    pws.plans.set("scale")
    uid = pws.integrations.create("myob").integration.uid
    await connect(pws, uid)
    with threads_watched() as threads:
        result = await SyncEngine(pws).run(uid)
    assert result.outcome is RunOutcome.OK
    assert result.fetched > 1000
    assert len(threads.sent) < result.fetched / 20, threads.sent[:20]


async def test_a_zoho_page_is_made_into_invoices_off_the_event_loop(
    pws: Workspace, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page of Zoho's documents (200 by default) is made into invoices in the thread that
    decodes its JSON, as Xero's are; a document read alone for its tax is a small answer, read
    here."""
    pws.plans.set("scale")
    uid = pws.integrations.create("zoho").integration.uid
    await connect(pws, uid)
    off_loop: list[bool] = []
    real = zoho.INVOICES.parse

    def noted(raw: Any) -> Any:
        off_loop.append(threading.current_thread() is not threading.main_thread())
        return real(raw)

    monkeypatch.setattr(zoho, "INVOICES", replace(zoho.INVOICES, parse=noted))
    result = await SyncEngine(pws).run(uid)
    assert result.outcome is RunOutcome.OK
    assert result.fetched > 200
    # every full page's (a short last page may be a small answer, read on the loop)
    page = pws.settings.zoho.page_size
    assert off_loop.count(True) >= result.fetched // page * page
