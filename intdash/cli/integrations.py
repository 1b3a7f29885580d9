"""``intdash integrations ...``: add, list, show, configure, remove."""

from __future__ import annotations

from datetime import datetime

import click

from intdash.cli.common import (
    CliState,
    emit_json,
    json_option,
    parse_assignments,
    pass_state,
    print_table,
)
from intdash.core.catalog import TYPES, IntegrationType
from intdash.core.services.integrations import IntegrationView

TYPE_CHOICE = click.Choice([t.value for t in IntegrationType])
SET_HELP = "A setting as KEY=VALUE (repeatable); VALUE '-' reads it from standard input."


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "never"


def _status_text(view: IntegrationView) -> str:
    return f"{view.status.glyph} {view.status.word}"


def _describe(view: IntegrationView) -> None:
    spec = view.spec
    rows = [
        ("UID", view.uid),
        ("Type", spec.label),
        ("Name", view.name),
        ("Created", _when(view.created)),
        ("Status", _status_text(view)),
    ]
    if view.status.reason:
        rows.append(("Reason", view.status.explanation))
    rows += [
        (label, value if isinstance(value, str) else _when(value))
        for label, value in view.activity()
    ]
    for field in spec.fields:
        if field.secret:
            shown = "******** (set)" if field.name in view.secrets_set else "(not set)"
        else:
            value = view.settings.get(field.name)
            shown = ", ".join(value) if isinstance(value, list) else (value or "(not set)")
        rows.append((field.label, str(shown)))
    if view.removed_at:
        rows.append(("Removed", _when(view.removed_at)))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label.ljust(width)}  {value}")


@click.group()
def integrations() -> None:
    """Create, inspect, configure and remove integrations."""


@integrations.command("add")
@click.argument("type_", metavar="TYPE", type=TYPE_CHOICE)
@click.option("--name", help="A name for people; default from the type and UID.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@json_option
@pass_state
def add(
    state: CliState, type_: str, name: str | None, settings: tuple[str, ...], as_json: bool
) -> None:
    """Create an integration of TYPE (xero, myob, zoho, webhook, custom)."""
    values = parse_assignments(settings)
    created = state.workspace.integrations.create(type_, name=name, values=values)
    view = created.integration
    if as_json:
        data = view.to_json()
        data.update(created.generated_secrets)
        emit_json(data)
        return
    click.echo(f"Created {view.spec.label} integration {view.uid} ({view.name}).")
    for key, secret in created.generated_secrets.items():
        click.echo(f"{key}: {secret}")
        click.echo("  Shown this once only: store it now.")
    if view.status.reason:
        click.echo(f"Status: {_status_text(view)}: {view.status.explanation}.")
    if view.spec.needs_api_key:
        click.echo(f"Next: intdash keys create {view.uid} --label LABEL")


@integrations.command("list")
@click.option("--all", "include_removed", is_flag=True, help="Include removed integrations.")
@json_option
@pass_state
def list_(state: CliState, include_removed: bool, as_json: bool) -> None:
    """List integrations with their status."""
    views = state.workspace.integrations.listing(include_removed=include_removed)
    if as_json:
        emit_json([view.to_json() for view in views])
        return
    if not views:
        click.echo("No integrations yet. Create one: intdash integrations add TYPE")
        click.echo("Types: " + ", ".join(f"{t.value} ({s.label})" for t, s in TYPES.items()))
        return
    print_table(
        ["UID", "TYPE", "NAME", "STATUS", "REASON", "THIS MONTH", "LAST SYNC"],
        (
            [
                v.uid,
                v.spec.label,
                v.name,
                _status_text(v),
                v.status.explanation or "-",
                f"{v.invoices_this_month:,}/{v.monthly_limit:,}",
                _when(v.last_successful_sync),
            ]
            for v in views
        ),
    )


@integrations.command("show")
@click.argument("uid")
@json_option
@pass_state
def show(state: CliState, uid: str, as_json: bool) -> None:
    """Show one integration: its settings (secrets masked) and status."""
    view = state.workspace.integrations.get(uid)
    if as_json:
        emit_json(view.to_json())
    else:
        _describe(view)


@integrations.command("configure")
@click.argument("uid")
@click.option("--set", "settings", multiple=True, required=True, metavar="KEY=VALUE", help=SET_HELP)
@json_option
@pass_state
def configure(state: CliState, uid: str, settings: tuple[str, ...], as_json: bool) -> None:
    """Change settings of an integration; what is not named is kept.

    Every type takes name, sync_from (YYYY-MM-DD) and sync_enabled (true/false); each type
    adds its own (see the README). An empty VALUE clears an optional setting.
    """
    view = state.workspace.integrations.configure(uid, parse_assignments(settings))
    if as_json:
        emit_json(view.to_json())
    else:
        click.echo(
            f"Configured {view.uid}: {_status_text(view)}"
            + (f" ({view.status.explanation})" if view.status.reason else "")
        )


@integrations.command("remove")
@click.argument("uid")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_state
def remove(state: CliState, uid: str, yes: bool, as_json: bool) -> None:
    """Remove an integration: syncing stops, its credentials are wiped, its invoices are kept."""
    service = state.workspace.integrations
    view = service.get(uid)
    if not yes:
        click.echo(
            f"Remove {view.spec.label} integration {view.uid} ({view.name})?\n"
            "All syncing stops and its credentials are wiped; invoices already fiscalized stay "
            "in the history.",
            err=True,
        )
        click.confirm("Remove it", default=False, abort=True, err=True)
    removed = service.remove(uid)
    if as_json:
        emit_json(removed.to_json())
    else:
        click.echo(f"Removed {removed.uid}. Its invoices stay in the history.")
