"""The dashboard: a Textual app over the same services as the command line."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from textual import events
from textual.actions import ActionParseResult, parse
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.dom import DOMNode
from textual.screen import Screen
from textual.theme import BUILTIN_THEMES

from intdash.core.errors import IntdashError
from intdash.core.heap import freeze_long_lived
from intdash.core.models import RunOutcome
from intdash.core.redact import redact
from intdash.core.workspace import Workspace
from intdash.tui.actions import CHANGING_ACTIONS, MOVING_ACTIONS
from intdash.tui.syncs import DashboardSync, DashboardSyncs

log = logging.getLogger(__name__)


class BackgroundServer(Protocol):
    """An HTTP server the dashboard runs beside itself (the CLI hands it the ingest API's)."""

    address: str

    async def start(self) -> bool:
        """Serve; False when the address is taken."""

    async def stop(self) -> None: ...


ServerFactory = Callable[[Workspace, Any], BackgroundServer]

MIN_SIZE = (80, 24)  # below it, the dashboard says how large the terminal must be
THEME_ALIASES = {"textual-ansi": "ansi-dark"}  # a name Textual had for its 16-colour theme


def resolve_theme(name: str) -> str:
    """The theme a ``--theme`` name stands for; ValueError says, in one line, which exist."""
    name = THEME_ALIASES.get(name, name)
    if name in BUILTIN_THEMES:
        return name
    close = difflib.get_close_matches(name, [*BUILTIN_THEMES, *THEME_ALIASES], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"no theme {name!r}{hint}; themes: {', '.join(sorted(BUILTIN_THEMES))}")


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
        # Textual binds ctrl+p only when nothing else opens the palette: bound here too, and
        # before any field (priority), on every screen
        Binding(
            "ctrl+p",
            "command_palette",
            "Commands",
            show=False,
            id="palette-ctrl",
            priority=True,
            tooltip="Every action, by name",
        ),
        Binding("q", "quit", "Quit", id="quit", tooltip="Leave intdash"),
        Binding(
            "ctrl+q",
            "quit",
            "Quit",
            show=False,
            id="quit-ctrl",
            priority=True,
            tooltip="Leave intdash",
        ),
    ]

    def __init__(
        self,
        workspace: Workspace,
        *,
        read_only: bool = False,
        theme: str | None = None,
        keymap: Mapping[str, str] | None = None,
        schedule: bool = True,
        poll_seconds: float = 2.0,
        serve: bool | None = None,
        server: ServerFactory | None = None,
    ) -> None:
        """``schedule``: run the sync scheduler here; ``serve``: run the HTTP server that
        ``server`` makes (the ingest API) here, by default when scheduling. A read-only
        dashboard does neither. ``theme``: a name :func:`resolve_theme` knows (ValueError
        otherwise); ``keymap``: binding ids to keys in long form, by default the settings'
        ``[keymap]`` (checked by :func:`intdash.tui.actions.keymap_problems`)."""
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
        if theme:
            self.theme = resolve_theme(theme)
        self.keymap = dict(workspace.settings.keymap if keymap is None else keymap)
        self.set_keymap(self.keymap)
        self.syncs = DashboardSyncs(workspace, ended=self._sync_ended)

    # -- life --------------------------------------------------------------------------------

    async def on_mount(self) -> None:
        for screen in self._first[1:]:
            await self.push_screen(screen)
        self.fit()
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

    def on_resize(self, event: events.Resize) -> None:
        self.fit(event.size.width, event.size.height)  # (self.size follows after this)

    def fit(self, width: int | None = None, height: int | None = None) -> None:
        """Below :data:`MIN_SIZE`, a screen that says so covers the dashboard (which stays as it
        is underneath); at that size or more, it goes."""
        from intdash.tui.screens.base import TooSmallScreen

        if width is None or height is None:
            width, height = self.size
        small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        top = self.screen
        if isinstance(top, TooSmallScreen):
            if small:
                top.show_size(width, height)
            else:
                top.dismiss(None)
        elif small:
            self.push_screen(TooSmallScreen(MIN_SIZE))

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

    async def run_action(
        self,
        action: str | ActionParseResult,
        default_namespace: DOMNode | None = None,
        namespaces: Mapping[str, DOMNode] | None = None,
    ) -> bool:
        """Textual's, but a greyed action (read-only) tried by any way, a key, the palette or
        the action menu, says why it does nothing."""
        where, name, parameters = parse(action) if isinstance(action, str) else action
        if self.read_only and name in CHANGING_ACTIONS:
            target: DOMNode | None = {"app": self, "screen": self.screen}.get(where)
            target = target or default_namespace or self
            if target.check_action(name, parameters) is None:
                self.notify(
                    f"{self._describe(name)} is off: this dashboard is read-only",
                    title="read-only",
                    severity="warning",
                    timeout=3,
                )
                return True
        return await super().run_action(action, default_namespace, namespaces)

    def _describe(self, name: str) -> str:
        """An action as its key's description names it, or by its name."""
        from intdash.tui.screens.base import offered

        for entry in offered(self.screen):
            if parse(entry.binding.action)[1] == name:
                return entry.binding.description
        return name.replace("_", " ").capitalize()

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
        """Every action of ``screen`` by its description, with its keys as they are bound now
        (greyed ones say read-only, and say why when chosen), then Textual's own (its Keys
        and Quit are ours here)."""
        from intdash.tui.screens.base import offered

        titles = set()
        for entry in offered(screen):
            binding = entry.binding
            name = parse(binding.action)[1]
            if name in MOVING_ACTIONS or name == "command_palette":
                continue  # keys, not commands
            if binding.description in titles:
                continue
            titles.add(binding.description)
            said = binding.tooltip or binding.description
            state = "" if entry.enabled else "read-only · "
            yield SystemCommand(
                binding.description,
                f"{state}{said} ({entry.label})",
                lambda node=entry.node, action=binding.action: self.call_later(
                    node.run_action, action
                ),
            )
        for command in super().get_system_commands(screen):
            if command.title not in titles:
                yield command
