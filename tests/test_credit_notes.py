"""Credit notes: a sales credit note approved at its source is fiscalized as a credit, its own
amounts refunded against the standing sale of the invoice it credits, which it names; it waits
while that invoice has no standing sale, and is credited as soon as it has one. With the V-SDC, a
credit is signed as a Refund of its own items naming the original's SDC number and time."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from openapi_core import OpenAPI
from sqlalchemy import update

from intdash.core.db import Database
from intdash.core.fiscal import record_hash
from intdash.core.invoices import InvoiceData, InvoiceKind, LineItem, SourceState
from intdash.core.migrations import HEAD
from intdash.core.models import FiscalRecord
from intdash.core.workspace import Workspace
from intdash.providers.http import httpx
from intdash.providers.paging import CURSOR_LENGTH, STREAMS_LENGTH, join_streams, split_streams
from intdash.sandbox.vsdc_server import VsdcServer
from tests.conftest import FakeClock
from tests.test_fiscal_rules import listed, records, release, sale, source, upsert, usage
from tests.test_fiscal_vsdc import OUTBOX, drain, rows, vws
from tests.test_ingest import LiveServer, bearer, client, conforms, custom, invoice, server, spec
from tests.vsdc import vsdc_emulator, vsdc_pki

__all__ = ["client", "server", "spec", "vsdc_emulator", "vsdc_pki", "vws"]  # fixtures
RECORDS = FiscalRecord.__table__  # type: ignore[attr-defined]


def credit_note(
    n: int,
    credits: str | None,
    *,
    total: str = "23.00",
    tax: str = "3.00",
    state: SourceState = SourceState.APPROVED,
    status: str = "AUTHORISED",
) -> InvoiceData:
    return replace(
        sale(100 + n, total=total, tax=tax, state=state, status=status),
        external_id=f"cn-{n}",
        number=f"CN-{n:04d}",
        kind=InvoiceKind.CREDIT_NOTE,
        credits=credits,
    )


def fiscal_status(ws: Workspace, uid: str, external_id: str) -> str:
    return listed(ws, uid)[external_id].fiscal_status


def test_a_credit_note_is_credited_against_its_invoices_sale(ws: Workspace) -> None:
    uid = source(ws)
    upsert(ws, uid, sale(1, total="115.00", tax="15.00"))
    result = upsert(ws, uid, credit_note(1, "ext-1"), credit_note(2, "ext-1", total="11.50"))
    # two credits in part: each its own record naming the one sale, which still stands
    assert records(ws) == [
        (1, "ext-1", "sale", None),
        (2, "cn-1", "credit", 1),
        (3, "cn-2", "credit", 1),
    ]
    assert result.refunded == 2 and result.fiscalized == 0
    assert fiscal_status(ws, uid, "ext-1") == "fiscalized"
    assert fiscal_status(ws, uid, "cn-1") == fiscal_status(ws, uid, "cn-2") == "fiscalized"
    assert listed(ws, uid)["cn-1"].kind == "credit note"
    assert usage(ws, uid) == 1  # a credit note never counts against the month's limit
    # once credited it stands: an edit, or the same again, records nothing more
    upsert(ws, uid, credit_note(1, "ext-1"), replace(credit_note(2, "ext-1"), contact="Other"))
    assert len(records(ws)) == 3
    assert ws.invoices.verify().ok


def test_the_credit_records_the_credit_notes_own_amounts(ws: Workspace) -> None:
    uid = source(ws)
    upsert(ws, uid, sale(1))
    upsert(ws, uid, credit_note(1, "ext-1", total="23.00", tax="3.00"))
    with ws.db.read() as session:
        sold, credit = session.connection().execute(RECORDS.select().order_by(RECORDS.c.seq))
    assert credit.invoice_digest != sold.invoice_digest  # its own, not the sale's
    assert credit.hash == record_hash(
        credit.seq, sold.hash, credit.recorded_at, credit.invoice_digest, "credit", sold.seq
    )


def test_a_credit_note_waits_for_its_invoice_then_is_credited(ws: Workspace) -> None:
    uid = source(ws)
    # naming none yet, and naming an invoice not stored yet
    upsert(ws, uid, credit_note(1, None), credit_note(2, "ext-1"))
    assert fiscal_status(ws, uid, "cn-1") == fiscal_status(ws, uid, "cn-2") == "awaiting invoice"
    assert records(ws) == []
    # the invoice arrives: the credit note that waited for it is credited in the same write
    upsert(ws, uid, sale(1))
    assert records(ws) == [(1, "ext-1", "sale", None), (2, "cn-2", "credit", 1)]
    assert fiscal_status(ws, uid, "cn-2") == "fiscalized"
    # the other is allocated later at its source
    upsert(ws, uid, credit_note(1, "ext-1"))
    assert records(ws)[-1] == (3, "cn-1", "credit", 1)
    assert fiscal_status(ws, uid, "cn-1") == "fiscalized"
    assert ws.invoices.verify().ok


def test_an_invoice_and_its_credit_note_in_one_batch_in_either_order(ws: Workspace) -> None:
    uid = source(ws)
    upsert(ws, uid, credit_note(1, "ext-1"), sale(1))  # as a push of both might bring them
    assert records(ws) == [(1, "ext-1", "sale", None), (2, "cn-1", "credit", 1)]
    assert ws.invoices.verify().ok


def test_a_credit_note_of_a_held_invoice_waits_for_its_release(
    ws: Workspace, clock: FakeClock
) -> None:
    uid = source(ws, limit=1)
    upsert(ws, uid, sale(1), sale(2))  # the second is over the month's limit: held
    upsert(ws, uid, credit_note(1, "ext-2"))
    assert fiscal_status(ws, uid, "cn-1") == "awaiting invoice"
    clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # a new month: room again
    assert release(ws, uid) == 1
    assert records(ws)[-2:] == [(2, "ext-2", "sale", None), (3, "cn-1", "credit", 2)]
    assert fiscal_status(ws, uid, "cn-1") == "fiscalized"


def test_drafts_and_voids_of_credit_notes_are_not_credited(ws: Workspace) -> None:
    uid = source(ws)
    upsert(ws, uid, sale(1))
    upsert(
        ws,
        uid,
        credit_note(1, "ext-1", state=SourceState.PENDING, status="DRAFT"),
        credit_note(2, "ext-1", state=SourceState.VOID, status="VOIDED"),
    )
    assert fiscal_status(ws, uid, "cn-1") == "awaiting approval"
    assert fiscal_status(ws, uid, "cn-2") == "voided"
    assert len(records(ws)) == 1
    upsert(ws, uid, credit_note(1, "ext-1"))  # approved
    assert records(ws)[-1] == (2, "cn-1", "credit", 1)


def test_a_credit_note_of_a_refunded_invoice_waits(ws: Workspace) -> None:
    uid = source(ws)
    upsert(ws, uid, sale(1))
    upsert(ws, uid, replace(sale(1), state=SourceState.VOID, source_status="VOIDED"))
    upsert(ws, uid, credit_note(1, "ext-1"))
    assert fiscal_status(ws, uid, "cn-1") == "awaiting invoice"  # nothing standing to credit
    assert [r[2] for r in records(ws)] == ["sale", "refund"]


def test_the_register_check_refuses_a_credit_of_its_own_invoice(ws: Workspace) -> None:
    uid = source(ws)
    upsert(ws, uid, sale(1))
    upsert(ws, uid, credit_note(1, "ext-1"))
    with ws.db.write() as session:  # the credit made to name a record of its own invoice
        conn = session.connection()
        credit = conn.execute(RECORDS.select().where(RECORDS.c.seq == 2)).one()
        sold = conn.execute(RECORDS.select().where(RECORDS.c.seq == 1)).one()
        conn.execute(update(RECORDS).where(RECORDS.c.seq == 2).values(invoice_id=sold.invoice_id))
        assert credit.kind == "credit"
    found = ws.invoices.verify()
    assert (found.first_broken, found.problem) == (
        2,
        "record 2 credits no earlier sale of another invoice",
    )


def test_a_credit_is_signed_as_a_refund_of_its_own_items_naming_the_original(
    vws: Workspace, vsdc_emulator: VsdcServer
) -> None:
    uid = source(vws)
    line = LineItem(
        "Flat white", Decimal(4), Decimal("5.00"), Decimal("20.00"), tax_rate=Decimal(15)
    )
    # the credit note and its invoice in one batch: the credit waits for the sale's signature
    upsert(vws, uid, sale(1), replace(credit_note(1, "ext-1"), items=(line,)))
    assert drain(vws) == 2
    sold, credit = rows(vws)
    assert (sold.kind, credit.kind) == ("sale", "credit")
    assert credit.refers_to == sold.id and credit.status == "signed", credit.error
    request = json.loads(credit.request)
    assert request["TransactionType"] == 1  # a refund
    assert request["ReferentDocumentNumber"] == sold.sdc_invoice_number
    assert request["ReferentDocumentDT"] == sold.sdc_time
    assert request["InvoiceNumber"] == "CN-0001"
    assert [i["Name"] for i in request["Items"]] == ["Flat white"]
    assert sum(Decimal(str(i["TotalAmount"])) for i in request["Items"]) == Decimal("23.00")
    assert json.loads(credit.response)["invoiceNumber"] == credit.sdc_invoice_number
    assert vsdc_emulator.emulator.count() == 2
    assert vws.invoices.verify().ok


def test_a_credit_waits_while_its_sale_is_refused_by_the_sdc(
    vws: Workspace, vsdc_emulator: VsdcServer
) -> None:
    uid = source(vws)
    upsert(vws, uid, sale(1))
    with vws.db.write() as session:  # the sale refused (as by an unmapped code)
        session.connection().execute(update(OUTBOX).values(status="failed", error="refused"))
    upsert(vws, uid, credit_note(1, "ext-1"))
    assert drain(vws) == 0  # never a refund naming a sale the SDC has not signed
    assert [r.status for r in rows(vws)] == ["failed", "pending"]


def test_a_custom_integration_pushes_a_credit_note(
    server: tuple[Workspace, LiveServer], client: httpx.Client, spec: OpenAPI
) -> None:
    ws, live = server
    _, key = custom(ws)
    url = f"{live.url}/v1/invoices"
    note = invoice(7, kind="credit note", credits="ERP-1", total="11.50", tax="1.50")
    # the credit note before its invoice: kept, awaiting invoice
    early = client.post(url, json=note, headers=bearer(key))
    assert early.status_code == 201, early.text
    assert (early.json()["fiscal_status"], early.json()["credits"]) == ("awaiting invoice", "ERP-1")
    conforms(spec, "POST", "/v1/invoices", early)
    sold = client.post(url, json=invoice(1), headers=bearer(key)).json()
    read = client.get(f"{url}/ERP-7", headers=bearer(key))
    body = read.json()
    assert (body["kind"], body["fiscal_status"]) == ("credit note", "fiscalized")
    credit = body["fiscal_record"]
    assert (credit["kind"], credit["refers_to"]) == ("credit", sold["fiscal_record"]["seq"])
    conforms(spec, "GET", "/v1/invoices/ERP-7", read)
    # only a credit note credits an invoice: named, never a traceback
    wrong = client.post(url, json=invoice(8, credits="ERP-1"), headers=bearer(key))
    assert wrong.status_code == 422
    assert "only a credit note" in wrong.text


def test_migration_0015_keeps_invoices_and_cursors_and_goes_back(
    db_url: str, tmp_path: Path
) -> None:
    (tmp_path / "home").mkdir(exist_ok=True)
    db = Database(db_url)
    config = db._alembic_config()
    try:
        with db.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0014")
        old_cursor = "2026-11-30T23:59:59+00:00 inv-1@1764547199000000#a1b2c3d4e5f6"
        with db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO integrations (id, uid, type, name, created_at, settings, "
                    "sync_enabled, cursor) VALUES (1, 'xero-abcdef', 'xero', 'Kowhai', "
                    ":now, '{}', true, :cursor)"
                ),
                {"now": datetime(2026, 12, 1), "cursor": old_cursor},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO integrations (id, uid, type, name, created_at, settings, "
                    "sync_enabled, cursor) VALUES (2, 'myob-abcdef', 'myob', 'Bondi', "
                    ":now, '{}', true, :cursor)"
                ),
                {"now": datetime(2026, 12, 1), "cursor": old_cursor},
            )
            # a sale of each, and MYOB's credit note read as a sale of negative amounts
            for integration, external_id, total in ((1, "inv-1", 115), (2, "m-1", -23)):
                conn.execute(
                    sa.text(
                        "INSERT INTO invoices (integration_id, external_id, kind, currency, "
                        "total, fiscal_status, received_at, updated_at) VALUES (:i, :e, "
                        "'sales', 'FJD', :total, 'fiscalized', :now, :now)"
                    ),
                    {
                        "i": integration,
                        "e": external_id,
                        "total": total * 10_000 if db.engine.dialect.name == "sqlite" else total,
                        "now": datetime(2026, 12, 1),
                    },
                )
        assert db.migrate() is True and db.current_revision() == HEAD
        with db.engine.begin() as conn:
            cursors = conn.execute(sa.text("SELECT id, cursor FROM integrations ORDER BY id"))
            # the Xero one's: the invoices' part alone, read as before; the MYOB one's cleared,
            # its sales to be read again (its negative sale, as the credit note it is)
            assert [tuple(r) for r in cursors] == [(1, old_cursor), (2, None)]
            assert split_streams(old_cursor) == (old_cursor, None)
            kept = conn.execute(
                sa.text("SELECT external_id, credits FROM invoices ORDER BY external_id")
            ).all()
            assert [tuple(r) for r in kept] == [("inv-1", None), ("m-1", None)]
            both = join_streams(old_cursor.ljust(CURSOR_LENGTH, "x"), "c" * CURSOR_LENGTH)
            assert both is not None and len(both) == STREAMS_LENGTH
            conn.execute(sa.text("UPDATE integrations SET cursor = :c WHERE id = 1"), {"c": both})
        with db.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0014")
        with db.engine.connect() as conn:
            back = conn.execute(sa.text("SELECT cursor FROM integrations WHERE id = 1")).scalar()
        assert back == old_cursor.ljust(CURSOR_LENGTH, "x")  # the credit notes' part dropped
    finally:
        db.engine.dispose()


def test_a_credit_note_listed_again_without_its_tax_keeps_what_it_credits(ws: Workspace) -> None:
    uid = source(ws)
    upsert(ws, uid, sale(1), credit_note(1, "ext-1"))
    # Zoho's list tells neither tax nor the invoice: what was read before is kept, not wiped
    listed_again = replace(credit_note(1, None), tax=None, subtotal=None, contact="Kowhai Cafe Ltd")
    upsert(ws, uid, listed_again)
    row = listed(ws, uid)["cn-1"]
    assert (row.credits, row.fiscal_status, row.contact) == (
        "ext-1",
        "fiscalized",
        "Kowhai Cafe Ltd",
    )
    assert len(records(ws)) == 2


def test_a_credit_note_stored_as_a_sale_before_is_refunded_then_credited(ws: Workspace) -> None:
    uid = source(ws)
    # as MYOB's negative sales were read before credit notes were known: a sale of its own
    upsert(ws, uid, sale(1), replace(sale(2, total="-23.00", tax="-3.00"), external_id="cn-1"))
    assert records(ws) == [(1, "ext-1", "sale", None), (2, "cn-1", "sale", None)]
    upsert(ws, uid, credit_note(1, "ext-1"))  # read again as what it is
    assert records(ws)[2:] == [(3, "cn-1", "refund", 2), (4, "cn-1", "credit", 1)]
    row = listed(ws, uid)["cn-1"]
    assert (row.kind, row.fiscal_status, row.credits) == ("credit note", "fiscalized", "ext-1")
    assert ws.invoices.verify().ok


def test_only_a_sales_invoice_is_credited(ws: Workspace) -> None:
    uid = source(ws)
    upsert(ws, uid, sale(1), credit_note(1, "ext-1"))
    bill = replace(sale(2), kind=InvoiceKind.PURCHASE)
    # naming a credit note (in its own push, and in one batch), or a purchase: it waits
    upsert(ws, uid, credit_note(2, "cn-1"))
    upsert(ws, uid, bill, credit_note(3, "cn-1"), credit_note(4, "ext-2"))
    assert [fiscal_status(ws, uid, f"cn-{n}") for n in (2, 3, 4)] == ["awaiting invoice"] * 3
    assert records(ws) == [(1, "ext-1", "sale", None), (2, "cn-1", "credit", 1)]
    assert ws.invoices.verify().ok


def test_a_waiting_credit_note_listed_without_its_tax_keeps_its_invoice(ws: Workspace) -> None:
    uid = source(ws)
    upsert(ws, uid, credit_note(1, "ext-1"))  # its invoice not here yet: it waits
    upsert(ws, uid, replace(credit_note(1, None), tax=None, subtotal=None, total=Decimal("24")))
    row = listed(ws, uid)["cn-1"]
    assert (row.fiscal_status, row.credits) == ("awaiting tax", "ext-1")


def test_a_refused_sale_refunded_before_it_was_signed_is_withdrawn(
    vws: Workspace, vsdc_emulator: VsdcServer
) -> None:
    uid = source(vws)
    upsert(vws, uid, sale(1))
    # MYOB's credit note as it was read before: a sale of negative amounts, which the SDC refuses
    upsert(vws, uid, replace(sale(2, total="-23.00", tax="-3.00"), external_id="cn-1"))
    drain(vws)
    assert [(r.kind, r.status) for r in rows(vws)] == [("sale", "signed"), ("sale", "failed")]
    upsert(vws, uid, credit_note(1, "ext-1"))  # read again as the credit note it is
    assert drain(vws) == 1
    found = [(r.kind, r.status) for r in rows(vws)]
    # nothing to refund at the SDC (it never signed that sale): withdrawn; the credit is signed
    assert found == [("sale", "signed"), ("sale", "withdrawn"), ("credit", "signed")]
    assert vws.fiscal.counts().failed == 0
    assert vws.invoices.verify().ok
