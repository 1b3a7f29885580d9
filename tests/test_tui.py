"""The dashboard, driven with the Pilot: every flow an operator uses."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from textual.widgets import Button, Input, LoadingIndicator, Select, Static

from intdash.core.models import RunOutcome, SyncRun
from intdash.core.workspace import Workspace
from intdash.sandbox.server import Sandbox
from intdash.server.runner import HttpServer
from intdash.tui.app import IntdashApp
from intdash.tui.screens.apikeys import ApiKeysScreen
from intdash.tui.screens.connect import ConnectScreen
from intdash.tui.screens.details import DetailsScreen
from intdash.tui.screens.forms import ConfigureScreen, CreateScreen
from intdash.tui.screens.help import HelpScreen
from intdash.tui.screens.integrations import IntegrationsScreen
from intdash.tui.screens.invoices import InvoicesScreen
from intdash.tui.screens.modals import KeyShownScreen, PromptScreen, RemoveScreen
from tests.conftest import run_intdash
from tests.providers import consent, pws, redirect_uri, sandbox, sandbox_env
from tests.waiting import until

__all__ = ["pws", "redirect_uri", "sandbox", "sandbox_env"]  # fixtures


def table(app: IntdashApp, selector: str = "#integrations") -> Any:
    """A DataTable, or the integrations' RowTable (they share what is used here)."""
    return app.screen.query_one(selector)


def uids(app: IntdashApp) -> list[str]:
    t = table(app)
    return [str(t.get_row_at(i)[0]) for i in range(t.row_count)]


def app_for(ws: Workspace, **options: Any) -> IntdashApp:
    return IntdashApp(ws, schedule=False, poll_seconds=0.2, **options)


async def test_empty_state_and_create(ws: Workspace) -> None:
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(
            pilot, lambda: app.screen.query("#empty") and app.screen.query_one("#empty").display
        )
        assert "No integrations yet" in str(app.screen.query_one("#empty-text", Static).render())
        await until(pilot, lambda: app.focused is app.screen.query_one("#empty-create", Button))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, CreateScreen))
        app.screen.query_one("#type", Select).value = "webhook"
        await until(pilot, lambda: app.screen.query("#f-url"))
        await pilot.pause()  # the new form's fields have told the form what they hold
        save = app.screen.query_one("#save", Button)
        assert save.disabled  # the URL is required
        app.screen.query_one("#f-url", Input).value = "https://hooks.example.com/in"
        await until(pilot, lambda: not save.disabled)
        await pilot.click("#save")
        await until(pilot, lambda: isinstance(app.screen, KeyShownScreen))
        secret = app.screen.query_one("#secret", Input).value
        assert len(secret) >= 32  # the signing secret, shown this once
        await until(pilot, lambda: app.screen.query("#done"))  # composed down to its button
        await pilot.click("#done")
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen) and uids(app))
    [view] = ws.integrations.listing()
    assert view.settings["url"] == "https://hooks.example.com/in"


async def test_configure_bad_input_then_good(ws: Workspace) -> None:
    uid = ws.integrations.create("webhook", values={"url": "https://a.example/h"}).integration.uid
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfigureScreen))
        url = app.screen.query_one("#f-url", Input)
        save = app.screen.query_one("#save", Button)
        url.value = "http://example.com/plain"
        await until(pilot, lambda: save.disabled)
        error = app.screen.query_one("#e-url", Static)
        assert "only on loopback" in str(error.render())
        app.screen.query_one("#f-headers", Input).value = "no colon"
        await until(
            pilot, lambda: "Name: value" in str(app.screen.query_one("#e-headers", Static).render())
        )
        assert ws.integrations.get(uid).settings["url"] == "https://a.example/h"  # nothing saved
        url.value = "https://b.example/h"
        app.screen.query_one("#f-headers", Input).value = "X-Tenant: 7"
        await until(pilot, lambda: not save.disabled)
        await pilot.click("#save")
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen))
    view = ws.integrations.get(uid)
    assert view.settings["url"] == "https://b.example/h"
    assert view.secrets_set == ("headers",)


async def test_remove_cancel_then_confirm(ws: Workspace) -> None:
    uid = ws.integrations.create("xero", name="Doomed").integration.uid
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, RemoveScreen))
        body = str(app.screen.query_one(".dialog-body", Static).render())
        assert "Doomed" in body and "fiscalized stay in the history" in body
        assert app.focused is app.screen.query_one("#cancel", Button)
        await pilot.press("enter")  # the focus is on Cancel
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen))
        assert ws.integrations.get(uid).removed_at is None
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, RemoveScreen))
        await pilot.click("#confirm")
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen) and not uids(app))
    assert ws.integrations.get(uid).removed_at is not None


