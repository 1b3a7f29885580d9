"""An invoice in full as people read it: its fields, its items, its payments, its records in the
local chain and what the SDC signed (number, time, counters, verification URL, journal), and its
QR code or why there is none yet. Rich renderables without Textual: the details screen and
``intdash invoices show`` say the same."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from intdash.core.services.fiscal_views import InvoiceDetails, Signed
from intdash.tui import qr


def _pairs(pairs: Iterable[tuple[str, str | None]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in pairs:
        grid.add_row(label, Text(value if value not in (None, "") else "—"))
    return grid


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def fields(d: InvoiceDetails) -> Table:
    """The invoice's own fields."""
    amounts = [
        ("Subtotal", None if d.subtotal is None else f"{d.subtotal} {d.currency}"),
        ("Tax", None if d.tax is None else f"{d.tax} {d.currency}"),
        ("Total", f"{d.total} {d.currency}"),
    ]
    return _pairs(
        [
            ("Number", d.number),
            ("Integration", f"{d.integration_uid} ({d.integration_name})"),
            ("External id", d.external_id),
            ("Type", d.kind),
            *(
                [("Credits", d.credits or "no invoice named yet")]
                if d.kind == "credit note"
                else []
            ),
            ("Contact", d.contact),
            ("Buyer tax id", d.buyer_tax_id),
            ("Issued", d.issue_date.isoformat() if d.issue_date else None),
            ("Due", d.due_date.isoformat() if d.due_date else None),
            *amounts,
            ("At source", d.source_status),
            ("Fiscal", d.fiscal_status),
            ("Received", _time(d.received_at)),
        ]
    )


def items(d: InvoiceDetails) -> RenderableType:
    """The line items (the SDC's label of each, as it was sent), or why there are none."""
    if d.items_error:
        return Text(f"Its items cannot be read: {d.items_error}")
    if not d.items:
        return Text("No line items from its platform: it is fiscalized as one item of its total.")
    table = Table(box=None, padding=(0, 1), header_style="bold", pad_edge=False, expand=False)
    for name, justify in (
        ("Item", "left"), ("Qty", "right"), ("Unit price", "right"), ("Discount", "right"),
        ("Tax code", "left"), ("Label", "left"), ("Total", "right"),
    ):  # fmt: skip
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for item in d.items:
        basis = {True: " incl.", False: " excl.", None: ""}[item.tax_inclusive]
        table.add_row(
            item.name,
            f"{item.quantity.normalize():f}",
            str(item.unit_price),
            str(item.discount) if item.discount else "—",
            item.tax_code or "—",
            d.label_of(item) or "—",
            f"{item.total}{basis}",
        )
    return table


def payments(d: InvoiceDetails) -> Text:
    if not d.payments:
        return Text("No payments known.")
    return Text(
        "\n".join(f"{p.amount} {d.currency}  {p.method or '(how: not said)'}" for p in d.payments)
    )


def records(d: InvoiceDetails) -> RenderableType:
    """Its records in the local chain (the register's journal)."""
    if not d.records:
        return Text("No fiscal record: not fiscalized.")
    table = Table(box=None, padding=(0, 1), header_style="bold", pad_edge=False)
    for name in ("Seq", "Kind", "Recorded", "Hash"):
        table.add_column(name, overflow="fold")
    for r in d.records:
        kind = f"{r.kind} of #{r.refers_to}" if r.refers_to else r.kind
        table.add_row(f"#{r.seq}", kind, _time(r.recorded_at) or "—", r.hash)
    return table


def state(s: Signed) -> str:
    """Where a request to the SDC stands, in words."""
    if s.status == "signed":
        return "signed"
    if s.status == "failed":
        return f"refused by the SDC: {s.error or 'no reason given'} (then intdash fiscal retry)"
    why = f" (last try: {s.error})" if s.error else ""
    if s.status == "sent":
        return f"sending: waiting for the SDC's answer{why}"
    return f"pending: waiting for the SDC{why}"


def sdc(d: InvoiceDetails) -> RenderableType:
    """What the SDC signed of it, each sale and refund."""
    if not d.signed:
        return Text("Not sent to the SDC (recorded by the local register only).")
    parts: list[RenderableType] = []
    for s in d.signed:
        rows: list[tuple[str, str | None]] = [
            ("Kind", f"{s.kind} (record #{s.record_seq})"),
            ("State", state(s)),
        ]
        if s.status == "signed":
            answered = s.response
            rows += [
                ("SDC number", s.sdc_invoice_number),
                ("SDC time", s.sdc_time),
                ("Signed", _time(s.signed_at)),
                (
                    "Counters",
                    f"invoice {s.invoice_counter or '—'}, total {s.total_counter or '—'}, "
                    f"of its type {answered.get('transactionTypeCounter', '—')}",
                ),
                ("Verify at", s.verification_url),
            ]
        parts.append(_pairs(rows))
    return Group(*parts)


def delay(d: InvoiceDetails) -> str | None:
    """How long after its issue (and its receipt) the SDC signed it."""
    sale = d.sale
    if sale is None or sale.signed_at is None:
        return None
    days = d.delay_days
    after_issue = (
        "no issue date"
        if days is None
        else f"{days} day{'' if days == 1 else 's'} after its issue date"
    )
    minutes = max(int((sale.signed_at - d.received_at).total_seconds() // 60), 0)
    return f"Signed {after_issue}, {minutes} min after intdash received it"


def journal(d: InvoiceDetails) -> str | None:
    """The receipt as the SDC wrote it (its latest signed one)."""
    signed = [s for s in d.signed if s.status == "signed" and s.journal]
    return signed[-1].journal if signed else None


def code(d: InvoiceDetails) -> Text:
    """The verification QR code, or why there is none."""
    sale = d.latest
    if sale is not None and sale.status == "signed" and sale.verification_url:
        return qr.text(sale.verification_url)
    if sale is None:
        return Text("No QR code: not sent to the SDC.")
    return Text(f"No QR code yet: {state(sale)}")


def heading(d: InvoiceDetails) -> str:
    return f"Invoice {escape(d.number or d.external_id)} of {escape(d.integration_uid)}"
