"""The dashboard: a Textual app over the same services as the command line."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from intdash.core.errors import IntdashError
from intdash.core.heap import freeze_long_lived
from intdash.core.models import RunOutcome
from intdash.core.redact import redact
from intdash.core.workspace import Workspace
from intdash.tui.actions import CHANGING_ACTIONS
from intdash.tui.syncs import DashboardSync, DashboardSyncs

log = logging.getLogger(__name__)


class BackgroundServer(Protocol):
    """An HTTP server the dashboard runs beside itself (the CLI hands it the ingest API's)."""

    address: str

    async def start(self) -> bool:
        """Serve; False when the address is taken."""

    async def stop(self) -> None: ...


ServerFactory = Callable[[Workspace, Any], BackgroundServer]


class IntdashApp(App[None]):
    """intdash's dashboard."""

    TITLE = "intdash"
    CSS_PATH = Path(__file__).with_name("app.tcss")
    ENABLE_COMMAND_PALETTE = True
    COMMAND_PALETTE_BINDING = "ctrl+p"
    BINDINGS = [
        Binding("question_mark", "help", "Keys", id="help", tooltip="Every key of this screen"),
        Binding(
            "colon",
            "command_palette",
            "Commands",
            show=False,
            id="palette",
            tooltip="Every action, by name",
        ),
        Binding("q", "quit", "Quit", id="quit", tooltip="Leave intdash"),
        Binding("ctrl+q", "quit", "Quit", show=False, id="quit-ctrl", priority=True),
    ]

    def __init__(
        self,
        workspace: Workspace,
        *,
        read_only: bool = False,
        theme: str | None = None,
        schedule: bool = True,
        poll_seconds: float = 2.0,
        serve: bool | None = None,
        server: ServerFactory | None = None,
    ) -> None:
        """``schedule``: run the sync scheduler here; ``serve``: run the HTTP server that
        ``server`` makes (the ingest API) here, by default when scheduling. A read-only
        dashboard does neither."""
        super().__init__()
        self.workspace = workspace
        self.read_only = read_only
        self.schedule = schedule
        self.poll_seconds = poll_seconds
        self.scheduler: Any = None
        self.serve = (schedule if serve is None else serve) and server is not None
        self._make_server = server
        self.server: BackgroundServer | None = None
        self.animation_level = "none"  # over SSH, every frame costs
        self._wanted_theme = theme
        self.syncs = DashboardSyncs(workspace, ended=self._sync_ended)

    # -- life --------------------------------------------------------------------------------

    async def on_mount(self) -> None:
        if self._wanted_theme:
            if self._wanted_theme not in self.available_themes:
                names = ", ".join(sorted(self.available_themes))
                self.notify(f"No theme {self._wanted_theme!r}; themes: {names}", severity="warning")
            else:
                self.theme = self._wanted_theme
        for screen in self._first[1:]:
            await self.push_screen(screen)
        if self.schedule and not self.read_only:
            from intdash.sync.scheduler import Role, SyncScheduler

            # it claims due syncs while no `intdash serve` does
            self.scheduler = SyncScheduler(self.workspace, role=Role.DASHBOARD)
            await self.scheduler.start()
        if self.serve and not self.read_only:
            self.call_after_refresh(self.start_server)
        # once start-up has settled (its first frames drawn, its first reads made)
        self.set_timer(2.0, freeze_long_lived)

    def get_default_screen(self) -> Screen[Any]:
        """The first of :meth:`first_screens` is the app's own bottom screen (no blank screen
        under it to push over: one layout fewer before the first frame)."""
        self._first = self.first_screens()
        return self._first[0]

    def first_screens(self) -> list[Screen[Any]]:
        """The screens shown at start, bottom first."""
        from intdash.tui.screens.integrations import IntegrationsScreen

        return [IntegrationsScreen()]

    async def start_server(self) -> None:
        if self._make_server is None:
            return
        server = self._make_server(self.workspace, self.scheduler)
        if await server.start():
            self.server = server
        else:
            self.notify(
                f"The ingest API is not served here: {server.address} is taken "
                "(another intdash serve or dashboard?)",
                severity="warning",
                timeout=10,
            )

    async def on_unmount(self) -> None:
        await self.syncs.close()
        if self.server is not None:
            await self.server.stop()
        if self.scheduler is not None:
            await self.scheduler.stop(grace=10)

    # -- syncs started here -------------------------------------------------------------------

    def start_sync(self, uid: str) -> DashboardSync | None:
        """Sync ``uid`` now, as the app's own sync: it runs whatever screen is shown, the
        main table's row and the details screen show how far it has come, and it ends with a
        notice of its counts. If it runs already, say so (it goes on)."""
        if self.read_only:
            self.notify("read-only: this dashboard starts no sync", severity="warning")
            return None
        running = self.syncs.get(uid)
        if running is not None:
            self.notify(
                f"{uid} is already syncing ({running.progress()}); ctrl+x in its details stops it",
                timeout=4,
            )
            return running
        self.notify(f"Syncing {uid}…", timeout=2)
        return self.syncs.start(uid)

    def stop_sync(self, uid: str) -> bool:
        """Ask this dashboard's sync of ``uid`` to stop after its current page; False if it
        runs none."""
        return self.syncs.stop(uid)

    def _sync_ended(self, sync: DashboardSync) -> None:
        if sync.error is not None:
            self.report(sync.error, f"Syncing {sync.uid}")
            return
        result = sync.result
        assert result is not None
        counts = (
            f"fetched {result.fetched:,}, created {result.created:,}, updated {result.updated:,}"
        )
        if result.outcome is RunOutcome.OK:
            self.notify(counts, title=f"{sync.uid} synced")
        else:
            self.notify(
                f"{result.error} ({counts})",
                title=f"Sync of {sync.uid} {result.outcome.value}",
                severity="error",
            )

    # -- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.read_only and action in CHANGING_ACTIONS:
            return None  # shown, greyed: this dashboard changes nothing
        return True

    def action_help(self) -> None:
        from intdash.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def report(self, exc: BaseException, doing: str) -> None:
        """An error in words: what was being done and what went wrong; never a traceback."""
        if isinstance(exc, IntdashError):
            message = str(exc)
        else:
            log.exception("%s failed", doing)
            message = f"unexpected error ({type(exc).__name__}); details in the log"
        self.notify(redact(f"{doing}: {message}"), title="Could not", severity="error", timeout=8)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        # every action of the current screen, by its description
        for binding in screen.BINDINGS:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            action = binding.action
            if self.read_only and action in CHANGING_ACTIONS:
                continue
            if screen.check_action(action, ()) is False:
                continue
            yield SystemCommand(
                binding.description,
                binding.tooltip or binding.description,
                lambda action=action: self.call_later(screen.run_action, action),
            )
