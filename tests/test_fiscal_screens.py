"""What people see of fiscalization by the V-SDC, signed for real by the emulator over mutual
TLS: the invoice history's SDC number and delay, an invoice's details with its QR code drawn in
half blocks (read back to the same modules), ``intdash invoices show``, and the integrations'
and the dashboard's warnings."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from intdash.core.fiscal_models import FiscalOutbox
from intdash.core.invoices import InvoiceData, LineItem, Payment
from intdash.core.status import Reason
from intdash.core.workspace import Workspace
from intdash.sandbox.vsdc_server import VsdcServer
from intdash.sync.fiscalize import FiscalSender
from intdash.tui import qr
from intdash.tui.app import IntdashApp
from intdash.tui.screens.help import HelpScreen
from intdash.tui.screens.integrations import IntegrationsScreen
from intdash.tui.screens.invoice_details import InvoiceDetailsScreen
from intdash.tui.screens.invoices import InvoicesScreen
from intdash.tui.widgets import RowTable
from tests.conftest import FakeClock, run_intdash
from tests.test_fiscal_rules import sale, source, upsert
from tests.test_fiscal_vsdc import vws, with_lines
from tests.vsdc import vsdc_emulator, vsdc_pki
from tests.waiting import until

__all__ = ["vsdc_emulator", "vsdc_pki", "vws"]  # fixtures
OUTBOX = FiscalOutbox.__table__  # type: ignore[attr-defined]


def app_for(ws: Workspace, **options: Any) -> IntdashApp:
    return IntdashApp(ws, **{"schedule": False, "poll_seconds": 0.2, **options})


def screen_lines(app: IntdashApp) -> list[str]:
    """What the terminal shows, line by line."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def screen_text(app: IntdashApp) -> str:
    return "\n".join(screen_lines(app))


def says(app: IntdashApp, words: str) -> Callable[[], bool]:
    return lambda: words in said(app)


def said(app: IntdashApp) -> str:
    """What the terminal shows, its lines run together (words wrapped where they fall)."""
    return " ".join(" ".join(screen_lines(app)).split())


def outbox(ws: Workspace) -> list[Any]:
    with ws.db.read() as session:
        return list(session.connection().execute(select(OUTBOX).order_by(OUTBOX.c.id)).all())


LINES = (
    LineItem("Consulting", Decimal(2), Decimal("50.00"), Decimal("100.00"),
             tax_code="OUTPUT2", tax_amount=Decimal("15.00"), tax_inclusive=False),
)  # fmt: skip
UNMAPPED = (
    LineItem("Export", Decimal(1), Decimal("20.00"), Decimal("20.00"),
             tax_code="ZERORATED", tax_amount=Decimal(0), tax_inclusive=False),
)  # fmt: skip


def with_items(n: int, items: tuple[LineItem, ...], total: str) -> InvoiceData:
    return InvoiceData(
        **{
            **sale(n).__dict__,
            "total": Decimal(total),
            "items": items,
            "buyer_tax_id": "TIN-4455",
            "payments": (Payment(Decimal(total), "Bank Transfer"),),
        }
    )


async def signed_pending_failed(ws: Workspace, emulator: VsdcServer) -> str:
    """INV-00001 signed (with a line item), INV-00003 refused (a tax code without a label) and
    INV-00002 pending (the SDC down when it came)."""
    uid = source(ws)
    ws.keys.create(uid, "till")  # it may push: active, but for the SDC
    with_lines(ws, uid, with_items(1, LINES, "115.00"))
    with_lines(ws, uid, with_items(3, UNMAPPED, "20.00"))
    await FiscalSender(ws).drain()
    emulator.refuse()
    upsert(ws, uid, sale(2))
    await FiscalSender(ws).drain()
    statuses = {r.invoice_id: r.status for r in outbox(ws)}
    assert sorted(statuses.values()) == ["failed", "pending", "signed"], outbox(ws)
    return uid


async def open_history(app: IntdashApp, pilot: Any) -> InvoicesScreen:
    screen = InvoicesScreen(None)
    app.push_screen(screen)
    await until(pilot, lambda: app.screen is screen and len(screen.rows) == 3)
    return screen


def cursor_to(screen: InvoicesScreen, number: str) -> None:
    table = screen.query_one("#invoices", RowTable)
    key = next(k for k, row in screen.rows.items() if row.number == number)
    table.cursor_row = table.keys.index(key)


# -- the history ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_history_shows_the_sdc_number_or_state_and_the_delay(
    vws: Workspace, vsdc_emulator: VsdcServer, size: tuple[int, int]
) -> None:
    await signed_pending_failed(vws, vsdc_emulator)
    number = next(r.sdc_invoice_number for r in outbox(vws) if r.status == "signed")
    app = app_for(vws)
    async with app.run_test(size=size) as pilot:
        await open_history(app, pilot)
        lines = screen_lines(app)
        assert all(len(line.rstrip()) <= size[0] for line in lines)
        [signed] = [line for line in lines if "INV-00001" in line]
        shown = number if size[0] >= 100 else number.split("-", 1)[1]
        assert shown in signed, lines
        assert "14d" in signed  # issued 1 Nov, signed 15 Nov
        text = "\n".join(lines)
        assert "SDC" in text and "Delay" in text
        assert "pending" in text and "failed" in text


