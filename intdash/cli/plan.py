"""``intdash plan ...``: the plan's tier, monthly limit and licence."""

from __future__ import annotations

from datetime import date
from typing import Any

import click

from intdash.cli.common import CliState, emit_json, json_option, pass_state
from intdash.core.config import MAX_MONTHLY_LIMIT
from intdash.core.services.plans import UNCHANGED, PlanView


def _print(view: PlanView) -> None:
    limit = f"{view.monthly_limit:,} invoices a month per integration"
    click.echo(
        f"Plan      {view.spec.label} ({view.spec.frequency}: every "
        f"{view.spec.interval_minutes} min)"
    )
    click.echo(f"Limit     {limit}{' (the plan default)' if view.limit_is_default else ''}")
    expires = view.licence_expires.isoformat() if view.licence_expires else "never"
    click.echo(f"Licence   {view.licence.value}, expires {expires}")


@click.group()
def plan() -> None:
    """Show or change the plan and licence."""


@plan.command("show")
@json_option
@pass_state
def show(state: CliState, as_json: bool) -> None:
    """Show the plan, its limit and the licence."""
    view = state.workspace.plans.current()
    if as_json:
        emit_json(view.to_json())
    else:
        _print(view)


def _licence_date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return UNCHANGED
    if value.strip().lower() in ("never", "none"):
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"must be a date as YYYY-MM-DD or 'never', not {value!r}"
        ) from None


@plan.command("set")
@click.argument("tier", type=click.Choice(["starter", "growth", "scale"], case_sensitive=False))
@click.option(
    "--limit",
    type=click.IntRange(0, MAX_MONTHLY_LIMIT),
    help="Monthly invoice limit per integration (default: the tier's).",
)
@click.option(
    "--licence-expires",
    callback=_licence_date,
    metavar="DATE",
    help="Last day of the licence, YYYY-MM-DD, or 'never' (default: unchanged).",
)
@json_option
@pass_state
def set_(
    state: CliState, tier: str, limit: int | None, licence_expires: Any, as_json: bool
) -> None:
    """Set the plan's TIER (starter, growth, scale)."""
    view = state.workspace.plans.set(tier, monthly_limit=limit, licence_expires=licence_expires)
    if as_json:
        emit_json(view.to_json())
    else:
        _print(view)
