"""The invoice history, newest first, read a page at a time so it stays instant at any size;
and what it shares with the audit trail's screen (``PagedScreen``): a filter, the position and
count in a line below the table, and words where nothing is listed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.markup import escape
from textual.widgets import Footer, Input, Static

from intdash.core.models import FiscalStatus
from intdash.core.services import fiscal_views
from intdash.core.services.invoices import InvoiceRow
from intdash.core.services.invoices.listing import count
from intdash.tui.screens.base import BaseScreen
from intdash.tui.widgets import Cell, Column, RowTable, TitleBar

PAGE = 200
# (key, heading, width, flexible): all of them in 100 columns, the contact taking what the
# others leave
COLUMNS = (
    ("received", "Received", 10),
    ("integration", "Integration", 11),
    ("number", "Number", 13),
    ("contact", "Contact", 10, True),
    ("date", "Date", 10),
    ("total", "Total", 14),
    ("status", "At source", 10),
    ("fiscal", "Fiscal", 10),  # its sale record's number, or where it stands
)
# Narrower, every column stays (the Fiscal one above all): one space between them, short
# received times, and the others narrowed, so that 80 columns hold them all.
COMPACT = (
    ("received", "Rcvd", 7),
    ("integration", "Integration", 11),
    ("number", "Number", 9),
    ("contact", "Contact", 5, True),
    ("date", "Date", 10),
    ("total", "Total", 12),
    ("status", "Source", 6),
    ("fiscal", "Fiscal", 10),
)
# With the V-SDC as the register, the SDC's invoice number (or where its request stands) and the
# days from issue to signature take the place of the local record and the source's status (both
# in the invoice's details): at 80 columns the date goes too, and the SDC number loses its first
# part (the taxpayer's, the same on every invoice).
SDC_COLUMNS = (
    ("received", "Received", 10),
    ("integration", "Integration", 11),
    ("number", "Number", 11),
    ("contact", "Contact", 8, True),
    ("date", "Date", 10),
    ("total", "Total", 12),
    ("sdc", "SDC", 22),
    ("delay", "Delay", 5),
)
SDC_COMPACT = (
    ("received", "Rcvd", 7),
    ("integration", "Integration", 11),
    ("number", "Number", 9),
    ("contact", "Contact", 5, True),
    ("total", "Total", 12),
    ("sdc", "SDC", 14),
    ("delay", "Delay", 5),
)
DELAY_HELP = (
    "Delay: whole days from the invoice's issue date to the SDC's signature. From its issue, "
    "not from when intdash received it, because the rule is to fiscalize before issue; in "
    "days, because the platforms give the issue as a date without a time"
)
# what the Fiscal column says of an invoice without a standing sale (in its 10 characters)
FISCAL_WORDS = {
    FiscalStatus.REFUNDED.value: "refunded",
    FiscalStatus.AWAITING_APPROVAL.value: "awaiting",
    FiscalStatus.AWAITING_TAX.value: "no tax yet",
    FiscalStatus.AWAITING_INVOICE.value: "no invoice",  # a credit note: its invoice not sold
}
_CREDIT_NOTE = "credit note"


def total_text(row: InvoiceRow) -> str:
    """The total as the history shows it: a credit note's with a minus, as it gives back."""
    sign = "-" if row.kind == _CREDIT_NOTE else ""
    return f"{sign}{row.total} {row.currency}"


def table_width(columns: Sequence[tuple[Any, ...]], gap: int, scrollbar: int = 2) -> int:
    """The width a table of these columns needs: their widths, the gaps, the margin and a
    vertical scrollbar."""
    return 1 + sum(int(column[2]) + gap for column in columns) + scrollbar