async def test_the_local_register_shows_what_it_showed(ws: Workspace) -> None:
    uid = source(ws)
    upsert(ws, uid, sale(1))
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = InvoicesScreen(None)
        app.push_screen(screen)
        await until(pilot, lambda: app.screen is screen and len(screen.rows) == 1)
        text = screen_text(app)
        assert "Fiscal" in text and "At source" in text and "#1" in text
        assert "SDC" not in text and "Delay" not in text


# -- an invoice's details -----------------------------------------------------------------------


def qr_region(app: IntdashApp) -> list[str]:
    """The lines of the screen where the QR code is drawn."""
    widget = app.screen.query_one("#qr")
    region = widget.content_region
    lines = screen_lines(app)
    return [line[region.x : region.right] for line in lines[region.y : region.bottom]]


def qr_colours(app: IntdashApp) -> set[tuple[Any, Any]]:
    """The (foreground, background) colours of the cells where the QR code is drawn."""
    region = app.screen.query_one("#qr").content_region
    strips = app.screen._compositor.render_strips()
    found = set()
    for strip in strips[region.y : region.bottom]:
        x = 0
        for segment in strip:
            if x + len(segment.text) > region.x and x < region.right and segment.style:
                style = segment.style
                found.add(
                    (
                        style.color.triplet if style.color else None,
                        style.bgcolor.triplet if style.bgcolor else None,
                    )
                )
            x += len(segment.text)
    return {(tuple(f) if f else None, tuple(b) if b else None) for f, b in found}


async def test_details_show_items_records_journal_and_a_readable_qr(
    vws: Workspace, vsdc_emulator: VsdcServer
) -> None:
    await signed_pending_failed(vws, vsdc_emulator)
    [signed] = [r for r in outbox(vws) if r.status == "signed"]
    app = app_for(vws)
    async with app.run_test(size=(120, 80)) as pilot:
        history = await open_history(app, pilot)
        cursor_to(history, "INV-00001")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, InvoiceDetailsScreen))
        screen = app.screen
        await until(pilot, lambda: screen.query("#qr"))
        await pilot.pause()
        text = screen_text(app)
        for seen in ("INV-00001", "Consulting", "OUTPUT2", "TIN-4455", "Bank Transfer",
                     signed.sdc_invoice_number, signed.verification_url, "14 days"):  # fmt: skip
            assert seen in text, seen
        assert "A" in text  # the label the SDC was sent
        first_journal_line = signed.journal.strip().splitlines()[0].strip()
        assert first_journal_line in text
        # the drawing on the screen reads back to the verification URL's modules
        assert qr.read(qr_region(app)) == qr.matrix(signed.verification_url)
        # dark on light whatever the theme: every cell of the code, as drawn on the screen
        assert qr_colours(app) == {((0, 0, 0), (255, 255, 255))}
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is history)


async def test_details_of_pending_and_failed_invoices_say_so_instead_of_a_qr(
    vws: Workspace, vsdc_emulator: VsdcServer
) -> None:
    await signed_pending_failed(vws, vsdc_emulator)
    app = app_for(vws)
    async with app.run_test(size=(100, 30)) as pilot:
        history = await open_history(app, pilot)
        for number, words in (
            ("INV-00002", "waiting for the SDC"),
            ("INV-00003", "refused by the SDC"),
        ):
            cursor_to(history, number)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, InvoiceDetailsScreen))
            await until(pilot, says(app, words), message=lambda: screen_text(app))
            assert not app.screen.query("#qr")
            if number == "INV-00003":
                assert "ZERORATED" in screen_text(app)
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is history)


# -- the command line ---------------------------------------------------------------------------


def cli_env(env: dict[str, str], emulator: VsdcServer) -> dict[str, str]:
    return {**env, "INTDASH_FISCAL__REGISTER": "vsdc", **emulator.settings()}


