"""Sync benchmarks: each figure beside a baseline measured in the same run.

    python bench/sync_bench.py [--size 100000]

1. Sync throughput against the unthrottled emulator, as a ratio to fetching the same pages
   without storing them.
2. The share of the rate-limit bound reached against the throttled Xero emulator (a compressed
   window, so it runs in seconds), and the 429s received (target: at least 90 %, none).
3. Bulk upsert on SQLite, invoices a second, beside plain sqlite3 executemany of the same rows
   into an unindexed table (target: at least 50,000 a second).
4. The longest event-loop stall during a sync of ``--size`` invoices, beside the same loop idle
   (target: under 50 ms): the dashboard runs syncs on its loop.
5. The same inside the dashboard itself (headless): Sync Now from the details screen.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import sample_invoice

from intdash.core.config import load_settings
from intdash.core.heap import freeze_long_lived
from intdash.core.workspace import Workspace
from intdash.providers.connect import ConnectService
from intdash.providers.http import httpx
from intdash.providers.ratelimit import RateLimits
from intdash.sync.engine import SyncEngine
from tests.waiting import wait_for_async


class SandboxProcess:
    """``intdash sandbox`` in a process of its own, as a platform would be: its work does not
    share this process's interpreter."""

    def __init__(self, size: int, *, credit_notes: bool = True) -> None:
        notes = "--credit-notes" if credit_notes else "--no-credit-notes"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "intdash", "sandbox", "--port", "0", "--size", str(size), notes],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.settings: dict[str, str] = {}
        assert self.proc.stdout is not None
        while len(self.settings) < 17:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the sandbox did not start")
            if line.startswith("export "):
                name, _, value = line[len("export ") :].strip().partition("=")
                self.settings[name] = value
        self.url = self.settings["INTDASH_XERO__API_URL"].removesuffix("/xero/api")

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        if body is None:
            return httpx.get(f"{self.url}/_sandbox/{path}").json()
        return httpx.post(f"{self.url}/_sandbox/{path}", json=body).json()

    def xero_limits(self, per_minute: int = 10**9, per_day: int = 10**9) -> None:
        """Xero's call windows, a minute's and a day's (by default out of the way)."""
        self.control("xero/limits", {"window": "minute", "limit": per_minute, "seconds": 60})
        self.control("xero/limits", {"window": "day", "limit": per_day, "seconds": 86400})

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def fresh_workspace(box: SandboxProcess) -> Workspace:
    home = tempfile.mkdtemp(prefix="intdash-bench-")
    os.environ.update(box.settings)
    os.environ["INTDASH_HOME"] = home
    os.environ.pop("INTDASH_DATABASE_URL", None)
    ws = Workspace.open(load_settings(), actor="bench")
    ws.plans.set("scale", monthly_limit=100_000_000)
    return ws


async def connected(ws: Workspace, kind: str, service: ConnectService) -> str:
    uid = ws.integrations.create(kind).integration.uid
    flow = await service.begin(uid)
    async with httpx.AsyncClient() as client:
        location = (await client.get(flow.url)).headers["location"]
    await service.complete(flow, location)
    return uid


