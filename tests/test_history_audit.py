"""Details, the invoice history and the audit trail, driven with the Pilot as an operator does."""

from __future__ import annotations

from typing import Any

import pytest

from intdash.core.workspace import Workspace
from intdash.tui.app import IntdashApp
from intdash.tui.screens.details import DetailsScreen
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
