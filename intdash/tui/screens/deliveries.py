"""A Custom/Webhook integration's deliveries: what was sent, what answered, what is retried."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

from intdash.core.services.deliveries import DeliveryRow, LiveSecret
from intdash.tui.screens.base import BaseScreen
from intdash.tui.widgets import Column, RowTable, TitleBar

COLUMNS = (
    ("created", "Fiscalized", 10),
    ("invoice", "Invoice", 16),
    ("source", "From", 11),
    ("state", "State", 10),
    ("attempts", "Tries", 5),
    ("status", "HTTP", 4),
    ("next", "Next attempt", 12),
    ("error", "Last error", 20, True),  # what the others leave
)
STYLES = {"delivered": "green", "pending": "yellow", "failed": "bold red"}


class DeliveriesScreen(BaseScreen):
    DEFAULT_CSS = """
    DeliveriesScreen #deliveries-secrets { height: auto; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back", id="back"),
        Binding("r", "resend", "Resend", id="resend", tooltip="Deliver the selected one again now"),
        Binding("t", "test_connection", "Test", id="test", tooltip="Send a signed test event"),
        Binding(
            "R",
            "rotate_secret",
            "Rotate secret",
            id="rotate-secret",
            tooltip="A new signing secret; the one it replaces signs too for 24 hours",
        ),
        Binding("j", "move(1)", "Down", show=False, id="down"),
        Binding("k", "move(-1)", "Up", show=False, id="up"),
    ]

    def __init__(self, uid: str) -> None:
        super().__init__()
        self.uid = uid
        self.rows: dict[str, DeliveryRow] = {}

    def compose(self) -> ComposeResult:
        yield TitleBar(f"[b]Deliveries of {self.uid}[/b], newest first", id="deliveries-title")
        yield Static("", id="deliveries-secrets", markup=False)
        table = RowTable(self._cells, id="deliveries")
        table.set_columns([Column(*column) for column in COLUMNS], gap=1)
        yield table
        yield Static("", id="deliveries-empty")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#deliveries", RowTable).focus()
        self.load()
        self.set_interval(self.intdash.poll_seconds, self.poll)

    def poll(self) -> None:
        if self.is_current:
            self.load()

    @work(exclusive=True, group="deliveries")
    async def load(self) -> None:
        service = self.ws.deliveries

        def read() -> tuple[list[DeliveryRow], list[LiveSecret]]:
            return service.list(self.uid), service.live_secrets(self.uid)

        got = await self.call(read, doing="Reading deliveries")
        if got is None:
            return
        rows, live = got
        self.query_one("#deliveries-secrets", Static).update(signing_text(live))
        self.rows = {str(row.id): row for row in rows}
        self.query_one("#deliveries", RowTable).set_rows(list(self.rows))
        self.query_one("#deliveries-empty", Static).update(
            ""
            if rows
            else "Nothing delivered yet: each invoice fiscalized from now on is POSTed here."
        )

    def _cells(self, key: str) -> tuple[Any, ...]:
        row = self.rows[key]
        return (
            self.when(row.created_at),
            row.invoice_number or row.invoice_external_id,
            row.source_uid,
            Text(row.state, style=STYLES.get(row.state, "")),
            str(row.attempts),
            str(row.last_status) if row.last_status is not None else "—",
            self.when(row.next_attempt_at) if row.next_attempt_at else "—",
            row.last_error or "",
        )

    def selected(self) -> DeliveryRow | None:
        key = self.query_one("#deliveries", RowTable).cursor_key
        return self.rows.get(key) if key else None

    def action_move(self, step: int) -> None:
        self.query_one("#deliveries", RowTable).action_cursor(step)

    def action_back(self) -> None:
        self.app.pop_screen()

    @work(group="resend")
    async def action_resend(self) -> None:
        row = self.selected()
        if row is None:
            return

        def resend() -> bool:
            self.ws.deliveries.resend(self.uid, row.id)
            return True

        if await self.call(resend, doing="Resending"):
            self.notify(f"{row.invoice_number or row.invoice_external_id} goes out again now")
            self.load()

    @on(RowTable.Selected)
    def _chosen(self) -> None:
        row = self.selected()
        if row is not None and row.last_error:
            self.notify(row.last_error, title=f"Delivery {row.event_id}", timeout=10)

    @work(group="rotate")
    async def action_rotate_secret(self) -> None:
        from intdash.tui.screens.modals import ConfirmScreen, KeyShownScreen

        confirmed = await self.app.push_screen_wait(
            ConfirmScreen(
                f"Rotate the signing secret of {self.uid}?",
                "A new secret signs every delivery from now on. For 24 hours the one it "
                "replaces signs beside it, so the receiver can switch to the new one without "
                "missing a delivery; after that only the new one does. Older secrets still "
                "in their overlap sign on until their own ends.",
                "Rotate",
                danger=False,
            )
        )
        if not confirmed:
            return
        secret = await self.call(self.ws.deliveries.rotate_secret, self.uid, doing="Rotating")
        if secret is not None:
            await self.app.push_screen_wait(
                KeyShownScreen(f"{self.uid}: its new signing secret", secret)
            )
            self.load()

    @work(group="test")
    async def action_test_connection(self) -> None:
        await test_and_tell(self, self.uid)


def signing_text(live: list[LiveSecret]) -> str:
    """The secrets that sign now, masked, one a line: the current one, then each old one with
    the end of its overlap."""
    if not live:
        return "No signing secret"
    return "\n".join(
        f"{'Signed by' if i == 0 else '         '} {s.describe()}" for i, s in enumerate(live)
    )


async def test_and_tell(screen: BaseScreen, uid: str) -> None:
    """Send a webhook's signed test event and say what answered."""
    from intdash.sync.deliveries import probe_webhook

    screen.notify(f"Sending a test event for {uid}…", timeout=2)
    try:
        result = await probe_webhook(screen.ws, uid)
    except Exception as exc:
        screen.intdash.report(exc, "Testing the webhook")
        return
    screen.notify(
        result.describe(),
        title="Webhook answers" if result.ok else "Webhook fails",
        severity="information" if result.ok else "error",
    )
