"""``intdash deliveries ...``: what Custom/Webhook integrations were sent."""

from __future__ import annotations

import asyncio

import click

from intdash.cli.common import MAX_ID, CliState, emit_json, json_option, pass_state, print_table


@click.group()
def deliveries() -> None:
    """List, resend and deliver Custom/Webhook deliveries; rotate a webhook's signing secret
    and list the secrets that sign."""


@deliveries.command("list")
@click.argument("uid")
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
@json_option
@pass_state
def list_deliveries(state: CliState, uid: str, limit: int, as_json: bool) -> None:
    """A webhook's deliveries, newest first."""
    rows = state.workspace.deliveries.list(uid, limit=limit)
    if as_json:
        emit_json([row.to_json() for row in rows])
        return
    print_table(
        ["ID", "FISCALIZED", "INVOICE", "FROM", "STATE", "TRIES", "HTTP", "NEXT", "ERROR"],
        [
            [
                str(r.id),
                r.created_at.isoformat(timespec="seconds"),
                r.invoice_number or r.invoice_external_id,
                r.source_uid,
                r.state,
                str(r.attempts),
                str(r.last_status or "—"),
                r.next_attempt_at.isoformat(timespec="seconds") if r.next_attempt_at else "—",
                (r.last_error or "")[:60],
            ]
            for r in rows
        ],
    )


@deliveries.command("resend")
@click.argument("uid")
@click.argument("delivery_id", type=click.IntRange(1, MAX_ID))
@pass_state
def resend(state: CliState, uid: str, delivery_id: int) -> None:
    """Deliver one again at the next attempt (the same webhook-id)."""
    state.workspace.deliveries.resend(uid, delivery_id)
    click.echo(f"Delivery {delivery_id} of {uid} goes out again at the next attempt.")


@deliveries.command("run")
@json_option
@pass_state
def run(state: CliState, as_json: bool) -> None:
    """Attempt every delivery that is due now, in the foreground."""
    from intdash.sync.deliveries import DeliveryWorker

    attempted = asyncio.run(DeliveryWorker(state.workspace).drain())
    if as_json:
        emit_json({"attempted": attempted})
    else:
        click.echo(f"{attempted} deliveries attempted.")


@deliveries.command("rotate-secret")
@click.argument("uid")
@click.option(
    "--overlap-hours",
    type=click.IntRange(0, 24 * 30),
    default=24,
    show_default=True,
    help="How long the old secret keeps signing beside the new one.",
)
@json_option
@pass_state
def rotate_secret(state: CliState, uid: str, overlap_hours: int, as_json: bool) -> None:
    """A new signing secret, printed this once only; the old one signs too for a while."""
    from datetime import timedelta

    service = state.workspace.deliveries
    secret = service.rotate_secret(uid, timedelta(hours=overlap_hours))
    if as_json:
        emit_json({"uid": uid, "signing_secret": secret, "overlap_hours": overlap_hours})
        return
    click.echo(secret)
    click.echo(
        f"New signing secret for {uid}: shown this once only. The one it replaces signs beside "
        f"it for {overlap_hours} hours, and each older one until its own end. Signing now:",
        err=True,
    )
    for live in service.live_secrets(uid):
        click.echo(f"  {live.describe()}", err=True)


@deliveries.command("secrets")
@click.argument("uid")
@json_option
@pass_state
def list_secrets(state: CliState, uid: str, as_json: bool) -> None:
    """The secrets that sign a webhook's deliveries now, masked: the current one, and each old
    one with the end of its overlap (one signature each in webhook-signature)."""
    live = state.workspace.deliveries.live_secrets(uid)
    if as_json:
        emit_json([s.to_json() for s in live])
        return
    if not live:
        click.echo(f"{uid} has no signing secret.")
        return
    click.echo(f"Signing secrets of {uid}:")
    for s in live:
        click.echo(f"  {s.describe()}")
