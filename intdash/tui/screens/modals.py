"""Small modal screens: confirmations, the action menu, a key shown once, one-field prompts;
and the read-only field that shows a secret or a URL to copy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from intdash.core.catalog import TypeSpec
from intdash.core.services.integrations import IntegrationView
from intdash.tui.screens.base import BaseModal


def described(spec: TypeSpec, uid: str) -> str:
    """An integration in words, its type named once: "Xero integration xero-k3f9qa", but
    "Custom Integration cust-7hq2mx"."""
    kind = spec.label if spec.label.lower().endswith("integration") else f"{spec.label} integration"
    return f"{kind} {uid}"


class ReadOnlyInput(Input):
    """A value to read, select and copy, which no key changes: what is typed, pasted, cut or
    deleted is dropped. A letter typed at it is swallowed, as a field's would be, so that it
    never runs another key's action (``q`` would quit, and a secret is shown only once); but
    the letters in ``passes`` are left to the dialog's own priority bindings (``y`` copies),
    which come before any widget sees the key."""

    def __init__(self, value: str, *, passes: str = "", id: str | None = None) -> None:
        super().__init__(value, id=id, select_on_focus=True)
        self.passes = frozenset(passes)

    def check_consume_key(self, key: str, character: str | None) -> bool:
        return super().check_consume_key(key, character) and character not in self.passes

    async def _on_key(self, event: events.Key) -> None:
        if event.is_printable:
            event.prevent_default()  # Input's own handler would insert it
            event.stop()

    def _on_paste(self, event: events.Paste) -> None:
        event.prevent_default()
        event.stop()

    def replace(self, text: str, start: int, end: int) -> None:
        """Every edit (typing, deleting, cutting, pasting) comes here, and changes nothing."""

    def action_cut(self) -> None:
        """Nothing is cut from it: the selection is copied, as ``ctrl+c`` copies it."""
        self.action_copy()


class ConfirmScreen(BaseModal[bool]):
    """Asks before anything is destroyed; the focus starts on Cancel."""

    def __init__(self, title: str, body: str, confirm: str, *, danger: bool = True) -> None:
        super().__init__()
        self.title_text, self.body, self.confirm_label, self.danger = title, body, confirm, danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.body, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(
                    self.confirm_label, id="confirm", variant="error" if self.danger else "primary"
                )

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed, "#confirm")
    async def _confirm(self) -> None:
        self.dismiss(await self.confirmed())

    async def confirmed(self) -> bool:
        """What confirming does; the answer is what the screen returns."""
        return True

    def action_cancel(self) -> None:
        self.dismiss(False)


class RemoveScreen(ConfirmScreen):
    """Remove an integration: names it, says what happens, needs an explicit confirmation."""

    def __init__(self, view: IntegrationView) -> None:
        super().__init__(
            f"Remove {described(view.spec, view.uid)}?",
            f"[b]{view.name}[/b]\n\n"
            "All syncing stops and its credentials are wiped. Invoices already fiscalized stay "
            "in the history.",
            "Remove",
        )
        self.view = view

    async def confirmed(self) -> bool:
        removed = await self.call(self.ws.integrations.remove, self.view.uid, doing="Removing")
        if removed is not None:
            self.app.notify(f"Removed {removed.uid}; its invoices stay in the history.")
        return removed is not None


class ActionMenu(BaseModal[str]):
    """The actions of one integration, to choose from with the keyboard."""

    def __init__(self, uid: str, actions: list[tuple[str, str]]) -> None:
        super().__init__()
        self.uid, self.actions = uid, actions

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Actions for {self.uid}", classes="dialog-title")
            yield OptionList(*[Option(label, id=action) for action, label in self.actions])

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class KeyShownScreen(BaseModal[None]):
    """A secret shown this once, read-only (no key can change it), with ``y`` copying it to the
    operator's own clipboard (OSC 52) from anywhere in the dialog."""

    BINDINGS = [
        Binding("escape", "cancel", "Close", id="close"),
        # first, whatever has the focus: the dialog has no field to type into
        Binding(
            "y", "copy", "Copy", id="copy", tooltip="Copy it to your own clipboard", priority=True
        ),
    ]

    def __init__(self, title: str, secret: str) -> None:
        super().__init__()
        self.title_text, self.secret = title, secret

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(
                "[b]This is shown once.[/b] It will not be shown again: store it now.\n"
                "[b]y[/b] copies it to your clipboard (over SSH too, where the terminal "
                "allows it).",
                classes="dialog-body",
            )
            yield ReadOnlyInput(self.secret, passes="y", id="secret")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Copy (y)", id="copy")
                yield Button("Done", id="done", variant="primary")

    @on(Button.Pressed, "#copy")
    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.secret)
        self.app.notify("Copied to your clipboard (where the terminal allows it)")

    @on(Button.Pressed, "#done")
    def _done(self) -> None:
        self.dismiss(None)


class PromptScreen(BaseModal[str]):
    """One value asked for, checked before it is accepted."""

    def __init__(
        self,
        title: str,
        label: str,
        *,
        value: str = "",
        placeholder: str = "",
        check: Callable[[str], str | None] | None = None,
        confirm: str = "OK",
        cancel: str = "Cancel",
        note: str = "",
    ) -> None:
        super().__init__()
        self.title_text, self.label, self.value = title, label, value
        self.placeholder, self.check, self.confirm_label = placeholder, check, confirm
        self.cancel_label, self.note = cancel, note

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.note:
                yield Static(self.note, classes="dialog-body")
            yield Label(self.label)
            yield Input(self.value, placeholder=self.placeholder, id="value")
            yield Static("", id="problem", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.cancel_label, id="cancel")
                yield Button(self.confirm_label, id="ok", variant="primary")

    def _problem(self) -> str | None:
        value = self.query_one("#value", Input).value
        return self.check(value) if self.check else None

    @on(Input.Changed)
    def _changed(self) -> None:
        problem = self._problem()
        self.query_one("#problem", Static).update(problem or "")
        self.query_one("#ok", Button).disabled = problem is not None

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self, _event: Any = None) -> None:
        if self._problem() is None:
            self.dismiss(self.query_one("#value", Input).value.strip())

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
