"""SVG snapshots of what the V-SDC adds to the dashboard: an invoice's details with its QR code
at 100x30, and the invoice history with its SDC column at 80x24.

The invoices are signed by the emulator over mutual TLS; what it makes at random (its taxpayer's
UID, the verification token, its signature) and the times are then set to fixed values, so that
the screens come out the same on every run."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update
from textual.pilot import Pilot

from intdash.core.config import load_settings
from intdash.core.fiscal_models import FiscalOutbox
from intdash.core.tokens import TokenSource
from intdash.core.workspace import Workspace
from intdash.sandbox.vsdc_server import VsdcServer
from intdash.sync.fiscalize import FiscalSender, configure
from intdash.tui.app import IntdashApp
from intdash.tui.screens.invoice_details import InvoiceDetailsScreen
from intdash.tui.screens.invoices import InvoicesScreen
from tests.test_fiscal_rules import sale, source, upsert
from tests.test_fiscal_screens import LINES, UNMAPPED, with_items
from tests.test_fiscal_vsdc import with_lines
from tests.vsdc import vsdc_emulator, vsdc_pki
from tests.waiting import until

__all__ = ["vsdc_emulator", "vsdc_pki"]  # fixtures
OUTBOX = FiscalOutbox.__table__  # type: ignore[attr-defined]
MOMENT = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
URL = "https://vsdc.sandbox.vms.frcs.org.fj/v/?vl=QVBQUk9WRUQtSU5WT0lDRS1GT1ItVEhFLVNDUkVFTg"
JOURNAL = (
    "============ FISCAL INVOICE ============\n"
    "TIN:                          123456789\n"
    "Kowhai Cafe Ltd\n"
    "Consulting            2 x 57.50  115.00 A\n"
    "TOTAL                            115.00\n"
    "SDC Invoice No: ABCD1234-EFGH5678-1\n"
    "======== END OF FISCAL INVOICE ========="
)


@pytest.fixture
def sws(
    env: dict[str, str], vsdc_emulator: VsdcServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    """INV-00001 signed, INV-00002 pending, INV-00003 refused, on a fixed clock and seeded
    tokens, the emulator's random parts fixed."""
    monkeypatch.setenv("INTDASH_FISCAL__REGISTER", "vsdc")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    for name, value in vsdc_emulator.settings().items():
        monkeypatch.setenv(name, value)
    ws = Workspace.open(
        load_settings(), clock=lambda: MOMENT, tokens=TokenSource.seeded(17), actor="operator"
    )
    emulator = vsdc_emulator

    async def fill() -> None:
        await configure(ws, emulator.pfx, emulator.password, emulator.pac)
        uid = source(ws)
        ws.keys.create(uid, "till")
        with_lines(ws, uid, with_items(1, LINES, "115.00"))
        with_lines(ws, uid, with_items(3, UNMAPPED, "20.00"))
        await FiscalSender(ws).drain()
        emulator.refuse()
        upsert(ws, uid, sale(2))
        await FiscalSender(ws).drain()

    asyncio.run(fill())
    with ws.db.write() as session:
        conn = session.connection()
        for row in conn.execute(select(OUTBOX)).all():
            if row.status == "signed":
                response = json.loads(row.response)
                response.update(
                    invoiceNumber="ABCD1234-EFGH5678-1",
                    sdcDateTime="2026-11-15T12:00:00.000+00:00",
                    verificationUrl=URL,
                    journal=JOURNAL,
                    signature="c2lnbmVk",
                )
                values = {
                    "sdc_invoice_number": "ABCD1234-EFGH5678-1",
                    "sdc_time": "2026-11-15T12:00:00.000+00:00",
                    "verification_url": URL,
                    "journal": JOURNAL,
                    "signature": "c2lnbmVk",
                    "response": json.dumps(response),
                }
            elif row.status == "failed":
                continue
            else:
                values = {"error": "SDC unavailable: All connection attempts failed"}
            conn.execute(update(OUTBOX).where(OUTBOX.c.id == row.id).values(**values))
    yield ws
    ws.close()
    monkeypatch.undo()
    time.tzset()


def app_of(ws: Workspace) -> IntdashApp:
    return IntdashApp(ws, schedule=False, poll_seconds=3600)


def test_invoice_details_with_its_qr(sws: Workspace, snap_compare: Any) -> None:
    with sws.db.read() as session:
        [invoice_id] = (
            session.connection()
            .execute(select(OUTBOX.c.invoice_id).where(OUTBOX.c.status == "signed"))
            .scalars()
            .all()
        )

    async def open_it(pilot: Pilot[Any]) -> None:
        app = pilot.app
        screen = InvoiceDetailsScreen(invoice_id)
        await app.push_screen(screen)
        await until(pilot, lambda: bool(screen.query("#qr")))
        await pilot.pause()

    assert snap_compare(app_of(sws), terminal_size=(100, 30), run_before=open_it)


def test_invoice_history_with_the_sdc_column(sws: Workspace, snap_compare: Any) -> None:
    async def open_it(pilot: Pilot[Any]) -> None:
        app = pilot.app
        screen = InvoicesScreen(None)
        await app.push_screen(screen)
        await until(pilot, lambda: len(screen.rows) == 3 and screen.total == 3)
        await until(pilot, lambda: bool(screen.query("#position")))
        await pilot.pause()

    assert snap_compare(app_of(sws), terminal_size=(80, 24), run_before=open_it)
