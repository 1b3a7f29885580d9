"""Details of one integration: its status, what can be done to it (the action bar, in
details_buttons) and its run history (details_history).

Sync Now starts the app's sync (see ``intdash.tui.syncs``): it goes on when this screen is left,
and this screen shows its progress only while it is shown."""

from __future__ import annotations

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.markup import escape
from textual.widgets import Button, Footer, Static

from intdash.core.catalog import Probe
from intdash.core.models import RunOutcome, SyncRun
from intdash.core.services.integrations import IntegrationView
from intdash.tui.format import status_text
from intdash.tui.screens.base import BaseScreen
from intdash.tui.screens.details_buttons import (
    BUTTONS,
    COMPACT_BELOW,
    ActionBar,
    authorise_action,
)
from intdash.tui.screens.details_history import RunHistory
from intdash.tui.screens.forms import check_common
from intdash.tui.syncs import DashboardSync
from intdash.tui.widgets import TitleBar


class DetailsScreen(BaseScreen):
    BINDINGS = [
        Binding("escape", "back", "Close", id="close", tooltip="Back to the integrations"),
        Binding("t", "test_connection", "Test", id="test", tooltip="Test the connection"),
        Binding("s", "sync_now", "Sync now", id="sync-now", tooltip="Sync it now"),
        Binding(
            "ctrl+x",
            "cancel_sync",
            "Stop sync",
            id="stop-sync",
            tooltip="Stop its running sync after the current page",
        ),
        Binding(
            "f",
            "reset_sync_from",
            "Sync from…",
            id="sync-from",
            tooltip="Sync again from a date (moves the cursor; deletes nothing)",
        ),
        Binding(
            "e",
            "toggle_sync",
            "Enable/Disable",
            id="toggle",
            tooltip="Turn its scheduled syncs off or on",
        ),
        Binding("o", "connect", "Connect", id="connect", tooltip="Authorise it (OAuth)"),
        Binding("o", "reconnect", "Reconnect", id="reconnect", tooltip="Authorise again"),
        Binding("x", "remove", "Remove", id="remove", tooltip="Remove it (asks first)"),
        Binding("i", "invoices", "Invoices", id="invoices", tooltip="Its invoices"),
        Binding("d", "deliveries", "Deliveries", id="deliveries", tooltip="What was sent to it"),
        Binding("L", "audit", "Audit", id="audit", tooltip="Its audit trail: who did what, when"),
        Binding("j", "scroll_runs(1)", "Down", show=False, id="down"),
        Binding("k", "scroll_runs(-1)", "Up", show=False, id="up"),
    ]

    def __init__(self, uid: str) -> None:
        super().__init__()
        self.uid = uid
        self.view: IntegrationView | None = None
        self.elsewhere: SyncRun | None = None  # a run going on that this dashboard did not start
        self.summary = ""
        self.stale = False  # read while covered: read again when shown

    def compose(self) -> ComposeResult:
        yield TitleBar(f"[b]Details of {self.uid}[/b]", id="details-title")
        with Vertical(id="details"):
            yield Static("", id="summary")
            yield ActionBar(id="detail-buttons")
            yield Static("[b]Run history[/b]", id="runs-title")
            yield RunHistory(id="runs")
        yield Footer()

    def on_mount(self) -> None:
        self.fingerprint: tuple[object, ...] | None = None
        self.load()
        self.set_interval(self.intdash.poll_seconds, self.poll)
        self._unlisten = self.intdash.syncs.listen(self._sync_moved)

    def on_unmount(self) -> None:
        self._unlisten()  # a sync that goes on has nothing more to show here

    @property
    def syncing(self) -> DashboardSync | None:
        """This dashboard's sync of the integration, while it runs."""
        return self.intdash.syncs.get(self.uid)

    def _sync_moved(self, uid: str) -> None:
        if uid == self.uid:
            self.load()  # its status, and the run's counts in the history

    @work(exclusive=True, group="details-poll")
    async def poll(self) -> None:
        """Re-read only when something changed, and only while shown."""
        if not self.is_current:
            return
        fingerprint = await self.call(self.ws.integrations.fingerprint, doing="Checking")
        if fingerprint is not None and fingerprint != self.fingerprint:
            self.fingerprint = fingerprint
            self.load()

    def _read(self) -> tuple[IntegrationView, list[SyncRun]]:
        return self.ws.integrations.get(self.uid), self.ws.integrations.runs(self.uid)

    @work(exclusive=True, group="details")
    async def load(self) -> None:
        found = await self.call(self._read, doing=f"Reading {self.uid}")
        if found is None or not self.live:
            return
        if self.is_current:
            self.show(*found)
        else:  # left, or covered by another screen meanwhile: read again when shown
            self.stale = True

    def on_screen_resume(self) -> None:
        if self.stale:
            self.stale = False
            self.load()

    def show(self, view: IntegrationView, runs: list[SyncRun]) -> None:
        self.view = view
        newest = runs[0] if runs else None
        running = newest is not None and newest.outcome == RunOutcome.RUNNING.value
        self.elsewhere = newest if running and self.syncing is None else None
        status = status_text(view.status)
        reason = f"  —  {escape(view.status.explanation)}" if view.status.reason else ""
        summary = (
            f"[b]{view.spec.icon} {view.spec.label}[/b] · {view.uid} · {escape(view.name)}\n"
            f"Status: {status.markup}{reason}\n" + self._activity(view) + self._progress()
        )
        if summary != self.summary:
            self._summarise(summary)
        bar = self.query_one("#detail-buttons", ActionBar)
        bar.relabel(enable=not view.sync_enabled)
        bar.offer(view)
        self.query_one("#runs", RunHistory).show(runs, self.when)
        self.offer_actions()

    def _summarise(self, summary: str) -> None:
        """Show the summary. A layout pass is the costliest thing the loop does while a sync
        runs beside it, so the summary re-lays out only when its height changes: the lines it
        wraps to at its width (a long reason takes two), not only the lines it has."""
        widget = self.query_one("#summary", Static)
        widget.update(summary, layout=False)
        self.summary = summary
        shown = widget.content_region
        if not shown.width or shown.height != widget.get_content_height(
            widget.size, self.size, shown.width
        ):
            widget.refresh(layout=True)

    def _progress(self) -> str:
        """A line while a sync runs: this dashboard's, or one another process runs."""
        sync = self.syncing
        if sync is not None:
            stop = "stopping after this page" if sync.cancel.is_set() else "ctrl+x stops it"
            return f"\n[b]Syncing now:[/b] {sync.progress()} ({stop})"
        run = self.elsewhere
        if run is not None:
            return (
                f"\n[b]Syncing now[/b] (a {run.trigger} sync started {self.when(run.started_at)}):"
                f" fetched {run.fetched:,} so far"
            )
        return ""

    def _activity(self, view: IntegrationView) -> str:
        """Its times on one line, its states and the month's count on the next."""
        times, states = [], []
        for label, value in view.activity():
            if isinstance(value, str):
                states.append(f"{label}: {value}")
            else:
                times.append(f"{label}: {self.when(value)}")
        return "    ".join(times) + "\n" + "    ".join(states)

    def on_resize(self, event: events.Resize) -> None:
        self.query_one("#detail-buttons", ActionBar).relabel(
            compact=event.size.width < COMPACT_BELOW
        )

    def applies(self, action: str) -> bool:
        view = self.view
        if action == "test_connection":
            return (
                view is not None and view.spec.probe is not Probe.NONE and view.removed_at is None
            )
        if action == "deliveries":
            return view is not None and view.spec.delivers
        if action in ("connect", "reconnect"):
            return action == authorise_action(view)
        if action in ("sync_now", "reset_sync_from"):
            return view is not None and view.spec.oauth and view.removed_at is None
        if action == "cancel_sync":
            return self.syncing is not None or self.elsewhere is not None
        if action in ("remove", "toggle_sync"):
            return view is not None and view.removed_at is None
        return True

    # -- actions -----------------------------------------------------------------------------

    @on(Button.Pressed)
    async def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id in BUTTONS:
            await self.run_action(ActionBar.action(event.button.id))

    def action_deliveries(self) -> None:
        from intdash.tui.screens.deliveries import DeliveriesScreen

        self.app.push_screen(DeliveriesScreen(self.uid))

    def action_back(self) -> None:
        self.app.pop_screen()

    @work(group="test")
    async def action_test_connection(self) -> None:
        from intdash.providers.connect import ConnectService

        if self.view is not None and self.view.spec.probe is Probe.SIGNED_EVENT:
            from intdash.tui.screens.deliveries import test_and_tell

            await test_and_tell(self, self.uid)
            return

        self.notify(f"Testing {self.uid}…", timeout=2)
        try:
            result = await ConnectService(self.ws).test(self.uid)
        except Exception as exc:
            self.intdash.report(exc, "Testing the connection")
            return
        self.notify(
            result.message,
            title="Connection works" if result.ok else "Connection fails",
            severity="information" if result.ok else "error",
        )

    async def action_sync_now(self) -> None:
        """Sync now, as the app's sync; when only the reserve of the platform's daily API calls
        is left, ask first. While it runs, saying so is all that this does."""
        if self.syncing is not None:
            self.intdash.start_sync(self.uid)  # it says that it runs already
            return
        view = await self.call(self.ws.integrations.get, self.uid, doing=f"Reading {self.uid}")
        if view is None:
            return
        low = view.daily_budget_low
        if low is None:
            self._sync_now()
            return
        from intdash.tui.screens.modals import ConfirmScreen

        def done(confirmed: bool | None) -> None:
            if confirmed:
                self._sync_now()

        self.app.push_screen(
            ConfirmScreen(
                f"Sync {self.uid} now?",
                f"{view.spec.label}'s daily API limit is nearly spent: {low.explanation}.\n\n"
                "Scheduled syncs wait for the reset. A sync now may spend the last calls, "
                "leaving none for another Sync Now before then.",
                "Sync anyway",
            ),
            done,
        )

    def _sync_now(self) -> None:
        self.intdash.start_sync(self.uid)
        self.offer_actions()

    async def action_cancel_sync(self) -> None:
        """Stop the sync after its current page: this dashboard's own directly, another
        process's by asking it through the database."""
        if self.intdash.stop_sync(self.uid):
            self.notify("The sync stops after its current page")
            self.load()
            return
        from intdash.sync.engine import SyncEngine

        engine = SyncEngine(self.ws)
        who = f"{self.ws.actor} in the dashboard"
        asked = await self.call(engine.request_cancel, self.uid, who, doing="Stopping")
        if asked:
            self.notify("The sync stops after its current page")
        elif asked is not None:
            self.notify(f"{self.uid} is not syncing now")
            self.load()

    def action_reset_sync_from(self) -> None:
        """Ask for the date to sync from again; an empty one is the beginning (no date)."""
        from intdash.tui.screens.modals import PromptScreen

        current = self.view.sync_from.isoformat() if self.view and self.view.sync_from else ""
        self.app.push_screen(
            PromptScreen(
                "Sync from a date",
                "Date (YYYY-MM-DD), or empty for the beginning:",
                value=current,
                placeholder="empty: from the beginning",
                check=self._check_sync_from,
                confirm="Next",
            ),
            self._reset_confirm,
        )

    def _check_sync_from(self, text: str) -> str | None:
        """The service's rule for a sync-from date, by the workspace's clock (empty: none)."""
        return check_common("sync_from", text, self.ws.clock)

    def _reset_confirm(self, day: str | None) -> None:
        if day is None:  # cancelled
            return
        from intdash.tui.screens.modals import ConfirmScreen

        beginning = day.lower() in ("", "none")  # as the service reads it: no date

        def done(confirmed: bool | None) -> None:
            if confirmed:
                self._reset("" if beginning else day)  # a worker: it runs on its own

        since = "the beginning" if beginning else day
        self.app.push_screen(
            ConfirmScreen(
                f"Sync {self.uid} again from {since}?",
                (
                    "The next sync starts again from the beginning: every invoice the platform "
                    "has, whatever its date."
                    if beginning
                    else "The next sync starts again from that date."
                )
                + " This moves the sync cursor only: no invoice is deleted, and invoices already "
                "stored are updated, not duplicated.",
                f"Sync from {since}",
                danger=False,
            ),
            done,
        )

    @work(group="change")
    async def _reset(self, day: str) -> None:
        """Sync from ``day`` next time (empty: from the beginning)."""
        if await self.call(self.ws.integrations.configure, self.uid, {"sync_from": day},
                           doing="Setting the sync-from date") is not None:  # fmt: skip
            self.notify(f"{self.uid} syncs from {day or 'the beginning'} next time")
            self.load()

    @work(group="change")
    async def action_toggle_sync(self) -> None:
        if self.view is None:
            return
        enable = not self.view.sync_enabled
        changed = await self.call(
            self.ws.integrations.set_sync_enabled, self.uid, enable, doing="Changing sync"
        )
        if changed is not None:
            self.notify(f"Sync {'enabled' if enable else 'disabled'} for {self.uid}")
            self.load()

    def action_connect(self) -> None:
        self.action_reconnect()

    def action_reconnect(self) -> None:
        from intdash.tui.screens.connect import ConnectScreen

        self.app.push_screen(ConnectScreen(self.uid), self.reload)

    def action_remove(self) -> None:
        if self.view is None:
            return
        from intdash.tui.screens.modals import RemoveScreen

        def done(removed: bool | None) -> None:
            if removed:
                self.app.pop_screen()

        self.app.push_screen(RemoveScreen(self.view), done)

    def action_invoices(self) -> None:
        from intdash.tui.screens.invoices import InvoicesScreen

        self.app.push_screen(InvoicesScreen(self.uid))

    def action_audit(self) -> None:
        from intdash.tui.screens.audit import AuditScreen

        self.app.push_screen(AuditScreen(self.uid))

    def action_scroll_runs(self, step: int) -> None:
        self.query_one("#runs", RunHistory).scroll_rows(step)
