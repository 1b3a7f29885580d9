"""The main screen: every integration, with what an operator needs at a glance."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Button, Footer, Input

from intdash.core.services import fiscal_views
from intdash.core.services.integrations import IntegrationView
from intdash.tui.format import count
from intdash.tui.screens.integrations_actions import TYPE_ACTIONS, IntegrationsActions
from intdash.tui.screens.integrations_status import (
    Snapshot,
    selection_line,
    status_line,
    views_line,
)
from intdash.tui.screens.integrations_table import (
    LAYOUTS,
    VIEW_BINDINGS,
    VIEW_KEYS,
    VIEWS,
    EmptyState,
    cells,
    layout_for,
    next_sync,
    pick,
    syncing,
)
from intdash.tui.widgets import RowTable, TitleBar


class IntegrationsScreen(IntegrationsActions):
    AUTO_FOCUS = None  # the table, or the empty state's button: chosen when the data is read
    BINDINGS = [
        Binding(
            "enter", "details", "Details", id="details", tooltip="Open the selected integration"
        ),
        Binding("o", "connect", "Connect", id="connect", tooltip="Authorise it (OAuth)"),
        Binding("o", "reconnect", "Reconnect", id="reconnect", tooltip="Authorise again (OAuth)"),
        Binding("c", "configure", "Configure", id="configure", tooltip="Change its settings"),
        Binding("a", "api_keys", "API Keys", id="api-keys", tooltip="Keys that push invoices"),
        Binding("x", "remove", "Remove", id="remove", tooltip="Remove it (asks first)"),
        Binding("n", "create", "New", id="create", tooltip="Create an integration"),
        Binding(
            "slash", "filter", "Filter", id="filter", tooltip="Filter by UID, name, type, status"
        ),
        Binding("i", "invoices", "Invoices", id="invoices", tooltip="The invoice history"),
        Binding("L", "audit", "Audit", id="audit", tooltip="The audit trail: who did what, when"),
        Binding("r", "refresh", "Refresh", id="refresh", tooltip="Read everything again now"),
        Binding(
            "greater_than_sign",
            "sort",
            "Sort",
            show=False,
            id="sort",
            tooltip="Sort by the next column",
        ),
        Binding(
            "less_than_sign",
            "reverse",
            "Reverse",
            show=False,
            id="reverse",
            tooltip="Reverse the order",
        ),
        Binding(
            "space",
            "menu",
            "Actions",
            show=False,
            id="menu",
            tooltip="The actions of the selected integration",
        ),
        Binding("j", "cursor_down", "Down", show=False, id="down"),
        Binding("k", "cursor_up", "Up", show=False, id="up"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="clear-filter"),
        *VIEW_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.views: dict[str, IntegrationView] = {}
        self.filter_text = ""
        self.sort_key = "uid"
        self.sort_reverse = False
        self.shown = "all"  # the health view shown
        self.counts: dict[str, int] | None = None  # each view's rows (None: not all read)
        self.snapshot: Snapshot | None = None
        self.pending: Snapshot | None = None
        self.stale = False
        self.reading = False  # a full read is asked for or under way
        self.table_layout = LAYOUTS[0]

    def compose(self) -> ComposeResult:
        yield TitleBar(id="status-line")
        # the health views over the header (the selected integration goes under the rows)
        table = RowTable(self._row_cells, caption=self._views_line, id="integrations")
        self._columns(table)
        yield table
        yield Footer()
        # the filter box and the empty state are mounted when first needed: less to style
        # before the first frame

    def on_mount(self) -> None:
        # The first screenful is read here, on the loop (a few index look-ups, a few ms), so
        # that the first frame has rows; the rest follows from a thread once it is drawn.
        try:
            first = self._read(first=max(self.size.height, 24))
        except Exception as exc:
            self.intdash.report(exc, "Reading the integrations")
            self.query_one("#integrations", RowTable).focus()
            self.load()
        else:
            self.show(first)  # it focuses the table, or the empty state's button
            self.reading = True  # the full read follows the first frame: polls wait for it
            self.call_after_refresh(self.load)
        self.set_interval(self.intdash.poll_seconds, self.poll)
        self._unlisten = self.intdash.syncs.listen(self._sync_moved)

    def on_unmount(self) -> None:
        self._unlisten()

    # -- data --------------------------------------------------------------------------------

    def _read(self, first: int | None = None) -> Snapshot:
        ws = self.ws
        # the change check's fingerprint is taken first: a change made while the rest is read
        # shows at the next poll. The first screenful goes without (the full read follows).
        fingerprint = self._fingerprint() if first is None else None
        overview = ws.integrations.overview(first=first)
        return Snapshot(
            overview.views,
            overview.plan,
            overview.scheduler,
            fingerprint,
            overview.used,
            complete=first is None,
            running=overview.running,
            fiscal=fiscal_views.warnings(ws, ws.clock()),
        )

    def _fingerprint(self) -> tuple[Any, ...]:
        """What changes when anything shown does: the integrations', and the SDC's outbox and
        state (with the V-SDC as the register)."""
        return (self.ws.integrations.fingerprint(), fiscal_views.fingerprint(self.ws))

    @work(exclusive=True, group="load")
    async def load(self) -> None:
        if not self.is_current:  # another screen is on top: read when this one is shown again
            self.stale = True
            self.reading = False
            return
        self.reading = True
        try:
            snapshot = await self.call(self._read, doing="Reading the integrations")
        finally:
            self.reading = False
        if snapshot is None or not self.live:
            return
        if self.is_current:
            self.show(snapshot)
        else:  # covered meanwhile: shown when this one is again
            self.pending = snapshot

    @work(exclusive=True, group="poll")
    async def poll(self) -> None:
        """Cheap: only when something changed (here or in another process) is it all re-read,
        and only while this screen is the one shown (it catches up when shown again)."""
        if not self.is_current or self.reading:  # a read under way brings what changed
            return
        fingerprint = await self.call(self._fingerprint, doing="Checking for changes")
        if self.reading:  # one started meanwhile: a second would only repeat it
            return
        if fingerprint is not None and (
            self.snapshot is None or fingerprint != self.snapshot.fingerprint
        ):
            self.load()

    @property
    def compact(self) -> bool:
        """Whether the screen is narrower than the full table (short dates, counts, words)."""
        return self.table_layout.short

    def _columns(self, table: RowTable) -> None:
        table.set_columns(self.table_layout.columns, self.table_layout.gap)
        self._mark_sort(table)

    def _mark_sort(self, table: RowTable) -> None:
        shown = self.sort_key in self.table_layout.sorts()
        table.mark_sorted(self.sort_key if shown else None, self.sort_reverse)

    def on_resize(self, event: events.Resize) -> None:
        layout = layout_for(event.size.width)
        if layout != self.table_layout:
            self.table_layout = layout
            self._columns(self.query_one("#integrations", RowTable))
            if self.snapshot is not None:
                self.query_one("#status-line", TitleBar).show(self._status(self.snapshot))

    def on_screen_resume(self) -> None:
        if self.pending is not None:
            self.show(self.pending)
            self.pending = None
        if self.stale:
            self.stale = False
            self.load()
        elif self.snapshot is not None:
            self.poll()

    def action_refresh(self) -> None:
        self.load()
        self.notify("Refreshed", timeout=2)

    # -- showing -----------------------------------------------------------------------------

    def show(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.views = {view.uid: view for view in snapshot.views}
        self.query_one("#status-line", TitleBar).show(self._status(snapshot))
        empty = not snapshot.views
        if empty and not self.query("#empty"):
            self.mount(EmptyState(id="empty"), before=self.query_one(Footer))
        if self.query("#empty"):
            self.query_one("#empty").display = empty
        self.query_one("#integrations").display = not empty
        if empty:
            for box in self.query("#filter").results(Input):  # nothing to filter
                box.display = False
            self.call_after_refresh(self._focus_create)
        elif not isinstance(self.focused, (RowTable, Input)):
            self.query_one("#integrations", RowTable).focus()
        self.sync_rows()
        self.offer_actions()

    def _status(self, snapshot: Snapshot) -> str:
        return status_line(snapshot, scheduler=self.intdash.scheduler, compact=self.compact)

    def _focus_create(self) -> None:
        for button in self.query("#empty-create").results(Button):
            button.focus()

    def _syncing(self, uid: str) -> int | None:
        """The invoices fetched so far by a sync of ``uid`` running now: the dashboard's own,
        or another process's (as its last committed page left it); None when none runs."""
        sync = self.intdash.syncs.get(uid)
        if sync is not None:
            return sync.fetched
        run = self.snapshot.running.get(uid) if self.snapshot is not None else None
        return run.fetched if run is not None else None

    def _next_sync(self, view: IntegrationView) -> str | Text:
        """When it syncs next; while a sync of it runs (here or elsewhere), how far it has
        come."""
        fetched = self._syncing(view.uid)
        if fetched is not None:
            return syncing(fetched, short=self.compact)
        return next_sync(view, clock=self.ws.clock, when=self.when, short=self.compact)

    def _cells(self, view: IntegrationView) -> tuple[Any, ...]:
        return cells(view, layout=self.table_layout, when=self.when, next_sync=self._next_sync)

    def _sync_moved(self, uid: str) -> None:
        """A sync of the dashboard's started, committed a page or ended: its row shows it (and
        once it has ended, what it changed is read)."""
        if uid in self.views:
            self.query_one("#integrations", RowTable).refresh_rows([uid])
            if uid == self.selected_uid():
                self._show_selection()
        if uid not in self.intdash.syncs:
            self.poll()

    def sync_rows(self) -> None:
        """Show the rows of the health view shown that pass the filter, sorted; the cursor
        stays on its row. Only the rows on screen are drawn, their cells made when drawn.
        Each view's count comes with them (None until everything is read)."""
        wanted, counts = pick(
            self.views,
            filter_text=self.filter_text,
            shown=self.shown,
            sort_key=self.sort_key,
            reverse=self.sort_reverse,
        )
        complete = self.snapshot is None or self.snapshot.complete
        self.counts = counts if complete else None
        table = self.query_one("#integrations", RowTable)
        table.set_rows(wanted)
        table.set_caption(self._views_line)  # the counts again
        self._show_selection()

    def _views_line(self, width: int) -> Text:
        return views_line(self.counts, self.shown, width)

    def _show_selection(self) -> None:
        """The selected integration in full under the rows (or why there are none): once
        everything is read (the first frame goes without: it costs no more than it must)."""
        if self.snapshot is None or not self.snapshot.complete:
            return
        view = self.selected()
        fetched = self._syncing(view.uid) if view is not None else None
        line = selection_line(
            view,
            syncing=None if fetched is None else f"{count(fetched)} fetched",
            shown=VIEWS[VIEW_KEYS.index(self.shown)],
            filter_text=self.filter_text,
        )
        self.query_one("#integrations", RowTable).set_note(line)

    def _row_cells(self, uid: str) -> tuple[Any, ...]:
        return self._cells(self.views[uid])

    def selected_uid(self) -> str | None:
        return self.query_one("#integrations", RowTable).cursor_key

    def selected(self) -> IntegrationView | None:
        uid = self.selected_uid()
        return self.views.get(uid) if uid else None

    @on(RowTable.Highlighted)
    def _moved(self) -> None:
        self.offer_actions()  # the footer offers the selected type's actions
        self._show_selection()

    @on(RowTable.Selected)
    def _chosen(self) -> None:
        self.action_details()

    # -- which actions apply -----------------------------------------------------------------

    def applies(self, action: str) -> bool:
        if action in TYPE_ACTIONS:
            view = self.selected()
            return view is not None and TYPE_ACTIONS[action] in view.actions
        if action in ("details", "menu"):
            return self.selected() is not None
        if action == "clear_filter":
            return bool(self.filter_text) or any(box.display for box in self.query("#filter"))
        if action.partition("(")[0] in ("filter", "sort", "reverse", "show_view"):
            return self.snapshot is None or bool(self.snapshot.views)  # none: nothing to sort
        return True

    # -- filter and sort ---------------------------------------------------------------------

    def action_filter(self) -> None:
        if not self.query("#filter"):
            self.mount(
                Input(placeholder="Filter: UID, name, type or status (esc clears)", id="filter"),
                before=self.query_one("#integrations"),
            )
        box = self.query_one("#filter", Input)
        box.display = True
        self.call_after_refresh(box.focus)

    def action_clear_filter(self) -> None:
        for box in self.query("#filter").results(Input):
            box.value = ""
            box.display = False
        self.query_one("#integrations", RowTable).focus()

    @on(Input.Changed, "#filter")
    def _filtering(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.sync_rows()

    @on(Input.Submitted, "#filter")
    def _filtered(self) -> None:
        self.query_one("#integrations", RowTable).focus()

    def action_sort(self) -> None:
        """Sort by the next column (the header marks it)."""
        sorts = self.table_layout.sorts()
        at = sorts.index(self.sort_key) if self.sort_key in sorts else -1
        self.sort_key = sorts[(at + 1) % len(sorts)]
        self._mark_sort(self.query_one("#integrations", RowTable))
        self.sync_rows()

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._mark_sort(self.query_one("#integrations", RowTable))
        self.sync_rows()

    def action_show_view(self, key: str) -> None:
        """Show one health view (All, Active, Needs action, Failing, Limited, Disabled)."""
        if key in VIEW_KEYS and key != self.shown:
            self.shown = key
            self.sync_rows()

    def action_cursor_down(self) -> None:
        self.query_one("#integrations", RowTable).action_cursor(1)

    def action_cursor_up(self) -> None:
        self.query_one("#integrations", RowTable).action_cursor(-1)

    def action_audit(self) -> None:
        from intdash.tui.screens.audit import AuditScreen

        self.app.push_screen(AuditScreen(None))

    # -- actions (what they open is in integrations_actions) ----------------------------------

    @on(Button.Pressed, "#empty-create")
    async def _empty_create(self) -> None:
        await self.run_action("create")
