"""The main screen's table of integrations: its layouts (which columns, how wide, by the width of
the screen), each row's cells, the sort keys, the health views and the filter, and what shows
instead when there are no integrations at all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Vertical
from textual.widgets import Button, Static

from intdash.core.services.integrations import IntegrationView
from intdash.core.status import Reason, Status
from intdash.tui.format import count, limit, status_text
from intdash.tui.widgets import Column

# A row's cells, always in this order whichever columns show them (the tests and the selected
# row's line read them by place): the last two are shown only by some layouts.
UID, TYPE, CREATED, STATUS, REASON, MONTH, LAST, NEXT, NAME, STATE = range(10)
SCROLLBAR = 2  # kept free beside the rows, as the table keeps it


@dataclass(frozen=True)
class Layout:
    """The table's columns at some width of screen, the gap between them, and whether its
    dates and counts are the short ones."""

    name: str
    columns: tuple[Column, ...]
    gap: int
    short: bool

    @property
    def least(self) -> int:
        """The narrowest screen it fits: every column at its least, the margin, the gaps."""
        return 1 + sum(c.width for c in self.columns) + self.gap * len(self.columns) + SCROLLBAR

    @cached_property
    def shown(self) -> frozenset[int]:
        """The cells of a row its columns show."""
        return frozenset(n if c.cell is None else c.cell for n, c in enumerate(self.columns))

    def sorts(self) -> list[str]:
        """Its columns the rows may be sorted by, in order."""
        return [c.key for c in self.columns if c.key in SORT_VALUES]


def _full(name_least: int, *extra: Column) -> tuple[Column, ...]:
    return (
        Column("uid", "UID", 11),
        Column("type", "Type", 12),
        Column("name", "Name", name_least, flex=True, most=max(name_least, 28), cell=NAME),
        Column("status", "Status", 10),
        Column("reason", "Why inactive", 30, flex=True, weight=2),
        Column("month", "This month", 17, cell=MONTH),
        Column("last", "Last sync", 10, cell=LAST),
        Column("next", "Next sync", 11, cell=NEXT),
        *extra,
    )


# The widest that fits is used. The name and the reason take what the others leave (the
# reason twice the name's share, the name up to a limit); where the screen is narrower than the
# full table, dates and counts go short and the gaps narrow, and below that the status and its
# reason share one column ("● Active", "○ reconnect needed: …"): every row keeps who and why.
# The selected row's whole reason is on the line under the table.
LAYOUTS = (
    Layout("wide", _full(28, Column("created", "Created", 10, cell=CREATED)), 2, short=False),
    Layout("full", _full(16), 2, short=False),
    Layout(
        "compact",
        (
            Column("uid", "UID", 11),
            Column("type", "Type", 9),
            Column("name", "Name", 10, flex=True, most=24, cell=NAME),
            Column("status", "Status", 10),
            Column("reason", "Why", 12, flex=True, weight=2),
            Column("month", "Month", 9, cell=MONTH),
            Column("last", "Last", 6, cell=LAST),
            Column("next", "Next", 7, cell=NEXT),
        ),
        1,
        short=True,
    ),
    Layout(
        "narrow",
        (
            Column("uid", "UID", 11),
            Column("type", "Type", 9),
            Column("name", "Name", 8, flex=True, most=20, cell=NAME),
            Column("status", "Status", 12, flex=True, weight=2, cell=STATE),
            Column("month", "Month", 9, cell=MONTH),
            Column("last", "Last", 6, cell=LAST),
            Column("next", "Next", 7, cell=NEXT),
        ),
        1,
        short=True,
    ),
)
# the order each column's sort uses (one value a row, not every key's)
_NEVER = datetime.min.replace(tzinfo=UTC)
_UNSCHEDULED = datetime.max.replace(tzinfo=UTC)
SORT_VALUES: dict[str, Callable[[IntegrationView], Any]] = {
    "uid": lambda view: view.uid,
    "type": lambda view: view.spec.label,
    "name": lambda view: view.name.casefold(),
    "status": lambda view: (not view.status.active, view.status.explanation),
    "month": lambda view: view.invoices_this_month,
    "last": lambda view: view.last_activity or _NEVER,
    "next": lambda view: view.next_sync.at or _UNSCHEDULED,
    "created": lambda view: view.created,
}

When = Callable[..., str]  # a time as the dashboard writes it: when(moment, short=...)


def layout_for(width: int) -> Layout:
    """The widest layout a screen ``width`` wide shows in full (the narrowest below that)."""
    for layout in LAYOUTS:
        if width >= layout.least:
            return layout
    return LAYOUTS[-1]


def sort_value(key: str) -> Callable[[IntegrationView], Any]:
    """What the rows are sorted by, for a column's key."""
    return SORT_VALUES[key]


# -- the health views --------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthView:
    """A view of the integrations by their health: on a number key, with its count."""

    key: str
    label: str
    short: str  # where width is scarce
    empty: str  # what the table says when none is in the view: "Nothing {empty}"
    holds: str  # which integrations it shows


