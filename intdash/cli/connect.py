"""``intdash connect`` and ``intdash test``: OAuth over SSH (then the first sync, in the
foreground), and checking a connection."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from intdash.cli.common import EXIT_FAILED, CliState, emit_json, json_option, pass_state
from intdash.core.errors import ConfigError
from intdash.core.models import RunOutcome
from intdash.providers.callback import CallbackListener
from intdash.providers.connect import FLOW_LIFETIME, ConnectResult, ConnectService
from intdash.providers.errors import AuthorisationFailed

if TYPE_CHECKING:
    from intdash.core.services.invoices import BatchResult
    from intdash.core.workspace import Workspace
    from intdash.sync.engine import RunResult

NO_SYNC = "--no-sync: it is due now, for whichever process schedules syncs"


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


async def _connect(
    service: ConnectService, uid: str, listen: bool, first_sync_here: bool
) -> ConnectResult:
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
                    return await service.complete(flow, redirected, first_sync_here=first_sync_here)
        raise AuthorisationFailed("no redirected URL arrived: nothing was connected")


@click.command()
@click.argument("uid")
@click.option("--code", help="Zoho Books only: a self-client grant code from Zoho's API console.")
@click.option(
    "--no-listen", is_flag=True, help="Take only a pasted URL; do not listen for the callback."
)
@click.option(
    "--no-sync",
    is_flag=True,
    help="Do not run the first sync here: it is due at once for whichever process schedules "
    "syncs (intdash serve, or a dashboard).",
)
@json_option
@pass_state
def connect(
    state: CliState, uid: str, code: str | None, no_listen: bool, no_sync: bool, as_json: bool
) -> None:
    """Connect (or reconnect) an integration to its accounting platform, then run its first
    sync in the foreground and print its counts, as intdash sync does.

    Prints the authorisation URL alone on one line, then completes on whichever comes first:
    the browser's redirect to the loopback redirect URI, or the redirected URL pasted here.
    The integration is Active as soon as the consent is stored.

    Exits 0 when connected and the first sync completed, or was not run here (--no-sync;
    another process already syncing it; syncing disabled or the licence lapsed: each said);
    1 when connecting failed, or the first sync failed, stopped part way or was cancelled.
    """
    service = ConnectService(state.workspace)
    here = not no_sync
    if code is not None:
        result = asyncio.run(service.complete_with_code(uid, code, first_sync_here=here))
    else:
        result = asyncio.run(_connect(service, uid, not no_listen, here))
    if not as_json:
        click.echo(f"Connected {result.uid} to {result.tenant.name}.")
    run, skipped = (None, NO_SYNC) if no_sync else _first_sync(state.workspace, result.uid)
    if as_json:
        emit_json(
            {
                "uid": result.uid,
                "tenant_id": result.tenant.id,
                "tenant": result.tenant.name,
                "sync": run.to_json() if run else None,
                "sync_skipped": skipped,
            }
        )
    elif run is not None:
        click.echo(
            f"{run.outcome.value}: fetched {run.fetched:,}, created {run.created:,}, "
            f"updated {run.updated:,}, held {run.held:,}"
        )
    elif no_sync:
        click.echo(
            "Its first sync is due now, for whichever process schedules syncs "
            "(intdash serve, or a dashboard)."
        )
    else:
        click.echo(f"Not synced here: {skipped}.")
    if run is not None and run.outcome is not RunOutcome.OK:
        if not as_json:
            click.echo(f"intdash: sync of {uid} {run.outcome.value}: {run.error}", err=True)
        sys.exit(EXIT_FAILED)


def _first_sync(workspace: Workspace, uid: str) -> tuple[RunResult | None, str | None]:
    """The first sync after a consent, in the foreground; or, when it may not run here now
    (another process already runs it, or syncing is refused), why not."""
    from intdash.sync.engine import AlreadyRunning, SyncEngine, SyncRefused, Trigger

    click.echo(f"Syncing {uid}...", err=True)
    progress = _progress_line()
    try:
        run = asyncio.run(SyncEngine(workspace).run(uid, Trigger.MANUAL, progress=progress))
    except AlreadyRunning as exc:  # that run goes on, as if this one had started first
        return None, f"{exc}; that run goes on"
    except SyncRefused as exc:
        return None, str(exc)
    finally:
        if progress is not None:
            click.echo(err=True)
    return run, None


def _progress_line() -> Callable[[BatchResult], None] | None:
    """On a terminal, one line of standard error that counts the pages as they are stored."""
    if not sys.stderr.isatty():
        return None

    def show(totals: BatchResult) -> None:
        click.echo(
            f"\r  fetched {totals.fetched:,}, created {totals.created:,}, "
            f"updated {totals.updated:,}, held {totals.held:,}",
            err=True,
            nl=False,
        )

    return show


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
