"""The main table: who and why at a glance (the Name column, the Why column taking the width left,
the selected row's whole reason under the table, the sort marked in the header, a sync running
in any process marked on its row with its progress) and the health views on number keys with
their counts, at 80x24, 100x30 and 140 columns, and with 10,000 integrations."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widgets import Input

from intdash.core.models import Integration, RunOutcome
from intdash.core.status import Reason
from intdash.core.workspace import Workspace
from intdash.sandbox.server import Sandbox
from intdash.sync.engine import SyncEngine
from intdash.tui.app import IntdashApp
from intdash.tui.screens.integrations import IntegrationsScreen
from intdash.tui.screens.integrations_status import selection_line
from intdash.tui.screens.integrations_table import VIEWS
from intdash.tui.widgets import RowTable
from tests import scenes
from tests.providers import connect, pws, redirect_uri, sandbox, sandbox_env, start_intdash
from tests.test_integrations import add_invoices
from tests.test_snapshots import Seeded, seeded, shot_ws
from tests.waiting import until

__all__ = ["pws", "redirect_uri", "sandbox", "sandbox_env", "seeded", "shot_ws"]  # fixtures

SIZES = {"80x24": (80, 24), "100x30": (100, 30), "140x30": (140, 30)}
NEXT = 7  # a row's Next sync cell (a row's cells keep their places whichever columns show)


def app_for(ws: Workspace, **options: Any) -> IntdashApp:
    return IntdashApp(ws, schedule=False, poll_seconds=0.2, **options)


def rows(app: IntdashApp) -> RowTable:
    return app.screen.query_one("#integrations", RowTable)


def uids(app: IntdashApp) -> list[str]:
    table = rows(app)
    return [str(table.get_row_at(n)[0]) for n in range(table.row_count)]


def drawn(app: IntdashApp) -> list[str]:
    """The table's lines as drawn under its caption: its header, the rows on screen, the
    note."""
    table = rows(app)
    region = Region(0, 0, table.size.width, table.size.height)
    lines = [strip.text for strip in table.render_lines(region)]
    return lines[0 if table.caption is None else 1 :]


def line(app: IntdashApp) -> str:
    """The selected integration's line under the rows, as one line."""
    note = rows(app).note
    return " ".join(note.plain.split()) if note is not None else ""


def views(app: IntdashApp) -> str:
    """The health views' line over the header."""
    caption = rows(app).caption
    return " ".join(caption.plain.split()) if caption is not None else ""


def complete(app: IntdashApp) -> bool:
    """The main screen has read everything (not only its first screenful)."""
    snapshot = getattr(app.screen, "snapshot", None)
    return snapshot is not None and bool(snapshot.complete)


def offered(app: IntdashApp) -> set[str]:
    """What the footer offers."""
    return {str(getattr(key, "description", "")) for key in app.screen.query("FooterKey")}


def select(app: IntdashApp, uid: str) -> None:
    table = rows(app)
    table.move_cursor(row=table.get_row_index(uid))


# -- who and why -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_who_and_why_at_every_width(ws: Workspace, size: str) -> None:
    """Each row names its customer, the reason takes the width the other columns leave (no
    sideways scrolling), and the selected row's whole reason is under the table."""
    harbour = ws.integrations.create("xero", name="Harbour Cafe").integration.uid
    with ws.db.write() as session:  # refused at its last refresh, in the platform's words
        row = ws.integrations.find(session, harbour)
        row.auth_error = "Xero refused the stored authorisation (invalid_grant): reconnect"
        session.add(row)
    erp = ws.integrations.create("custom", name="ERP push").integration.uid
    app = app_for(ws)
    async with app.run_test(size=SIZES[size]) as pilot:
        await until(pilot, lambda: complete(app) and len(uids(app)) == 2)
        table = rows(app)
        header, *lines = drawn(app)
        assert "Name" in header
        assert "Why" in header or size == "80x24"  # there, one column: "○ reconnect needed…"
        # the flexible columns take every cell the others leave: nothing off to the right
        assert table.line_width == table.size.width - table.styles.scrollbar_size_vertical
        harbour_line = next(text for text in lines if text.startswith(f" {harbour}"))
        assert "Harbour" in harbour_line and "reconnect" in harbour_line  # cut at 80
        assert "ERP push" in next(text for text in lines if text.startswith(f" {erp}"))
        select(app, harbour)
        await until(pilot, lambda: harbour in line(app))
        assert "Harbour Cafe" in line(app)
        assert "Inactive: reconnect needed: Xero refused the stored authorisation " in line(app)
        assert line(app).endswith("(invalid_grant): reconnect")  # whole, at any width
        select(app, erp)
        await until(pilot, lambda: "ERP push" in line(app))
        assert "no API key" in line(app)


