"""``intdash invoices ...``: the invoice history and the fiscal register."""

from __future__ import annotations

import json
import sys

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
