"""Details, the invoice history and the audit trail, driven with the Pilot as an operator does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from textual.widgets import Button, Input

from intdash.core.services.invoices.listing import count
from intdash.core.workspace import Workspace
from intdash.tui.app import IntdashApp
from intdash.tui.screens.audit import AuditScreen
from intdash.tui.screens.details import DetailsScreen
from intdash.tui.screens.invoices import InvoicesScreen
from intdash.tui.screens.modals import ConfirmScreen, PromptScreen
from intdash.tui.widgets import RowTable
from tests.test_integrations import add_invoices
from tests.waiting import until

REVOKED = (
    "invalid_grant: the refresh token was revoked by the organisation's owner in Xero's "
    "connected apps"
)


def app_for(ws: Workspace, **options: Any) -> IntdashApp:
    return IntdashApp(ws, **{"schedule": False, "poll_seconds": 0.2, **options})


def screen_text(app: IntdashApp) -> str:
    """What the terminal shows, line by line."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def set_auth_error(ws: Workspace, uid: str, error: str | None) -> None:
    """What a refused token refresh leaves: the integration needs a reconnect, for ``error``."""
    with ws.db.write() as session:
        row = ws.integrations.find(session, uid)
        row.auth_error = error
        session.add(row)


async def open_details(app: IntdashApp, pilot: Any, uid: str) -> DetailsScreen:
    screen = DetailsScreen(uid)
    app.push_screen(screen)
    await until(pilot, lambda: app.screen is screen and screen.view is not None)
    return screen


# -- details: its summary keeps every line ------------------------------------------------------


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
@pytest.mark.parametrize("first", [False, True], ids=["becomes-long", "long-at-once"])
async def test_details_summary_keeps_every_line_when_the_reason_wraps(
    ws: Workspace, size: tuple[int, int], first: bool
) -> None:
    uid = ws.integrations.create("xero", name="Acme Ltd").integration.uid
    if first:
        set_auth_error(ws, uid, REVOKED)
    app = app_for(ws, poll_seconds=60)  # read when told to, as when a sync's progress moves
    async with app.run_test(size=size) as pilot:
        screen = await open_details(app, pilot, uid)
        if not first:  # short at first ("needs authorisation"), then two lines long
            await until(pilot, lambda: "Sync from: the beginning" in screen_text(app))
            await pilot.pause()  # its first layouts done
            await pilot.pause()
            set_auth_error(ws, uid, REVOKED)
            screen.load()
        await until(pilot, lambda: "connected apps" in screen_text(app))
        await pilot.pause()
        shown = screen_text(app)
        assert "Last attempted sync: never" in shown
        assert "Sync from: the beginning" in shown and "This month: 0 of" in shown
        # and back to one line: nothing left over below it
        set_auth_error(ws, uid, None)
        screen.load()
        await until(pilot, lambda: "connected apps" not in screen_text(app))
        await pilot.pause()
        assert "Sync from: the beginning" in screen_text(app)
        summary = screen.query_one("#summary")
        assert summary.size.height == 4, summary.size


async def test_details_summary_shows_brackets_as_written(ws: Workspace) -> None:
    """A name or a reason is text, never markup: brackets show as written and crash nothing."""
    uid = ws.integrations.create("xero", name="Acme [/b] Ltd").integration.uid
    set_auth_error(ws, uid, "HTTP 400 [invalid_grant]")
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_details(app, pilot, uid)
        await until(pilot, lambda: "HTTP 400 [invalid_grant]" in screen_text(app))
        assert "Acme [/b] Ltd" in screen_text(app)


# -- details: sync from a date, and back to the beginning --------------------------------------


