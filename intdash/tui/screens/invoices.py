"""The invoice history, newest first, read a page at a time so it stays instant at any size."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Input

from intdash.core.models import FiscalStatus
from intdash.core.services.invoices import InvoiceRow
from intdash.tui.screens.base import BaseScreen
from intdash.tui.widgets import Column, RowTable, TitleBar

PAGE = 200
COLUMNS = (  # all of them in 100 columns: the contact takes what the others leave
    ("received", "Received", 10),
    ("integration", "Integration", 11),
    ("number", "Number", 13),
    ("contact", "Contact", 10, True),
    ("date", "Date", 10),
    ("total", "Total", 14),
    ("status", "At source", 10),
    ("fiscal", "Fiscal", 10),  # its sale record's number, or where it stands
)
# what the Fiscal column says of an invoice without a standing sale (in its 10 characters)
FISCAL_WORDS = {
    FiscalStatus.REFUNDED.value: "refunded",
    FiscalStatus.AWAITING_APPROVAL.value: "awaiting",
    FiscalStatus.AWAITING_TAX.value: "no tax yet",
}


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
        title = f"Invoices of {self.uid}" if self.uid else "Every invoice"
        yield TitleBar(f"[b]{title}[/b], newest first", id="invoices-title")
        # the filter box is mounted when first asked for: less to style before the first frame
        table = RowTable(self.rows.__getitem__, id="invoices")
        table.set_columns([Column(*column) for column in COLUMNS], gap=1)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#invoices", RowTable).focus()
        # A screenful is read here, on the loop (an index walk of a few dozen rows, a few ms at
        # a million invoices), so that the first frame has it; the rest of the page, and the
        # pages after it, come from a thread.
        screenful = min(max(self.size.height, 24), PAGE)
        try:
            self.add_page(self._page(limit=screenful), limit=screenful)
        except Exception as exc:
            self.intdash.report(exc, "Reading invoices")
            self.restart()
        else:  # the rest of the first page
            self.call_after_refresh(self.more, PAGE - screenful)

    def restart(self) -> None:
        self.rows.clear()
        self.query_one("#invoices", RowTable).set_rows([])
        self.last_id, self.exhausted = None, False
        self.more()

    @work(group="page")
    async def more(self, limit: int = PAGE) -> None:
        """Read the next ``limit`` invoices (a page), unless all are in."""
        if self.exhausted or self.fetching:
            return
        self.fetching = True
        search = self.search
        try:
            rows = await self.call(self._page, limit, doing="Reading invoices")
        finally:
            self.fetching = False
        if search != self.search:  # the filter changed meanwhile: read for the new one
            self.more()
            return
        if rows is not None:
            self.add_page(rows, limit)

    def add_page(self, rows: list[InvoiceRow], limit: int = PAGE) -> None:
        for row in rows:
            fiscal = (
                f"#{row.fiscal_seq}"
                if row.fiscal_seq and row.fiscal_status == FiscalStatus.FISCALIZED.value
                else FISCAL_WORDS.get(row.fiscal_status, row.fiscal_status)
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
        self.exhausted = len(rows) < limit

    def _page(self, limit: int = PAGE) -> list[InvoiceRow]:
        search = self.search or None
        return self.ws.invoices.page(
            integration_uid=self.uid, before_id=self.last_id, limit=limit, search=search
        )

    @on(RowTable.Highlighted)
    def _moved(self, event: RowTable.Highlighted) -> None:
        table = event.table
        if table.row_count and table.cursor_row >= table.row_count - 20:  # the next page
            self.more()

    def action_move(self, step: int) -> None:
        self.query_one("#invoices", RowTable).action_cursor(step)

    def action_filter(self) -> None:
        if not self.query("#filter"):
            hint = "Filter: number, contact or external id (esc clears)"
            self.mount(Input(placeholder=hint, id="filter"), before=self.query_one("#invoices"))
        box = self.query_one("#filter", Input)
        box.display = True
        self.call_after_refresh(box.focus)

    @on(Input.Changed, "#filter")
    def _filtering(self, event: Input.Changed) -> None:
        self.search = event.value.strip()
        self.restart()

    def action_back_or_clear(self) -> None:
        boxes = self.query("#filter").results(Input)
        box = next(boxes, None)
        if box is not None and box.display:
            box.value = ""
            box.display = False
            self.query_one("#invoices", RowTable).focus()
        else:
            self.app.pop_screen()
