"""Fiscalization by TaxCore's V-SDC over real mutual TLS against the emulator: the outbox fed in
the upsert's transaction and sent outside it; refunds naming the original; the SDC down, then
up; a time-out after signing reconciled, never signed twice; bad credentials and unmapped tax
codes refused in words; a restart resumes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from intdash.core.config import load_settings
from intdash.core.fiscal_models import FiscalOutbox
from intdash.core.invoices import InvoiceData, LineItem, SourceState, line_columns
from intdash.core.models import Invoice
from intdash.core.workspace import Workspace
from intdash.providers.http import httpx
from intdash.providers.vsdc import CertificateError, CredentialsRefused
from intdash.sandbox.vsdc_server import VsdcServer
from intdash.sync.fiscalize import FiscalSender, configure
from tests.conftest import FakeClock
from tests.test_fiscal_rules import sale, source, upsert, voided
from tests.test_ingest import Served, bearer, custom, invoice
from tests.vsdc import vsdc_emulator, vsdc_pki
from tests.waiting import wait_for

__all__ = ["vsdc_emulator", "vsdc_pki"]  # fixtures
OUTBOX = FiscalOutbox.__table__  # type: ignore[attr-defined]
INVOICES = Invoice.__table__  # type: ignore[attr-defined]


@pytest.fixture
def vws(
    env: dict[str, str],
    vsdc_emulator: VsdcServer,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Workspace]:
    """A workspace whose register is the emulated V-SDC, its taxpayer's secrets stored."""
    monkeypatch.setenv("INTDASH_FISCAL__REGISTER", "vsdc")
    monkeypatch.setenv("INTDASH_FISCAL__TIMEOUT", "2")
    for name, value in vsdc_emulator.settings().items():
        monkeypatch.setenv(name, value)
    ws = Workspace.open(load_settings(), clock=clock, actor="tester")
    asyncio.run(configure(ws, vsdc_emulator.pfx, vsdc_emulator.password, vsdc_emulator.pac))
    yield ws
    ws.close()


def rows(ws: Workspace) -> list[Any]:
    with ws.db.read() as session:
        return list(session.connection().execute(select(OUTBOX).order_by(OUTBOX.c.id)).all())


def drain(ws: Workspace) -> int:
    async def run() -> int:
        return await FiscalSender(ws).drain()

    return asyncio.run(run())


def test_an_invoice_is_signed_end_to_end(vws: Workspace, vsdc_emulator: VsdcServer) -> None:
    uid = source(vws)
    upsert(vws, uid, sale(1))
    [queued] = rows(vws)
    assert queued.status == "pending" and queued.kind == "sale"
    assert vsdc_emulator.emulator.count() == 0  # nothing is sent in the upsert's transaction
    assert drain(vws) == 1
    [signed] = rows(vws)
    assert signed.status == "signed", signed.error
    found = vsdc_emulator.emulator.find(signed.request_id)
    assert len(found) == 1
    response = json.loads(signed.response)
    assert vsdc_emulator.emulator.verify(response)
    assert signed.sdc_invoice_number == response["invoiceNumber"] == found[0].number
    assert signed.verification_url and signed.qr and signed.journal and signed.signature
    request = json.loads(signed.request)
    assert request["Items"][0]["Labels"] == ["A"]  # 15 % is label A's rate
    assert request["Payment"][0]["Amount"] == 115.0
    assert vws.invoices.verify().ok


def test_a_void_becomes_a_refund_naming_the_original(
    vws: Workspace, vsdc_emulator: VsdcServer
) -> None:
    uid = source(vws)
    upsert(vws, uid, sale(1))
    upsert(vws, uid, voided(1))  # before the sale is signed: the refund waits for it
    assert drain(vws) == 2
    sold, refund = rows(vws)
    assert (sold.kind, refund.kind) == ("sale", "refund")
    assert refund.refers_to == sold.id and refund.status == "signed", refund.error
    request = json.loads(refund.request)
    assert request["TransactionType"] == 1
    assert request["ReferentDocumentNumber"] == sold.sdc_invoice_number
    assert request["ReferentDocumentDT"] == sold.sdc_time
    assert request["Items"] == json.loads(sold.request)["Items"]
    assert vsdc_emulator.emulator.count() == 2
    assert vws.invoices.verify().ok


def with_lines(ws: Workspace, uid: str, invoice: InvoiceData) -> None:
    """Upsert ``invoice`` with its lines stored before it is approved (a draft first, its
    columns written as the upsert writes them)."""
    upsert(ws, uid, replace(invoice, state=SourceState.PENDING, source_status="DRAFT"))
    with ws.db.write() as session:
        session.connection().execute(
            update(INVOICES)
            .where(INVOICES.c.external_id == invoice.external_id)
            .values(line_columns(invoice))
        )
    upsert(ws, uid, invoice)


