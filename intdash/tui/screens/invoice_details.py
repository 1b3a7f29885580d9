"""One invoice in full (``enter`` on a row of the invoice history): its fields, items and
payments, its records in the local chain, what the SDC signed of it with its journal, and its
verification QR code drawn in half blocks, dark on light whatever the theme, for a phone to read
from the screen. Pending and refused invoices say so in place of the code."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Static

from intdash.core.services import fiscal_views
from intdash.core.services.fiscal_views import InvoiceDetails
from intdash.tui import invoice_text
from intdash.tui.screens.base import BaseScreen
from intdash.tui.widgets import TitleBar


class InvoiceDetailsScreen(BaseScreen):
    DEFAULT_CSS = """
    InvoiceDetailsScreen #invoice-body { height: 1fr; padding: 0 1; }
    InvoiceDetailsScreen #invoice-top { height: auto; }
    InvoiceDetailsScreen #invoice-fields { width: 1fr; height: auto; }
    InvoiceDetailsScreen #qr { width: auto; height: auto; margin-left: 1; }
    InvoiceDetailsScreen #no-qr { width: 1fr; height: auto; margin-left: 1; }
    InvoiceDetailsScreen .section-title { text-style: bold; margin-top: 1; height: auto; }
    InvoiceDetailsScreen .section { height: auto; }
    """
    BINDINGS = [
        Binding("j", "scroll(1)", "Down", show=False, id="invoice-down"),
        Binding("k", "scroll(-1)", "Up", show=False, id="invoice-up"),
        Binding("r", "refresh", "Refresh", id="invoice-refresh", tooltip="Read the invoice again"),
    ]

    def __init__(self, invoice_id: int) -> None:
        super().__init__()
        self.invoice_id = invoice_id
        self.details: InvoiceDetails | None = None

    def compose(self) -> ComposeResult:
        yield TitleBar("Invoice", id="invoice-title")
        yield VerticalScroll(Static("Reading the invoice…"), id="invoice-body")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#invoice-body").focus()
        self.load()

    @work(exclusive=True, group="invoice")
    async def load(self) -> None:
        found = await self.call(
            fiscal_views.details, self.ws, self.invoice_id, doing="Reading the invoice"
        )
        if found is None or not self.live:
            return
        self.details = found
        await self.show(found)

    async def show(self, d: InvoiceDetails) -> None:
        self.query_one("#invoice-title", TitleBar).show(invoice_text.heading(d))
        body = self.query_one("#invoice-body", VerticalScroll)
        await body.remove_children()
        signed = d.latest is not None and d.latest.status == "signed" and d.latest.verification_url
        code = (
            Static(invoice_text.code(d), id="qr")
            if signed
            else Static(invoice_text.code(d), id="no-qr")
        )
        top = Horizontal(
            Static(invoice_text.fields(d), id="invoice-fields"), code, id="invoice-top"
        )
        widgets: list[Static | Horizontal] = [top]

        def section(title: str, content: object, name: str) -> None:
            widgets.append(Static(title, classes="section-title"))
            widgets.append(Static(content, id=name, classes="section"))  # type: ignore[arg-type]

        section("Items", invoice_text.items(d), "invoice-items")
        section("Payments", invoice_text.payments(d), "invoice-payments")
        delay = invoice_text.delay(d)
        sdc = invoice_text.sdc(d)
        section("At the SDC" + (f" · {delay}" if delay else ""), sdc, "invoice-sdc")
        section("Records in the local chain", invoice_text.records(d), "invoice-records")
        journal = invoice_text.journal(d)
        if journal:
            widgets.append(Static("Journal (as the SDC wrote it)", classes="section-title"))
            widgets.append(Static(journal, id="invoice-journal", classes="section", markup=False))
        await body.mount_all(widgets)

    def action_scroll(self, step: int) -> None:
        body = self.query_one("#invoice-body", VerticalScroll)
        body.scroll_relative(y=step, animate=False)

    def action_refresh(self) -> None:
        self.load()
