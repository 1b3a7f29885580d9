"""The keys of the screen underneath, and what each does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Label, Static

from intdash.tui.screens.base import BaseModal

NAMES = {
    "question_mark": "?",
    "slash": "/",
    "colon": ":",
    "greater_than_sign": ">",
    "less_than_sign": "<",
    "escape": "esc",
    "space": "space",
}


class HelpScreen(BaseModal[None]):
    BINDINGS = [
        Binding("escape", "cancel", "Close", id="close"),
        Binding("question_mark", "cancel", "Close", show=False, id="close-help"),
    ]

    def __init__(self, under: Screen[object]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        lines = []
        for binding in [*self.under.BINDINGS, *self.app.BINDINGS]:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            key = NAMES.get(binding.key, binding.key)
            state = self.under.check_action(binding.action, ())
            if state is False:
                continue
            note = "  (read-only)" if state is None else ""
            said = (
                f"{binding.description}: {binding.tooltip}"
                if binding.tooltip
                else binding.description
            )
            lines.append(f"[b]{key:>8}[/b]  {said}{note}")
        lines.append(f"[b]{'ctrl+p':>8}[/b]  Commands: every action by name")
        with Vertical(classes="dialog help"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll():
                yield Static("\n".join(lines))
