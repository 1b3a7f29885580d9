"""The audit trail: who did what to which integration, and when, newest first; every
integration's (from the main screen) or one integration's (from its details). Read a page at a
time, filtered and counted as the invoice history is (``PagedScreen``)."""

from __future__ import annotations

from datetime import datetime

from textual import on
from textual.binding import Binding

from intdash.core.models import AuditEvent
from intdash.tui.screens.invoices import PagedScreen
from intdash.tui.widgets import RowTable

# (key, heading, width, flexible): the detail takes what the others leave
COLUMNS = (
    ("at", "When", 19),
    ("actor", "Who", 10),
    ("action", "What", 28),
    ("integration", "Integration", 11),
    ("detail", "Detail", 10, True),
)
COMPACT = (  # 80 columns: short times, a narrower who
    ("at", "When", 12),
    ("actor", "Who", 8),
    ("action", "What", 28),
    ("integration", "Integration", 11),
    ("detail", "Detail", 8, True),
)


def stamp(moment: datetime, now: datetime, *, short: bool = False) -> str:
    """When an event happened, to the second (``short``: to the minute this year, else the
    day), in local time."""
    local = moment.astimezone()
    if not short:
        return local.strftime("%Y-%m-%d %H:%M:%S")
    this_year = local.year == now.astimezone().year
    return local.strftime("%d %b %H:%M" if this_year else "%Y-%m-%d")


class AuditScreen(PagedScreen):
    BINDINGS = [
        Binding(
            "slash",
            "filter",
            "Filter",
            id="filter",
            tooltip="Events with the text in who, what or the detail, or in their "
            "integration's UID, name or type",
        ),
    ]
    TABLE = "audit"
    NOUNS = ("event", "events")
    LOOKS_IN = "who, what and the detail, and the integration's UID, name and type"
    HINT = "who, what, detail or integration"
    FULL = COLUMNS
    NARROW = COMPACT

    def heading(self) -> str:
        return f"Audit trail of {self.uid}" if self.uid else "Audit trail"

    def read(self, before_id: int | None, limit: int, search: str | None) -> list[AuditEvent]:
        return self.ws.audit.page(
            integration_uid=self.uid, before_id=before_id, limit=limit, search=search
        )

    def count_of(self, search: str | None, through_id: int) -> int:
        return self.ws.audit.count(integration_uid=self.uid, search=search, through_id=through_id)

    def cells(self, row: AuditEvent) -> tuple[str, ...]:
        return (
            stamp(row.at, self.ws.clock(), short=self.compact),
            row.actor,
            row.action,
            row.integration_uid or "—",
            row.detail or "",
        )

    @on(RowTable.Selected)
    def _selected(self, event: RowTable.Selected) -> None:
        """The whole event, where its row cuts it short."""
        row: AuditEvent = self.rows[event.key]
        where = f" on {row.integration_uid}" if row.integration_uid else ""
        self.notify(
            f"{row.action} by {row.actor}{where}" + (f"\n{row.detail}" if row.detail else ""),
            title=stamp(row.at, self.ws.clock()),
            markup=False,
        )
