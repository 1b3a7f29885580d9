"""The main screen's table of integrations: its columns (full, or compact below 80-odd
columns), each row's cells, the sort keys, the filter, and what shows instead when there are
no integrations at all."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Center, Vertical
from textual.widgets import Button, Static

from intdash.core.services.integrations import IntegrationView
from intdash.tui.format import count, status_text
from intdash.tui.widgets import Column

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
REASON_WIDTH = 30  # the whole explanation is in the details

When = Callable[..., str]  # a time as the dashboard writes it: when(moment, short=...)


def _short(text: str, width: int = REASON_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def layout_for(width: int) -> tuple[bool, int]:
    """Whether a screen ``width`` wide shows the compact table, and how wide its reason is."""
    compact = width < FULL_WIDTH
    others = sum(w + 1 for key, (_, w) in COMPACT.items() if key != "reason")
    return compact, max(COMPACT["reason"][1], min(REASON_WIDTH, width - others - 4))


def columns(compact: bool, reason_width: int) -> tuple[list[Column], int]:
    """The table's columns and the gap between them."""
    if compact:
        return [
            Column(key, heading, reason_width if key == "reason" else width)
            for key, (heading, width) in COMPACT.items()
        ], 1
    return [Column(*column) for column in COLUMNS], 2


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


def sort_value(key: str) -> Callable[[IntegrationView], Any]:
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


def next_sync(
    view: IntegrationView, *, clock: Callable[[], datetime], when: When, compact: bool
) -> str:
    """When it syncs next, as stored for every process to agree on ("due": a worker takes it
    now); a dash when it does not sync (the reason column says why)."""
    at = view.next_sync.at
    if at is None:
        return "—"
    return "due" if at <= clock() else when(at, short=compact)


def syncing(fetched: int | None, *, compact: bool) -> Text:
    """The Next sync of a row syncing now: "syncing", then the invoices fetched so far."""
    text = "syncing" if fetched is None else f"⟳ {count(fetched, short=compact)}"
    return Text(text, style="bold")


def cells(
    view: IntegrationView,
    *,
    compact: bool,
    reason_width: int,
    when: When,
    next_sync: Callable[[IntegrationView], str | Text],
) -> tuple[Any, ...]:
    """One row's cells, in the columns' order."""
    spec = view.spec
    sep = "/" if compact else " / "
    label = spec.short.split()[0] if compact and len(spec.short) > 7 else spec.short
    reason = _short(view.status.explanation, reason_width - 1 if compact else REASON_WIDTH)
    return (
        view.uid,
        f"{spec.icon} {label}",
        when(view.created, short=compact),
        status_text(view.status),
        Text(reason, style="bright_black"),
        count(view.invoices_this_month, short=compact)
        + sep
        + count(view.monthly_limit, short=compact),
        when(view.last_activity, short=compact),
        next_sync(view),
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
