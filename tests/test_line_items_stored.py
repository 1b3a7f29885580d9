"""Line items, the buyer's tax id and payments kept with each invoice as its platform has them,
through a real sync (and kept when a later listing does not tell them again)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from sqlmodel import select

from intdash.core.invoices import LineItem, Payment, items_from_json, payments_from_json
from intdash.core.models import Invoice, RunOutcome
from intdash.core.workspace import Workspace
from intdash.sandbox.server import Sandbox
from intdash.sync.engine import SyncEngine
from tests.providers import connect, fetch, pws, redirect_uri, sandbox, sandbox_env
from tests.test_line_items import _invoice

__all__ = ["pws", "redirect_uri", "sandbox", "sandbox_env"]  # fixtures


async def test_a_synced_xero_invoice_keeps_its_lines_buyer_and_payments(
    pws: Workspace, sandbox: Sandbox
) -> None:
    pws.plans.set("scale")
    uid = pws.integrations.create("xero").integration.uid
    service = await connect(pws, uid)
    assert (await SyncEngine(pws).run(uid)).outcome is RunOutcome.OK
    told, _ = await fetch(service, uid)
    with pws.db.read() as session:
        stored = {i.external_id: i for i in session.exec(select(Invoice))}
    assert len(stored) == len(told)
    with_lines = [d for d in told if d.items]
    assert with_lines and any(d.buyer_tax_id for d in told) and any(d.payments for d in told)
    for data in told:
        row = stored[data.external_id]
        assert (items_from_json(row.items) if row.items else ()) == data.items
        assert row.buyer_tax_id == data.buyer_tax_id
        assert (payments_from_json(row.payments) if row.payments else ()) == data.payments


async def test_a_listing_without_tax_keeps_the_lines_read_before(pws: Workspace) -> None:
    pws.plans.set("scale")
    uid = pws.integrations.create("custom").integration.uid
    with pws.db.read() as session:
        integration_id = pws.integrations.find(session, uid).id
    assert integration_id is not None
    read = _invoice(
        items=(LineItem("Consulting", Decimal(1), Decimal("100.00"), Decimal("100.00"),
                        tax_code="ZR", tax_amount=Decimal("15.00")),),
        buyer_tax_id="123-456-789",
        payments=(Payment(Decimal("115.00"), "Cash"),),
    )  # fmt: skip
    listed = replace(read, subtotal=None, tax=None, items=(), payments=(), buyer_tax_id=None)
    now = pws.clock()
    with pws.db.write() as session:
        pws.invoices.upsert(session.connection(), integration_id, [read], now)
    with pws.db.write() as session:
        result = pws.invoices.upsert(session.connection(), integration_id, [listed], now)
    assert result.updated == 0
    with pws.db.read() as session:
        row = session.exec(select(Invoice)).one()
    assert row.items is not None and items_from_json(row.items) == read.items
    assert row.buyer_tax_id == read.buyer_tax_id
