"""Time to the first interactive frame of the dashboard, and its peak memory, against a bare
Textual app.

    python bench/first_frame.py [--integrations 10000] [--invoices 1000000] [--runs 9]
                                [--no-memory] [--memory-only] [--profile]

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

3. Memory: the dashboard's peak resident set (VmHWM) with ``--integrations`` integrations and
   ``--invoices`` invoices (spread over its Custom integrations) in one database, beside a bare
   app's (target: under 150 MB). Each app runs in a process of its own, started for it (so that
   the peaks are separate and neither carries the other's imports), headless at 100x30; the
   dashboard's peak is read once its first rows are drawn, once all its integrations are in the
   table, and once the invoice history of every integration has its first page and its count;
   the bare app's once its first frame is drawn. ``--profile`` adds, for the dashboard, what
   tracemalloc finds holding the most memory at each of those points (it slows the start and
   costs memory of its own, so its peaks are not the figure).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Only the standard library and Textual here: the bare app's process imports this file, and
# intdash's modules (imported where they are used) would count in its memory.
from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

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
    from intdash.core.config import load_settings
    from intdash.core.workspace import Workspace

    os.environ["INTDASH_HOME"] = home
    os.environ.pop("INTDASH_DATABASE_URL", None)
    return Workspace.open(load_settings(), actor="bench")


def seed_integrations(count: int, customs: list[str] | None = None) -> str:
    """A workspace of ``count`` integrations of every kind; the uids of its Custom ones are
    added to ``customs``."""
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
        made = ws.integrations.create(kind, name=f"Company {n:05d}", values=values.get(kind))
        if customs is not None and kind == "custom":
            customs.append(made.integration.uid)
    ws.close()
    return home


def seed_invoices(count: int, batch: int = 5000) -> str:
    from common import sample_invoice

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


def seed_both(many: str, customs: list[str], invoices: int) -> str:
    """A copy of the workspace ``many`` with ``invoices`` invoices spread evenly over its
    Custom integrations (``customs``). Its webhooks are paused meanwhile: each would otherwise
    queue a delivery of every invoice (a billion rows for 2,000 webhooks)."""
    from common import sample_invoice
    from sqlalchemy import select, update

    from intdash.core.catalog import Flow, types_that
    from intdash.core.services.integrations.queries import INTEGRATIONS

    home = tempfile.mkdtemp(prefix="intdash-frame-")
    shutil.copytree(many, home, dirs_exist_ok=True)
    ws = workspace(home)
    ws.plans.set("scale", monthly_limit=invoices)
    hooks = INTEGRATIONS.c.type.in_([kind.value for kind in types_that(Flow.DELIVERS)])
    with ws.db.write() as session:
        paused = session.connection().execute(
            select(INTEGRATIONS.c.id).where(hooks, INTEGRATIONS.c.sync_enabled.is_(True))
        )
        paused_ids = [row[0] for row in paused]
        session.connection().execute(
            update(INTEGRATIONS).where(INTEGRATIONS.c.id.in_(paused_ids)).values(sync_enabled=False)
        )
    with ws.db.read() as session:
        ids = [ws.integrations.find(session, uid).id for uid in customs]
    start = 0
    for n, integration_id in enumerate(ids):
        assert integration_id is not None
        end = invoices * (n + 1) // len(ids)
        with ws.db.write() as session:
            ws.invoices.upsert(
                session.connection(),
                integration_id,
                [sample_invoice(i) for i in range(start, end)],
                ws.clock(),
            )
        start = end
    with ws.db.write() as session:
        session.connection().execute(
            update(INTEGRATIONS).where(INTEGRATIONS.c.id.in_(paused_ids)).values(sync_enabled=True)
        )
    ws.close()
    return home


def integrations_shown(count: int) -> Callable[[App[Any]], bool]:
    """At least ``count`` rows in the integrations table."""
    from intdash.tui.widgets import RowTable

    def ready(app: App[Any]) -> bool:
        tables = app.screen.query("#integrations")
        return bool(tables) and tables.first(RowTable).row_count >= count

    return ready


def invoices_ready(app: App[Any]) -> bool:
    from intdash.tui.widgets import RowTable

    tables = app.screen.query("#invoices")
    return bool(tables) and tables.first(RowTable).row_count > 0


async def timings(args: argparse.Namespace, many: str) -> None:
    from intdash.tui.app import IntdashApp
    from intdash.tui.screens.invoices import InvoicesScreen

    print(f"seeding {args.invoices:,} invoices…", flush=True)
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
    shutil.rmtree(history, ignore_errors=True)
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


# -- memory: each app in a process of its own -----------------------------------------------------


def peak_kb() -> int:
    """This process's peak resident set so far, in KiB (VmHWM)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def resident() -> str:
    """What is resident now: anonymous memory (the heaps) and mapped files (shared libraries)."""
    try:
        status = dict(
            line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines()
        )
    except OSError:
        return "(no /proc)"
    return ", ".join(
        f"{name} {megabytes(int(status[key].split()[0]))}"
        for name, key in (("anonymous", "RssAnon"), ("files", "RssFile"))
        if key in status
    )