async def test_actions_follow_the_selected_type(ws: Workspace) -> None:
    xero = ws.integrations.create("xero").integration.uid
    zoho = ws.integrations.create("zoho").integration.uid
    custom = ws.integrations.create("custom").integration.uid
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: len(uids(app)) == 3)
        screen = app.screen

        def offered() -> set[str]:
            return {a for a in ("connect", "reconnect", "configure", "api_keys", "remove")
                    if screen.check_action(a, ()) is True}  # fmt: skip

        # not yet authorised: a platform's integration offers Connect before its own actions
        expected = {xero: {"connect", "remove"}, zoho: {"connect", "configure", "remove"},
                    custom: {"api_keys", "remove"}}  # fmt: skip
        for _ in range(3):
            uid = screen.selected_uid()  # type: ignore[attr-defined]
            assert offered() == expected[uid]
            await pilot.press("j")


async def test_api_keys_create_and_revoke(ws: Workspace) -> None:
    uid = ws.integrations.create("custom").integration.uid
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApiKeysScreen))
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press(*"production")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, KeyShownScreen))
        key = app.screen.query_one("#secret", Input).value
        assert key.startswith("idk_")
        assert "will not be shown again" in str(
            app.screen.query_one(".dialog-body", Static).render()
        )
        await pilot.click("#done")
        await until(
            pilot,
            lambda: isinstance(app.screen, ApiKeysScreen) and table(app, "#keys").row_count == 1,
        )
        assert ws.keys.verify(key).ok
        await pilot.press("x")
        await until(pilot, lambda: app.screen.query("#confirm"))
        await pilot.click("#confirm")
        await until(pilot, lambda: "revoked" in str(table(app, "#keys").get_row_at(0)[4]))
        assert not ws.keys.verify(key).ok


async def test_filter(ws: Workspace) -> None:
    xero = ws.integrations.create("xero", name="Acme").integration.uid
    ws.integrations.create("custom", name="Other")
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: len(uids(app)) == 2)
        await pilot.press("slash")
        await pilot.press(*"acme")
        await until(pilot, lambda: uids(app) == [xero])
        await pilot.press("escape")
        await until(pilot, lambda: len(uids(app)) == 2)


async def test_read_only_disables_every_change(ws: Workspace) -> None:
    uid = ws.integrations.create("xero").integration.uid
    app = app_for(ws, read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        screen = app.screen
        assert screen.check_action("remove", ()) is None  # greyed, not hidden
        assert screen.check_action("create", ()) is None
        assert screen.check_action("details", ()) is True
        await pilot.press("x")
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, IntegrationsScreen)
        assert app.scheduler is None
    assert ws.integrations.get(uid).removed_at is None


async def test_a_change_by_another_process_appears(ws: Workspace, env: dict[str, str]) -> None:
    first = ws.integrations.create("xero").integration.uid
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [first])
        table(app).move_cursor(row=0)
        added = await asyncio.to_thread(
            run_intdash, "integrations", "add", "custom", "--json", env=env
        )
        assert added.returncode == 0, added.stderr
        await until(pilot, lambda: len(uids(app)) == 2)
        assert app.screen.selected_uid() == first  # type: ignore[attr-defined]  # cursor kept
        removed = await asyncio.to_thread(
            run_intdash, "integrations", "remove", first, "--yes", env=env
        )
        assert removed.returncode == 0
        await until(pilot, lambda: first not in uids(app))


