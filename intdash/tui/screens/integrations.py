"""The main screen: every integration, with what an operator needs at a glance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Vertical
from textual.widgets import Button, Footer, Input, Static

from intdash.core.catalog import Action, type_spec
from intdash.core.plans import LicenceState
from intdash.core.services.integrations import IntegrationView
from intdash.core.services.leases import LeaseInfo
from intdash.core.services.plans import PlanView
from intdash.core.status import Reason
from intdash.tui.format import count, status_text
from intdash.tui.screens.base import BaseScreen
from intdash.tui.widgets import Column, RowTable, TitleBar

# (key, heading, width): what every value of the column fits
COLUMNS = (
    ("uid", "UID", 11),
    ("type", "Type", 12),
    ("created", "Created", 10),
    ("status", "Status", 10),
    ("reason", "Why inactive", 30),
    ("month", "This month", 17),
    ("last", "Last sync", 10),
    ("next", "Next sync", 11),
)
# Narrower than the full table, it goes compact: one space between columns, short headings,
# short dates and counts, and the reason takes what the others leave, so that 80 columns fit all.
COMPACT = {
    "uid": ("UID", 11),
    "type": ("Type", 9),
    "created": ("Created", 7),
    "status": ("Status", 10),
    "reason": ("Why", 9),  # at least
    "month": ("Month", 11),
    "last": ("Last", 6),
    "next": ("Next", 7),
}
FULL_WIDTH = sum(width + 2 for _, _, width in COLUMNS) + 3  # gaps, the margin and a scrollbar
SORTS = ("uid", "type", "created", "status", "month", "last")
SYNCING = {None, Reason.LIMIT_REACHED, Reason.LAST_SYNC_FAILED}
# actions offered only for the types that have them
TYPE_ACTIONS = {
    "reconnect": Action.RECONNECT,
    "configure": Action.CONFIGURE,
    "api_keys": Action.API_KEYS,
    "remove": Action.REMOVE,
}


REASON_WIDTH = 30  # the whole explanation is in the details


def _short(text: str, width: int = REASON_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class EmptyState(Center):
    """What a workspace without integrations shows: what one is, and how to make the first."""

    def compose(self) -> ComposeResult:
        with Vertical(id="empty-box"):
            yield Static(
                "[b]No integrations yet[/b]\n\n"
                "An integration brings invoices into fiscalization: from Xero, MYOB or "
                "Zoho Books, from a customer's system pushing them with an API key, or out "
                "to a webhook.",
                id="empty-text",
            )
            yield Button("Create Integration (n)", id="empty-create", variant="primary")


@dataclass(frozen=True)
class Snapshot:
    views: list[IntegrationView]
    plan: PlanView
    scheduler: LeaseInfo | None  # who schedules syncs, if anybody does
    fingerprint: tuple[Any, ...] | None  # None: not taken (the first screenful)
    used: int  # invoices fiscalized this month, all integrations
    complete: bool = True  # False: only the first few views


class IntegrationsScreen(BaseScreen):
    AUTO_FOCUS = None  # the table, or the empty state's button: chosen when the data is read
    BINDINGS = [
        Binding(
            "enter", "details", "Details", id="details", tooltip="Open the selected integration"
        ),
        Binding("o", "reconnect", "Reconnect", id="reconnect", tooltip="Authorise again (OAuth)"),
        Binding("c", "configure", "Configure", id="configure", tooltip="Change its settings"),
        Binding("a", "api_keys", "API Keys", id="api-keys", tooltip="Keys that push invoices"),
        Binding("x", "remove", "Remove", id="remove", tooltip="Remove it (asks first)"),
        Binding("n", "create", "New", id="create", tooltip="Create an integration"),
        Binding(
            "slash", "filter", "Filter", id="filter", tooltip="Filter by UID, name, type, status"
        ),
        Binding("i", "invoices", "Invoices", id="invoices", tooltip="The invoice history"),
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
    ]

    def __init__(self) -> None:
        super().__init__()
        self.views: dict[str, IntegrationView] = {}
        self.filter_text = ""
        self.sort_key = "uid"
        self.sort_reverse = False
        self.snapshot: Snapshot | None = None
        self.pending: Snapshot | None = None
        self.stale = False
        self.reading = False  # a full read is asked for or under way
        self.compact = False
        self.reason_width = COMPACT["reason"][1]

    def compose(self) -> ComposeResult:
        yield TitleBar(id="status-line")
        table = RowTable(self._row_cells, id="integrations")
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

    # -- data --------------------------------------------------------------------------------

    def _read(self, first: int | None = None) -> Snapshot:
        ws = self.ws
        # the change check's fingerprint is taken first: a change made while the rest is read
        # shows at the next poll. The first screenful goes without (the full read follows).
        fingerprint = ws.integrations.fingerprint() if first is None else None
        overview = ws.integrations.overview(first=first)
        return Snapshot(
            overview.views,
            overview.plan,
            overview.scheduler,
            fingerprint,
            overview.used,
            complete=first is None,
        )

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
        if snapshot is None:
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
        fingerprint = await self.call(
            self.ws.integrations.fingerprint, doing="Checking for changes"
        )
        if self.reading:  # one started meanwhile: a second would only repeat it
            return
        if fingerprint is not None and (
            self.snapshot is None or fingerprint != self.snapshot.fingerprint
        ):
            self.load()

    def _columns(self, table: RowTable) -> None:
        if self.compact:
            table.set_columns(
                [
                    Column(key, heading, self.reason_width if key == "reason" else width)
                    for key, (heading, width) in COMPACT.items()
                ],
                gap=1,
            )
        else:
            table.set_columns([Column(*column) for column in COLUMNS], gap=2)

    def on_resize(self, event: events.Resize) -> None:
        width = event.size.width
        compact = width < FULL_WIDTH
        others = sum(w + 1 for key, (_, w) in COMPACT.items() if key != "reason")
        reason_width = max(COMPACT["reason"][1], min(REASON_WIDTH, width - others - 4))
        if (compact, reason_width) != (self.compact, self.reason_width):
            self.compact, self.reason_width = compact, reason_width
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
            self.call_after_refresh(self._focus_create)
        elif not isinstance(self.focused, (RowTable, Input)):
            self.query_one("#integrations", RowTable).focus()
        self.sync_rows()
        self.offer_actions()

    def _status(self, snapshot: Snapshot) -> str:
        """The plan, the licence, the month's usage and who schedules syncs; shorter where the
        screen is narrow (the monthly limit is in every row's Month column there)."""
        plan, holder = snapshot.plan, snapshot.scheduler
        scheduler = self.intdash.scheduler
        lapsed = plan.licence is LicenceState.LAPSED
        licence = f"[b]{'LAPSED' if lapsed else plan.licence.value}[/b]"
        if holder is None:
            who = None
        elif scheduler is not None and holder.holder == scheduler.holder:
            who = "this dashboard"
        else:
            host, pid = holder.holder.split(":")[:2]
            who = f"{host} pid {pid}"
        spec, ends = plan.spec, plan.licence_expires
        until = f"{'expired' if lapsed else 'to'} {ends.isoformat()}" if ends else ""
        if self.compact:
            return (
                f"[b]{spec.label}[/b], every {spec.interval_minutes} min │ licence {licence}"
                f"{' ' + until if until else ''} │ {count(snapshot.used, short=True)} this month"
                f" │ {f'scheduler: {who}' if who else '[b]no scheduler[/b]'}"
            )
        return (
            f"Plan [b]{spec.label}[/b] ({spec.frequency}, every {spec.interval_minutes} min, "
            f"{plan.monthly_limit:,}/month each) │ Licence {licence} ({until or 'no expiry'})"
            f" │ {snapshot.used:,} invoices this month │ syncs scheduled by "
            f"{who or '[b]nobody[/b]'}"
        )

    def _focus_create(self) -> None:
        for button in self.query("#empty-create").results(Button):
            button.focus()

    def _matches(self, view: IntegrationView) -> bool:
        needle = self.filter_text.lower()
        if not needle:
            return True
        haystack = " ".join(
            [
                view.uid,
                view.name,
                view.spec.label,
                view.type.value,
                view.status.word,
                view.status.explanation,
            ]
        ).lower()
        return all(part in haystack for part in needle.split())

    def _next_sync(self, view: IntegrationView) -> str:
        if not view.spec.oauth or view.status.reason not in SYNCING:
            return "—"
        scheduler = self.intdash.scheduler
        if scheduler is not None and scheduler.leading:
            upcoming = scheduler.next_run(view.uid)
            return self.when(upcoming, short=self.compact) if upcoming else "—"
        assert self.snapshot is not None
        interval = timedelta(minutes=self.snapshot.plan.spec.interval_minutes)
        if view.last_attempted_sync is None:
            return "soon"
        upcoming = max(view.last_attempted_sync + interval, self.ws.clock())
        return "~" + self.when(upcoming, short=self.compact)

    def _cells(self, view: IntegrationView) -> tuple[Any, ...]:
        spec = view.spec
        compact = self.compact
        sep = "/" if compact else " / "
        label = spec.short.split()[0] if compact and len(spec.short) > 7 else spec.short
        reason = _short(view.status.explanation, self.reason_width - 1 if compact else REASON_WIDTH)
        return (
            view.uid,
            f"{spec.icon} {label}",
            self.when(view.created, short=compact),
            status_text(view.status),
            Text(reason, style="bright_black"),
            count(view.invoices_this_month, short=compact)
            + sep
            + count(view.monthly_limit, short=compact),
            self.when(view.last_activity, short=compact),
            self._next_sync(view),
        )

    @staticmethod
    def _sort_value(key: str) -> Callable[[IntegrationView], Any]:
        """What the rows are sorted by, for a sort key (one value a row, not every key's)."""
        never = datetime.min.replace(tzinfo=UTC)
        return {
            "uid": lambda view: view.uid,
            "type": lambda view: view.spec.label,
            "created": lambda view: view.created,
            "status": lambda view: (not view.status.active, view.status.explanation),
            "month": lambda view: view.invoices_this_month,
            "last": lambda view: view.last_activity or never,
        }[key]

    def sync_rows(self) -> None:
        """Show the rows that pass the filter, sorted; the cursor stays on its row. Only the
        rows on screen are drawn, their cells made when drawn."""
        views = self.views
        wanted = [uid for uid, view in views.items() if self._matches(view)]
        value = self._sort_value(self.sort_key)
        wanted.sort(key=lambda uid: value(views[uid]), reverse=self.sort_reverse)
        self.query_one("#integrations", RowTable).set_rows(wanted)

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
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self.sync_rows()
        self.notify(f"Sorted by {self.sort_key}", timeout=2)

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.sync_rows()

    def action_cursor_down(self) -> None:
        self.query_one("#integrations", RowTable).action_cursor(1)

    def action_cursor_up(self) -> None:
        self.query_one("#integrations", RowTable).action_cursor(-1)

    # -- actions -----------------------------------------------------------------------------

    @on(Button.Pressed, "#empty-create")
    async def _empty_create(self) -> None:
        await self.run_action("create")

    @work(group="create")
    async def action_create(self) -> None:
        from intdash.tui.screens.forms import CreateScreen
        from intdash.tui.screens.modals import KeyShownScreen

        form = CreateScreen()
        uid = await self.app.push_screen_wait(form)
        self.load()
        if not uid or form.created is None:
            return
        for key, secret in form.created.generated_secrets.items():
            title = f"{uid}: its {key.replace('_', ' ')}"
            await self.app.push_screen_wait(KeyShownScreen(title, secret))
        if type_spec(form.created.integration.type).oauth:
            self._connect(uid)  # OAuth types go straight on to connecting

    def action_configure(self) -> None:
        view = self.selected()
        if view is None:
            return
        from intdash.tui.screens.forms import ConfigureScreen

        self.app.push_screen(ConfigureScreen(view), self.reload)

    def action_reconnect(self) -> None:
        view = self.selected()
        if view is not None:
            self._connect(view.uid)

    def _connect(self, uid: str) -> None:
        from intdash.tui.screens.connect import ConnectScreen

        self.app.push_screen(ConnectScreen(uid), self.reload)

    def action_remove(self) -> None:
        view = self.selected()
        if view is None:
            return
        from intdash.tui.screens.modals import RemoveScreen

        self.app.push_screen(RemoveScreen(view), self.reload)

    def action_api_keys(self) -> None:
        view = self.selected()
        if view is None:
            return
        from intdash.tui.screens.apikeys import ApiKeysScreen

        self.app.push_screen(ApiKeysScreen(view.uid))

    def action_details(self) -> None:
        view = self.selected()
        if view is None:
            return
        from intdash.tui.screens.details import DetailsScreen

        self.app.push_screen(DetailsScreen(view.uid))

    def action_invoices(self) -> None:
        from intdash.tui.screens.invoices import InvoicesScreen

        self.app.push_screen(InvoicesScreen(None))

    def action_menu(self) -> None:
        view = self.selected()
        if view is None:
            return
        from intdash.tui.screens.modals import ActionMenu

        offered = [
            (binding.action, binding.description)
            for binding in self.BINDINGS
            if isinstance(binding, Binding)
            and binding.action in (*TYPE_ACTIONS, "details")
            and self.check_action(binding.action, ()) is True
        ]
        self.app.push_screen(ActionMenu(view.uid, offered), self._menu_chosen)

    async def _menu_chosen(self, action: str | None) -> None:
        if action:
            await self.run_action(action)