def test_line_items_and_unmapped_tax_codes(vws: Workspace, vsdc_emulator: VsdcServer) -> None:
    uid = source(vws)
    lines = (
        LineItem("Consulting", Decimal(2), Decimal("50.00"), Decimal("100.00"),
                 tax_code="OUTPUT2", tax_amount=Decimal("15.00"), tax_inclusive=False),
        LineItem("Export", Decimal(1), Decimal("20.00"), Decimal("20.00"),
                 tax_code="ZERORATED", tax_amount=Decimal(0), tax_inclusive=False),
    )  # fmt: skip
    invoice = InvoiceData(**{**sale(1).__dict__, "total": Decimal("135.00"), "items": lines})
    with_lines(vws, uid, invoice)
    drain(vws)
    [failed] = rows(vws)
    name = vws.integrations.get(uid).name
    assert failed.status == "failed"
    # 0 % is the rate of two labels (zero-rated B, exempt C): never a guess
    assert f"tax code ZERORATED of {name} has no TaxCore label" in failed.error
    assert f"intdash fiscal map {uid} ZERORATED LABEL" in failed.error
    assert vsdc_emulator.emulator.count() == 0
    vws.fiscal.setup.map_code(uid, "ZERORATED", "B")
    assert vws.fiscal.retry() == 1
    assert drain(vws) == 1
    [signed] = rows(vws)
    assert signed.status == "signed", signed.error
    items = json.loads(signed.request)["Items"]
    assert [(i["Labels"], i["TotalAmount"], i["Quantity"]) for i in items] == [
        (["A"], 115.0, 2.0),
        (["B"], 20.0, 1.0),
    ]


def test_sdc_down_then_up_signs_every_pending_invoice_once(
    vws: Workspace, vsdc_emulator: VsdcServer, clock: FakeClock
) -> None:
    uid = source(vws)
    drain(vws)  # the labels read while it is up
    vsdc_emulator.refuse()
    upsert(vws, uid, *(sale(n) for n in range(1, 6)))
    assert drain(vws) == 0
    assert {r.status for r in rows(vws)} == {"pending"}
    with vws.db.read() as session:
        [(refused, waiting)] = vws.fiscal.reasons(session).values()
    assert refused is None and waiting is not None
    assert waiting.startswith("5 invoices waiting for the SDC: unavailable since")
    view = vws.integrations.get(uid)
    vsdc_emulator.accept()
    clock.advance(minutes=10)
    assert drain(vws) == 5
    done = rows(vws)
    assert {r.status for r in done} == {"signed"}
    assert vsdc_emulator.emulator.count() == 5
    assert len({r.sdc_invoice_number for r in done}) == 5
    assert view is not None
    assert vws.fiscal.setup.unavailable() is None


def test_a_time_out_after_signing_is_reconciled_not_signed_twice(
    vws: Workspace, vsdc_emulator: VsdcServer, clock: FakeClock
) -> None:
    uid = source(vws)
    drain(vws)
    upsert(vws, uid, sale(1), sale(2))
    vsdc_emulator.faults.sign_then_hold(1)  # the first is signed, its answer never comes
    drain(vws)
    statuses = sorted(r.status for r in rows(vws))
    assert "sent" in statuses
    assert vsdc_emulator.emulator.count() >= 1
    vsdc_emulator.faults.release()
    clock.advance(minutes=10)
    drain(vws)
    done = rows(vws)
    assert [r.status for r in done] == ["signed", "signed"], [r.error for r in done]
    assert vsdc_emulator.emulator.count() == 2  # the reconciliation signed nothing new
    for row in done:
        assert len(vsdc_emulator.emulator.find(row.request_id)) == 1


def test_a_restart_resumes(
    vws: Workspace, vsdc_emulator: VsdcServer, settings: Any, clock: FakeClock
) -> None:
    uid = source(vws)
    upsert(vws, uid, sale(1), sale(2))
    claimed = vws.fiscal.claim(1)  # a process claims one and dies before it is sent
    assert len(claimed) == 1
    vws.close()
    again = Workspace.open(load_settings(), clock=clock, actor="tester")
    try:
        assert drain(again) == 0  # the claimed one is still another's (its lease runs)
        clock.advance(minutes=1)
        assert drain(again) >= 2
        assert [r.status for r in rows(again)] == ["signed", "signed"]
        assert vsdc_emulator.emulator.count() == 2
    finally:
        again.close()


