"""``intdash vault ...``: the key that encrypts every stored secret."""

from __future__ import annotations

import click

from intdash.cli.common import CliState, emit_json, fail, json_option, pass_state, print_table
from intdash.core.vault import generate_key


@click.group()
def vault() -> None:
    """Rotate the vault key, make a new one, or check that every secret can be read."""


@vault.command("rotate")
@json_option
@pass_state
def rotate(state: CliState, as_json: bool) -> None:
    """Re-encrypt every stored secret under a new key and retire the old one."""
    result = state.workspace.vault_ops.rotate()
    if as_json:
        emit_json(
            {
                "version": result.version,
                "reencrypted": result.reencrypted,
                "retired": result.retired,
            }
        )
        return
    click.echo(f"Re-encrypted {result.reencrypted} secrets under key version {result.version}.")
    if result.retired:
        click.echo("Retired key versions: " + ", ".join(map(str, result.retired)) + ".")


@vault.command("genkey")
def genkey() -> None:
    """Print a new random key, for INTDASH_SECRET_KEY."""
    click.echo(generate_key())


@vault.command("check")
@json_option
@pass_state
def check(state: CliState, as_json: bool) -> None:
    """List every stored secret the vault keys cannot read (never a value); changes nothing.

    Works when the keys are missing or wrong, when every other command refuses to start.
    """
    state.check_vault = False
    result = state.workspace.vault_ops.check()
    if as_json:
        emit_json(
            {
                "ok": result.ok,
                "secrets": result.secrets,
                "unreadable": [
                    {
                        "integration": item.integration_uid,
                        "secret": item.name,
                        "key_version": item.version,
                        "problem": item.reason,
                    }
                    for item in result.unreadable
                ],
                "keys_problem": result.keys_problem,
            }
        )
    else:
        if result.unreadable:
            print_table(
                ["INTEGRATION", "SECRET", "KEY", "PROBLEM"],
                [
                    [
                        item.integration_uid,
                        item.name,
                        "-" if item.version is None else f"v{item.version}",
                        item.reason,
                    ]
                    for item in result.unreadable
                ],
            )
        else:
            click.echo(f"all {result.secrets} secrets readable")
        if result.keys_problem:
            click.echo(f"keys: {result.keys_problem}")
    if result.unreadable:
        fail(f"{len(result.unreadable)} of {result.secrets} secrets cannot be read")
    if result.keys_problem:
        fail("the vault keys do not match the database: intdash will not start")