class PagedScreen(BaseScreen):
    """A history newest first, read a page at a time (``read``) so that it opens at once at any
    size, with a filter (``/``), the position and count below it (``count_of``, from a thread)
    and words where nothing is listed. Its ``FULL`` columns go ``NARROW`` where they do not
    fit (each column: key, heading, width and whether it takes what the others leave)."""

    DEFAULT_CSS = """
    PagedScreen .paged { height: 1fr; }
    PagedScreen .paged.compact { scrollbar-size-vertical: 1; }
    PagedScreen #position { height: 1; padding: 0 1; background: $panel; }
    PagedScreen #nothing { height: 1fr; padding: 1 2; }
    """
    # every history's keys; each adds its filter, whose tooltip says what it looks in
    BINDINGS = [
        Binding("escape", "back_or_clear", "Back", id="back"),
        Binding("j", "move(1)", "Down", show=False, id="down"),
        Binding("k", "move(-1)", "Up", show=False, id="up"),
    ]

    TABLE: ClassVar[str]  # the table's id
    NOUNS: ClassVar[tuple[str, str]]  # one of what it lists, and many
    LOOKS_IN: ClassVar[str]  # where the filter looks, in words
    HINT: ClassVar[str]  # the same, short: the filter box's placeholder
    FULL: ClassVar[Sequence[tuple[Any, ...]]]  # the columns, and compact below their width
    NARROW: ClassVar[Sequence[tuple[Any, ...]]]

    def __init__(self, uid: str | None) -> None:
        super().__init__()
        self.uid = uid
        self.search = ""
        self.last_id: int | None = None
        self.first_id: int | None = None  # the newest listed: what the count counts up to
        self.exhausted = False
        self.fetching = False
        self.counting = False
        self.total: int | None = None  # of the current filter, once counted
        self.rows: dict[str, Any] = {}
        self.compact = False

    # -- what a history says (subclasses) -----------------------------------------------------

    def heading(self) -> str:
        raise NotImplementedError

    def read(self, before_id: int | None, limit: int, search: str | None) -> list[Any]:
        """A page of rows, newest first (in a thread, or on the loop for the first screenful)."""
        raise NotImplementedError

    def count_of(self, search: str | None, through_id: int) -> int:
        """How many rows the filter lists, up to the newest listed (in a thread)."""
        raise NotImplementedError

    def cells(self, row: Any) -> Sequence[Cell]:
        raise NotImplementedError

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield TitleBar(f"[b]{self.heading()}[/b], newest first", id=f"{self.TABLE}-title")
        # the line below the table comes after the first frame, and the filter box and the
        # words for an empty list when first needed: less to style before the first frame
        table = RowTable(self._cells, id=self.TABLE)
        table.add_class("paged")
        self._fit(table, self.app.size.width)
        yield table
        yield Footer()

    def layouts(self) -> tuple[Sequence[tuple[Any, ...]], Sequence[tuple[Any, ...]]]:
        """The full columns and the compact ones."""
        return self.FULL, self.NARROW

    def _fit(self, table: RowTable, width: int) -> None:
        """The full columns where they fit, else the compact ones."""
        full, narrow = self.layouts()
        compact = width < table_width(full, gap=1)
        if compact != self.compact or not table.columns:
            self.compact = compact
            table.set_class(compact, "compact")
            columns = narrow if compact else full
            table.set_columns([Column(*column) for column in columns], gap=1)
            table.refresh_rows(table.keys)

    def on_resize(self) -> None:
        self._fit(self.query_one(f"#{self.TABLE}", RowTable), self.size.width)

    def _cells(self, key: str) -> Sequence[Cell]:
        return self.cells(self.rows[key])

    # -- reading -----------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.query_one(f"#{self.TABLE}", RowTable).focus()
        # A screenful is read here, on the loop (an index walk of a few dozen rows, a few ms at
        # a million), so that the first frame has it; the rest of the page, the pages after
        # it and the count come from threads.
        screenful = min(max(self.size.height, 24), PAGE)
        try:
            self.add_page(self.read(None, screenful, None), limit=screenful)
        except Exception as exc:
            self.intdash.report(exc, f"Reading {self.NOUNS[1]}")
            self.restart()
        else:  # the rest of the first page
            self.call_after_refresh(self.more, PAGE - screenful)
        self.call_after_refresh(self._mount_position)

    def _mount_position(self) -> None:
        self.mount(Static("", id="position"), before=self.query_one(Footer))
        self.show_position()

    def restart(self) -> None:
        self.rows.clear()
        self.query_one(f"#{self.TABLE}", RowTable).set_rows([])
        self.last_id = self.first_id = self.total = None
        self.exhausted = False
        self.show_position()
        self.more()

    @work(group="page")
    async def more(self, limit: int = PAGE) -> None:
        """Read the next ``limit`` rows (a page), unless all are in."""
        if self.exhausted or self.fetching:
            return
        self.fetching = True
        search = self.search
        try:
            rows = await self.call(
                self.read, self.last_id, limit, search or None, doing=f"Reading {self.NOUNS[1]}"
            )
        finally:
            self.fetching = False
        if not self.live:
            return
        if search != self.search:  # the filter changed meanwhile: read for the new one
            self.more()
            return
        if rows is not None:
            self.add_page(rows, limit)

    def add_page(self, rows: list[Any], limit: int = PAGE) -> None:
        first = not self.rows
        for row in rows:
            self.rows[str(row.id)] = row
        table = self.query_one(f"#{self.TABLE}", RowTable)
        table.set_rows(list(self.rows), changed=())
        if rows:
            self.last_id = rows[-1].id
            if first:
                self.first_id = rows[0].id
        self.exhausted = len(rows) < limit
        if self.exhausted:
            self.total = len(self.rows)  # all are in: counted already
        elif first:
            self.call_after_refresh(self.recount)
        self.show_nothing(not self.rows and self.exhausted)
        self.show_position()

    @work(group="count")
    async def recount(self) -> None:
        """Count what the filter lists, off the loop (a scan of a million rows takes a second
        or so), one count at a time: when the filter changed meanwhile, the count is of the
        latest filter, once its first page is in."""
        if self.counting or self.total is not None or self.first_id is None:
            return
        self.counting = True
        search, through = self.search, self.first_id
        try:
            found = await self.call(self.count_of, search or None, through, doing="Counting")
        finally:
            self.counting = False
        if not self.live:
            return
        if (search, through) != (self.search, self.first_id):
            self.recount()  # the filter changed meanwhile
        elif found is not None and self.total is None:
            self.total = found
            self.show_position()

    # -- what is shown beside the rows -------------------------------------------------------

    def position(self) -> str:
        """Where the cursor is among how many, and how many are read so far."""
        table = self.query_one(f"#{self.TABLE}", RowTable)
        loaded = table.row_count
        matching = f" matching “{escape(self.search)}”" if self.search else ""
        if not loaded:
            return (
                f"0 {self.NOUNS[1]}{matching}"
                if self.exhausted
                else f"Reading {self.NOUNS[1]}{matching}…"
            )
        total = self.total
        of = f"{total:,}" if total is not None else f"{loaded:,}+ (counting…)"
        noun = self.NOUNS[0] if total == 1 else self.NOUNS[1]
        read = "all loaded" if loaded == total else f"rows 1–{loaded:,} loaded"  # noqa: RUF001
        return f"Row {table.cursor_row + 1:,} of {of} {noun}{matching} · {read}"

    def show_position(self) -> None:
        text = self.position()
        if text != self.shown_position and self.query("#position"):
            self.shown_position = text
            self.query_one("#position", Static).update(text, layout=False)

    shown_position = ""

    def show_nothing(self, nothing: bool) -> None:
        """Words in place of an empty table: why nothing is listed, and what to do."""
        table = self.query_one(f"#{self.TABLE}", RowTable)
        if nothing:
            if not self.query("#nothing"):
                self.mount(Static("", id="nothing"), after=table)
            self.query_one("#nothing", Static).update(self.nothing())
        elif not self.query("#nothing"):
            return
        self.query_one("#nothing", Static).display = nothing
        table.display = not nothing

    def nothing(self) -> str:
        if self.search:
            return (
                f"[b]No {self.NOUNS[0]} matches “{escape(self.search)}”.[/b]\n\n"
                f"The filter looks in {self.LOOKS_IN}.\n[b]esc[/b] clears the filter."
            )
        whose = f" of {self.uid}" if self.uid else ""
        return f"[b]No {self.NOUNS[1]}{whose} yet.[/b]"

    # -- keys --------------------------------------------------------------------------------

    @on(RowTable.Highlighted)
    def _moved(self, event: RowTable.Highlighted) -> None:
        table = event.table
        if table.row_count and table.cursor_row >= table.row_count - 20:  # the next page
            self.more()
        self.show_position()

    def action_move(self, step: int) -> None:
        self.query_one(f"#{self.TABLE}", RowTable).action_cursor(step)

    def action_filter(self) -> None:
        if not self.query("#filter"):
            hint = f"Filter by {self.HINT} (esc clears)"
            self.mount(Input(placeholder=hint, id="filter"), before=f"#{self.TABLE}")
        box = self.query_one("#filter", Input)
        box.display = True
        self.call_after_refresh(box.focus)

    @on(Input.Changed, "#filter")
    def _filtering(self, event: Input.Changed) -> None:
        search = event.value.strip()
        if search != self.search:
            self.search = search
            self.show_nothing(False)
            self.restart()

    def action_back_or_clear(self) -> None:
        boxes = self.query("#filter").results(Input)
        box = next(boxes, None)
        if box is not None and box.display:
            box.value = ""
            box.display = False
            table = self.query_one(f"#{self.TABLE}", RowTable)
            if table.display:
                table.focus()
        else:
            self.app.pop_screen()