async def measure_stalls(work: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    """Run ``work`` while a heartbeat notes the longest time the loop could not answer."""
    longest = 0.0
    done = False

    async def heartbeat() -> None:
        nonlocal longest
        while not done:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            longest = max(longest, time.perf_counter() - started - 0.005)

    beat = asyncio.create_task(heartbeat())
    try:
        result = await work()
    finally:
        done = True
        await beat
    return result, longest


async def throughput(size: int) -> None:
    box = SandboxProcess(size)
    try:
        box.xero_limits()
        ws = fresh_workspace(box)
        service = ConnectService(ws, limits={"xero": RateLimits(100_000, 1.0, 5)})
        uid = await connected(ws, "xero", service)
        started = time.perf_counter()
        fetched = 0
        async with await service.api(uid) as api:
            async for page in api.connector.pages(api, None, None):
                fetched += len(page.invoices)
        fetch_rate = fetched / (time.perf_counter() - started)
        engine = SyncEngine(ws, service)

        async def sync() -> Any:
            return await engine.run(uid)

        freeze_long_lived()  # as `intdash serve` and the dashboard do once started
        idle_stall = (await measure_stalls(lambda: asyncio.sleep(2.0)))[1]
        started = time.perf_counter()
        result, stall = await measure_stalls(sync)
        sync_rate = result.fetched / (time.perf_counter() - started)
        print(
            f"1. sync against the unthrottled emulator: {sync_rate:,.0f} invoices/s "
            f"(fetching alone: {fetch_rate:,.0f}/s; ratio {sync_rate / fetch_rate:.2f})"
        )
        print(
            f"4. longest event-loop stall during a {result.fetched:,}-invoice sync: "
            f"{stall * 1000:.1f} ms (idle loop: {idle_stall * 1000:.1f} ms; target < 50 ms)"
        )
        ws.close()
    finally:
        box.close()


async def rate_share() -> None:
    # Xero's pages are of 1,000 invoices: a window of two calls a second keeps the run to
    # seconds while each call still waits for the bound, not for the page before it
    per_window, window, pages = 2, 1.0, 20
    box = SandboxProcess(pages * 1000)
    try:
        box.control("xero/limits", {"window": "minute", "limit": per_window, "seconds": window})
        ws = fresh_workspace(box)
        service = ConnectService(ws, limits={"xero": RateLimits(per_window, window, 5)})
        uid = await connected(ws, "xero", service)
        before = box.control("stats")["xero"]["api_calls"]
        started = time.perf_counter()
        result = await SyncEngine(ws, service).run(uid)
        elapsed = time.perf_counter() - started
        stats = box.control("stats")["xero"]
        calls = stats["api_calls"] - before
        bound = per_window / window
        print(
            f"2. against the throttled Xero emulator ({per_window} calls per {window:.0f} s): "
            f"{calls / elapsed:.1f} calls/s of a bound of {bound:.1f} = "
            f"{calls / elapsed / bound:.0%} of the bound, {stats['rate_limited']} answers 429 "
            f"({result.fetched:,} invoices; target >= 90 %, no 429)"
        )
        ws.close()
    finally:
        box.close()


async def dashboard_stall(size: int) -> None:
    """The dashboard itself (headless, on this loop) running Sync Now on ``size`` invoices,
    with a heartbeat on its loop."""
    from intdash.providers.xero import XeroConnector
    from intdash.tui.app import IntdashApp
    from intdash.tui.screens.details import DetailsScreen

    box = SandboxProcess(size)
    unlimited = RateLimits(100_000, 1.0, 5)
    XeroConnector.default_limits = unlimited  # the emulator is unthrottled for this figure
    try:
        box.xero_limits()
        ws = fresh_workspace(box)
        uid = await connected(ws, "xero", ConnectService(ws))
        app = IntdashApp(
            ws, schedule=False, poll_seconds=float(os.environ.get("BENCH_POLL", "1.0"))
        )
        async with app.run_test(size=(100, 30)) as pilot:
            await app.push_screen(DetailsScreen(uid))
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, DetailsScreen)

            async def sync_now() -> int:
                await screen.action_sync_now()

                async def finished() -> tuple[int] | None:  # its count of invoices fetched
                    runs = await asyncio.to_thread(ws.integrations.runs, uid)
                    done = runs and runs[0].outcome != "running"
                    return (runs[0].fetched,) if done else None

                (fetched,) = await wait_for_async(
                    finished, 600, "the sync did not finish", every=0.2
                )
                return fetched

            idle = (await measure_stalls(lambda: asyncio.sleep(2.0)))[1]
            fetched, stall = await measure_stalls(sync_now)
        print(
            f"5. the dashboard during Sync Now of {fetched:,} invoices: longest stall "
            f"{stall * 1000:.1f} ms (the same dashboard idle: {idle * 1000:.1f} ms; "
            "target < 50 ms)"
        )
        ws.close()
    finally:
        box.close()


def bulk_upsert(count: int = 100_000, batch: int = 1000) -> None:
    home = tempfile.mkdtemp(prefix="intdash-bench-")
    os.environ["INTDASH_HOME"] = home
    os.environ.pop("INTDASH_DATABASE_URL", None)
    ws = Workspace.open(load_settings(), actor="bench")
    ws.plans.set("scale", monthly_limit=100_000_000)
    uid = ws.integrations.create("custom").integration.uid
    with ws.db.read() as session:
        integration_id = ws.integrations.find(session, uid).id
    assert integration_id is not None
    invoices = [sample_invoice(n) for n in range(count)]
    started = time.perf_counter()
    room = None
    for start in range(0, count, batch):
        with ws.db.write() as session:
            room = ws.invoices.upsert(
                session.connection(),
                integration_id,
                invoices[start : start + batch],
                ws.clock(),
                room,
            ).room
    rate = count / (time.perf_counter() - started)
    assert ws.invoices.verify().records == count
    ws.close()

    raw = sqlite3.connect(Path(home) / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("CREATE TABLE t (a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p)")
    rows = [
        (
            1,
            i.external_id,
            "2026-01-05 00:00:00.000000",
            "2026-01-05 00:00:00.000000",
            "fiscalized",
            i.number,
            "sales",
            i.contact,
            "2026-01-05",
            "2026-02-05",
            "NZD",
            1000000,
            150000,
            1150000,
            "AUTHORISED",
            "2026-01-05 00:00:00.000000",
        )
        for i in invoices
    ]
    started = time.perf_counter()
    for start in range(0, count, batch):
        raw.execute("BEGIN IMMEDIATE")
        raw.executemany(
            f"INSERT INTO t VALUES ({', '.join('?' * 16)})",  # noqa: S608 - no input
            rows[start : start + batch],
        )
        raw.execute("COMMIT")
    baseline = count / (time.perf_counter() - started)
    print(
        f"3. bulk upsert on SQLite, batches of {batch:,}: {rate:,.0f} invoices/s with fiscal "
        f"records (plain sqlite3 inserts, no indexes: {baseline:,.0f}/s; ratio "
        f"{rate / baseline:.2f}; target >= 50,000/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="invoices in the large sync")
    args = parser.parse_args()
    asyncio.run(throughput(args.size))
    asyncio.run(rate_share())
    bulk_upsert()
    asyncio.run(dashboard_stall(args.size))


if __name__ == "__main__":
    main()
