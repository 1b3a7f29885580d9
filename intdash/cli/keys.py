"""``intdash keys ...``: API keys of Custom Integrations."""

from __future__ import annotations

import click

from intdash.cli.common import CliState, emit_json, json_option, pass_state, print_table


@click.group()
def keys() -> None:
    """Create, list and revoke API keys of Custom Integrations."""


@keys.command("create")
@click.argument("uid")
@click.option("--label", required=True, help="What the key is for (shown in lists).")
@json_option
@pass_state
def create(state: CliState, uid: str, label: str, as_json: bool) -> None:
    """Create an API key; the key is printed this once only."""
    created = state.workspace.keys.create(uid, label)
    if as_json:
        emit_json({"key": created.key, **created.view.to_json()})
        return
    click.echo(created.key)
    click.echo(
        f"API key {created.view.key_id} for {created.view.integration_uid}: "
        "shown this once only, store it now.",
        err=True,
    )


@keys.command("list")
@click.argument("uid")
@json_option
@pass_state
def list_(state: CliState, uid: str, as_json: bool) -> None:
    """List the API keys of an integration (never the keys themselves)."""
    views = state.workspace.keys.list(uid)
    if as_json:
        emit_json([view.to_json() for view in views])
        return
    if not views:
        click.echo(f"No API keys for {uid}. Create one: intdash keys create {uid} --label LABEL")
        return
    print_table(
        ["KEY ID", "LABEL", "CREATED", "LAST USED", "STATE"],
        (
            [
                v.key_id,
                v.label,
                f"{v.created:%Y-%m-%d %H:%M}",
                f"{v.last_used:%Y-%m-%d %H:%M}" if v.last_used else "never",
                v.state.value,
            ]
            for v in views
        ),
    )


@keys.command("revoke")
@click.argument("key_id")
@json_option
@pass_state
def revoke(state: CliState, key_id: str, as_json: bool) -> None:
    """Revoke an API key at once."""
    view = state.workspace.keys.revoke(key_id)
    if as_json:
        emit_json(view.to_json())
    else:
        click.echo(f"Revoked API key {view.key_id} of {view.integration_uid}.")
