"""What is fiscalized: approved sales invoices only, once within the monthly limit; a void after
fiscalization is a refund naming the original sale, and new amounts are a refund and a new sale."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from openapi_core import OpenAPI
from sqlalchemy import insert, select, text

from intdash.core.fiscal import ToFiscalize, record_hash
from intdash.core.invoices import InvoiceData, InvoiceKind, SourceState
from intdash.core.models import FiscalRecord, RecordKind
from intdash.core.services.invoices import BatchResult, InvoiceRow
from intdash.core.workspace import Workspace
from intdash.providers.http import httpx
from tests.conftest import FakeClock, run_intdash
from tests.test_ingest import LiveServer, bearer, client, conforms, custom, invoice, server, spec

__all__ = ["client", "server", "spec"]  # fixtures


def sale(
    n: int = 1,
    *,
    state: SourceState = SourceState.APPROVED,
    status: str = "AUTHORISED",
    total: str = "115.00",
    tax: str = "15.00",
    currency: str = "NZD",
    contact: str = "Kowhai Cafe",
    due: date = date(2026, 11, 30),
    kind: InvoiceKind = InvoiceKind.SALES,
) -> InvoiceData:
    return InvoiceData(
        external_id=f"ext-{n}",
        number=f"INV-{n:05d}",
        kind=kind,
        contact=contact,
        issue_date=date(2026, 11, 1),
        due_date=due,
        currency=currency,
        subtotal=Decimal(total) - Decimal(tax),
        tax=Decimal(tax),
        total=Decimal(total),
        source_status=status,
        source_updated_at=None,
        state=state,
    )


def draft(n: int = 1, status: str = "DRAFT", **changed: Any) -> InvoiceData:
    return sale(n, state=SourceState.PENDING, status=status, **changed)


def voided(n: int = 1, status: str = "VOIDED", **changed: Any) -> InvoiceData:
    return sale(n, state=SourceState.VOID, status=status, **changed)


def source(ws: Workspace, limit: int = 1000, kind: str = "custom") -> str:
    ws.plans.set("scale", monthly_limit=limit)
    return ws.integrations.create(kind).integration.uid


def upsert(ws: Workspace, uid: str, *invoices: InvoiceData) -> BatchResult:
    """Through the same upsert a sync and a push use."""
    with ws.db.write() as session:
        row = ws.integrations.find(session, uid)
        assert row.id is not None
        return ws.invoices.upsert(session.connection(), row.id, list(invoices), ws.clock())


def records(ws: Workspace) -> list[tuple[int, str, str, int | None]]:
    """The register: (seq, external id, kind, refers_to)."""
    with ws.db.read() as session:
        rows = session.execute(
            text(
                "SELECT r.seq, i.external_id, r.kind, r.refers_to FROM fiscal_records r "
                "JOIN invoices i ON i.id = r.invoice_id ORDER BY r.seq"
            )
        ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def listed(ws: Workspace, uid: str) -> dict[str, InvoiceRow]:
    rows = list(ws.invoices.iter_all(uid))
    found = {r.external_id: r for r in rows}
    assert len(found) == len(rows)  # each invoice once
    return found


def status(ws: Workspace, uid: str, n: int = 1) -> str:
    return listed(ws, uid)[f"ext-{n}"].fiscal_status


def usage(ws: Workspace, uid: str) -> int:
    return ws.integrations.get(uid).invoices_this_month


def release(ws: Workspace, uid: str) -> int:
    with ws.db.write() as session:
        row = ws.integrations.find(session, uid)
        assert row.id is not None
        return ws.invoices.release_held(session.connection(), row.id, ws.clock())


def test_a_draft_awaits_approval_then_is_fiscalized_once(ws: Workspace) -> None:
    uid = source(ws)
    upsert(ws, uid, draft(1), draft(2, "SUBMITTED"))
    assert [status(ws, uid, 1), status(ws, uid, 2)] == ["awaiting approval"] * 2
    assert (records(ws), usage(ws, uid)) == ([], 0)

    upsert(ws, uid, draft(1, contact="Kowhai Cafe Ltd"))
    assert (status(ws, uid), records(ws)) == ("awaiting approval", [])
    result = upsert(ws, uid, sale(1))  # approved at the source
    assert (result.updated, result.fiscalized) == (1, 1)
    assert status(ws, uid) == "fiscalized"
    assert records(ws) == [(1, "ext-1", "sale", None)]
    upsert(ws, uid, sale(1, status="PAID"))  # paid: nothing fiscal changed
    assert records(ws) == [(1, "ext-1", "sale", None)]
    assert usage(ws, uid) == 1
    assert ws.invoices.verify().ok


def test_approval_without_room_holds_and_a_new_void_is_never_fiscalized(
    ws: Workspace, clock: FakeClock
) -> None:
    uid = source(ws, limit=1)
    upsert(ws, uid, sale(1), draft(2), voided(3))
    assert [status(ws, uid, n) for n in (1, 2, 3)] == ["fiscalized", "awaiting approval", "voided"]
    assert upsert(ws, uid, sale(2)).held == 1  # approved, but the month is full
    assert status(ws, uid, 2) == "held"
    clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert release(ws, uid) == 1
    assert [status(ws, uid, n) for n in (1, 2, 3)] == ["fiscalized", "fiscalized", "voided"]
    assert [r[1] for r in records(ws)] == ["ext-1", "ext-2"]


def test_a_void_after_fiscalization_is_one_refund_naming_the_sale(ws: Workspace) -> None:
    uid = source(ws)
    upsert(ws, uid, sale(1), sale(2))
    result = upsert(ws, uid, voided(1))
    assert (result.refunded, result.fiscalized) == (1, 0)
    assert status(ws, uid, 1) == "refunded" and status(ws, uid, 2) == "fiscalized"
    assert records(ws) == [(1, "ext-1", "sale", None), (2, "ext-2", "sale", None),
                           (3, "ext-1", "refund", 1)]  # fmt: skip
    # voided again, or edited while void: never a second refund
    upsert(ws, uid, voided(1, contact="Someone else"))
    upsert(ws, uid, voided(1, "DELETED", total="1.00", tax="0"))
    assert len(records(ws)) == 3 and status(ws, uid, 1) == "refunded"
    assert usage(ws, uid) == 2  # a refund does not count, nor take back
    check = ws.invoices.verify()
    assert (check.ok, check.records) == (True, 3)
    row = listed(ws, uid)["ext-1"]
    assert (row.fiscal_seq, row.refund_seq, row.record_seq) == (1, 3, 3)


def test_new_amounts_are_a_refund_and_a_new_sale_counted_once(ws: Workspace) -> None:
    uid = source(ws)
    upsert(ws, uid, sale(1))
    result = upsert(ws, uid, sale(1, total="230.00", tax="30.00"))
    assert (result.refunded, result.fiscalized) == (1, 0)
    assert status(ws, uid) == "fiscalized"
    assert records(ws) == [(1, "ext-1", "sale", None), (2, "ext-1", "refund", 1),
                           (3, "ext-1", "sale", None)]  # fmt: skip
    upsert(ws, uid, sale(1, total="230.00", tax="30.00", currency="AUD"))  # currency too
    assert records(ws)[3:] == [(4, "ext-1", "refund", 3), (5, "ext-1", "sale", None)]
    # what a sale does not record makes no record: contact, due date, paid
    upsert(ws, uid, sale(1, total="230.00", tax="30.00", currency="AUD", contact="Tui Ltd",
                         due=date(2026, 12, 24), status="PAID"))  # fmt: skip
    assert len(records(ws)) == 5
    assert usage(ws, uid) == 1  # one invoice counts once
    assert ws.invoices.verify().ok
    row = listed(ws, uid)["ext-1"]  # listed once, with its standing sale
    assert (row.fiscal_status, row.fiscal_seq, row.refund_seq) == ("fiscalized", 5, 4)


def test_refunded_then_issued_again_is_fiscalized_again_uncounted(ws: Workspace) -> None:
    """Back to a draft is no longer issued: its sale is refunded, as a void's is; issued again,
    it is fiscalized again without counting again (and without room)."""
    uid = source(ws, limit=1)
    upsert(ws, uid, sale(1))
    upsert(ws, uid, draft(1))
    assert status(ws, uid) == "refunded"
    upsert(ws, uid, sale(1, total="120.00"))
    assert status(ws, uid) == "fiscalized" and usage(ws, uid) == 1
    assert records(ws) == [(1, "ext-1", "sale", None), (2, "ext-1", "refund", 1),
                           (3, "ext-1", "sale", None)]  # fmt: skip
    assert ws.invoices.verify().ok


def test_purchase_invoices_are_never_fiscalized(ws: Workspace) -> None:
    uid = source(ws)
    bill = InvoiceKind.PURCHASE
    upsert(ws, uid, sale(0, kind=bill), draft(1, kind=bill), voided(2, kind=bill))
    upsert(ws, uid, sale(0, kind=InvoiceKind.PURCHASE, total="999.00"))
    assert [status(ws, uid, n) for n in range(3)] == ["received"] * 3
    assert (records(ws), usage(ws, uid)) == ([], 0)
    # a sales invoice made a bill at its source is no longer a sale: refunded
    upsert(ws, uid, sale(7))
    upsert(ws, uid, sale(7, kind=InvoiceKind.PURCHASE))
    assert status(ws, uid, 7) == "refunded"
    assert [r[2] for r in records(ws)] == ["sale", "refund"]


def test_a_held_invoice_voided_or_back_to_draft_is_never_released(
    ws: Workspace, clock: FakeClock
) -> None:
    uid = source(ws, limit=1)
    upsert(ws, uid, sale(1), sale(2), sale(3), sale(4))
    assert [status(ws, uid, n) for n in (2, 3, 4)] == ["held"] * 3
    upsert(ws, uid, voided(2), draft(3))
    assert [status(ws, uid, n) for n in (2, 3, 4)] == ["voided", "awaiting approval", "held"]
    clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    ws.plans.set("scale", monthly_limit=100)  # a plan change releases what is held
    assert [status(ws, uid, n) for n in (2, 3, 4)] == ["voided", "awaiting approval", "fiscalized"]
    assert release(ws, uid) == 0
    assert [r[1] for r in records(ws)] == ["ext-1", "ext-4"]


def test_each_invoice_listed_once_by_the_cli(ws: Workspace, env: dict[str, str]) -> None:
    uid = source(ws)
    upsert(ws, uid, sale(1), sale(2), draft(3), sale(4, kind=InvoiceKind.PURCHASE))
    upsert(ws, uid, sale(1, total="10.00", tax="0"), voided(2))
    assert len(records(ws)) == 5
    out = run_intdash("invoices", "list", "--json", env=env)
    assert out.returncode == 0, out.stderr
    rows = {r["external_id"]: r for r in json.loads(out.stdout)}
    assert len(json.loads(out.stdout)) == 4
    picked = {k: (r["status"], r["fiscal_status"], r["type"], r["fiscal_seq"], r["refund_seq"])
              for k, r in rows.items()}  # fmt: skip
    assert picked == {
        "ext-1": ("AUTHORISED", "fiscalized", "sales", 4, 3),
        "ext-2": ("VOIDED", "refunded", "sales", 2, 5),
        "ext-3": ("DRAFT", "awaiting approval", "sales", None, None),
        "ext-4": ("AUTHORISED", "received", "purchase", None, None),
    }
    table = run_intdash("invoices", "list", env=env).stdout
    assert "fiscalized #4" in table and "refunded #5" in table and "awaiting approval" in table
    assert run_intdash("invoices", "verify", env=env).returncode == 0


def test_a_pushed_void_refunds_and_a_pushed_draft_waits(
    server: tuple[Workspace, LiveServer], client: httpx.Client, spec: OpenAPI
) -> None:
    ws, live = server
    uid, key = custom(ws)
    url = f"{live.url}/v1/invoices"
    first = client.post(url, json=invoice(1), headers=bearer(key)).json()
    voided = client.post(url, json=invoice(1, status="Void"), headers=bearer(key))
    assert voided.status_code == 200, voided.text
    body = voided.json()
    assert (body["outcome"], body["fiscal_status"]) == ("updated", "refunded")
    assert body["fiscal_record"]["seq"] == first["fiscal_record"]["seq"] == 1
    assert (body["refund_record"]["kind"], body["refund_record"]["refers_to"]) == ("refund", 1)
    conforms(spec, "POST", "/v1/invoices", voided)
    again = client.post(url, json=invoice(1, status="VOID", total="1.00"), headers=bearer(key))
    assert again.json()["refund_record"] == body["refund_record"]  # never refunded twice
    read = client.get(f"{url}/ERP-1", headers=bearer(key))
    assert read.json()["fiscal_status"] == "refunded"
    conforms(spec, "GET", "/v1/invoices/ERP-1", read)

    batch = {"invoices": [invoice(2, status="draft"), invoice(3, status="DRAFT")]}
    drafts = client.post(url, json=batch, headers=bearer(key)).json()["invoices"]
    assert [(d["fiscal_status"], d["fiscal_record"]) for d in drafts] == [
        ("awaiting approval", None)
    ] * 2
    issued = client.post(url, json=invoice(2, status="sent"), headers=bearer(key)).json()
    assert issued["fiscal_status"] == "fiscalized" and issued["fiscal_record"]["seq"] == 3
    dropped = client.post(url, json=invoice(3, status=" void "), headers=bearer(key)).json()
    assert (dropped["fiscal_status"], dropped["fiscal_record"]) == ("voided", None)
    assert [(r[1], r[2]) for r in records(ws)] == [
        ("ERP-1", "sale"),
        ("ERP-1", "refund"),
        ("ERP-2", "sale"),
    ]
    assert ws.integrations.get(uid).invoices_this_month == 2
    assert ws.invoices.verify().ok


def test_each_new_record_is_delivered_saying_what_it_is(ws: Workspace) -> None:
    uid = source(ws)
    hook = ws.integrations.create("webhook", values={"url": "https://receiver.test/in"})
    hook_uid = hook.integration.uid
    upsert(ws, uid, sale(1), draft(2))
    assert len(ws.deliveries.list(hook_uid)) == 1
    upsert(ws, uid, sale(1, total="99.00", tax="0"))  # re-issued: delivered again, once
    assert len(ws.deliveries.list(hook_uid)) == 2
    upsert(ws, uid, voided(1))
    assert len(ws.deliveries.list(hook_uid)) == 3
    claimed = ws.deliveries.claim()
    payload = claimed[-1].invoice.to_json()
    assert payload["fiscal_status"] == "refunded"
    assert payload["refund_record"]["refers_to"] == payload["fiscal_record"]["seq"] == 3


def test_the_register_refunds_a_standing_sale_once(ws: Workspace) -> None:
    """Asked for a sale and two refunds of one invoice at once, the register refunds once."""
    uid = source(ws)
    upsert(ws, uid, draft(1))  # stored, nothing recorded
    with ws.db.write() as session:
        row = ws.integrations.find(session, uid)
        invoice_id = session.execute(text("SELECT id FROM invoices")).scalar_one()
        told = ToFiscalize(invoice_id, row.id or 0, "ext-1", "INV-1", None, "NZD", "1", "0")
        refund = told._replace(kind=RecordKind.REFUND)
        made = ws.invoices.register.fiscalize(
            session.connection(), [refund, told, refund, refund], ws.clock()
        )
    assert [(r["seq"], r["kind"], r["refers_to"]) for r in made] == [
        (1, "sale", None), (2, "refund", 1)
    ]  # fmt: skip
    assert ws.invoices.verify().ok


def _append(ws: Workspace, invoice: int, kind: str, refers_to: int | None, digest: str) -> None:
    """A record forged by someone who can compute hashes: chained right, but untrue."""
    table = FiscalRecord.__table__  # type: ignore[attr-defined]
    with ws.db.write() as session:
        conn = session.connection()
        seq, prev = conn.execute(
            select(table.c.seq, table.c.hash).order_by(table.c.seq.desc())
        ).first()  # type: ignore[misc]
        integration = conn.execute(
            text("SELECT integration_id FROM invoices WHERE id = :i"), {"i": invoice}
        ).scalar_one()
        at = ws.clock()
        conn.execute(
            insert(table).values(
                seq=seq + 1, invoice_id=invoice, integration_id=integration, recorded_at=at,
                kind=kind, refers_to=refers_to, invoice_digest=digest, prev_hash=prev,
                hash=record_hash(seq + 1, prev, at, digest, kind, refers_to),
            )
        )  # fmt: skip


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("UPDATE fiscal_records SET kind = 'sale' WHERE seq = 3", "record 3 was altered"),
        ("UPDATE fiscal_records SET refers_to = 2 WHERE seq = 3", "record 3 was altered"),
        ("UPDATE fiscal_records SET refers_to = NULL WHERE seq = 3", "record 3 was altered"),
        ("UPDATE fiscal_records SET refers_to = 1 WHERE seq = 2", "record 2 was altered"),
        ("UPDATE fiscal_records SET invoice_digest = 'x' WHERE seq = 3", "record 3 was altered"),
        ("DELETE FROM fiscal_records WHERE seq = 3", "record 3 is missing"),
        ("forge: refund of another invoice's sale", "record 5 refunds no earlier sale"),
        ("forge: a second refund", "record 5 refunds record 1 a second time"),
        ("forge: a refund of other amounts", "record 5 does not refund what record 2"),
    ],
)
def test_tampering_with_refunds_is_detected(ws: Workspace, tamper: str, problem: str) -> None:
    uid = source(ws)
    upsert(ws, uid, sale(1), sale(2))
    upsert(ws, uid, voided(1), sale(3))  # refund 3, sale 4
    assert [r[2] for r in records(ws)] == ["sale", "sale", "refund", "sale"]
    assert ws.invoices.verify().ok
    with ws.db.read() as session:
        digests = dict(
            session.execute(text("SELECT seq, invoice_digest FROM fiscal_records")).all()
        )
        ids = dict(session.execute(text("SELECT external_id, id FROM invoices")).all())
    if tamper == "forge: refund of another invoice's sale":
        _append(ws, ids["ext-1"], "refund", 2, digests[2])
    elif tamper == "forge: a second refund":
        _append(ws, ids["ext-1"], "refund", 1, digests[1])
    elif tamper == "forge: a refund of other amounts":
        _append(ws, ids["ext-2"], "refund", 2, digests[1])
    else:
        with ws.db.write() as session:
            session.execute(text(tamper))
    found = ws.invoices.verify()
    assert not found.ok
    assert found.problem is not None and found.problem.startswith(problem), found.problem


def test_migration_keeps_the_register_and_unholds_what_is_not_issued(ws: Workspace) -> None:
    """A workspace from before refunds: its records verify as they are, are sales, and can be
    refunded; held invoices that are drafts or voided at their source are no longer held."""
    from alembic import command

    xero = source(ws, limit=2, kind="xero")
    erp = ws.integrations.create("custom").integration.uid
    upsert(ws, xero, *(sale(n) for n in range(1, 6)))  # 1, 2 fiscalized; 3, 4, 5 held
    upsert(ws, erp, *(sale(n) for n in range(1, 5)))  # 1, 2 fiscalized; 3, 4 held
    config = ws.db._alembic_config()
    with ws.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
        for uid, n, was in [(xero, 3, "VOIDED"), (xero, 4, "SUBMITTED"), (erp, 3, "Void"),
                            (erp, 4, "VOIDED")]:  # fmt: skip
            conn.execute(
                text(
                    "UPDATE invoices SET source_status = :was WHERE external_id = :ext AND "
                    "integration_id = (SELECT id FROM integrations WHERE uid = :uid)"
                ),
                {"was": was, "ext": f"ext-{n}", "uid": uid},
            )
        command.upgrade(config, "head")
    assert [status(ws, xero, n) for n in range(1, 6)] == [
        "fiscalized", "fiscalized", "voided", "awaiting approval", "held"
    ]  # fmt: skip
    # pushed statuses other than "void" and "draft" are issued
    assert [status(ws, erp, n) for n in range(1, 5)] == ["fiscalized"] * 2 + ["voided", "held"]
    check = ws.invoices.verify()
    assert (check.ok, check.records) == (True, 4)
    assert {(r[2], r[3]) for r in records(ws)} == {("sale", None)}
    upsert(ws, xero, voided(1))
    assert records(ws)[-1][1:] == ("ext-1", "refund", 1)
    ws.plans.set("scale", monthly_limit=100)  # releases what is still held, nothing else
    assert [status(ws, xero, n) for n in range(3, 6)] == [
        "voided", "awaiting approval", "fiscalized"
    ]  # fmt: skip
    assert ws.invoices.verify().ok


def test_a_digest_and_a_sale_hash_are_what_earlier_records_were_made_with() -> None:
    """The register's hashes are spelled out for speed; records stored by any earlier version
    must still verify, so each stays the SHA-256 of the same text."""
    import hashlib

    from intdash.core.fiscal import GENESIS, ToFiscalize, invoice_digest, record_hash

    told = ToFiscalize(7, 3, "INV-ext|1", None, "2026-01-05", "FJD", "115.00", "15.00")
    joined = "|".join(["3", "INV-ext|1", "", "2026-01-05", "FJD", "115.00", "15.00"])
    assert invoice_digest(told) == hashlib.sha256(joined.encode()).hexdigest()
    stamp = "2026-01-05T00:00:00.000000+00:00"
    sale = hashlib.sha256(f"1|{GENESIS}|{stamp}|{invoice_digest(told)}".encode()).hexdigest()
    assert record_hash(1, GENESIS, stamp, invoice_digest(told)) == sale
