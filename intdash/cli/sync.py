"""``intdash sync`` and ``intdash invoices``: syncing now, and the invoice history."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from intdash.cli.common import (
    MAX_LISTED,
    CliState,
    emit_json,
    fail,
    json_option,
    pass_state,
    print_table,
)
from intdash.core.models import RunOutcome


@click.command()
@click.argument("uid")
@click.option(
    "--cancel", is_flag=True, help="Ask the running sync of UID (in any process) to stop."
)
@click.option(
    "--force",
    "--yes",
    "force",
    is_flag=True,
    help="Sync even when only the reserve of the platform's daily API calls is left.",
)
@json_option
@pass_state
def sync(state: CliState, uid: str, cancel: bool, force: bool, as_json: bool) -> None:
    """Sync one integration now, in the foreground, and print its counts.

    Exits 0 when the run completed, 1 when it failed, stopped part way, or was cancelled.
    When only the reserve of the platform's daily API calls is left, it refuses (exit 1)
    unless --force.
    """
    from intdash.sync.engine import SyncEngine, Trigger

    engine = SyncEngine(state.workspace)
    if cancel:
        if not engine.request_cancel(uid):
            fail(f"{uid} is not syncing now")
        message = f"Asked the running sync of {uid} to stop after its current page."
        emit_json({"uid": uid, "cancel_requested": True}) if as_json else click.echo(message)
        return
    view = None if force else state.workspace.integrations.get(uid)
    low = view.daily_budget_low if view is not None else None
    if view is not None and low is not None:
        fail(
            f"{view.spec.label}'s daily API limit for {uid} is nearly spent: {low.explanation}. "
            "A sync now may spend the last calls (scheduled syncs wait for the reset); "
            "--force syncs anyway"
        )
    result = asyncio.run(engine.run(uid, Trigger.MANUAL))
    if as_json:
        emit_json(result.to_json())
    else:
        click.echo(
            f"{result.outcome.value}: fetched {result.fetched:,}, created {result.created:,}, "
            f"updated {result.updated:,}, held {result.held:,}"
        )
    if result.outcome is not RunOutcome.OK:
        if not as_json:
            click.echo(f"intdash: sync of {uid} {result.outcome.value}: {result.error}", err=True)
        sys.exit(1)


@click.group()
def invoices() -> None:
    """The invoice history and the fiscal register."""


@invoices.command("list")
@click.option("--integration", "uid", metavar="UID", help="Only this integration's invoices.")
@click.option("--limit", type=click.IntRange(1, MAX_LISTED), help="At most N, newest first.")
@click.option("--search", help="Only invoices whose number, contact or external id contain this.")
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
