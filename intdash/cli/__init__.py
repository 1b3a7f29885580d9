"""The ``intdash`` command: the dashboard when bare, and headless commands for scripts."""

from __future__ import annotations

import click

from intdash import __version__
from intdash.cli.common import (
    EXIT_USAGE,
    CliState,
    IntdashGroup,
    emit_json,
    fail,
    json_option,
    pass_state,
)
from intdash.cli.connect import connect, test_connection
from intdash.cli.deliveries import deliveries
from intdash.cli.demo import demo
from intdash.cli.fiscal import fiscal
from intdash.cli.integrations import integrations
from intdash.cli.invoices import invoices
from intdash.cli.keys import keys
from intdash.cli.plan import plan
from intdash.cli.sandbox import sandbox
from intdash.cli.serve import serve
from intdash.cli.sync import sync
from intdash.cli.vault import vault
from intdash.core.config import config_path


@click.group(
    cls=IntdashGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="intdash")
@click.option("-v", "--verbose", is_flag=True, help="Also log to stderr.")
@click.option("--read-only", is_flag=True, help="Dashboard: change nothing (actions greyed).")
@click.option("--no-mouse", is_flag=True, help="Dashboard: no mouse reporting (saves bytes).")
@click.option(
    "--theme",
    metavar="NAME",
    callback=lambda _ctx, _param, name: _theme(name),
    help="Dashboard: a theme, e.g. ansi-dark for 16-colour terminals, or nord.",
)
@click.pass_context
def cli(
    ctx: click.Context, verbose: bool, read_only: bool, no_mouse: bool, theme: str | None
) -> None:
    """Manage the integrations that feed invoices into fiscalization.

    Bare 'intdash' opens the dashboard; the commands below do the same work headless.
    """
    state = ctx.ensure_object(CliState)
    state.verbose = verbose
    ctx.call_on_close(state.close)
    if ctx.invoked_subcommand is None:
        from intdash.cli.dashboard import run_dashboard

        run_dashboard(state, read_only=read_only, no_mouse=no_mouse, theme=theme)


def _theme(name: str | None) -> str | None:
    """A --theme that exists (checked before the dashboard starts), or a one-line error."""
    if name is None:
        return None
    from intdash.tui.app import resolve_theme

    try:
        return resolve_theme(name)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


@cli.command()
@json_option
@pass_state
def locate(state: CliState, as_json: bool) -> None:
    """Print where the config, database, vault key and logs are."""
    settings = state.settings
    config = config_path()
    key = (
        "INTDASH_SECRET_KEY (environment)"
        if settings.secret_key is not None
        else str(settings.key_path)
    )
    from intdash.core.db import normalise_url

    database = normalise_url(settings.db_url).render_as_string(hide_password=True)
    found = {
        "home": str(settings.home),
        "config": str(config),
        "config_exists": config.exists(),
        "database": database,
        "key": key,
        "logs": str(settings.log_path),
    }
    if as_json:
        emit_json(found)
        return
    click.echo(f"home      {found['home']}")
    click.echo(f"config    {config}{'' if config.exists() else '  (not present: defaults apply)'}")
    click.echo(f"database  {database}")
    click.echo(f"key       {key}")
    click.echo(f"logs      {found['logs']}")


cli.add_command(integrations)
cli.add_command(keys)
cli.add_command(plan)
cli.add_command(vault)
cli.add_command(connect)
cli.add_command(test_connection)
cli.add_command(sandbox)
cli.add_command(serve)
cli.add_command(demo)
cli.add_command(sync)
cli.add_command(invoices)
cli.add_command(deliveries)
cli.add_command(fiscal)


def main() -> None:
    cli(prog_name="intdash")
