"""``intdash sandbox``: the local emulators of Xero, MYOB and Zoho Books."""

from __future__ import annotations

import time

import click

from intdash.core.config import DEFAULT_REDIRECT_URI


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8480, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")  # fmt: skip
@click.option("--size", type=click.IntRange(0, 1_000_000), default=2500, show_default=True,
              help="Invoices in each emulated company.")  # fmt: skip
def sandbox(port: int, size: int) -> None:
    """Run the emulators and print the settings that point intdash at them."""
    from intdash.sandbox.server import Sandbox

    box = Sandbox(size=size, port=port).start()
    click.echo(
        f"# intdash sandbox on {box.url}: Xero, MYOB and Zoho Books with {size:,} invoices each"
    )
    for name, value in box.settings(DEFAULT_REDIRECT_URI).items():
        click.echo(f"export {name}={value}")
    click.echo("# Ctrl-C stops it.", err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        box.stop()
