"""``intdash vault ...``: the key that encrypts every stored secret."""

from __future__ import annotations

import click

from intdash.cli.common import CliState, emit_json, json_option, pass_state
from intdash.core.vault import generate_key


@click.group()
def vault() -> None:
    """Rotate the vault key or make a new one."""


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
