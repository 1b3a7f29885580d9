"""The API keys of a Custom Integration: create (shown once), list, revoke; and the first key
offered as soon as a Custom Integration is created."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static

from intdash.core.services.apikeys import ApiKeyView, KeyState, parse_label
from intdash.tui.screens.base import BaseScreen, Helpers
from intdash.tui.screens.modals import KeyShownScreen, PromptScreen
from intdash.tui.widgets import TitleBar


def _check_label(text: str) -> str | None:
    """The service's rule for a key's label, as the prompt shows it."""
    try:
        parse_label(text)
    except ValueError as exc:
        return f"label: {exc}"
    return None


def label_prompt(
    title: str = "Create an API key", *, note: str = "", cancel: str = "Cancel"
) -> PromptScreen:
    """Asks for a new key's label, checked as the service checks it."""
    return PromptScreen(
        title,
        "Label (what the key is for):",
        placeholder="e.g. ERP production",
        check=_check_label,
        confirm="Create",
        cancel=cancel,
        note=note,
    )


def first_key_prompt(uid: str) -> PromptScreen:
    """Offered as soon as a Custom Integration is created: it does nothing until it has a key."""
    return label_prompt(
        f"Create the first API key of {uid}?",
        note="A Custom Integration pushes its invoices with an API key: until it has one it is "
        "Inactive (no API key). Its keys are under [b]a[/b] on the main screen.",
        cancel="Not now",
    )


async def create_key(screen: Helpers, uid: str, label: str) -> bool:
    """Create a key and show it, this once (on ``screen``, which runs this in a worker)."""
    created = await screen.call(screen.ws.keys.create, uid, label, doing="Creating the key")
    if created is None:
        return False
    title = f"API key {created.view.key_id} ({created.view.label})"
    await screen.intdash.push_screen_wait(KeyShownScreen(title, created.key))
    return True


class ApiKeysScreen(BaseScreen):
    BINDINGS = [
        Binding("escape", "back", "Back", id="back"),
        Binding("n", "create_key", "Create", id="create-key", tooltip="Create an API key"),
        Binding("x", "revoke_key", "Revoke", id="revoke-key", tooltip="Revoke the selected key"),
        Binding("j", "move(1)", "Down", show=False, id="down"),
        Binding("k", "move(-1)", "Up", show=False, id="up"),
    ]

    def __init__(self, uid: str) -> None:
        super().__init__()
        self.uid = uid
        self.keys: dict[str, ApiKeyView] = {}

    def compose(self) -> ComposeResult:
        yield TitleBar(
            f"[b]API keys of {self.uid}[/b]  —  each pushes invoices to intdash's API",
            id="keys-title",
        )
        table: DataTable[Any] = DataTable(id="keys", cursor_type="row", zebra_stripes=True)
        for key, label in (("label", "Label"), ("key_id", "Key ID"), ("created", "Created"),
                           ("used", "Last used"), ("state", "State")):  # fmt: skip
            table.add_column(label, key=key)
        yield table
        yield Static("No keys yet: press n to create one.", id="no-keys")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, group="keys")
    async def load(self) -> None:
        keys = await self.call(self.ws.keys.list, self.uid, doing="Reading the keys")
        if keys is None:
            return
        self.keys = {k.key_id: k for k in keys}
        table = self.query_one("#keys", DataTable)
        table.clear()
        for k in keys:
            state = "● active" if k.state is KeyState.ACTIVE else "○ revoked"
            table.add_row(
                k.label, k.key_id, self.when(k.created), self.when(k.last_used), state, key=k.key_id
            )
        self.query_one("#no-keys").display = not keys
        self.offer_actions()

    def selected(self) -> ApiKeyView | None:
        table = self.query_one("#keys", DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return self.keys.get(str(row_key.value))

    def applies(self, action: str) -> bool:
        if action == "revoke_key":
            key = self.selected()
            return key is not None and key.state is KeyState.ACTIVE
        return True

    @on(DataTable.RowHighlighted)
    def _moved(self) -> None:
        self.offer_actions()

    def action_move(self, step: int) -> None:
        table = self.query_one("#keys", DataTable)
        (table.action_cursor_down if step > 0 else table.action_cursor_up)()

    def action_create_key(self) -> None:
        self.app.push_screen(label_prompt(), self._created_label)

    def _created_label(self, label: str | None) -> None:
        if label:
            self._create(label)

    @work(group="create")
    async def _create(self, label: str) -> None:
        if await create_key(self, self.uid, label):
            self.load()

    def action_revoke_key(self) -> None:
        key = self.selected()
        if key is None:
            return
        from intdash.tui.screens.modals import ConfirmScreen

        def done(confirmed: bool | None) -> None:
            if confirmed:
                self._revoke(key.key_id)

        self.app.push_screen(
            ConfirmScreen(
                f"Revoke API key {key.key_id}?",
                f"[b]{key.label}[/b]\n\nRequests with this key are refused at once.",
                "Revoke",
            ),
            done,
        )

    @work(group="revoke")
    async def _revoke(self, key_id: str) -> None:
        if await self.call(self.ws.keys.revoke, key_id, doing="Revoking") is not None:
            self.notify(f"Revoked {key_id}")
            self.load()
