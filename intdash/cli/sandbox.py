"""``intdash sandbox``: the local emulators of Xero, MYOB and Zoho Books."""

from __future__ import annotations

import time

import click

from intdash.core.config import DEFAULT_REDIRECT_URI, DEFAULT_SERVER_PORT


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8480, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")  # fmt: skip
@click.option("--size", type=click.IntRange(0, 1_000_000), default=2500, show_default=True,
              help="Invoices in each emulated company.")  # fmt: skip
@click.option("--xero-webhook", metavar="URL",
              help="Post signed Xero events of invoice changes to URL, an intdash serve's "
                   "/v1/webhooks/xero (the webhook key to set is printed).")  # fmt: skip
def sandbox(port: int, size: int, xero_webhook: str | None) -> None:
    """Run the emulators and print the settings that point intdash at them."""
    from intdash.sandbox.server import Sandbox

    if xero_webhook is not None and not xero_webhook.startswith(("http://", "https://")):
        raise click.BadParameter("give an http:// or https:// URL", param_hint="--xero-webhook")
    box = Sandbox(size=size, port=port).start()
    click.echo(
        f"# intdash sandbox on {box.url}: Xero, MYOB and Zoho Books with {size:,} invoices each"
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
    click.echo("# Ctrl-C stops it.", err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        box.stop()