async def test_sync_from_goes_back_to_the_beginning(ws: Workspace) -> None:
    """The sync-from prompt takes an empty date for the beginning, asks first, and clears the
    date (and the cursor, so that the next sync starts from the platform's first invoice)."""
    uid = ws.integrations.create("xero", name="Acme Ltd").integration.uid
    ws.integrations.configure(uid, {"sync_from": "2025-06-01"})
    with ws.db.write() as session:
        row = ws.integrations.find(session, uid)
        row.cursor = "2026-11-01T00:00:00"  # as a sync leaves it
        session.add(row)
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_details(app, pilot, uid)
        await until(pilot, lambda: "Sync from: 2025-06-01" in screen_text(app))
        for answer in ("cancel", "confirm"):
            await pilot.press("f")
            await until(pilot, lambda: isinstance(app.screen, PromptScreen))
            prompt = app.screen
            value = prompt.query_one("#value", Input)
            assert value.value == "2025-06-01" and "empty for the beginning" in screen_text(app)
            await pilot.press("backspace")  # the date is selected: one key clears it
            await until(pilot, lambda: value.value == "")  # noqa: B023 - asked at once
            assert not prompt.query_one("#ok", Button).disabled
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert f"Sync {uid} again from the beginning?" in screen_text(app)
            await pilot.click(f"#{answer}")
            await until(pilot, lambda: app.screen is screen)
            if answer == "cancel":  # nothing changed
                assert ws.integrations.get(uid).sync_from is not None
        await until(pilot, lambda: "Sync from: the beginning" in screen_text(app))
    assert ws.integrations.get(uid).sync_from is None
    with ws.db.read() as session:
        assert ws.integrations.find(session, uid).cursor is None
    assert ws.audit.list(uid)[0].detail == "changed: sync_from"


# -- the invoice history -------------------------------------------------------------------------


def position(app: IntdashApp) -> str:
    """The line below the table (once there), its dashes as typed here (rows 1-200)."""
    lines = app.screen.query("#position")
    text = str(lines.first().render()) if lines else ""
    return text.replace("\N{EN DASH}", "-")


def history(app: IntdashApp) -> RowTable:
    return app.screen.query_one("#invoices", RowTable)


async def open_history(app: IntdashApp, pilot: Any, uid: str | None = None) -> InvoicesScreen:
    screen = InvoicesScreen(uid)
    app.push_screen(screen)
    await until(
        pilot, lambda: app.screen is screen and screen.query("#invoices") and history(app).row_count
    )
    return screen


async def test_invoice_history_says_where_the_cursor_is_among_how_many(ws: Workspace) -> None:
    ws.plans.set("scale")
    uid = ws.integrations.create("custom").integration.uid
    add_invoices(ws, uid, 450)
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_history(app, pilot)
        await until(pilot, lambda: position(app) == "Row 1 of 450 invoices · rows 1-200 loaded")
        await pilot.press("j", "j", "down")
        await until(pilot, lambda: position(app).startswith("Row 4 of 450 invoices"))
        history(app).move_cursor(row=190)  # the next page comes
        await until(pilot, lambda: position(app) == "Row 191 of 450 invoices · rows 1-400 loaded")
        await pilot.press("end")
        await until(pilot, lambda: history(app).row_count == 450)
        await pilot.press("end")
        await until(pilot, lambda: position(app) == "Row 450 of 450 invoices · all loaded")
        await pilot.press("slash", *"INV-001")
        await until(
            pilot,
            lambda: position(app) == "Row 1 of 100 invoices matching “INV-001” · all loaded",
        )
        await pilot.press("escape")  # the filter cleared: every invoice again, counted again
        await until(pilot, lambda: position(app) == "Row 1 of 450 invoices · rows 1-200 loaded")


async def test_invoice_history_counts_only_what_its_pages_reach(ws: Workspace) -> None:
    """Invoices that come while the history is open are not among those counted (they show
    when it is opened again): its count is of those its pages list."""
    ws.plans.set("scale")
    uid = ws.integrations.create("custom").integration.uid
    add_invoices(ws, uid, 250)
    first = ws.invoices.page(limit=1)[0]
    add_invoices(ws, uid, 30, start=250)
    assert count(ws, through_id=first.id) == 250
    assert count(ws) == count(ws, integration_uid=uid) == 280
    assert count(ws, search="INV-0024", through_id=first.id) == 10


def two_integrations(ws: Workspace) -> tuple[str, str]:
    """Acme's ERP (a Custom Integration) with 3 invoices and Harbour Cafe's Xero with 2."""
    ws.plans.set("scale")
    erp = ws.integrations.create("custom", name="Acme ERP").integration.uid
    xero = ws.integrations.create("xero", name="Harbour Cafe").integration.uid
    add_invoices(ws, erp, 3)
    add_invoices(ws, xero, 2, start=100)
    return erp, xero


