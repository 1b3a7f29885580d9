"""Invoices synced from a platform, signed by the (emulated) V-SDC end to end: Xero's invoices
with their lines, over real OAuth, real HTTP and real mutual TLS; a void at Xero becomes a refund
that names the original's SDC number and time, and so does a credit note allocated at Xero (a
refund of its own items)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from intdash.core.config import load_settings
from intdash.core.fiscal_models import FiscalOutbox
from intdash.core.models import Invoice, RunOutcome
from intdash.core.workspace import Workspace
from intdash.sandbox.server import Sandbox
from intdash.sandbox.vsdc_server import VsdcServer
from intdash.sync.engine import SyncEngine
from intdash.sync.fiscalize import FiscalSender, configure
from tests.providers import connect, redirect_uri, sandbox_env
from tests.vsdc import vsdc_emulator, vsdc_pki

__all__ = ["redirect_uri", "sandbox_env", "vsdc_emulator", "vsdc_pki"]  # fixtures

OUTBOX = FiscalOutbox.__table__  # type: ignore[attr-defined]
INVOICES = Invoice.__table__  # type: ignore[attr-defined]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(size=24).start()  # few invoices: each is signed, one request each
    yield box
    box.stop()


@pytest.fixture
def vws(
    sandbox_env: dict[str, str], vsdc_emulator: VsdcServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    monkeypatch.setenv("INTDASH_FISCAL__REGISTER", "vsdc")
    for name, value in vsdc_emulator.settings().items():
        monkeypatch.setenv(name, value)
    ws = Workspace.open(load_settings(), actor="tester")
    asyncio.run(configure(ws, vsdc_emulator.pfx, vsdc_emulator.password, vsdc_emulator.pac))
    yield ws
    ws.close()


def outbox(ws: Workspace) -> list[Any]:
    with ws.db.read() as session:
        return list(session.connection().execute(select(OUTBOX).order_by(OUTBOX.c.id)))


def invoices(ws: Workspace) -> dict[int, Any]:
    with ws.db.read() as session:
        return {r.id: r for r in session.connection().execute(select(INVOICES))}


async def test_a_synced_xero_invoice_is_signed_and_a_void_refunded_naming_it(
    vws: Workspace, sandbox: Sandbox, vsdc_emulator: VsdcServer
) -> None:
    vws.plans.set("scale")
    uid = vws.integrations.create("xero").integration.uid
    await connect(vws, uid)
    vws.fiscal.setup.map_code(uid, "OUTPUT2", "A")  # Xero's 15 % GST on sales: label A
    assert (await SyncEngine(vws).run(uid)).outcome is RunOutcome.OK
    await FiscalSender(vws).drain()
    rows = outbox(vws)
    stored = invoices(vws)
    sold = [r for r in rows if r.kind == "sale"]
    assert sold and all(r.status == "signed" for r in rows), [r.error for r in rows]
    assert {stored[r.invoice_id].fiscal_status for r in sold} == {"fiscalized"}
    fiscalized = [i for i in stored.values() if i.fiscal_status == "fiscalized"]
    assert len(sold) == len(fiscalized)  # every approved sales invoice, once; drafts never
    assert vsdc_emulator.emulator.count() == len(sold)
    for row in sold:
        invoice = stored[row.invoice_id]
        request = json.loads(row.request)
        lines = json.loads(invoice.items)
        assert [item["Name"] for item in request["Items"]] == [line["name"] for line in lines]
        total = sum((Decimal(str(item["TotalAmount"])) for item in request["Items"]), Decimal(0))
        assert total == invoice.total  # prices with tax: the lines make the invoice's total
        assert vsdc_emulator.emulator.verify(json.loads(row.response))
        assert row.verification_url and row.sdc_invoice_number

    # voided at Xero: the next sync refunds it, naming what the SDC signed
    index = sandbox.xero.dataset.index_of(stored[sold[0].invoice_id].external_id)
    assert index is not None
    sandbox.xero.dataset.void([index])
    assert (await SyncEngine(vws).run(uid)).outcome is RunOutcome.OK
    await FiscalSender(vws).drain()
    [refund] = [r for r in outbox(vws) if r.kind == "refund"]
    assert refund.status == "signed", refund.error
    request = json.loads(refund.request)
    assert request["TransactionType"] == 1
    assert request["ReferentDocumentNumber"] == sold[0].sdc_invoice_number
    assert request["ReferentDocumentDT"] == sold[0].sdc_time
    assert vws.invoices.verify().ok


def test_a_round_of_unmapped_codes_does_not_stop_the_rows_after_it(
    vws: Workspace, vsdc_emulator: VsdcServer
) -> None:
    from dataclasses import replace

    from intdash.core.invoices import LineItem
    from intdash.sync.fiscalize import BATCH
    from tests.test_fiscal_rules import sale, source, upsert

    uid = source(vws)
    unmapped = (LineItem("Odd", Decimal(1), Decimal("115.00"), Decimal("115.00"),
                         tax_code="ODD", tax_inclusive=True),)  # fmt: skip
    # a whole round's worth of invoices that fail as their requests are built, then good ones
    upsert(vws, uid, *(replace(sale(n), items=unmapped) for n in range(BATCH + 5)))
    upsert(vws, uid, *(sale(n) for n in range(1000, 1003)))
    sent = asyncio.run(FiscalSender(vws).drain())
    statuses = [r.status for r in outbox(vws)]
    assert statuses.count("failed") == BATCH + 5
    assert statuses.count("signed") == 3 == sent
    assert "ODD" in next(r.error for r in outbox(vws) if r.status == "failed")


def test_the_sdc_answering_its_status_after_an_outage_makes_what_waited_due(
    vws: Workspace, vsdc_emulator: VsdcServer
) -> None:
    from tests.test_fiscal_rules import sale, source, upsert

    uid = source(vws)
    upsert(vws, uid, sale(1))
    vsdc_emulator.faults.down = True
    assert asyncio.run(FiscalSender(vws).drain()) == 0
    [waiting] = outbox(vws)
    assert waiting.status == "pending" and waiting.next_attempt_at > vws.clock()
    vsdc_emulator.faults.down = False
    asyncio.run(FiscalSender(vws).refresh_labels())  # its status read first, as a round does
    [due] = outbox(vws)
    assert due.next_attempt_at <= vws.clock()
    assert vws.fiscal.setup.unavailable() is None


async def test_a_xero_credit_note_is_signed_as_a_refund_naming_the_invoice_it_credits(
    vws: Workspace, sandbox: Sandbox, vsdc_emulator: VsdcServer
) -> None:
    vws.plans.set("scale")
    uid = vws.integrations.create("xero").integration.uid
    await connect(vws, uid)
    vws.fiscal.setup.map_code(uid, "OUTPUT2", "A")
    assert (await SyncEngine(vws).run(uid)).outcome is RunOutcome.OK
    await FiscalSender(vws).drain()
    stored = invoices(vws)
    sold = {stored[r.invoice_id].external_id: r for r in outbox(vws) if r.kind == "sale"}
    due = next(
        i for i in stored.values() if i.external_id in sold and i.source_status == "AUTHORISED"
    )
    # raised against it at Xero and allocated to it: the next sync credits it
    index = sandbox.xero.dataset.index_of(due.external_id)
    assert index is not None
    note = sandbox.xero.credit_notes.create(invoice=index)
    sandbox.xero.credit_notes.allocate(note.id, index)
    assert (await SyncEngine(vws).run(uid)).outcome is RunOutcome.OK
    await FiscalSender(vws).drain()
    [credit] = [r for r in outbox(vws) if r.kind == "credit"]
    assert credit.status == "signed", credit.error
    stored_note = invoices(vws)[credit.invoice_id]
    assert (stored_note.kind, stored_note.credits) == ("credit note", due.external_id)
    assert stored_note.number == note.number
    request = json.loads(credit.request)
    original = sold[due.external_id]
    assert request["TransactionType"] == 1
    assert request["ReferentDocumentNumber"] == original.sdc_invoice_number
    assert request["ReferentDocumentDT"] == original.sdc_time
    lines = json.loads(stored_note.items)
    assert [item["Name"] for item in request["Items"]] == [line["name"] for line in lines]
    total = sum((Decimal(str(item["TotalAmount"])) for item in request["Items"]), Decimal(0))
    assert total == stored_note.total == note.total  # its own amount, not the invoice's
    assert vsdc_emulator.emulator.verify(json.loads(credit.response))
    assert vws.invoices.verify().ok