async def test_the_sort_is_marked_in_the_header(ws: Workspace) -> None:
    made = {
        ws.integrations.create(kind, name=name).integration.uid: name
        for kind, name in (("zoho", "Bravo"), ("custom", "Alpha"), ("xero", "Charlie"))
    }
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: complete(app) and len(uids(app)) == 3)
        assert "UID ▲" in drawn(app)[0]
        assert uids(app) == sorted(made)
        await pilot.press("greater_than_sign")  # the next column: Type
        await until(pilot, lambda: "Type ▲" in drawn(app)[0])
        assert "UID ▲" not in drawn(app)[0]
        by_type = [made[uid] for uid in uids(app)]
        assert by_type == ["Alpha", "Charlie", "Bravo"]  # Custom, Xero, Zoho Books
        await pilot.press("less_than_sign")
        await until(pilot, lambda: "Type ▼" in drawn(app)[0])
        assert [made[uid] for uid in uids(app)] == by_type[::-1]
        await pilot.press("greater_than_sign")  # then Name, still falling
        await until(pilot, lambda: "Name ▼" in drawn(app)[0])
        assert [made[uid] for uid in uids(app)] == ["Charlie", "Bravo", "Alpha"]


async def test_a_sync_running_in_another_process_is_marked_on_its_row(
    pws: Workspace, sandbox: Sandbox, sandbox_env: dict[str, str]
) -> None:
    """`intdash sync` in a process of its own, held at the sandbox's gate after its first
    page: the dashboard marks the row with the invoices fetched so far, then the marker goes
    once the run ends."""
    pws.plans.set("scale")
    uid = pws.integrations.create("xero", name="Harbour Cafe").integration.uid
    await connect(pws, uid)
    sandbox.xero.faults.hold(after=1)
    proc = start_intdash("sync", uid, env=sandbox_env)
    try:
        app = app_for(pws)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: uids(app) == [uid])

            def next_sync() -> str:
                return str(rows(app).get_row_at(0)[NEXT])

            await until(pilot, lambda: next_sync() == "⟳ 1,000", 60, message=next_sync)
            assert app.syncs.get(uid) is None  # not the dashboard's own
            assert "⟳ 1,000" in drawn(app)[1]
            assert "⟳ syncing now, 1,000 fetched" in line(app)
            sandbox.xero.faults.release()
            _, err = await asyncio.to_thread(proc.communicate, None, 60)
            assert proc.returncode == 0, err
            await until(pilot, lambda: not next_sync().startswith("⟳"), message=next_sync)
            assert "syncing now" not in line(app)
    finally:
        sandbox.xero.faults.release()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    [run] = pws.integrations.runs(uid)[:1]
    assert (run.outcome, run.fetched) == (RunOutcome.OK.value, 2500)


# -- health views ------------------------------------------------------------------------------


async def _every_health(ws: Workspace, box: Sandbox) -> dict[str, list[str]]:
    """One or two integrations in each health view, each made as an operator's would be."""
    ws.plans.set("scale", monthly_limit=10)
    made: dict[str, list[str]] = {}

    def add(view: str, kind: str, name: str, **values: str) -> str:
        uid = ws.integrations.create(kind, name=name, values=values).integration.uid
        made.setdefault(view, []).append(uid)
        return uid

    for name in ("Active one", "Active two"):
        ws.keys.create(add("active", "custom", name), "production")
    add("action", "xero", "Not authorised")
    add("action", "custom", "No key yet")
    failing = add("failing", "xero", "Platform down")
    await connect(ws, failing)
    box.xero.faults.fail_5xx = 10_000
    assert (await SyncEngine(ws).run(failing)).outcome is RunOutcome.FAILED
    box.xero.faults.fail_5xx = 0
    full = add("limited", "custom", "At its limit")
    ws.keys.create(full, "production")
    add_invoices(ws, full, 10)
    off = add("disabled", "custom", "Switched off")
    ws.keys.create(off, "production")
    ws.integrations.set_sync_enabled(off, False)
    reasons = {view.uid: view.status.reason for view in ws.integrations.listing()}
    assert reasons[failing] is Reason.LAST_SYNC_FAILED and reasons[full] is Reason.LIMIT_REACHED
    assert reasons[off] is Reason.SYNC_DISABLED
    return made


async def test_health_views_on_number_keys_with_their_counts(
    pws: Workspace, sandbox: Sandbox
) -> None:
    made = await _every_health(pws, sandbox)
    app = app_for(pws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: complete(app) and len(uids(app)) == 7)
        # every view with its number key and count, in one line at 80 columns
        assert views(app) == "1 All 7 2 Active 2 3 Action 2 4 Failing 1 5 Limited 1 6 Disabled 1"
        for key, view in (("4", "failing"), ("3", "action"), ("5", "limited"), ("6", "disabled"),
                          ("2", "active")):  # fmt: skip
            await pilot.press(key)
            wanted = sorted(made[view])
            await until(pilot, lambda: sorted(uids(app)) == wanted)  # noqa: B023
        # a view with nothing in it says so, and how to see everything again
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.focused, Input))
        await pilot.press(*"off")  # typed into the filter: digits and letters alike
        box = app.screen.query_one("#filter", Input)
        await until(pilot, lambda: box.value == "off" and uids(app) == [])
        assert line(app) == "Nothing active matches “off” · 1 shows every integration"
        # the counts are of what the filter lets through
        assert views(app) == "1 All 1 2 Active 0 3 Action 0 4 Failing 0 5 Limited 0 6 Disabled 1"
        await pilot.press("4")  # in the filter box, a digit is typed, not a view shown
        await until(pilot, lambda: box.value == "off4")
        assert app.screen.shown == "active"  # type: ignore[attr-defined]
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.focused, RowTable))
        await pilot.press("1")
        await until(pilot, lambda: len(uids(app)) == 7)
        assert app.screen.check_action("show_view", ()) is True


