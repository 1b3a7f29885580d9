"""What every dashboard screen shares: read-only greying, errors in words, work off the loop,
the keys on offer (for help, the palette and the footer), and the notice that the terminal is
too small."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from textual.actions import parse
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.dom import DOMNode
from textual.keys import format_key
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Static

from intdash.tui.actions import CHANGING_ACTIONS, bindings_of, button_action, keys_of
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
        if action == "back" and len(self.app.screen_stack) < 2:
            return False  # the bottom screen has nothing to go back to
        if self.intdash.read_only and action in CHANGING_ACTIONS:
            return None  # greyed in the footer
        return True

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """Textual's, the keys of every screen first (``?``, ``q``): the footer shows them
        in this order, and cuts what does not fit at its end."""
        active = super().active_bindings
        first = {key: b for key, b in active.items() if b.node is self.app}
        return {**first, **{key: b for key, b in active.items() if key not in first}}

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
        if self.intdash.read_only:
            self.grey_buttons()
            self.call_after_refresh(self.grey_buttons)  # those mounted meanwhile

    _offered: tuple[object, ...] = ()

    def grey_buttons(self) -> None:
        """In --read-only, disable every button that would change something."""
        for button in self.query(Button):
            action = button.action or button_action(button.id)
            if action is not None and parse(action)[1] in CHANGING_ACTIONS:
                button.disabled = True

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


# -- the keys on offer ------------------------------------------------------------------------


def key_label(key: str) -> str:
    """A key as help and the palette write it: ``ctrl+x``, ``?``, ``esc``, ``enter``."""
    *modifiers, base = key.split("+")
    return "+".join([*modifiers, "enter" if base == "enter" else format_key(base)])


@dataclass
class Offered:
    """One action on offer, with every key that runs it now."""

    binding: Binding
    node: DOMNode  # where it runs
    enabled: bool  # False: greyed (read-only)
    ours: bool = True  # declared by intdash, not one of Textual's own (tab, ctrl+c)
    keys: list[str] = field(default_factory=list)  # long names, as bound now

    @property
    def label(self) -> str:
        return ", ".join(key_label(key) for key in self.keys)


def offered(screen: Screen[Any], *, focused: bool = False) -> list[Offered]:
    """The keys of ``screen`` as they are now: its own and the app's, inherited ones too, with
    the keymap applied and each action once with all its keys; greyed ones kept, those that do
    not apply here left out. ``focused``: the focused widget's keys too (moving in a table).
    Built from the bindings themselves, so that a key a widget takes first (enter in a table)
    still shows the screen's action under it."""
    app = screen.app
    keymap: dict[str, str] = getattr(app, "keymap", {})
    found: dict[tuple[int, str, str], Offered] = {}
    taken: set[str] = set()

    def add(node: DOMNode, binding: Binding, keys: tuple[str, ...], ours: bool = True) -> None:
        if binding.system or not binding.description:
            return
        _, name, parameters = parse(binding.action)
        state = node.check_action(name, parameters)
        if state is False:
            return
        entry = found.setdefault(
            (id(node), binding.action, binding.description),
            Offered(binding, node, enabled=bool(state), ours=ours),
        )
        entry.keys.extend(key for key in keys if key not in entry.keys)

    if focused:
        for key, active in screen.active_bindings.items():
            if active.node is not screen and active.node is not app:
                add(active.node, active.binding, (key,), ours=False)
    for owner, binding in bindings_of(type(screen)):
        keys = keys_of(binding, keymap)
        taken.update(keys)
        add(screen, binding, keys, ours=owner.__module__.startswith("intdash."))
    for owner, binding in bindings_of(type(app)):
        if screen.is_modal and not binding.priority:
            continue  # a dialog keeps the app's keys but those that act first
        keys = tuple(k for k in keys_of(binding, keymap) if binding.priority or k not in taken)
        if keys:
            add(app, binding, keys, ours=owner.__module__.startswith("intdash."))
    return list(found.values())


class TooSmallScreen(ModalScreen[None]):
    """Said over the dashboard while the terminal is smaller than it needs; the dashboard
    stays as it was underneath, and is back when the terminal is large enough."""

    DEFAULT_CSS = """
    TooSmallScreen { align: center middle; background: $background; color: $foreground; }
    TooSmallScreen #too-small { width: auto; max-width: 100%; height: auto; text-align: center; }
    """
    BINDINGS = [Binding("q", "app.quit", "Quit", id="quit", tooltip="Leave intdash")]

    def __init__(self, need: tuple[int, int]) -> None:
        super().__init__()
        self.need = need

    def compose(self) -> ComposeResult:
        yield Static(id="too-small")

    def on_mount(self) -> None:
        self.show_size()

    def show_size(self, width: int | None = None, height: int | None = None) -> None:
        if not self.query("#too-small"):
            return
        if width is None or height is None:
            width, height = self.app.size
        need_width, need_height = self.need
        quit_keys = [
            key_label(k) for k, b in self.active_bindings.items() if b.binding.id == "quit"
        ]
        self.query_one("#too-small", Static).update(
            f"intdash needs a terminal of at least [b]{need_width}x{need_height}[/b];\n"
            f"this one is {width}x{height}. Make it larger"
            + (f", or press {quit_keys[0]} to quit." if quit_keys else ".")
        )

    def on_screen_resume(self) -> None:
        """Shown again (something above it closed): still needed?"""
        width, height = self.app.size
        if width >= self.need[0] and height >= self.need[1]:
            self.dismiss(None)
        else:
            self.show_size()