VIEWS = (
    HealthView("all", "All", "All", "", "Every integration"),
    HealthView("active", "Active", "Active", "active", "Those working as they should"),
    HealthView(
        "action",
        "Needs action",
        "Action",
        "needing action",
        "Needing authorisation, a reconnect, their settings or an API key",
    ),
    HealthView(
        "failing", "Failing", "Failing", "failing", "Their last sync failed, or deliveries fail"
    ),
    HealthView(
        "limited",
        "Limited",
        "Limited",
        "limited",
        "At the monthly limit or the daily API limit, or the licence lapsed",
    ),
    HealthView("disabled", "Disabled", "Disabled", "disabled", "Their sync switched off"),
)
VIEW_KEYS = tuple(view.key for view in VIEWS)
# one number key each, in the order of the tabs
VIEW_BINDINGS = [
    Binding(
        str(n),
        f"show_view('{view.key}')",
        f"View: {view.label}",
        show=False,
        id=f"view-{view.key}",
        tooltip=view.holds,
    )
    for n, view in enumerate(VIEWS, start=1)
]
# which view each reason puts an integration in (a removed one is in none but All)
HEALTH: dict[Reason | None, str] = {
    None: "active",
    Reason.NEEDS_AUTHORISATION: "action",
    Reason.RECONNECT_NEEDED: "action",
    Reason.NOT_CONFIGURED: "action",
    Reason.NO_API_KEY: "action",
    Reason.LAST_SYNC_FAILED: "failing",
    Reason.DELIVERIES_FAILING: "failing",
    Reason.SDC_REFUSED: "action",  # the operator maps a tax code or renews, then retries
    Reason.WAITING_FOR_SDC: "failing",
    Reason.LIMIT_REACHED: "limited",
    Reason.DAILY_LIMIT: "limited",
    Reason.LICENCE_LAPSED: "limited",
    Reason.SYNC_DISABLED: "disabled",
}


def health(status: Status) -> str | None:
    """The view (besides All) an integration of this status is in."""
    return "active" if status.active else HEALTH.get(status.reason)


# -- rows --------------------------------------------------------------------------------------


def matches(view: IntegrationView, filter_text: str) -> bool:
    """Whether every word of the filter is in its UID, name, type or status."""
    needle = filter_text.lower()
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


def pick(
    views: dict[str, IntegrationView],
    *,
    filter_text: str,
    shown: str,
    sort_key: str,
    reverse: bool,
) -> tuple[list[str], dict[str, int]]:
    """The UIDs of the rows to show, sorted: those in the health view ``shown`` that pass the
    filter; and each view's count of those that pass it (what its number key would show),
    taken on the same pass."""
    counts = dict.fromkeys(VIEW_KEYS, 0)
    wanted = []
    for uid, view in views.items():
        if filter_text and not matches(view, filter_text):
            continue
        counts["all"] += 1
        where = health(view.status)
        if where is not None:
            counts[where] += 1
        if shown == "all" or where == shown:
            wanted.append(uid)
    value = sort_value(sort_key)
    wanted.sort(key=lambda uid: value(views[uid]), reverse=reverse)
    return wanted, counts


def next_sync(
    view: IntegrationView, *, clock: Callable[[], datetime], when: When, short: bool
) -> str:
    """When it syncs next, as stored for every process to agree on ("due": a worker takes it
    now); a dash when it does not sync (the reason column says why)."""
    at = view.next_sync.at
    if at is None:
        return "—"
    return "due" if at <= clock() else when(at, short=short)


def syncing(fetched: int | None, *, short: bool) -> Text:
    """The Next sync of a row syncing now (here or in another process): "syncing", then the
    invoices fetched so far."""
    text = "syncing" if not fetched else f"⟳ {count(fetched, short=short)}"
    return Text(text, style="bold")


def state_text(status: Status) -> Text:
    """The status and its reason in one: "● Active", "○ reconnect needed: …"."""
    if status.active:
        return status_text(status)
    return Text(f"{status.glyph} {status.explanation}", style="bright_black")


def cells(
    view: IntegrationView,
    *,
    layout: Layout,
    when: When,
    next_sync: Callable[[IntegrationView], str | Text],
) -> tuple[Any, ...]:
    """One row's cells, in the order of UID, TYPE, … above: those the layout shows no column
    of are left empty (made for every row drawn, they would cost each frame for nothing)."""
    spec, status, short, shown = view.spec, view.status, layout.short, layout.shown
    label = spec.short.split()[0] if short and len(spec.short) > 7 else spec.short
    sep = "/" if short else " / "
    return (
        view.uid,
        f"{spec.icon} {label}",
        when(view.created, short=short) if CREATED in shown else "",
        status_text(status) if STATUS in shown else "",
        Text(status.explanation, style="bright_black") if REASON in shown else "",
        count(view.invoices_this_month, short=short) + sep + limit(view.monthly_limit, short=short),
        when(view.last_activity, short=short),
        next_sync(view),
        view.name,
        state_text(status) if STATE in shown else "",
    )


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
