"""The invoice history, newest first, read a page at a time so it stays instant at any size."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Input, Static

from intdash.core.services.invoices import InvoiceRow
from intdash.tui.screens.base import BaseScreen
from intdash.tui.widgets import Column, RowTable

PAGE = 200
COLUMNS = (
    ("received", "Received", 10),
    ("integration", "Integration", 11),
    ("number", "Number", 14),
    ("contact", "Contact", 22),
    ("date", "Date", 10),
    ("total", "Total", 14),
    ("status", "At source", 14),
    ("fiscal", "Fiscal", 22),
)


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
        self.fetching = False
        self.rows: dict[str, tuple[str, ...]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        title = f"Invoices of {self.uid}" if self.uid else "Every invoice"
        yield Static(f"[b]{title}[/b], newest first", id="invoices-title")
        yield Input(placeholder="Filter: number, contact or external id (esc clears)", id="filter")
        table = RowTable(self.rows.__getitem__, id="invoices")
        table.set_columns([Column(*column) for column in COLUMNS])
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#invoices", RowTable).focus()
        # the first page is read here, on the loop (an index walk of 200 rows, ~10 ms at a
        # million invoices), so that the first frame has it; later pages come from a thread
        try:
            self.add_page(self._page())
        except Exception as exc:
            self.intdash.report(exc, "Reading invoices")
            self.restart()

    def restart(self) -> None:
        self.rows.clear()
        self.query_one("#invoices", RowTable).set_rows([])
        self.last_id, self.exhausted = None, False
        self.more()

    @work(group="page")
    async def more(self) -> None:
        if self.exhausted or self.fetching:
            return
        self.fetching = True
        search = self.search
        try:
            rows = await self.call(self._page, doing="Reading invoices")
        finally:
            self.fetching = False
        if search != self.search:  # the filter changed meanwhile: read for the new one
            self.more()
            return
        if rows is not None:
            self.add_page(rows)

    def add_page(self, rows: list[InvoiceRow]) -> None:
        for row in rows:
            fiscal = (
                f"{row.fiscal_status} #{row.fiscal_seq}" if row.fiscal_seq else row.fiscal_status
            )
            self.rows[str(row.id)] = (
                self.when(row.received_at),
                row.integration_uid,
                row.number or "—",
                row.contact or "—",
                row.issue_date.isoformat() if row.issue_date else "—",
                f"{row.total} {row.currency}",
                row.source_status or "—",
                fiscal,
            )
        self.query_one("#invoices", RowTable).set_rows(list(self.rows), changed=())
        if rows:
            self.last_id = rows[-1].id
        self.exhausted = len(rows) < PAGE

    def _page(self) -> list[InvoiceRow]:
        return self.ws.invoices.page(
            integration_uid=self.uid, before_id=self.last_id, limit=PAGE, search=self.search or None
        )

    @on(RowTable.Highlighted)
    def _moved(self, event: RowTable.Highlighted) -> None:
        table = event.table
        if table.row_count and table.cursor_row >= table.row_count - 20:  # the next page
            self.more()

    def action_move(self, step: int) -> None:
        self.query_one("#invoices", RowTable).action_cursor(step)

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
            self.query_one("#invoices", RowTable).focus()
        else:
            self.app.pop_screen()
