"""``intdash sandbox``: the local emulators of Xero, MYOB and Zoho Books, and TaxCore's V-SDC."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import click

from intdash.core.config import DEFAULT_REDIRECT_URI, DEFAULT_SERVER_PORT


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8480, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")  # fmt: skip
@click.option("--size", type=click.IntRange(0, 1_000_000), default=2500, show_default=True,
              help="Invoices in each emulated company.")  # fmt: skip
@click.option("--credit-notes/--no-credit-notes", default=True, show_default=True,
              help="Credit notes among each company's invoices (--no-credit-notes: invoices "
                   "only, as a tool that reads invoices alone sees them).")  # fmt: skip
@click.option("--xero-webhook", metavar="URL",
              help="Post signed Xero events of invoice changes to URL, an intdash serve's "
                   "/v1/webhooks/xero (the webhook key to set is printed).")  # fmt: skip
@click.option("--vsdc-port", type=click.IntRange(0, 65535), default=None,
              help="Port of the V-SDC emulator (HTTPS) [default: --port + 1, or any free one "
                   "with --port 0].")  # fmt: skip
@click.option("--vsdc-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the V-SDC emulator's CA, taxpayer certificate and state (its counters "
                   "and what it signed) in DIR between runs (default: a temporary folder and "
                   "memory, gone on exit).")  # fmt: skip
def sandbox(
    port: int,
    size: int,
    credit_notes: bool,
    xero_webhook: str | None,
    vsdc_port: int | None,
    vsdc_dir: Path | None,
) -> None:
    """Run the emulators and print the settings that point intdash at them."""
    from intdash.sandbox.myob import MyobEmulator
    from intdash.sandbox.server import Sandbox
    from intdash.sandbox.xero import XeroEmulator
    from intdash.sandbox.zoho import ZohoEmulator

    if xero_webhook is not None and not xero_webhook.startswith(("http://", "https://")):
        raise click.BadParameter("give an http:// or https:// URL", param_hint="--xero-webhook")
    if vsdc_port is None:
        vsdc_port = port + 1 if 0 < port < 65535 else 0
    try:
        box = Sandbox(
            size=size,
            port=port,
            # credit notes among the invoices (against some of them: none without invoices)
            xero=XeroEmulator(size=size, credit_notes=credit_notes and size > 0),
            myob=MyobEmulator(size=size, credit_every=50 if credit_notes else 0),
            zoho=ZohoEmulator(size=size, credit_notes=6 if credit_notes and size else 0),
            vsdc=True,
            vsdc_port=vsdc_port,
            vsdc_directory=vsdc_dir,
        ).start()
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(f"the sandbox could not start: {exc}") from exc
    click.echo(
        f"# intdash sandbox on {box.url}: Xero, MYOB and Zoho Books with {size:,} invoices each"
        + (" and credit notes" if credit_notes else "")
    )
    for name, value in box.settings(DEFAULT_REDIRECT_URI).items():
        click.echo(f"export {name}={value}")
    if xero_webhook:
        key = box.xero.webhook.configure(xero_webhook)
        click.echo(f"export INTDASH_XERO__WEBHOOK_KEY={key}")
        click.echo(f"# Xero's events of invoice changes go to {xero_webhook}, signed with that")
        click.echo("# key; with that intdash serve running, check it as Xero does:")
        click.echo(f"#   curl -X POST {box.url}/_sandbox/xero/webhook/intent")
    else:
        serve = f"http://127.0.0.1:{DEFAULT_SERVER_PORT}/v1/webhooks/xero"
        click.echo("# Xero webhooks: --xero-webhook URL posts signed events of invoice changes")
        click.echo(f"# to an intdash serve (such as {serve}); or at any time")
        click.echo(f'#   curl -X POST {box.url}/_sandbox/xero/webhook -d \'{{"url": "{serve}"}}\'')
        click.echo("# and run that serve with INTDASH_XERO__WEBHOOK_KEY set to the key answered.")
    if box.vsdc is not None:
        vsdc = box.vsdc
        click.echo(
            f"# TaxCore V-SDC on {vsdc.url} (mutual TLS): taxpayer {vsdc.taxpayer.name}, "
            f"TIN {vsdc.taxpayer.tin}"
        )
        click.echo(f"# V-SDC verification pages (no client certificate): {vsdc.verify_url}")
        if vsdc.verify_moved_from is not None:
            click.echo(
                f"# (port {vsdc.verify_moved_from}, where the last run's verification pages were, "
                "is taken: the verification URLs it signed do not answer)"
            )
        click.echo(f"# V-SDC certificate (.pfx): {vsdc.pfx_path}")
        click.echo(f"# V-SDC certificate password: {vsdc.password}")
        click.echo(f"# V-SDC PAC: {vsdc.pac}")
        click.echo("# with INTDASH_FISCAL__REGISTER=vsdc, give intdash that .pfx, its password and")
        click.echo(f"# the PAC: intdash fiscal configure --pfx {vsdc.pfx_path} --pac -")
    click.echo("# Ctrl-C stops it.", err=True)
    # a plain kill stops it as Ctrl-C does (the V-SDC's temporary certificates are removed)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        box.stop()
