"""Time to the first interactive frame of the dashboard, against a bare Textual app.

    python bench/first_frame.py [--integrations 10000] [--invoices 1000000] [--runs 9]

Prints, each as the median of ``--runs`` starts and as a ratio to a bare app (Header, an empty
DataTable, Footer) started in the same run (target: at most 1.5x):

1. the integrations screen of a workspace with ``--integrations`` integrations, until its first
   rows (a screenful, in order) are drawn; then, for the record, until every row is in;
2. the invoice history over ``--invoices`` invoices, until its first rows (a screenful, newest
   first) are drawn.

Each start is a fresh app, headless at 100x30, on a workspace seeded beforehand and opened anew
(a new database engine: its statements are compiled again, as at a real start); opening it is not
timed. Garbage left by the previous start is collected before each one, for every app alike, so
that no start pays for another's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import sample_invoice
from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

from intdash.core.config import load_settings
from intdash.core.workspace import Workspace
from intdash.tui.app import IntdashApp
from intdash.tui.widgets import RowTable

SIZE = (100, 30)


class BareApp(App[None]):
    """The baseline: what any Textual table app draws first."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable()
        yield Footer()


async def first_frame(
    app: App[Any], ready: Callable[[App[Any]], bool], *then: Callable[[App[Any]], bool]
) -> list[float]:
    """Seconds from starting ``app`` until the first frame drawn once ``ready`` holds; then
    until the first frame drawn once each of ``then`` holds too.

    A frame is drawn when the app hands the screen's update to its display (headless, the
    update is made in full and then not written anywhere): that call is timed."""
    conditions = [ready, *then]
    times: list[float] = []
    display = app._display

    def timed(screen: Screen[Any], renderable: Any) -> None:
        display(screen, renderable)
        pending = renderable is not None and len(times) < len(conditions)
        if pending and conditions[len(times)](app):
            times.append(time.perf_counter() - started)

    app._display = timed  # type: ignore[method-assign]
    gc.collect()
    started = time.perf_counter()
    async with app.run_test(size=SIZE):
        while len(times) < len(conditions):
            if time.perf_counter() - started > 120:
                raise RuntimeError(f"{type(app).__name__} never got there")
            await asyncio.sleep(0.001)
    return times


def workspace(home: str) -> Workspace:
    os.environ["INTDASH_HOME"] = home
    os.environ.pop("INTDASH_DATABASE_URL", None)
    return Workspace.open(load_settings(), actor="bench")


def seed_integrations(count: int) -> str:
    home = tempfile.mkdtemp(prefix="intdash-frame-")
    ws = workspace(home)
    kinds = ("custom", "webhook", "myob", "zoho", "xero")
    values = {
        "webhook": {"url": "https://hooks.example.com/in"},
        "myob": {},
        "zoho": {"data_centre": "com"},
    }
    for n in range(count):
        kind = kinds[n % len(kinds)]
        ws.integrations.create(kind, name=f"Company {n:05d}", values=values.get(kind))
    ws.close()
    return home


def seed_invoices(count: int, batch: int = 5000) -> str:
    home = tempfile.mkdtemp(prefix="intdash-frame-")
    ws = workspace(home)
    ws.plans.set("scale", monthly_limit=count)
    uid = ws.integrations.create("custom", name="Bulk").integration.uid
    with ws.db.read() as session:
        integration_id = ws.integrations.find(session, uid).id
    assert integration_id is not None
    for start in range(0, count, batch):
        invoices = [sample_invoice(n) for n in range(start, min(start + batch, count))]
        with ws.db.write() as session:
            ws.invoices.upsert(session.connection(), integration_id, invoices, ws.clock())
    ws.close()
    return home


def integrations_shown(count: int) -> Callable[[App[Any]], bool]:
    """At least ``count`` rows in the integrations table."""

    def ready(app: App[Any]) -> bool:
        tables = app.screen.query("#integrations")
        return bool(tables) and tables.first(RowTable).row_count >= count

    return ready


def invoices_ready(app: App[Any]) -> bool:
    tables = app.screen.query("#invoices")
    return bool(tables) and tables.first(RowTable).row_count > 0


async def measure(args: argparse.Namespace) -> None:
    from intdash.tui.screens.invoices import InvoicesScreen

    print(f"seeding {args.integrations:,} integrations and {args.invoices:,} invoices…")
    many = seed_integrations(args.integrations)
    history = seed_invoices(args.invoices)

    class HistoryApp(IntdashApp):
        """The dashboard opened straight on the invoice history (one screen, as the bare app
        has one)."""

        def first_screens(self) -> list[Screen[Any]]:
            return [InvoicesScreen(None)]

    bare: list[float] = []
    table: list[float] = []
    every: list[float] = []
    invoices: list[float] = []
    for _ in range(args.runs):  # interleaved, so that the machine's drift hits all three alike
        (took,) = await first_frame(BareApp(), lambda app: bool(app.screen.query(DataTable)))
        bare.append(took)
        ws = workspace(many)
        took, whole = await first_frame(
            IntdashApp(ws, schedule=False),
            integrations_shown(1),
            integrations_shown(args.integrations),
        )
        table.append(took)
        every.append(whole)
        ws.close()
        ws = workspace(history)
        (took,) = await first_frame(HistoryApp(ws, schedule=False), invoices_ready)
        invoices.append(took)
        ws.close()
    base = statistics.median(bare)
    for n, (what, times) in enumerate(
        (
            (f"integrations screen, {args.integrations:,} integrations", table),
            (f"invoice history, {args.invoices:,} invoices", invoices),
        ),
        start=1,
    ):
        figure = statistics.median(times)
        print(
            f"{n}. first frame of the {what}: {figure * 1000:.0f} ms; bare app "
            f"{base * 1000:.0f} ms; ratio {figure / base:.2f} (target <= 1.5)"
        )
        if n == 1:
            print(
                f"   all {args.integrations:,} rows in the table (sortable, filterable) after "
                f"{statistics.median(every) * 1000:.0f} ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--integrations", type=int, default=10_000)
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=9)
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