def megabytes(kib: float) -> str:
    return f"{kib * 1024 / 1e6:.1f} MB"


class Peaks:
    """The process's peak memory at named points, and with ``profile`` what tracemalloc
    finds holding the most there."""

    def __init__(self, profile: bool) -> None:
        self.points: dict[str, int] = {}
        self.tops: dict[str, list[str]] = {}
        self.profile = profile
        self.resident = ""

    def note(self, what: str) -> None:
        self.points[what] = peak_kb()
        self.resident = resident()
        if self.profile:
            gc.collect()
            snapshot = tracemalloc.take_snapshot()
            current, peak = tracemalloc.get_traced_memory()
            top = [
                f"resident now: {self.resident}; traced by tracemalloc now "
                f"{megabytes(current / 1024)}, at most {megabytes(peak / 1024)}"
            ]
            for key in ("filename", "lineno"):
                for stat in snapshot.statistics(key)[:12]:
                    frame = stat.traceback[0]
                    where = frame.filename.replace(sys.prefix, "<venv>")
                    where += f":{frame.lineno}" if key == "lineno" else ""
                    top.append(f"{megabytes(stat.size / 1024):>9} {stat.count:>8,} blocks {where}")
            self.tops[what] = top


async def until(condition: Callable[[], bool], what: str, timeout: float = 300) -> None:
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"never got to {what}")
        await asyncio.sleep(0.005)


async def bare_memory(peaks: Peaks) -> None:
    app = BareApp()
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: bool(app.screen.query(DataTable)), "the bare app's table")
        await pilot.pause()
        peaks.note("first frame")


async def dashboard_memory(peaks: Peaks, home: str, integrations: int) -> None:
    from intdash.tui.app import IntdashApp
    from intdash.tui.screens.invoices import PAGE, InvoicesScreen
    from intdash.tui.widgets import RowTable

    ws = workspace(home)
    app = IntdashApp(ws, schedule=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: integrations_shown(1)(app), "the first integrations")
        await pilot.pause()
        peaks.note("first rows")
        await until(lambda: integrations_shown(integrations)(app), "every integration")
        await pilot.pause()
        peaks.note("all integrations")
        history = InvoicesScreen(None)
        await app.push_screen(history)

        def history_in() -> bool:
            tables = history.query("#invoices")
            shown = bool(tables) and tables.first(RowTable).row_count >= PAGE
            return shown and history.total is not None

        await until(history_in, "the invoice history's first page and count")
        await pilot.pause()
        peaks.note("invoice history")
    ws.close()


