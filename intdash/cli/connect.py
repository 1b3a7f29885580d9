"""``intdash connect`` and ``intdash test``: OAuth over SSH, and checking a connection."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from urllib.parse import urlsplit

import click

from intdash.cli.common import CliState, emit_json, json_option, pass_state
from intdash.core.errors import ConfigError
from intdash.providers.callback import CallbackListener
from intdash.providers.connect import FLOW_LIFETIME, ConnectResult, ConnectService
from intdash.providers.errors import AuthorisationFailed


def _stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Future[str | None]:
    """The first non-empty line of standard input (None at its end), read in a daemon thread
    so that an unanswered prompt never keeps the process alive."""
    found: asyncio.Future[str | None] = loop.create_future()

    def deliver(value: str | None) -> None:
        if not found.done():
            found.set_result(value)

    def post(value: str | None) -> None:
        # once the loop has closed, the connection ended without a paste: nobody waits for it
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, value)

    def read() -> None:
        for line in sys.stdin:
            if line.strip():
                post(line.strip())
                return
        post(None)

    threading.Thread(target=read, name="paste", daemon=True).start()
    return found


async def _connect(service: ConnectService, uid: str, listen: bool) -> ConnectResult:
    flow = await service.begin(uid)
    click.echo(flow.url)
    port = urlsplit(flow.redirect_uri).port or 80
    click.echo(
        "Open the URL above in your browser. Over SSH, forward the callback port first "
        f"(ssh -L {port}:localhost:{port} this-host), or paste here the URL the browser was "
        "sent to:",
        err=True,
    )
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as stack:
        waiting: set[asyncio.Future[str | None]] = {_stdin_lines(loop)}
        if listen:
            try:
                listener = await stack.enter_async_context(CallbackListener(flow.redirect_uri))
                waiting.add(asyncio.ensure_future(listener.wait()))
            except ConfigError as exc:
                click.echo(f"intdash: {exc}", err=True)
        deadline = loop.time() + FLOW_LIFETIME
        while waiting:
            done, waiting = await asyncio.wait(
                waiting, timeout=max(0.0, deadline - loop.time()), return_when="FIRST_COMPLETED"
            )
            if not done:
                break
            for finished in done:
                redirected = finished.result()
                if redirected:
                    for other in waiting:
                        other.cancel()
                    click.echo("Completing the connection...", err=True)
                    return await service.complete(flow, redirected)
        raise AuthorisationFailed("no redirected URL arrived: nothing was connected")


@click.command()
@click.argument("uid")
@click.option("--code", help="Zoho Books only: a self-client grant code from Zoho's API console.")
@click.option(
    "--no-listen", is_flag=True, help="Take only a pasted URL; do not listen for the callback."
)
@json_option
@pass_state
def connect(state: CliState, uid: str, code: str | None, no_listen: bool, as_json: bool) -> None:
    """Connect (or reconnect) an integration to its accounting platform.

    Prints the authorisation URL alone on one line, then completes on whichever comes first:
    the browser's redirect to the loopback redirect URI, or the redirected URL pasted here.
    """
    service = ConnectService(state.workspace)
    if code is not None:
        result = asyncio.run(service.complete_with_code(uid, code))
    else:
        result = asyncio.run(_connect(service, uid, not no_listen))
    if as_json:
        emit_json({"uid": result.uid, "tenant_id": result.tenant.id, "tenant": result.tenant.name})
    else:
        click.echo(f"Connected {result.uid} to {result.tenant.name}.")


@click.command("test")
@click.argument("uid")
@json_option
@pass_state
def test_connection(state: CliState, uid: str, as_json: bool) -> None:
    """Test an integration's connection with the platform's cheapest call (a webhook: a
    signed test event)."""
    from intdash.core.catalog import Probe

    if state.workspace.integrations.get(uid).spec.probe is Probe.SIGNED_EVENT:
        from intdash.sync.deliveries import probe_webhook

        probe = asyncio.run(probe_webhook(state.workspace, uid))
        _tested(uid, probe.ok, probe.describe(), as_json, status=probe.status)
    else:
        result = asyncio.run(ConnectService(state.workspace).test(uid))
        _tested(uid, result.ok, result.message, as_json)


def _tested(uid: str, ok: bool, message: str, as_json: bool, **extra: object) -> None:
    """Say how a test went; exit 1 when it failed."""
    if as_json:
        emit_json({"uid": uid, "ok": ok, **extra, "message": message})
    elif ok:
        click.echo(f"OK: {message}")
    if not ok:
        if not as_json:
            click.echo(f"intdash: connection test of {uid} failed: {message}", err=True)
        sys.exit(1)