async def test_ten_thousand_integrations_one_key_shows_everything_failing(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counts come from the one read; a view is one key; only the rows on screen have
    their cells made."""
    now = ws.clock()
    kinds = ("xero", "custom", "webhook", "myob", "custom")
    with ws.db.write() as session:  # as many rows as a large workspace holds, in one go
        session.add_all(
            Integration(
                uid=f"{'hook' if kinds[n % 5] == 'webhook' else kinds[n % 5][:4]}-{n:06d}",
                type=kinds[n % 5],
                name=f"Company {n:05d}",
                created_at=now,
                settings={"url": "https://hooks.example.com/in"} if n % 5 == 2 else {},
                # every 25th webhook's endpoint keeps refusing
                last_sync_error="HTTP 503 from the endpoint, 20 in a row" if n % 125 == 2 else None,
            )
            for n in range(10_000)
        )
    made: list[str] = []
    draw = IntegrationsScreen._row_cells

    def counted(screen: IntegrationsScreen, uid: str) -> tuple[Any, ...]:
        made.append(uid)
        return draw(screen, uid)

    monkeypatch.setattr(IntegrationsScreen, "_row_cells", counted)
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: complete(app) and rows(app).row_count == 10_000)
        assert "4 Failing 80" in views(app) and "1 All 10,000" in views(app)
        assert "3 Needs action 8,000" in views(app)  # not authorised, or no API key yet
        await pilot.press("4")
        await until(pilot, lambda: rows(app).row_count == 80)
        await pilot.pause()
        made.clear()
        await pilot.press("end")  # the last of them: only that screenful is made
        await until(pilot, lambda: made and rows(app).cursor_row == 79)
        await pilot.pause()
        assert 0 < len(set(made)) <= 30 and made[-1].startswith("hook-")
        assert all(uid.startswith("hook-") for uid in uids(app))
        # the last row is in view above the selected one's line, not under it
        lines, last = drawn(app), uids(app)[-1]
        note = rows(app).note
        assert note is not None and last in note.plain
        at = next(n for n, text in enumerate(lines) if text.startswith(f" {last}"))
        assert lines[at + 1].strip().startswith(last)  # the note follows the last row
        assert "deliveries failing" in line(app)


def test_what_an_empty_view_says() -> None:
    def said(view: int, filter_text: str) -> str:
        return selection_line(None, syncing=None, shown=VIEWS[view], filter_text=filter_text).plain

    assert said(0, "zzz") == "Nothing matches “zzz”"
    assert said(3, "") == "Nothing failing · 1 shows every integration"
    assert said(2, "acme") == "Nothing needing action matches “acme” · 1 shows every integration"


# -- the empty state ---------------------------------------------------------------------------


async def test_the_empty_state_offers_no_filter(ws: Workspace) -> None:
    app = app_for(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.screen.query("#empty") and app.screen.query("FooterKey"))
        assert "New" in offered(app) and "Filter" not in offered(app)
        screen = app.screen
        assert screen.check_action("filter", ()) is False
        assert screen.check_action("show_view", ()) is False
        await pilot.press("slash")
        await pilot.press("4")
        await pilot.pause()
        assert not screen.query("#filter") and not rows(app).display
        ws.integrations.create("custom", name="First")
        await until(pilot, lambda: rows(app).display and len(uids(app)) == 1)
        assert screen.check_action("filter", ()) is True
        await until(pilot, lambda: "Filter" in offered(app))


# -- how it looks ------------------------------------------------------------------------------


async def _harbour(pilot: Pilot[Any], made: dict[str, str], *keys: str) -> None:
    await scenes.integrations(pilot, made)
    await pilot.press(*keys)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_looks(size: str, shot_ws: Workspace, seeded: Seeded, snap_compare: Any) -> None:
    """The demo's integrations, the one needing a reconnect selected."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await _harbour(pilot, seeded.made)

    app = IntdashApp(shot_ws, schedule=False, poll_seconds=3600)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=run_before)


def test_looks_needing_action_sorted_by_name(
    shot_ws: Workspace, seeded: Seeded, snap_compare: Any
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _harbour(pilot, seeded.made, "3", "greater_than_sign", "greater_than_sign")

    app = IntdashApp(shot_ws, schedule=False, poll_seconds=3600)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