class InvoicesScreen(PagedScreen):
    BINDINGS = [
        Binding(
            "slash",
            "filter",
            "Filter",
            id="filter",
            tooltip="Invoices with the text in their number, contact or external id, or in "
            "their integration's UID, name or type",
        ),
        Binding(
            "enter",
            "open",
            "Details",
            id="invoice-details",
            tooltip="The invoice in full: its items, payments, records and what the SDC signed",
        ),
    ]
    TABLE = "invoices"
    NOUNS = ("invoice", "invoices")
    LOOKS_IN = "the number, contact and external id, and the integration's UID, name and type"
    HINT = "number, contact, external id or integration"
    FULL = COLUMNS
    NARROW = COMPACT

    def __init__(self, uid: str | None) -> None:
        super().__init__(uid)
        self.sdc = fiscal_views.vsdc(self.ws)

    def layouts(self) -> tuple[Sequence[tuple[Any, ...]], Sequence[tuple[Any, ...]]]:
        return (SDC_COLUMNS, SDC_COMPACT) if self.sdc else (self.FULL, self.NARROW)

    def on_mount(self) -> None:  # (after PagedScreen's: Textual calls each class's own)
        if self.sdc:
            self.query_one("#invoices", RowTable).tooltip = DELAY_HELP

    def heading(self) -> str:
        return f"Invoices of {self.uid}" if self.uid else "Every invoice"

    @on(RowTable.Selected)
    def _chosen(self, event: RowTable.Selected) -> None:
        event.stop()
        self.open(event.key)

    def action_open(self) -> None:
        table = self.query_one("#invoices", RowTable)
        if table.row_count:
            self.open(table.keys[table.cursor_row])

    def open(self, key: str) -> None:
        from intdash.tui.screens.invoice_details import InvoiceDetailsScreen

        row = self.rows.get(key)
        if row is not None:
            self.app.push_screen(InvoiceDetailsScreen(row.id))

    def read(self, before_id: int | None, limit: int, search: str | None) -> list[InvoiceRow]:
        return self.ws.invoices.page(
            integration_uid=self.uid, before_id=before_id, limit=limit, search=search
        )

    def count_of(self, search: str | None, through_id: int) -> int:
        return count(self.ws, integration_uid=self.uid, search=search, through_id=through_id)

    def cells(self, row: InvoiceRow) -> tuple[str, ...]:
        if self.sdc:
            return self.sdc_cells(row)
        fiscal = (
            f"{'credit ' if row.kind == _CREDIT_NOTE else ''}#{row.fiscal_seq}"
            if row.fiscal_seq and row.fiscal_status == FiscalStatus.FISCALIZED.value
            else FISCAL_WORDS.get(row.fiscal_status, row.fiscal_status)
        )
        return (
            self.when(row.received_at, short=self.compact),
            row.integration_uid,
            row.number or "—",
            row.contact or "—",
            row.issue_date.isoformat() if row.issue_date else "—",
            total_text(row),
            row.source_status or "—",
            fiscal,
        )

    def sdc_cells(self, row: InvoiceRow) -> tuple[str, ...]:
        short = self.compact
        if row.sdc_status is None:  # nothing for the SDC: the local words
            sdc = (
                f"local #{row.fiscal_seq}"
                if row.fiscal_seq and row.fiscal_status == FiscalStatus.FISCALIZED.value
                else FISCAL_WORDS.get(row.fiscal_status, row.fiscal_status)
            )
        elif row.sdc_number:
            sdc = row.sdc_number.split("-", 1)[-1] if short else row.sdc_number
        elif row.sdc_status == "failed":
            sdc = f"failed: {row.sdc_error}" if row.sdc_error else "failed"
        else:
            sdc = fiscal_views.STATE_WORDS.get(row.sdc_status, row.sdc_status)
        delay = fiscal_views.delay_text(fiscal_views.delay_days(row.signed_at, row.issue_date))
        cells = [
            self.when(row.received_at, short=short),
            row.integration_uid,
            row.number or "—",
            row.contact or "—",
            *([] if short else [row.issue_date.isoformat() if row.issue_date else "—"]),
            total_text(row),
            sdc,
            delay,
        ]
        return tuple(cells)
