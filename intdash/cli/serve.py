"""``intdash serve``: the scheduler and the HTTP server, headless, until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import click
import uvicorn

from intdash.cli.common import CliState, pass_state
from intdash.core.heap import freeze_long_lived
from intdash.core.workspace import Workspace

log = logging.getLogger("intdash.serve")


class _Server(uvicorn.Server):
    """uvicorn, leaving the signals to intdash (uvicorn would re-raise them after stopping)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _run_server(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit:  # uvicorn exits when it cannot start (a taken port): reported by the caller
        log.error("the HTTP server could not start")


async def serve_forever(ws: Workspace, *, schedule: bool = True) -> None:
    from intdash.server.app import create_app
    from intdash.sync.scheduler import SyncScheduler

    settings = ws.settings.server
    scheduler = SyncScheduler(ws) if schedule else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = _Server(
        uvicorn.Config(
            create_app(ws, scheduler),
            host=settings.host,
            port=settings.port,
            log_config=None,
            lifespan="off",
            access_log=False,
        )
    )
    if scheduler is not None:
        await scheduler.start()
    serving = asyncio.create_task(_run_server(server))
    log.info("serving on http://%s:%d", settings.host, settings.port)
    freeze_long_lived()
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping: running syncs finish their page")
    server.should_exit = True
    if scheduler is not None:
        await scheduler.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    stopped.cancel()
    if not server.started:
        raise click.ClickException(
            f"could not serve on {settings.host}:{settings.port} (is the port taken?)"
        )
    log.info("stopped")


@click.command()
@click.option("--no-scheduler", is_flag=True, help="Serve HTTP only; another process schedules.")
@pass_state
def serve(state: CliState, no_scheduler: bool) -> None:
    """Run headless: the sync scheduler and intdash's HTTP server, until SIGTERM."""
    state.structured_stderr = True
    asyncio.run(serve_forever(state.workspace, schedule=not no_scheduler))
