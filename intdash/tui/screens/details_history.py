"""The details screen's run history: one row a sync run, newest first, rebuilt when runs come or
go and otherwise updated cell by cell (a running sync's counts), which needs no layout."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from textual.widgets import DataTable

from intdash.core.models import SyncRun

When = Callable[[datetime | None], str]  # a time as the dashboard writes it

# (key, heading)
COLUMNS = (
    ("time", "Started"),
    ("trigger", "Trigger"),
    ("outcome", "Outcome"),
    ("counts", "Fetched / created / updated / held"),
    ("error", "Error"),
)


class RunHistory(DataTable[Any]):
    """The runs of one integration, as the details screen shows them."""

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            self.add_column(label, key=key)
        self.shown: dict[str, tuple[str, ...]] = {}

    def show(self, runs: list[SyncRun], when: When) -> None:
        """Rebuild the rows when runs come or go; otherwise update only the changed cells."""
        rows: dict[str, tuple[str, ...]] = {
            str(run.id): (
                when(run.started_at),
                run.trigger,
                run.outcome,
                f"{run.fetched:,} / {run.created:,} / {run.updated:,} / {run.held:,}",
                run.error or "",
            )
            for run in runs
        }
        if list(rows) != list(self.shown):
            self.clear()
            for key, cells in rows.items():
                self.add_row(*cells, key=key)
        else:
            columns = [column.key for column in self.columns.values()]
            for key, cells in rows.items():
                for column, old, new in zip(columns, self.shown[key], cells, strict=True):
                    if old != new:
                        self.update_cell(key, column, new, update_width=True)
        self.shown = rows

    def scroll_rows(self, step: int) -> None:
        """Move the cursor a row down (``step`` > 0) or up."""
        (self.action_cursor_down if step > 0 else self.action_cursor_up)()
