"""What the SDC signed, as people and systems are told it: webhook deliveries queued once the
V-SDC has signed (and carrying its invoice number, time, counter and verification URL), the
ingest API's answers with each invoice's fiscalization by the SDC, ``intdash sync`` sending the
outbox after its run. Over real mutual TLS against the V-SDC emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openapi_core import OpenAPI
from sqlalchemy import select

from intdash.core.config import load_settings
from intdash.core.fiscal_models import FiscalOutbox
from intdash.core.invoices import SourceState
from intdash.core.workspace import Workspace
from intdash.providers.http import httpx
from intdash.sandbox.server import Sandbox
from intdash.sandbox.vsdc_server import VsdcServer
from tests.conftest import FakeClock, run_intdash
from tests.providers import connect, redirect_uri, sandbox_env
from tests.test_fiscal_vsdc import drain, vws
from tests.test_ingest import LiveServer, bearer, conforms, custom, invoice, spec
from tests.test_integrations import invoice_data
from tests.test_quiet_paths import counting
from tests.test_webhooks import Receiver, deliver, push, receiver, states, webhook
from tests.vsdc import vsdc_emulator, vsdc_pki

__all__ = [  # fixtures
    "receiver", "redirect_uri", "sandbox_env", "spec", "vsdc_emulator", "vsdc_pki", "vws",
]  # fmt: skip
OUTBOX = FiscalOutbox.__table__  # type: ignore[attr-defined]
SDC_FIELDS = {"status", "sdc_invoice_number", "sdc_time", "invoice_counter",
              "verification_url", "error"}  # fmt: skip


def outbox(ws: Workspace) -> list[Any]:
    with ws.db.read() as session:
        return list(session.connection().execute(select(OUTBOX).order_by(OUTBOX.c.id)).all())


def said_by_the_sdc(row: Any) -> dict[str, Any]:
    """An outbox row as the answers and deliveries carry it."""
    return {
        "status": row.status,
        "sdc_invoice_number": row.sdc_invoice_number,
        "sdc_time": row.sdc_time,
        "invoice_counter": row.invoice_counter,
        "verification_url": row.verification_url,
        "error": row.error,
    }


# -- webhook deliveries ---------------------------------------------------------------------


def test_a_delivery_waits_for_the_sdc_and_carries_what_it_signed(
    vws: Workspace, receiver: Receiver, clock: FakeClock
) -> None:
    source = vws.integrations.create("custom", name="ERP").integration.uid
    hook, _secret = webhook(vws, receiver.url)
    push(vws, source, 1)
    assert states(vws, hook) == []  # recorded, not signed yet: nothing to deliver
    assert drain(vws) == 1
    assert states(vws, hook) == ["pending"]  # queued with the SDC's response
    clock.advance(minutes=1)
    assert deliver(vws) == 1
    [sale] = outbox(vws)
    [got] = receiver.got
    event = got.event
    assert event["type"] == "invoice.fiscalized"
    body = event["data"]["invoice"]
    assert body["fiscal_record"]["seq"] == sale.record_seq  # today's record, beside the SDC's
    sdc = body["sdc"]
    assert {k: sdc[k] for k in SDC_FIELDS} == said_by_the_sdc(sale)
    assert sdc["status"] == "signed" and sdc["refund"] is None
    assert sdc["sdc_invoice_number"] and sdc["sdc_time"] and sdc["invoice_counter"]
    assert sdc["verification_url"].startswith("https://")

    # voided: the refund is delivered once the SDC has signed it, naming both
    vws.ingest.accept(
        source, [replace(invoice_data(1), source_status="void", state=SourceState.VOID)]
    )
    clock.advance(minutes=1)
    assert deliver(vws) == 0
    assert drain(vws) == 1
    clock.advance(minutes=1)
    assert deliver(vws) == 1
    sold, refund = outbox(vws)
    refunded = receiver.got[1].event
    assert refunded["type"] == "invoice.refunded"
    sdc = refunded["data"]["invoice"]["sdc"]
    assert {k: sdc[k] for k in SDC_FIELDS} == said_by_the_sdc(sold)
    assert sdc["refund"] == said_by_the_sdc(refund)
    assert sdc["refund"]["status"] == "signed"
    assert sdc["refund"]["sdc_invoice_number"] != sdc["sdc_invoice_number"]


def test_what_the_sdc_refused_is_not_delivered_until_it_is_signed(
    vws: Workspace, receiver: Receiver, clock: FakeClock
) -> None:
    source = vws.integrations.create("custom", name="ERP").integration.uid
    hook, _secret = webhook(vws, receiver.url)
    # lines taxed at 0 %: two labels have that rate, so none is guessed and the row fails
    data = replace(invoice_data(1), tax=Decimal(0), subtotal=Decimal("115.00"))
    vws.ingest.accept(source, [data])
    drain(vws)
    [row] = outbox(vws)
    assert row.status == "failed", row
    assert states(vws, hook) == []
    answer = vws.ingest.get(source, data.external_id).to_json()
    assert answer["sdc"]["status"] == "failed" and "no TaxCore label" in answer["sdc"]["error"]
    vws.fiscal.setup.map_code(source, "-", "B")
    assert vws.fiscal.retry() == 1
    assert drain(vws) == 1
    assert states(vws, hook) == ["pending"]
    clock.advance(minutes=1)
    assert deliver(vws) == 1
    assert receiver.got[0].event["data"]["invoice"]["sdc"]["status"] == "signed"


def test_with_the_local_register_deliveries_are_as_before(
    ws: Workspace, receiver: Receiver, clock: FakeClock
) -> None:
    source = ws.integrations.create("custom", name="ERP").integration.uid
    hook, _secret = webhook(ws, receiver.url)
    push(ws, source, 1)
    assert states(ws, hook) == ["pending"]  # queued in the upsert's transaction
    clock.advance(minutes=1)
    assert deliver(ws) == 1
    body = receiver.got[0].event["data"]["invoice"]
    assert body["sdc"] is None and body["fiscal_record"]["seq"] >= 1


# -- the ingest API ---------------------------------------------------------------------------


def test_the_ingest_api_answers_with_the_sdcs_fiscalization(
    vws: Workspace, spec: OpenAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    _uid, key = custom(vws)
    with LiveServer(vws) as live, httpx.Client(timeout=30) as client:
        pushed = client.post(f"{live.url}/v1/invoices", json=invoice(1), headers=bearer(key))
        assert pushed.status_code == 201, pushed.text
        conforms(spec, "POST", "/v1/invoices", pushed)
        # answered in the push's transaction: the SDC is called after it commits
        assert pushed.json()["sdc"] == {
            "status": "pending", "sdc_invoice_number": None, "sdc_time": None,
            "invoice_counter": None, "verification_url": None, "error": None, "refund": None,
        }  # fmt: skip
        assert drain(vws) == 1
        read = client.get(f"{live.url}/v1/invoices/ERP-1", headers=bearer(key))
        assert read.status_code == 200, read.text
        conforms(spec, "GET", "/v1/invoices/ERP-1", read)
        [sale] = outbox(vws)
        sdc = read.json()["sdc"]
        assert sdc == {**said_by_the_sdc(sale), "refund": None}
        assert sdc["status"] == "signed" and sdc["verification_url"]
        batch = client.post(
            f"{live.url}/v1/invoices",
            json={"invoices": [invoice(1), invoice(2)]},
            headers=bearer(key),
        )
        assert batch.status_code == 201, batch.text
        conforms(spec, "POST", "/v1/invoices", batch)
        first, second = batch.json()["invoices"]
        assert first["sdc"]["status"] == "signed" and second["sdc"]["status"] == "pending"


def test_with_the_local_register_the_answer_has_no_sdc(
    env: dict[str, str], clock: FakeClock, spec: OpenAPI
) -> None:
    ws = Workspace.open(load_settings(), clock=clock, actor="tester")
    _uid, key = custom(ws)
    try:
        with LiveServer(ws) as live, httpx.Client(timeout=30) as client:
            pushed = client.post(f"{live.url}/v1/invoices", json=invoice(1), headers=bearer(key))
            conforms(spec, "POST", "/v1/invoices", pushed)
            assert pushed.json()["sdc"] is None
            read = client.get(f"{live.url}/v1/invoices/ERP-1", headers=bearer(key))
            conforms(spec, "GET", "/v1/invoices/ERP-1", read)
            assert read.json()["sdc"] is None
    finally:
        ws.close()


def _push_statements(ws: Workspace) -> list[str]:
    _uid, key = custom(ws)
    with LiveServer(ws) as live, httpx.Client(timeout=30) as client:
        first = client.post(f"{live.url}/v1/invoices", json=invoice(1), headers=bearer(key))
        assert first.status_code == 201, first.text
        with counting(ws) as counted:
            pushed = client.post(f"{live.url}/v1/invoices", json=invoice(2), headers=bearer(key))
        assert pushed.status_code == 201, pushed.text
    return counted.statements


def test_a_push_answered_with_the_sdc_costs_no_more_than_its_outbox_row(
    vws: Workspace,
) -> None:
    vsdc = _push_statements(vws)
    reads = [s for s in vsdc if s.startswith("SELECT") and "fiscal_outbox" in s]
    # the answer's read of the outbox: joined to the records' read, never a statement more
    assert len(reads) == 1, reads
    assert "fiscal_records" in reads[0]
    writes = [s for s in vsdc if s.startswith("INSERT INTO fiscal_outbox")]
    assert len(writes) == 1


# -- intdash sync -----------------------------------------------------------------------------


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(size=12).start()
    yield box
    box.stop()


def test_intdash_sync_sends_the_outbox_after_its_run(
    sandbox_env: dict[str, str],
    vsdc_emulator: VsdcServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    from intdash.sync.fiscalize import configure

    fiscal = {"INTDASH_FISCAL__REGISTER": "vsdc", **vsdc_emulator.settings()}
    for name, value in fiscal.items():
        monkeypatch.setenv(name, value)
    ws = Workspace.open(load_settings(), actor="tester")
    try:
        emulator = vsdc_emulator
        asyncio.run(configure(ws, emulator.pfx, emulator.password, emulator.pac))
        uid = ws.integrations.create("xero", name="Acme").integration.uid
        asyncio.run(connect(ws, uid))
        ws.fiscal.setup.map_code(uid, "OUTPUT2", "A")
        done = run_intdash("sync", uid, "--json", env={**sandbox_env, **fiscal})
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        rows = outbox(ws)
        assert rows and {r.status for r in rows} == {"signed"}, [r.error for r in rows]
        assert answer["sdc"] == {"answered": len(rows), "problem": None}
        assert emulator.emulator.count() == len(rows)
        text = run_intdash("sync", uid, env={**sandbox_env, **fiscal})
        assert text.returncode == 0, text.stderr
        assert "SDC" not in text.stdout  # nothing new to send: nothing said
    finally:
        ws.close()


def test_intdash_sync_with_the_local_register_sends_nothing(
    sandbox_env: dict[str, str], pws_local: Workspace
) -> None:
    uid = pws_local.integrations.create("xero", name="Acme").integration.uid
    import asyncio

    asyncio.run(connect(pws_local, uid))
    done = run_intdash("sync", uid, "--json", env=sandbox_env)
    assert done.returncode == 0, done.stderr
    assert "sdc" not in json.loads(done.stdout)
    assert outbox(pws_local) == []


@pytest.fixture
def pws_local(sandbox_env: dict[str, str]) -> Iterator[Workspace]:
    ws = Workspace.open(load_settings(), actor="tester")
    yield ws
    ws.close()


# -- migrations -------------------------------------------------------------------------------


def test_autogenerate_sees_the_fiscal_tables(tmp_path: Path) -> None:
    """``alembic check`` (the command line's autogenerate, in a process of its own, which
    imports only what env.py imports) finds the migrations and the models agree."""
    root = Path(__file__).resolve().parent.parent
    code = (
        "import sys\n"
        "from alembic import command\n"
        "from alembic.config import Config\n"
        "config = Config()\n"
        "config.set_main_option('script_location', sys.argv[1])\n"
        "config.set_main_option('sqlalchemy.url', 'sqlite:///' + sys.argv[2])\n"
        "command.upgrade(config, 'head')\n"
        "command.check(config)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(root / "intdash/core/migrations"),
         str(tmp_path / "check.db")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
