"""The scenes of the dashboard that are pictured: each screen and dialog, the terminal sizes, and
what is pressed from the integrations screen to reach each one, waiting until it has settled.

One description for the SVG snapshot tests (tests/test_snapshots.py) and the README's screenshots
(scripts/screenshots.py). Every scene but the empty state starts from a workspace seeded as
``intdash demo`` seeds it; ``made`` names its integrations (see ``intdash.cli.demo.seed``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from textual.pilot import Pilot

from tests.waiting import until

SIZES = {"100x30": (100, 30), "80x24": (80, 24)}

Scene = Callable[[Pilot[Any], dict[str, str]], Awaitable[None]]


def select(pilot: Pilot[Any], uid: str) -> None:
    table = pilot.app.screen.query_one("#integrations")
    table.move_cursor(row=table.get_row_index(uid))  # type: ignore[attr-defined]


async def loaded(pilot: Pilot[Any]) -> None:
    """The integrations screen has read everything (not only its first screenful)."""

    def complete() -> bool:
        snapshot = getattr(pilot.app.screen, "snapshot", None)
        return snapshot is not None and snapshot.complete

    await until(pilot, complete)


async def empty(pilot: Pilot[Any]) -> None:
    """No integrations yet: the empty state shown, its button focused, and the footer offering
    its keys (the one scene of an empty workspace)."""
    screen = pilot.app.screen
    await until(
        pilot,
        lambda: (
            bool(screen.query("#empty"))
            and screen.query_one("#empty").display
            and pilot.app.focused is not None
            and bool(screen.query("FooterKey"))
        ),
    )


async def integrations(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["harbour"])  # the row needing a reconnect: its reason shows


async def action_menu(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["erp"])
    await pilot.press("space")
    await until(pilot, lambda: pilot.app.screen.query("OptionList"))


async def create(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    await pilot.press("n")
    await until(pilot, lambda: pilot.app.screen.query("#fields"))


async def configure(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["zylker"])
    await pilot.press("c")
    await until(pilot, lambda: pilot.app.screen.query("#fields"))


async def remove(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["zylker"])
    await pilot.press("x")
    await until(pilot, lambda: pilot.app.screen.query("#confirm"))


async def connect(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["harbour"])
    await pilot.press("o")
    await until(pilot, lambda: getattr(pilot.app.screen, "flow", None) is not None)
    await until(pilot, lambda: "Waiting" in str(pilot.app.screen.query_one("#progress").render()))


async def details(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["acme"])
    await pilot.press("enter")
    await until(pilot, lambda: getattr(pilot.app.screen, "view", None) is not None)


async def deliveries(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["hook"])
    await pilot.press("enter")
    await until(pilot, lambda: getattr(pilot.app.screen, "view", None) is not None)
    await pilot.press("d")
    await until(pilot, lambda: pilot.app.screen.query("#deliveries") and rows(pilot, "#deliveries"))


async def api_keys(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    select(pilot, made["erp"])
    await pilot.press("a")
    await until(pilot, lambda: pilot.app.screen.query("#keys") and rows(pilot, "#keys"))


async def key_shown(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await api_keys(pilot, made)
    await pilot.press("n")
    await pilot.press(*"Reporting")
    await pilot.press("enter")
    await until(pilot, lambda: pilot.app.screen.query("#secret"))


async def invoices(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    await pilot.press("i")
    await until(pilot, lambda: pilot.app.screen.query("#invoices") and rows(pilot, "#invoices"))


async def help_keys(pilot: Pilot[Any], made: dict[str, str]) -> None:
    await loaded(pilot)
    await pilot.press("question_mark")
    await until(pilot, lambda: type(pilot.app.screen).__name__ == "HelpScreen")


async def signed_invoice(pilot: Pilot[Any], made: dict[str, str]) -> None:
    """An invoice signed by the (emulated) V-SDC, opened from the history: its QR code."""
    await invoices(pilot, made)
    await pilot.press("enter")
    await until(
        pilot,
        lambda: (
            type(pilot.app.screen).__name__ == "InvoiceDetailsScreen"
            and bool(pilot.app.screen.query("#qr"))
        ),
    )


def rows(pilot: Pilot[Any], selector: str) -> int:
    """Rows in a table, once it has measured them (a DataTable does so when idle)."""
    table: Any = pilot.app.screen.query_one(selector)
    return int(table.row_count) if table.virtual_size.height > table.row_count else 0


# name (of the snapshot, and of the screenshot's file): how to reach it
SCENES: dict[str, Scene] = {
    "integrations": integrations,
    "action-menu": action_menu,
    "create": create,
    "configure": configure,
    "remove": remove,
    "connect": connect,
    "details": details,
    "deliveries": deliveries,
    "api-keys": api_keys,
    "key-shown": key_shown,
    "invoices": invoices,
    "help": help_keys,
}

# with TaxCore's V-SDC as the register (the screenshots only: the snapshots above keep the
# local register)
VSDC_SCENES: dict[str, Scene] = {"invoices-sdc": invoices, "invoice-signed": signed_invoice}