async def test_start_reads_a_screenful_then_everything_once(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first frame's few rows, then one full read, then only the cheap change check while
    nothing changes (the polls that start meanwhile wait for the read under way)."""
    for _ in range(40):
        ws.integrations.create("custom")
    reads: list[int | None] = []
    checks: list[int] = []
    read, check = IntegrationsScreen._read, ws.integrations.fingerprint

    def counted_read(screen: IntegrationsScreen, first: int | None = None) -> Any:
        reads.append(first)
        return read(screen, first)

    def counted_check() -> Any:
        checks.append(1)
        return check()

    monkeypatch.setattr(IntegrationsScreen, "_read", counted_read)
    monkeypatch.setattr(ws.integrations, "fingerprint", counted_check)
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: len(uids(app)) == 40)
        assert reads[0] == 30  # a screenful: the screen's height
        polls = len(checks)
        await until(pilot, lambda: len(checks) >= polls + 3)  # three polls more, all quiet
        assert reads[1:] == [None]


@pytest.mark.parametrize("size", [(80, 24), (140, 30)])
async def test_the_status_line(ws: Workspace, size: tuple[int, int]) -> None:
    from datetime import date, timedelta

    from tests.test_integrations import add_invoices

    ws.plans.set("growth", licence_expires=date(2027, 6, 30))
    uid = ws.integrations.create("custom").integration.uid
    add_invoices(ws, uid, 12)
    assert ws.leases.acquire("scheduler", "build-7:4242:abc", timedelta(minutes=5))
    app = app_for(ws)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        line = " ".join(str(app.screen.query_one("#status-line", Static).render()).split())
        # the plan, the licence's state and expiry, the month's usage, who schedules syncs
        assert line.startswith("intdash │ ")
        assert "Growth" in line and "every 5 min" in line
        assert "valid" in line and "to 2027-06-30" in line
        assert "12" in line and "this month" in line
        assert "build-7 pid 4242" in line
        if size[0] == 80:  # short enough for two lines at 80 columns
            assert len(line) <= 2 * 78, line
        else:
            assert "5,000/month each" in line
        ws.leases.release("scheduler", "build-7:4242:abc")
        ws.plans.set("growth", licence_expires=date(2020, 1, 1))

        def status() -> str:
            return str(app.screen.query_one("#status-line", Static).render())

        nobody = "no scheduler" if size[0] == 80 else "scheduled by nobody"
        await until(pilot, lambda: "LAPSED" in status() and nobody in status())
        assert "expired 2020-01-01" in status()


async def test_help_and_palette(ws: Workspace) -> None:
    ws.integrations.create("xero")
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = str(app.screen.query_one("VerticalScroll Static", Static).render())
        assert "Connect" in text and "Filter" in text and "Configure" not in text
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen))
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert "Connect" in commands and "Remove" in commands and "Configure" not in commands


async def test_details_sync_now_toggle_and_sync_from(pws: Workspace, sandbox: Sandbox) -> None:
    from tests.providers import connect

    pws.plans.set("scale")
    uid = pws.integrations.create("zoho").integration.uid
    await connect(pws, uid)
    app = app_for(pws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.view)
        await pilot.press("s")

        def finished() -> list[SyncRun]:
            return [r for r in pws.integrations.runs(uid) if r.outcome != "running"]

        await until(pilot, finished, timeout=90)
        run = finished()[0]
        assert (run.outcome, run.fetched) == (RunOutcome.OK.value, 2500)
        await until(pilot, lambda: "ok" in [str(c) for c in table(app, "#runs").get_row_at(0)])
        await pilot.press("e")
        await until(pilot, lambda: not pws.integrations.get(uid).sync_enabled)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one("#value", Input).value = "2025-06-01"
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.query("#confirm"))
        await pilot.click("#confirm")
        await until(pilot, lambda: pws.integrations.get(uid).sync_from is not None)
        assert pws.integrations.get(uid).cursor is None  # the cursor moved; nothing deleted
        assert len(list(pws.invoices.iter_all(uid))) == 2500


async def test_connect_by_paste(pws: Workspace, sandbox: Sandbox) -> None:
    pws.plans.set("scale")  # its first sync, started at once, stays within the month's limit
    uid = pws.integrations.create("xero").integration.uid
    app = app_for(pws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, ConnectScreen) and app.screen.flow)
        screen = app.screen
        assert isinstance(screen, ConnectScreen) and screen.flow is not None
        assert screen.query_one("#url", Input).value == screen.flow.url
        assert "ssh -L" in str(screen.query_one("#steps", Static).render())
        location = await consent(screen.flow.url)
        paste = screen.query_one("#paste", Input)
        paste.value = location
        paste.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen))
        await until(pilot, lambda: "Active" in str(table(app).get_row_at(0)[3]))
    assert pws.integrations.get(uid).status.active


async def test_invoice_history_pages(ws: Workspace) -> None:
    from tests.test_integrations import add_invoices

    ws.plans.set("scale")
    uid = ws.integrations.create("custom").integration.uid
    add_invoices(ws, uid, 450)
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app))
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, InvoicesScreen))

        def invoices() -> Any:
            return table(app, "#invoices")

        await until(pilot, lambda: invoices().row_count == 200)  # one page at a time
        assert str(invoices().get_row_at(0)[2]) == "INV-00449"  # newest first
        await pilot.pause()
        # reading a page never leaves the screen covered (Textual's own `loading` cover)
        assert not app.screen.loading and not app.screen.query(LoadingIndicator)
        assert "INV-00449" in app.export_screenshot()
        invoices().move_cursor(row=190)
        await until(pilot, lambda: invoices().row_count == 400)
        await pilot.press("slash")
        await pilot.press(*"INV-001")
        await until(pilot, lambda: invoices().row_count == 100)


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_works_at_small_sizes(ws: Workspace, size: tuple[int, int]) -> None:
    ws.integrations.create("xero", name="A rather long integration name for a narrow terminal")
    app = app_for(ws)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: uids(app))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, IntegrationsScreen))


async def test_the_dashboard_serves_the_ingest_api(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from intdash.core.config import load_settings
    from intdash.providers.http import httpx
    from tests.providers import free_port

    port = free_port()
    monkeypatch.setenv("INTDASH_SERVER__PORT", str(port))
    ws = Workspace.open(load_settings(), actor="tester")
    uid = ws.integrations.create("custom", name="ERP").integration.uid
    key = ws.keys.create(uid, "production").key
    app = IntdashApp(ws, schedule=False, serve=True, server=HttpServer, poll_seconds=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.server is not None)
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"http://127.0.0.1:{port}/v1/invoices",
                json={"external_id": "E-1", "currency": "NZD", "total": "10.00"},
                headers={"Authorization": f"Bearer {key}"},
            )
        assert answer.status_code == 201
        # and it shows, as any change does
        await until(pilot, lambda: str(table(app).get_row_at(0)[5]).startswith("1/"))
        assert str(table(app).get_row_at(0)[6]) != "never"  # a push is its "last sync"

        # a second dashboard finds the port taken: it says so and goes on without serving
        second = IntdashApp(ws, schedule=False, serve=True, server=HttpServer)
        async with second.run_test(size=(100, 30)) as other:
            await until(
                other, lambda: any("not served" in n.message for n in second._notifications)
            )
            assert second.server is None
    ws.close()


async def test_webhook_deliveries_view_resend_and_test(ws: Workspace) -> None:
    from intdash.sync.deliveries import DeliveryWorker
    from intdash.tui.screens.deliveries import DeliveriesScreen
    from tests.test_integrations import invoice_data
    from tests.test_webhooks import Receiver

    receiver = Receiver(status=503)
    try:
        ws.plans.set("scale")
        source = ws.integrations.create("custom", name="ERP").integration.uid
        hook = ws.integrations.create(
            "webhook", name="Archive", values={"url": receiver.url}
        ).integration.uid
        ws.ingest.accept(source, [invoice_data(1), invoice_data(2)])
        await DeliveryWorker(ws).drain()
        app = app_for(ws)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: uids(app))
            table(app).move_cursor(row=table(app).get_row_index(hook))
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.view)
            assert app.screen.query_one("#b-deliveries", Button).display
            assert not app.screen.query_one("#b-sync", Button).display
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, DeliveriesScreen))

            def rows() -> Any:
                return table(app, "#deliveries")

            await until(pilot, lambda: rows().row_count == 2)
            first = [str(c) for c in rows().get_row_at(0)]
            assert first[3] == "pending" and first[5] == "503"

            receiver.status = 200
            await pilot.press("r")  # resend the selected one, now
            await until(pilot, lambda: any("again now" in n.message for n in app._notifications))
            await DeliveryWorker(ws).run_once()
            await until(pilot, lambda: str(rows().get_row_at(0)[3]) == "delivered")

            await pilot.press("t")
            await until(pilot, lambda: any("HTTP 200" in n.message for n in app._notifications))
            assert receiver.got[-1].event["type"] == "test"

            # a new signing secret, after a confirmation, shown once
            await pilot.press("R")
            await until(pilot, lambda: app.screen.query("#confirm"))
            await pilot.click("#confirm")
            await until(pilot, lambda: isinstance(app.screen, KeyShownScreen))
            secret = app.screen.query_one("#secret", Input).value
            assert secret.startswith("whsec_")
    finally:
        receiver.close()


async def test_sync_from_is_judged_by_the_workspace_clock(ws: Workspace, clock: Any) -> None:
    """The sync-from prompt takes the service's rule and the workspace's clock: a date after the
    workspace's today is refused, whatever the machine's date says."""
    uid = ws.integrations.create("xero").integration.uid
    app = app_for(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: uids(app) == [uid])
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.view)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        tomorrow = (clock.now + timedelta(days=1)).date().isoformat()
        app.screen.query_one("#value", Input).value = tomorrow
        await until(pilot, lambda: app.screen.query_one("#ok", Button).disabled)
        problem = str(app.screen.query_one("#problem", Static).render())
        assert "in the future" in problem
        yesterday = (clock.now - timedelta(days=1)).date().isoformat()
        app.screen.query_one("#value", Input).value = yesterday
        await until(pilot, lambda: not app.screen.query_one("#ok", Button).disabled)
