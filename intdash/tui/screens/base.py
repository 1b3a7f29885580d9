"""What every dashboard screen shares: read-only greying, errors in words, work off the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from textual.binding import Binding
from textual.screen import ModalScreen, Screen

from intdash.tui.actions import CHANGING_ACTIONS
from intdash.tui.format import when

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace
    from intdash.tui.app import IntdashApp

T = TypeVar("T")


class Helpers:
    """Mixed into screens: the app, the workspace, and running service calls in a thread."""

    @property
    def intdash(self) -> IntdashApp:
        return self.app  # type: ignore[attr-defined,no-any-return]

    @property
    def ws(self) -> Workspace:
        return self.intdash.workspace

    def when(self, moment: datetime | None, *, short: bool = False) -> str:
        """A time as the dashboard writes it, against the workspace's clock."""
        return when(moment, self.ws.clock(), short=short)

    async def call(self, fn: Callable[..., T], *args: Any, doing: str = "") -> T | None:
        """Run a blocking service call off the UI loop; errors become a toast, None returned."""
        try:
            return await asyncio.to_thread(fn, *args)
        except Exception as exc:
            self.intdash.report(exc, doing or "that")
            return None


class BaseScreen(Helpers, Screen[Any]):
    BINDINGS = [
        Binding("escape", "back", "Back", id="back", tooltip="Back to the previous screen"),
    ]

    def applies(self, action: str) -> bool:
        """Whether an action is offered here (for the selected row, on the main screen)."""
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.applies(action):
            return False  # not offered at all
        if self.intdash.read_only and action in CHANGING_ACTIONS:
            return None  # greyed in the footer
        return True

    def offer_actions(self) -> None:
        """Refresh the footer's keys, but only when what it offers has changed: a refresh
        rebuilds the footer (a widget per key), too costly to repeat on every poll."""
        state = (
            id(self.focused),
            tuple((key, b.binding.action, b.enabled) for key, b in self.active_bindings.items()),
        )
        if state != self._offered:
            self._offered = state
            self.refresh_bindings()

    _offered: tuple[object, ...] = ()

    @property
    def live(self) -> bool:
        """Whether what a worker has just read may still be shown: the screen was not left
        meanwhile, and the app is not closing."""
        return self.is_attached and self.app.is_running

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def reload(self, _result: object = None) -> None:
        """Read again (the callback of a modal that may have changed something)."""
        load = getattr(self, "load", None)
        if load is not None:
            load()


class BaseModal(Helpers, ModalScreen[T]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel", tooltip="Close without change")]

    def action_cancel(self) -> None:
        self.dismiss(None)
