"""The keys of the screen underneath as they are bound now (the keymap applied, inherited keys
such as esc included), and what each does."""

from __future__ import annotations

import textwrap
from typing import Any

from rich.markup import escape
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Label, Static

from intdash.tui.screens.base import BaseModal, Offered, offered


class HelpScreen(BaseModal[None]):
    BINDINGS = [
        Binding("escape", "cancel", "Close", id="close", tooltip="Close the keys"),
        Binding("question_mark", "cancel", "Close", show=False, id="close-help"),
    ]

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__()
        self.under = under
        entries = offered(under, focused=True)
        app = under.app
        self.groups = [
            (title, group)
            for title, group in (
                ("This screen", [e for e in entries if e.node is under and e.ours]),
                ("Where the cursor is", [e for e in entries if e.node not in (under, app)]),
                (
                    "Everywhere",
                    [e for e in entries if e.node is app or (e.node is under and not e.ours)],
                ),
            )
            if group
        ]
        self.key_width = max((len(e.label) for e in entries), default=8)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll():
                yield Static(self.text(None), id="help-keys")

    def on_mount(self) -> None:
        self.call_after_refresh(self.fill)

    def on_resize(self, _event: events.Resize) -> None:
        self.call_after_refresh(self.fill)

    def fill(self) -> None:
        """The text again, each description wrapped beside its keys at the width there is."""
        keys = self.query_one("#help-keys", Static)
        keys.update(self.text(keys.content_size.width or None))

    def text(self, width: int | None) -> str:
        lines: list[str] = []
        for title, group in self.groups:
            lines.append(f"[b]{title}[/b]")
            lines.extend(self.line(entry, width) for entry in group)
            lines.append("")
        return "\n".join(lines).rstrip()

    def line(self, entry: Offered, width: int | None) -> str:
        binding = entry.binding
        said = (
            f"{binding.description}: {binding.tooltip}" if binding.tooltip else binding.description
        )
        if not entry.enabled:
            said += "  (read-only)"
        indent = 2 + self.key_width + 2
        if width and width > indent + 20:
            pad = " " * indent
            said = textwrap.fill(said, width, initial_indent=pad, subsequent_indent=pad)[indent:]
        return f"  [b]{escape(entry.label):<{self.key_width}}[/b]  {escape(said)}"
