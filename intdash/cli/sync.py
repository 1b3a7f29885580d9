"""``intdash sync``: syncing one integration now, or stopping its running sync."""

from __future__ import annotations

import asyncio
import sys

import click

from intdash.cli.common import CliState, emit_json, fail, json_option, pass_state
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

    With TaxCore's V-SDC as the register (INTDASH_FISCAL__REGISTER=vsdc), the fiscal outbox
    is sent after the run, and how many the SDC answered is printed too.

    Exits 0 when the run completed, 1 when it failed, stopped part way, or was cancelled.
    When only the reserve of the platform's daily API calls is left, it refuses (exit 1)
    unless --force.
    """
    from intdash.sync.engine import RunResult, SyncEngine, Trigger
    from intdash.sync.fiscalize import FiscalSender

    engine = SyncEngine(state.workspace)
    if cancel:
        if not engine.request_cancel(uid, f"{state.workspace.actor} at the command line"):
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
    sender = FiscalSender(state.workspace)

    async def run() -> tuple[RunResult, int]:
        result = await engine.run(uid, Trigger.MANUAL)
        # with the V-SDC as the register, what the run recorded is signed before it returns
        return result, await sender.drain() if sender.enabled else 0

    result, answered = asyncio.run(run())
    if as_json:
        found = result.to_json()
        if sender.enabled:
            found["sdc"] = {"answered": answered, "problem": sender.last_problem}
        emit_json(found)
    else:
        click.echo(
            f"{result.outcome.value}: fetched {result.fetched:,}, created {result.created:,}, "
            f"updated {result.updated:,}, held {result.held:,}"
        )
        if answered:
            click.echo(f"SDC: {answered:,} answered (intdash fiscal status for the outbox)")
    if sender.enabled and sender.last_problem:
        click.echo(f"intdash: warning: the SDC was not reached: {sender.last_problem}", err=True)
    if result.outcome is not RunOutcome.OK:
        if not as_json:
            click.echo(f"intdash: sync of {uid} {result.outcome.value}: {result.error}", err=True)
        sys.exit(1)
