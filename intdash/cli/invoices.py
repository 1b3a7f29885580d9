"""``intdash invoices ...``: the invoice history and the fiscal register."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from intdash.cli.common import (
    MAX_LISTED,
    CliState,
    emit_json,
    json_option,
    pass_state,
    print_table,
)


@click.group()
def invoices() -> None:
    """The invoice history and the fiscal register."""


@invoices.command("list")
@click.option("--integration", "uid", metavar="UID", help="Only this integration's invoices.")
@click.option("--limit", type=click.IntRange(1, MAX_LISTED), help="At most N, newest first.")
@click.option(
    "--search",
    help="Only invoices matching every word: in the number, contact or external id, or the "
    "integration's UID, name or type.",
)
@json_option
@pass_state
def list_(
    state: CliState, uid: str | None, limit: int | None, search: str | None, as_json: bool
) -> None:
    """List invoices, newest first (with --json and no --limit: every matching invoice)."""
    service = state.workspace.invoices
    if as_json:
        out = sys.stdout
        out.write("[")
        count, before = 0, None
        while limit is None or count < limit:
            size = 1000 if limit is None else min(1000, limit - count)
            rows = service.page(integration_uid=uid, before_id=before, limit=size, search=search)
            for row in rows:
                out.write(("\n  " if count == 0 else ",\n  ") + json.dumps(row.to_json()))
                count += 1
            if len(rows) < size:
                break
            before = rows[-1].id
        out.write("\n]\n" if count else "]\n")
        return
    shown = limit or 50
    rows = service.page(integration_uid=uid, limit=shown, search=search)
    if not rows:
        click.echo("No invoices yet.")
        return
    print_table(
        ["RECEIVED", "INTEGRATION", "NUMBER", "CONTACT", "DATE", "TOTAL", "FISCAL"],
        (
            [
                f"{r.received_at:%Y-%m-%d %H:%M}",
                r.integration_uid,
                r.number or "-",
                (r.contact or "-")[:24],
                r.issue_date.isoformat() if r.issue_date else "-",
                f"{r.total} {r.currency}",
                f"{r.fiscal_status} #{r.record_seq}" if r.record_seq else r.fiscal_status,
            ]
            for r in rows
        ),
    )
    if limit is None and len(rows) == shown:
        click.echo(f"(the newest {shown}; --limit N for more, --json for all)")


@invoices.command("verify")
@json_option
@pass_state
def verify(state: CliState, as_json: bool) -> None:
    """Check the fiscal register's whole hash chain; names the first broken record."""
    result = state.workspace.invoices.verify()
    if as_json:
        emit_json({"ok": result.ok, "records": result.records, "first_broken": result.first_broken,
                   "problem": result.problem})  # fmt: skip
    elif result.ok:
        click.echo(f"The fiscal register is intact: {result.records:,} records.")
    if not result.ok:
        if not as_json:
            click.echo(f"intdash: the fiscal register is broken: {result.problem}", err=True)
        sys.exit(1)


@invoices.command("show")
@click.argument("ref", metavar="NUMBER")
@click.option(
    "--integration",
    "uid",
    metavar="UID",
    help="Its integration: NUMBER is then its external id (or its number there).",
)
@json_option
@pass_state
def show(state: CliState, ref: str, uid: str | None, as_json: bool) -> None:
    """One invoice in full: its fields, items, payments, records and what the SDC signed (its
    number, counters, verification URL and journal), with the verification QR code. NUMBER is
    the invoice's number as the history shows it (or its SDC invoice number); with
    --integration, its external id."""
    from intdash.core.services import fiscal_views

    ws = state.workspace
    found = fiscal_views.details(ws, fiscal_views.find(ws, ref, uid))
    if as_json:
        emit_json(found.to_json())
        return
    _print_details(found)


def _print_details(found: Any) -> None:
    from rich.console import Console

    from intdash.tui import invoice_text, qr

    tty = sys.stdout.isatty()
    console = Console(
        file=sys.stdout, width=None if tty else 100, no_color=not tty, highlight=False
    )
    console.print(invoice_text.heading(found))
    console.print(invoice_text.fields(found))
    for title, part in (
        ("Items", invoice_text.items(found)),
        ("Payments", invoice_text.payments(found)),
        ("At the SDC", invoice_text.sdc(found)),
        ("Records in the local chain", invoice_text.records(found)),
    ):
        console.print(f"\n[b]{title}[/b]")
        console.print(part)
    delay = invoice_text.delay(found)
    if delay:
        console.print(delay)
    journal = invoice_text.journal(found)
    if journal:
        console.print("\n[b]Journal (as the SDC wrote it)[/b]")
        console.print(journal, markup=False, highlight=False)
    latest = found.latest
    console.print("\n[b]Verification QR code[/b]")
    if latest is not None and latest.status == "signed" and latest.verification_url:
        console.file.flush()
        for line in qr.lines(latest.verification_url):  # dark on light, as a phone reads it
            click.echo("\x1b[30;107m" + line + "\x1b[0m" if tty else line)
    else:
        console.print(invoice_text.code(found))
