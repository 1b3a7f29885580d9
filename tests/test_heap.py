"""The cyclic garbage collector waits while a page of invoices is decoded, made into invoices and
stored (:func:`intdash.core.heap.collections_paused`): tens of thousands of short-lived
containers, none of them in a cycle, that its collections would otherwise walk."""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event

from intdash.core.fiscal import REGISTER_LOCK
from intdash.core.heap import CollectorPause, collections_paused
from intdash.core.models import RunOutcome
from intdash.core.workspace import Workspace
from intdash.providers import xero
from intdash.providers.api import LARGE_BODY, parsed
from intdash.providers.http import httpx
from intdash.sandbox.server import Sandbox
from intdash.sync.engine import SyncEngine
from tests.conftest import ON_POSTGRES
from tests.providers import connect, pws, redirect_uri, sandbox, sandbox_env
from tests.test_integrations import invoice_data
from tests.waiting import wait_for

__all__ = ["pws", "redirect_uri", "sandbox", "sandbox_env"]


@contextmanager
def collections() -> Iterator[list[int]]:
    """The generation of each collection that runs meanwhile, in any thread, in order; the
    collector's young generation is emptied first, so that what comes before the code under
    test cannot set one off."""
    seen: list[int] = []

    def noted(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop":
            seen.append(int(info["generation"]))

    gc.collect()
    gc.callbacks.append(noted)
    try:
        yield seen
    finally:
        gc.callbacks.remove(noted)


def test_the_collector_waits_for_the_last_of_overlapping_pauses() -> None:
    assert gc.isenabled()
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with collections_paused():
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    try:
        with collections_paused():
            assert not gc.isenabled()
            thread.start()
            assert entered.wait(10)
        assert not gc.isenabled()  # the other thread's step is still running
    finally:
        leave.set()
        thread.join(10)
    assert gc.isenabled()


def test_a_pause_leaves_a_collector_that_was_off_off() -> None:
    gc.disable()
    try:
        with collections_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_pause_ends_when_its_step_fails() -> None:
    with pytest.raises(ValueError), collections_paused():
        raise ValueError("the step failed")
    assert gc.isenabled()


def test_overlapping_pauses_collect_the_young_generations_once_off_too_long() -> None:
    """Steps that overlap without a gap would keep the collector off for good: past the
    longest time off, a step that begins or ends collects the young generations."""
    now = [0.0]
    pause = CollectorPause(clock=lambda: now[0], longest_off=1.0)
    with collections() as seen:
        pause.__enter__()
        now[0] = 0.6
        with pause:  # begins and ends within the second: nothing collected
            pass
        assert seen == []
        now[0] = 1.2
        with pause:  # begins past it: the young generations collected, the collector kept off
            assert seen == [1] and not gc.isenabled()
            now[0] = 1.8
        assert seen == [1]  # (counted again from the collection)
        now[0] = 2.5
        with pause:
            pass
        assert seen == [1, 1]
        pause.__exit__(None, None, None)
    assert gc.isenabled()


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL's register lock")
def test_a_batch_waiting_for_the_registers_lock_leaves_the_collector_on(ws: Workspace) -> None:
    """On PostgreSQL a batch may wait for the register's lock (held to another transaction's
    commit, by any process): the collector must not wait with it."""
    ws.plans.set("scale")
    uid = ws.integrations.create("custom").integration.uid
    with ws.db.read() as session:
        integration_id = ws.integrations.find(session, uid).id
    assert integration_id is not None
    done = threading.Event()

    def store() -> None:
        with ws.db.write() as session:
            ws.invoices.upsert(
                session.connection(), integration_id, [invoice_data(n) for n in range(10)],
                ws.clock(),
            )  # fmt: skip
        done.set()

    holder = ws.db.engine.connect()
    writer = threading.Thread(target=store)
    try:
        with holder.begin():
            holder.exec_driver_sql(f"SELECT pg_advisory_xact_lock({REGISTER_LOCK})")
            writer.start()
            wait_for(
                lambda: holder.exec_driver_sql(
                    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).first(),
                message="the batch never waited for the register's lock",
            )
            assert gc.isenabled()
    finally:
        writer.join(30)
        holder.close()
    assert done.is_set()


LINE = {
    "Description": "Flat white",
    "Quantity": 1.0,
    "UnitAmount": 100.0,
    "TaxType": "OUTPUT2",
    "TaxAmount": 15.0,
    "LineAmount": 100.0,
    "Tracking": [],
}


def xero_page(count: int) -> bytes:
    """A page of Xero invoices with lines and a payment, as ``GET /Invoices`` answers."""
    invoices = [
        {
            "Type": "ACCREC",
            "InvoiceID": f"00000000-0000-4000-8000-{n:012d}",
            "InvoiceNumber": f"INV-{n:05d}",
            "Contact": {"ContactID": "c-1", "Name": "Kowhai Cafe"},
            "Date": "/Date(1764547200000+0000)/",
            "DueDate": "/Date(1767139200000+0000)/",
            "Status": "PAID",
            "LineAmountTypes": "Exclusive",
            "SubTotal": 200.0,
            "TotalTax": 30.0,
            "Total": 230.0,
            "CurrencyCode": "NZD",
            "UpdatedDateUTC": f"/Date({1764547200000 + n * 1000}+0000)/",
            "LineItems": [LINE, LINE],
            "Payments": [{"PaymentID": f"p-{n}", "Amount": 230.0}],
        }
        for n in range(count)
    ]
    return json.dumps({"Invoices": invoices}).encode()


async def test_no_collection_runs_while_a_large_answer_is_decoded_and_read() -> None:
    body = xero_page(1000)
    assert len(body) > LARGE_BODY
    response = httpx.Response(
        200, content=body, request=httpx.Request("GET", "http://127.0.0.1/api.xro/2.0/Invoices")
    )
    during: list[int] = []

    def read(data: Any) -> list[Any]:
        made = [xero.parse_invoice(raw) for raw in data["Invoices"]]
        during.append(len(seen))  # the collections so far: decoding and reading done
        return made

    with collections() as seen:
        made = await parsed(response, "Xero invoices page 1", read)
    assert len(made) == 1000 and made[-1].total == Decimal("230.0")
    assert during == [0]
    assert gc.isenabled()


@pytest.mark.skipif(ON_POSTGRES, reason="PostgreSQL's batches may wait: the collector stays on")
def test_no_collection_runs_while_a_batch_is_stored(ws: Workspace) -> None:
    ws.plans.set("scale")
    uid = ws.integrations.create("custom").integration.uid
    batch = [invoice_data(n) for n in range(1000)]
    marks: list[int] = []  # the collections so far, at each statement of the upsert

    def statement(*_args: Any) -> None:
        marks.append(len(seen))

    with ws.db.write() as session:
        integration_id = ws.integrations.find(session, uid).id
        assert integration_id is not None
        conn = session.connection()
        event.listen(ws.db.engine, "before_cursor_execute", statement)
        try:
            with collections() as seen:
                result = ws.invoices.upsert(conn, integration_id, batch, ws.clock())
        finally:
            event.remove(ws.db.engine, "before_cursor_execute", statement)
    assert result.created == 1000
    assert len(marks) >= 2 and set(marks) == {0}  # up to its last statement
    assert gc.isenabled()


async def test_a_sync_reads_and_stores_its_pages_with_the_collector_waiting(
    pws: Workspace, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real path: Xero's pages decoded and read in a thread, stored through the upsert."""
    pws.plans.set("scale")
    uid = pws.integrations.create("xero").integration.uid
    await connect(pws, uid)
    read_while_on: list[bool] = []
    stored_while_on: list[bool] = []
    parse_invoice = xero.parse_invoice

    def reading(raw: Any) -> Any:
        read_while_on.append(gc.isenabled())
        return parse_invoice(raw)

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if sql.startswith(("INSERT INTO invoices", "INSERT INTO fiscal_records")):
            stored_while_on.append(gc.isenabled())

    monkeypatch.setattr(xero, "parse_invoice", reading)
    event.listen(pws.db.engine, "before_cursor_execute", statement)
    try:
        result = await SyncEngine(pws).run(uid)
    finally:
        event.remove(pws.db.engine, "before_cursor_execute", statement)
    assert result.outcome is RunOutcome.OK and result.fetched > 1000
    assert len(read_while_on) >= result.fetched and not any(read_while_on)
    if not ON_POSTGRES:  # (PostgreSQL's batches may wait for a lock: not paused)
        assert len(stored_while_on) >= 2 and not any(stored_while_on)
    assert gc.isenabled()
