"""Connect / Reconnect: OAuth over SSH, on the same service as ``intdash connect``. A consent
that works makes the integration Active at once and starts its first sync, as the app's sync
(the main table's row and the details screen show its progress).

The URL to open is shown read-only (``y`` copies it wherever the focus is but in the paste box);
the paste box is the one field that takes what is typed."""

from __future__ import annotations

import contextlib
from urllib.parse import urlsplit

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from intdash.core.errors import IntdashError
from intdash.providers.callback import CallbackListener
from intdash.providers.connect import AuthorisationFlow, ConnectService
from intdash.tui.screens.base import BaseModal
from intdash.tui.screens.modals import ReadOnlyInput


class ConnectScreen(BaseModal[bool]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="cancel"),
        # first, wherever the focus is but in the paste box (see check_action)
        Binding(
            "y",
            "copy",
            "Copy URL",
            id="copy-url",
            tooltip="Copy the URL to your clipboard",
            priority=True,
        ),
    ]

    def __init__(self, uid: str) -> None:
        super().__init__()
        self.uid = uid
        self.flow: AuthorisationFlow | None = None
        self.service: ConnectService | None = None
        self.done = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog connect"):
            yield Label(f"Connect {self.uid}", classes="dialog-title")
            yield Static("Preparing the authorisation URL…", id="steps", classes="dialog-body")
            yield ReadOnlyInput("", passes="y", id="url")
            yield Label("Or paste the URL your browser was sent to:")
            yield Input("", placeholder="the redirect URI, with ?code=…&state=…", id="paste")
            yield Static("", id="progress")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Copy URL (y)", id="copy")
                yield Button("Cancel", id="close")

    def on_mount(self) -> None:
        self.query_one("#url", Input).display = False
        self.begin()

    @work(exclusive=True, group="begin")
    async def begin(self) -> None:
        if self.intdash.read_only:  # connecting stores tokens: nothing of it here
            self.notify("Connect is off: this dashboard is read-only", severity="warning")
            self.dismiss(False)
            return
        self.service = ConnectService(self.ws)
        try:
            self.flow = await self.service.begin(self.uid)
        except Exception as exc:
            self.intdash.report(exc, "Starting the connection")
            self.dismiss(False)
            return
        port = urlsplit(self.flow.redirect_uri).port or 80
        url = self.query_one("#url", Input)
        url.value = self.flow.url
        url.display = True
        url.focus()  # y copies it at once
        self.query_one("#paste", Input).placeholder = f"{self.flow.redirect_uri}?code=…&state=…"
        self.query_one("#steps", Static).update(
            "1. Open this URL in the browser on your own machine and give consent "
            "([b]y[/b] copies it).\n"
            f"2. Over SSH, forward the callback port first: [b]ssh -L {port}:localhost:{port} "
            "this-host[/b] — or paste below the URL the browser was sent to."
        )
        self.progress("Waiting for the browser…")
        self.listen()

    @work(exclusive=True, group="listen")
    async def listen(self) -> None:
        assert self.flow is not None
        try:
            async with CallbackListener(self.flow.redirect_uri) as listener:
                redirected = await listener.wait()
        except IntdashError as exc:  # the port is taken: pasting still works
            self.progress(f"Not listening ({exc}); paste the URL instead.")
            return
        await self.complete(redirected)

    def progress(self, text: str) -> None:
        self.query_one("#progress", Static).update(text)

    async def complete(self, redirected: str) -> None:
        if self.done or self.flow is None or self.service is None:
            return
        self.progress("Connecting…")
        try:
            # the first sync starts here at once: no worker takes it meanwhile
            result = await self.service.complete(self.flow, redirected, first_sync_here=True)
        except Exception as exc:
            self.progress(f"[b red]Not connected:[/b red] {exc}")
            self.intdash.report(exc, "Connecting")
            return
        self.done = True
        self.progress(f"Connected to {result.tenant.name}.")
        self.app.notify(f"{self.uid} connected to {result.tenant.name}")
        self.intdash.start_sync(self.uid)
        self.dismiss(True)

    @on(Input.Submitted, "#paste")
    async def _pasted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.workers.cancel_group(self, "listen")
            await self.complete(event.value.strip())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "copy":  # in the paste box, y is a letter of what is pasted
            return self.focused is None or self.focused.id != "paste"
        return True

    @on(Button.Pressed, "#copy")
    def action_copy(self) -> None:
        if self.flow is not None:
            self.app.copy_to_clipboard(self.flow.url)
            self.app.notify("URL copied to your clipboard (where the terminal allows it)")

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        with contextlib.suppress(Exception):
            self.workers.cancel_group(self, "listen")
        self.dismiss(False)