def memory_child(which: str, home: str, integrations: int, profile: bool) -> None:
    """In a process of its own: one app's peaks, as a line of JSON."""
    if profile:
        tracemalloc.start()
    peaks = Peaks(profile)
    if which == "bare":
        asyncio.run(bare_memory(peaks))
    else:
        asyncio.run(dashboard_memory(peaks, home, integrations))
    print(json.dumps({"points": peaks.points, "tops": peaks.tops, "resident": peaks.resident}))


def in_child(which: str, home: str = "", integrations: int = 0, profile: bool = False) -> Any:
    command = [sys.executable, __file__, "--memory-child", which, home, str(integrations)]
    done = subprocess.run(
        [*command, *(["--profile"] if profile else [])], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {which} app's process failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory(args: argparse.Namespace, many: str, customs: list[str]) -> None:
    print(
        f"seeding one workspace of {args.integrations:,} integrations and {args.invoices:,} "
        "invoices…",
        flush=True,
    )
    home = seed_both(many, customs, args.invoices)
    try:
        measure_memory(args, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def measure_memory(args: argparse.Namespace, home: str) -> None:
    bare: list[int] = []
    dashboard: dict[str, list[int]] = {}
    resident = {}
    for _ in range(args.memory_runs):  # interleaved, as the timings are
        found = in_child("bare")
        bare.append(found["points"]["first frame"])
        resident["bare"] = found["resident"]
        found = in_child("dashboard", home, args.integrations)
        points = found["points"]
        resident["dashboard"] = found["resident"]
        for what, kib in points.items():
            dashboard.setdefault(what, []).append(kib)
    base = statistics.median(bare)
    peak = statistics.median(max(kibs) for kibs in zip(*dashboard.values(), strict=True))
    said = {
        "first rows": "its first rows drawn",
        "all integrations": f"all {args.integrations:,} integrations in the table",
        "invoice history": "the invoice history's first page and count",
    }
    steps = "; ".join(
        f"{said.get(what, what)} {megabytes(statistics.median(kibs))}"
        for what, kibs in dashboard.items()
    )
    load = " ".join(f"{n:.2f}" for n in os.getloadavg())
    print(
        f"3. peak memory (VmHWM) of the dashboard, {args.integrations:,} integrations and "
        f"{args.invoices:,} invoices in its database: {megabytes(peak)}; bare app "
        f"{megabytes(base)}; ratio {peak / base:.2f} (target < 150 MB)\n"
        f"   the dashboard's peak so far at: {steps} (medians of {args.memory_runs} processes "
        f"each; load average {load})\n"
        f"   resident at the end: the dashboard {resident['dashboard']}; the bare app "
        f"{resident['bare']}",
        flush=True,
    )
    if args.profile or peak * 1024 >= 150e6:
        print("   what tracemalloc finds holding the most in the dashboard's process:")
        for what, top in in_child("dashboard", home, args.integrations, True)["tops"].items():
            print(f"   at {said.get(what, what)}:")
            for line in top:
                print(f"      {line}")


async def measure(args: argparse.Namespace) -> None:
    print(f"seeding {args.integrations:,} integrations…", flush=True)
    customs: list[str] = []
    many = seed_integrations(args.integrations, customs)
    try:
        if not args.memory_only:
            await timings(args, many)
        if not args.no_memory:
            memory(args, many, customs)
    finally:
        shutil.rmtree(many, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--integrations", type=int, default=10_000)
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--memory-runs", type=int, default=3, help="processes of each app")
    parser.add_argument("--no-memory", action="store_true", help="leave out figure 3")
    parser.add_argument("--memory-only", action="store_true", help="figure 3 alone")
    parser.add_argument("--profile", action="store_true", help="tracemalloc's top for figure 3")
    if sys.argv[1:2] == ["--memory-child"]:
        which, home, integrations = sys.argv[2:5]
        memory_child(which, home, int(integrations), "--profile" in sys.argv[5:])
        return
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