def numbers(ws: Workspace, search: str) -> list[str | None]:
    return [row.number for row in ws.invoices.page(search=search)]


def test_the_filter_matches_the_integration_too(ws: Workspace) -> None:
    erp, xero = two_integrations(ws)
    acme = ["INV-00002", "INV-00001", "INV-00000"]
    harbour = ["INV-00101", "INV-00100"]
    assert numbers(ws, "harbour") == numbers(ws, xero) == numbers(ws, "XERO") == harbour
    assert numbers(ws, "acme") == numbers(ws, erp.upper()) == acme
    assert numbers(ws, "Custom Integration") == acme  # its type, as the dashboard names it
    assert numbers(ws, "cafe") == harbour + acme  # every invoice's contact is Kowhai Cafe
    assert numbers(ws, "harbour INV-00101") == ["INV-00101"]  # every word, anywhere
    assert numbers(ws, "zoho") == []
    assert numbers(ws, "INV_0") == numbers(ws, "INV%") == []  # the wildcards are text
    assert count(ws, search="harbour") == 2
    assert count(ws, integration_uid=erp, search="harbour") == 0


async def test_invoice_history_filter_by_integration(ws: Workspace) -> None:
    _, xero = two_integrations(ws)
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_history(app, pilot)
        await pilot.press("slash", *"Harbour")
        await until(pilot, lambda: history(app).row_count == 2)
        assert {str(history(app).get_row_at(n)[1]) for n in range(2)} == {xero}


async def test_invoice_history_says_when_nothing_matches(ws: Workspace) -> None:
    two_integrations(ws)
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_history(app, pilot)
        await pilot.press("slash", *"no such thing")
        await until(pilot, lambda: "No invoice matches “no such thing”" in screen_text(app))
        shown = " ".join(screen_text(app).split())  # as read, whatever the lines' ends
        assert "esc clears the filter" in shown and "integration's UID, name and type" in shown
        assert history(app).row_count == 0
        await pilot.press("escape")
        await until(pilot, lambda: history(app).row_count == 5 and history(app).display)
        assert "No invoice matches" not in screen_text(app)
        assert app.focused is history(app)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is not screen)