def test_wrong_pac_and_expired_certificate_are_refused_in_words(
    env: dict[str, str],
    vsdc_emulator: VsdcServer,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTDASH_FISCAL__REGISTER", "vsdc")
    for name, value in vsdc_emulator.settings().items():
        monkeypatch.setenv(name, value)
    ws = Workspace.open(load_settings(), clock=clock, actor="tester")
    try:
        emulator = vsdc_emulator
        with pytest.raises(CredentialsRefused, match=r"refused the taxpayer's credentials.*PAC"):
            asyncio.run(configure(ws, emulator.pfx, emulator.password, "WRONG1"))
        with pytest.raises(CertificateError, match=r"password does not open the \.pfx"):
            asyncio.run(configure(ws, emulator.pfx, "not it", emulator.pac))
        with pytest.raises(CertificateError, match="not a PKCS#12"):
            asyncio.run(configure(ws, b"not a pfx", emulator.password, emulator.pac))
        expired = emulator.issue("Lapsed Ltd", expired=True)
        clock.now = expired.not_after + timedelta(days=1)
        with pytest.raises(CertificateError, match=r"expired on .*use its renewal"):
            asyncio.run(configure(ws, expired.pfx, expired.password, expired.pac))
        assert ws.fiscal.setup.secrets() is None  # nothing kept
    finally:
        ws.close()


def test_a_serving_process_sends_what_an_upsert_queued_at_once(
    env: dict[str, str], vsdc_emulator: VsdcServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta as span

    from intdash.sync.scheduler import SyncScheduler
    from tests.waiting import wait_for_async

    monkeypatch.setenv("INTDASH_FISCAL__REGISTER", "vsdc")
    for name, value in vsdc_emulator.settings().items():
        monkeypatch.setenv(name, value)
    ws = Workspace.open(load_settings(), actor="tester")  # the real clock: the scheduler's
    emulator = vsdc_emulator

    async def run() -> None:
        await configure(ws, emulator.pfx, emulator.password, emulator.pac)
        uid = source(ws)
        # ticks far apart: only the wake after the upsert's commit can send it in time
        scheduler = SyncScheduler(ws, tick=span(hours=1), deliver=span(hours=1))
        await scheduler.start()
        try:
            await wait_for_async(lambda: scheduler.leading, 10, "never led")
            await asyncio.to_thread(upsert, ws, uid, sale(1))

            def signed() -> bool:
                return [r.status for r in rows(ws)] == ["signed"]

            await wait_for_async(signed, 10, lambda: f"not signed: {rows(ws)}")
        finally:
            await scheduler.stop()

    try:
        asyncio.run(run())
    finally:
        ws.close()


def test_serve_signs_a_pushed_invoice_through_the_sdc(
    env: dict[str, str], vsdc_emulator: VsdcServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The real ``intdash serve`` (its own event loop and HTTP stack) takes a push, and its
    scheduler has the SDC sign it over mutual TLS; the invoice's answer then says so."""
    settings = {"INTDASH_FISCAL__REGISTER": "vsdc", **vsdc_emulator.settings()}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    ws = Workspace.open(load_settings(), actor="tester")
    try:
        asyncio.run(configure(ws, vsdc_emulator.pfx, vsdc_emulator.password, vsdc_emulator.pac))
        _uid, key = custom(ws)
    finally:
        ws.close()
    served = Served({**env, **settings}, tmp_path / "serve.log")
    served.schedule = True
    with served as live, httpx.Client(timeout=30) as client:
        pushed = client.post(f"{live.url}/v1/invoices", json=invoice(1), headers=bearer(key))
        assert pushed.status_code == 201, pushed.text

        def signed() -> dict[str, Any] | None:
            got = client.get(f"{live.url}/v1/invoices/ERP-1", headers=bearer(key)).json()
            return got if (got.get("sdc") or {}).get("status") == "signed" else None

        answer = wait_for(signed, 30, every=0.1)
    assert answer["sdc"]["sdc_invoice_number"] and answer["sdc"]["verification_url"]
    assert answer["fiscal_record"]["seq"] == 1


def test_the_taxpayers_secrets_rotate_and_are_checked_with_the_others(vws: Workspace) -> None:
    before = vws.fiscal.setup.secrets()
    assert before is not None
    rotated = vws.vault_ops.rotate()
    assert rotated.reencrypted >= 3  # the .pfx, its password and the PAC
    assert rotated.retired  # the old key is gone: they are readable under the new one only
    assert vws.fiscal.setup.secrets() == before
    checked = vws.vault_ops.check()
    assert checked.ok and checked.secrets >= 3
