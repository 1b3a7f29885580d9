"""``intdash serve``: the scheduler and the HTTP server, headless, until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

import click

from intdash.cli.common import CliState, pass_state
from intdash.core.heap import freeze_long_lived
from intdash.core.workspace import Workspace

log = logging.getLogger("intdash.serve")


async def serve_forever(ws: Workspace, *, schedule: bool = True) -> None:
    from intdash.server.runner import HttpServer
    from intdash.sync.scheduler import SyncScheduler

    settings = ws.settings.server
    scheduler = SyncScheduler(ws) if schedule else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = HttpServer(ws, scheduler)
    if scheduler is not None:
        await scheduler.start()
    started = await server.start()
    freeze_long_lived()
    if started:
        serving = asyncio.create_task(server.wait())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        log.info("stopping: running syncs finish their page")
    await server.stop()
    if scheduler is not None:
        await scheduler.stop()
    if not started:
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
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve_forever(state.workspace, schedule=not no_scheduler))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed (not on Windows): the server's sockets, timers and
    hand-offs from threads in C; else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