async def test_an_empty_invoice_history_says_so(ws: Workspace) -> None:
    uid = ws.integrations.create("custom").integration.uid
    app = app_for(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(InvoicesScreen(uid))
        await until(pilot, lambda: f"No invoices of {uid} yet." in screen_text(app))


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_invoice_history_keeps_every_column(ws: Workspace, size: tuple[int, int]) -> None:
    """Every column fits the width, the Fiscal one included: narrower ones at 80 columns."""
    ws.plans.set("scale")
    uid = ws.integrations.create("custom").integration.uid
    add_invoices(ws, uid, 30)
    app = app_for(ws)
    async with app.run_test(size=size) as pilot:
        await open_history(app, pilot)
        await pilot.pause()
        table = history(app)
        assert table.line_width <= table.scrollable_content_region.width
        lines = screen_text(app).splitlines()
        header = next(line for line in lines if "Integration" in line)
        assert header.rstrip().endswith("Fiscal"), header
        row = next(line for line in lines if "INV-00029" in line)
        assert uid in row and "115.00 NZD" in row and "AUTHO" in row
        assert row.rstrip().endswith("#30"), row  # its sale record's number


# -- the audit trail ------------------------------------------------------------------------------


def trail(app: IntdashApp) -> RowTable:
    return app.screen.query_one("#audit", RowTable)


def trail_rows(app: IntdashApp) -> list[list[str]]:
    table = trail(app)
    return [[str(cell) for cell in table.get_row_at(n)] for n in range(table.row_count)]


async def filter_by(pilot: Any, app: IntdashApp, text: str) -> None:
    """Open the filter box and put ``text`` in it (as a paste would)."""
    await pilot.press("slash")
    await until(pilot, lambda: app.screen.query("#filter"))
    app.screen.query_one("#filter", Input).value = text


async def shows(pilot: Any, app: IntdashApp, line: str) -> None:
    """Wait until the line below the table says ``line``."""
    await until(
        pilot, lambda: position(app) == line, message=lambda: f"{line!r}: {position(app)!r}"
    )


def some_history(ws: Workspace, clock: Any) -> tuple[str, str]:
    """A few changes to two integrations, a minute apart, as the audit trail records them."""
    acme = ws.integrations.create("xero", name="Acme Ltd").integration.uid
    clock.advance(minutes=1)
    erp = ws.integrations.create("custom", name="ERP push").integration.uid
    clock.advance(minutes=1)
    ws.keys.create(erp, "production")
    clock.advance(minutes=1)
    ws.integrations.configure(acme, {"name": "Acme Holdings"})
    clock.advance(minutes=1)
    ws.plans.set("growth")
    return acme, erp


async def test_the_audit_trail_from_the_main_screen(ws: Workspace, clock: Any) -> None:
    acme, erp = some_history(ws, clock)
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.query("#integrations"))
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen) and trail(app).row_count)
        rows = trail_rows(app)
        assert [row[2] for row in rows] == [  # newest first: who, what, which, when
            "plan.changed",
            "integration.configured",
            "api_key.created",
            "integration.created",
            "integration.created",
        ]
        assert rows[1][1] == "tester" and rows[1][3] == acme and "name" in rows[1][4]
        assert rows[0][3] == "—"  # the plan is no integration's
        configured = clock.now - timedelta(minutes=1)
        assert rows[1][0] == configured.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        await until(pilot, lambda: position(app) == "Row 1 of 5 events · all loaded")
        # filtered by who, what, the detail, or the integration's UID, name or type
        for text, expected in (
            ("acme", 2),  # by its name, though its first event was before the new name
            (erp, 2),
            ("Custom Integration", 2),
            ("api_key", 1),
            ("plan", 1),
            ("tester created", 3),
        ):
            await filter_by(pilot, app, text)
            noun = "event" if expected == 1 else "events"
            await shows(pilot, app, f"Row 1 of {expected} {noun} matching “{text}” · all loaded")
            assert trail(app).row_count == expected
        await filter_by(pilot, app, "nobody did this")
        await until(pilot, lambda: "No event matches “nobody did this”" in screen_text(app))
        await pilot.press("escape", "escape")
        await until(pilot, lambda: not isinstance(app.screen, AuditScreen))


async def test_the_audit_trail_of_one_integration_from_its_details(
    ws: Workspace, clock: Any
) -> None:
    _, erp = some_history(ws, clock)
    app = app_for(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_details(app, pilot, erp)
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen) and trail(app).row_count)
        assert [(row[2], row[3]) for row in trail_rows(app)] == [
            ("api_key.created", erp),
            ("integration.created", erp),
        ]
        assert f"Audit trail of {erp}" in screen_text(app)
        table = trail(app)
        assert table.line_width <= table.scrollable_content_region.width  # 80 columns hold it
        await until(pilot, lambda: position(app) == "Row 1 of 2 events · all loaded")
        await pilot.press("enter")  # the whole event, where its row cuts it short
        await until(pilot, lambda: any("production" in n.message for n in app._notifications))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))


async def test_the_audit_trail_pages_and_counts_many_events(ws: Workspace) -> None:
    """Thousands of events open at once, a page at a time, counted off the loop."""
    uid = ws.integrations.create("custom", name="Busy").integration.uid
    with ws.db.write() as session:
        for n in range(1200):
            ws.audit.record(session, "integration.configured", uid, f"changed: name ({n})")
    assert ws.audit.count() == 1201 and ws.audit.count(integration_uid=uid, search="(11") == 111
    newest = ws.audit.page(limit=1)[0]
    assert newest.detail == "changed: name (1199)" and newest.id is not None
    assert ws.audit.count(through_id=newest.id - 1) == 1200
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        app.push_screen(AuditScreen(None))
        await until(pilot, lambda: app.screen.query("#audit") and trail(app).row_count == 200)
        await until(pilot, lambda: position(app) == "Row 1 of 1,201 events · rows 1-200 loaded")
        trail(app).move_cursor(row=195)
        await until(pilot, lambda: trail(app).row_count == 400)
        assert position(app) == "Row 196 of 1,201 events · rows 1-400 loaded"
