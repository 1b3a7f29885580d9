"""The invoice history, newest first, read a page at a time so it stays instant at any size."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from intdash.core.services.invoices import InvoiceRow
from intdash.tui.screens.base import BaseScreen

PAGE = 200


class InvoicesScreen(BaseScreen):
    BINDINGS = [
        Binding("escape", "back_or_clear", "Back", id="back"),
        Binding(
            "slash",
            "filter",
            "Filter",
            id="filter",
            tooltip="Invoices whose number, contact or id contain the text",
        ),
        Binding("j", "move(1)", "Down", show=False, id="down"),
        Binding("k", "move(-1)", "Up", show=False, id="up"),
    ]

    def __init__(self, uid: str | None) -> None:
        super().__init__()
        self.uid = uid
        self.search = ""
        self.last_id: int | None = None
        self.exhausted = False
        self.loading = False

    def compose(self) -> ComposeResult:
        yield Header()
        title = f"Invoices of {self.uid}" if self.uid else "Every invoice"
        yield Static(f"[b]{title}[/b], newest first", id="invoices-title")
        yield Input(placeholder="Filter: number, contact or external id (esc clears)", id="filter")
        table: DataTable[Any] = DataTable(id="invoices", cursor_type="row", zebra_stripes=True)
        for key, label in (
            ("received", "Received"),
            ("integration", "Integration"),
            ("number", "Number"),
            ("contact", "Contact"),
            ("date", "Date"),
            ("total", "Total"),
            ("status", "At source"),
            ("fiscal", "Fiscal"),
        ):
            table.add_column(label, key=key)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#invoices", DataTable).focus()
        self.restart()

    def restart(self) -> None:
        self.query_one("#invoices", DataTable).clear()
        self.last_id, self.exhausted = None, False
        self.more()

    @work(exclusive=True, group="page")
    async def more(self) -> None:
        if self.exhausted or self.loading:
            return
        self.loading = True
        try:
            rows = await self.call(self._page, doing="Reading invoices")
        finally:
            self.loading = False
        if rows is None:
            return
        table = self.query_one("#invoices", DataTable)
        for row in rows:
            fiscal = (
                f"{row.fiscal_status} #{row.fiscal_seq}" if row.fiscal_seq else row.fiscal_status
            )
            table.add_row(
                self.when(row.received_at),
                row.integration_uid,
                row.number or "—",
                (row.contact or "—")[:28],
                row.issue_date.isoformat() if row.issue_date else "—",
                f"{row.total} {row.currency}",
                row.source_status or "—",
                fiscal,
                key=str(row.id),
            )
        if rows:
            self.last_id = rows[-1].id
        self.exhausted = len(rows) < PAGE

    def _page(self) -> list[InvoiceRow]:
        return self.ws.invoices.page(
            integration_uid=self.uid, before_id=self.last_id, limit=PAGE, search=self.search or None
        )

    @on(DataTable.RowHighlighted)
    def _moved(self, event: DataTable.RowHighlighted) -> None:
        table = event.data_table
        if table.cursor_row >= table.row_count - 20:  # near the end: the next page
            self.more()

    def action_move(self, step: int) -> None:
        table = self.query_one("#invoices", DataTable)
        (table.action_cursor_down if step > 0 else table.action_cursor_up)()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filtering(self, event: Input.Changed) -> None:
        self.search = event.value.strip()
        self.restart()

    def action_back_or_clear(self) -> None:
        box = self.query_one("#filter", Input)
        if box.display:
            box.value = ""
            box.display = False
            self.query_one("#invoices", DataTable).focus()
        else:
            self.app.pop_screen()