async def test_invoices_show_gives_the_same(
    vws: Workspace, vsdc_emulator: VsdcServer, env: dict[str, str]
) -> None:
    uid = await signed_pending_failed(vws, vsdc_emulator)
    [signed] = [r for r in outbox(vws) if r.status == "signed"]
    environment = cli_env(env, vsdc_emulator)
    done = run_intdash("invoices", "show", "INV-00001", "--json", env=environment)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["sdc_invoice_number"] == signed.sdc_invoice_number
    assert shown["verification_url"] == signed.verification_url
    assert [i["name"] for i in shown["items"]] == ["Consulting"]
    assert shown["items"][0]["label"] == "A" and shown["items"][0]["quantity"] == "2"
    assert shown["buyer_tax_id"] == "TIN-4455"
    assert shown["payments"] == [{"amount": "115.00", "method": "Bank Transfer"}]
    [record] = shown["records"]
    assert record["kind"] == "sale" and len(record["hash"]) == 64
    [sdc] = shown["sdc"]
    assert sdc["journal"] == signed.journal and sdc["total_counter"] == signed.total_counter
    assert sdc["invoice_counter"] == signed.invoice_counter
    # by external id within its integration: the same invoice
    again = run_intdash("invoices", "show", "ext-1", "--integration", uid, "--json",
                        env=environment)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["external_id"] == "ext-1"
    # the text form: readable, with the QR code in half blocks that read back
    text = run_intdash("invoices", "show", "INV-00001", env=environment)
    assert text.returncode == 0, text.stderr
    assert signed.verification_url in text.stdout and "Consulting" in text.stdout
    drawn = [line for line in text.stdout.splitlines() if line and set(line) <= set(" ▀▄█")]
    drawn = [line for line in drawn if line.strip()]
    width = len(qr.matrix(signed.verification_url)) + 2 * qr.QUIET
    block = qr.lines(signed.verification_url)
    assert [line for line in block if line.strip()] == [line[:width] for line in drawn]
    # the refused one says so, and a wrong name is one line of words
    failed = run_intdash("invoices", "show", "INV-00003", env=environment)
    assert failed.returncode == 0 and "refused by the SDC" in failed.stdout
    assert "ZERORATED" in failed.stdout
    missing = run_intdash("invoices", "show", "INV-09999", env=environment)
    assert missing.returncode != 0 and "no invoice numbered 'INV-09999'" in missing.stderr
    assert "Traceback" not in missing.stderr


# -- the integration's status and the dashboard's warnings ---------------------------------------


async def test_an_integration_waiting_for_the_sdc_or_refused_shows_why(
    vws: Workspace, vsdc_emulator: VsdcServer, clock: FakeClock
) -> None:
    uid = await signed_pending_failed(vws, vsdc_emulator)
    view = vws.integrations.get(uid)
    # the status rules: refused by the SDC comes first, the operator acts
    assert view.status.reason is Reason.SDC_REFUSED
    assert "1 invoice refused by the SDC" in view.status.explanation
    assert "ZERORATED" in view.status.explanation
    # syncs go on: the SDC's reasons do not stop them
    assert view.next_sync.at is not None or "SDC" not in (view.next_sync.reason or "")
    vws.fiscal.setup.map_code(uid, "ZERORATED", "B")
    assert vws.fiscal.retry() == 1
    view = vws.integrations.get(uid)
    assert view.status.reason is Reason.WAITING_FOR_SDC
    assert view.status.explanation.startswith(
        "waiting for the SDC: 2 invoices waiting for the SDC: unavailable since"
    )
    app = app_for(vws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen))
        await until(
            pilot,
            lambda: "waiting for the SDC" in screen_text(app),
            message=lambda: screen_text(app),
        )
        vsdc_emulator.accept()
        clock.advance(minutes=10)
        await FiscalSender(vws).drain()
        await until(
            pilot,
            lambda: "waiting for the SDC" not in screen_text(app),
            message=lambda: screen_text(app),
        )
    assert vws.integrations.get(uid).status.active


async def test_the_status_line_warns_of_the_certificate_and_an_unreachable_sdc(
    vws: Workspace, vsdc_emulator: VsdcServer, clock: FakeClock
) -> None:
    certificate = vws.fiscal.setup.certificate()
    assert certificate is not None
    clock.now = certificate.not_after - timedelta(days=10)
    app = app_for(vws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen))
        await until(
            pilot,
            lambda: "certificate expires" in said(app),
            message=lambda: screen_text(app),
        )
        assert "SDC unreachable" not in said(app)
        vsdc_emulator.refuse()
        uid = source(vws)
        upsert(vws, uid, sale(1))
        await FiscalSender(vws).drain()
        await until(pilot, lambda: "SDC unreachable" in said(app), message=lambda: screen_text(app))
    small = app_for(vws)
    async with small.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(small.screen, IntegrationsScreen))
        await until(
            pilot,
            lambda: "certificate" in said(small) and "SDC unreachable" in said(small),
            message=lambda: screen_text(small),
        )
        assert all(len(line.rstrip()) <= 80 for line in screen_lines(small))


def test_the_local_register_warns_of_nothing(ws: Workspace) -> None:
    from intdash.core.services import fiscal_views

    assert fiscal_views.warnings(ws, ws.clock()) == []
    with ws.db.read() as session:
        assert fiscal_views.reasons(ws, session) == {}


# -- the QR drawing -----------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["x", "https://vsdc.example/v/?vl=" + "A" * 300])
def test_half_blocks_read_back_to_the_same_modules(data: str) -> None:
    modules = qr.matrix(data)
    drawn = qr.lines(data)
    size = len(modules)
    assert len(drawn) == (size + 2 * qr.QUIET + 1) // 2  # two rows a line
    assert all(len(line) == size + 2 * qr.QUIET for line in drawn)
    assert set("".join(drawn)) <= {" ", "▀", "▄", "█"}
    assert drawn[0] == drawn[1] == " " * len(drawn[0])  # the quiet zone: 4 rows, 2 lines
    assert all(line.startswith("    ") and line.endswith("    ") for line in drawn)
    assert qr.read(drawn) == modules
