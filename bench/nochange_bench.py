"""No-change incremental syncs: what one process spends on a sync that finds nothing new.

This is what the scheduler does thousands of times an hour. ``--count`` Xero integrations, one
organisation each, are synced once in full; then every one of them is synced again, rounds in
a row, ``--workers`` at a time, as a serve's workers would. Each of those syncs is two listing
calls (invoices, then credit notes) that answer nothing new. Before those rounds each
integration is given ``--history`` past runs (a month of five-minute syncs by default): the
history a schedule leaves, which a sync's statements must not read through.

The sandbox runs in a process of its own (``intdash sandbox``), as a platform would be: its work
does not share this process's interpreter (in one process, the emulator's thread and intdash's
took turns at the interpreter's lock, and each made the other dearer). Its organisations are
added, and the consent that ticks them all given, through its control routes.

Printed, per round and as medians: syncs a second, intdash's CPU per sync (this process's), and
beside it the emulator's own CPU per call (its process's CPU over the calls it answered): the
cost of the same HTTP exchange on the other side.

    python bench/nochange_bench.py [--count 300] [--rounds 5] [--workers 4] [--history 8640]
                                   [--database URL]
    python bench/nochange_bench.py --profile out.txt   # yappi, this process's threads, a round
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scheduling_bench import connect, consent, cpu_seconds, use_env
from sqlalchemy import insert
from sync_bench import SandboxProcess

from intdash.core.config import load_settings
from intdash.core.models import RunOutcome, SyncRun
from intdash.core.workspace import Workspace
from intdash.sync.engine import SyncEngine, Trigger
from tests.providers import clone

TARGET_CPU_MS = 5.0
TARGET_RATE = 200.0


@dataclass(frozen=True)
class Round:
    syncs: int
    seconds: float
    cpu_ms: float  # intdash's, per sync
    sandbox_ms: float | None  # the emulator's, per call
    calls: float  # listing calls a sync (invoices, then credit notes)

    @property
    def rate(self) -> float:
        return self.syncs / self.seconds


async def sync_all(engine: SyncEngine, uids: Sequence[str], workers: int) -> list[RunOutcome]:
    queue = list(reversed(uids))
    outcomes: list[RunOutcome] = []

    async def worker() -> None:
        while queue:
            result = await engine.run(queue.pop(), Trigger.SCHEDULE)
            outcomes.append(result.outcome)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return outcomes


class Platform:
    """The sandbox process, as the benchmark reads it: its CPU and the Xero calls it answered."""

    def __init__(self, box: SandboxProcess) -> None:
        self.box = box

    def cpu(self) -> float:
        return cpu_seconds(self.box.proc.pid)

    def calls(self) -> int:
        return int(self.box.control("stats")["xero"]["api_calls"])


async def one_round(
    engine: SyncEngine, uids: Sequence[str], workers: int, platform: Platform
) -> Round:
    calls0, box0 = platform.calls(), platform.cpu()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    outcomes = await sync_all(engine, uids, workers)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    box, calls = platform.cpu() - box0, platform.calls() - calls0
    bad = [o for o in outcomes if o is not RunOutcome.OK]
    if bad:
        raise SystemExit(f"{len(bad)} syncs were not ok: {bad[:3]}")
    n = len(outcomes)
    return Round(n, wall, 1000 * cpu / n, 1000 * box / max(calls, 1), calls / n)


async def fleet(ws: Workspace, box: SandboxProcess, count: int) -> list[str]:
    """``count`` Xero integrations, one organisation each (Xero's per-organisation limits then
    do not decide how fast they sync), made through the sandbox's control routes: their UIDs."""
    tenants = [
        box.control("xero/tenants", {"name": f"Org {n}", "size": 20})["tenantId"]
        for n in range(count)
    ]
    first = ws.integrations.create("xero").integration.uid
    service = await connect(ws, first)
    box.control(f"xero/consent?tenants={','.join(tenants)}", {})  # the user ticks them all
    await consent((await service.begin(first)).url)
    return clone(ws, first, tenants, prefix="xero-b")[1:]  # (the first may still be syncing)


async def bench(args: argparse.Namespace) -> None:
    box = SandboxProcess(20)  # its first organisation: 20 invoices and a few credit notes
    home = Path(tempfile.mkdtemp(prefix="intdash-nochange-"))
    try:
        box.xero_limits()  # out of the way
        url = args.database or f"sqlite:///{home / 'intdash.db'}"
        use_env({"INTDASH_HOME": str(home), "INTDASH_DATABASE_URL": url, **box.settings})
        ws = Workspace.open(load_settings(), actor="bench")
        try:
            ws.plans.set("scale")
            uids = await fleet(ws, box, args.count)
            engine = SyncEngine(ws)
            platform = Platform(box)
            first = await one_round(engine, uids, args.workers, platform)
            print(f"full syncs of {len(uids)} integrations (20 invoices each): {first.rate:.0f}/s")
            if args.history:
                past(ws, uids, args.history)
                print(f"each integration given {args.history:,} past runs")
            if args.profile:
                await profiled(engine, uids, args.workers, platform, Path(args.profile))
                return
            rounds = [
                await one_round(engine, uids, args.workers, platform) for _ in range(args.rounds)
            ]
            report(rounds, args.workers)
        finally:
            ws.close()
    finally:
        box.close()
        shutil.rmtree(home, ignore_errors=True)


def past(ws: Workspace, uids: Sequence[str], runs: int) -> None:
    """Give each integration ``runs`` ended runs, five minutes apart, before those it had: the
    history a schedule leaves (8,640 runs is a month of five-minute syncs)."""
    ended = ws.clock() - timedelta(days=1)
    with ws.db.read() as session:
        ids = [ws.integrations.find(session, uid).id for uid in uids]
    for integration_id in ids:
        rows = [
            {
                "integration_id": integration_id,
                "trigger": "schedule",
                "started_at": ended - timedelta(minutes=5 * n),
                "ended_at": ended - timedelta(minutes=5 * n) + timedelta(seconds=1),
                "fetched": 0,
                "created": 0,
                "updated": 0,
                "held": 0,
                "outcome": RunOutcome.OK.value,
            }
            for n in range(runs)
        ]
        with ws.db.write_connection() as conn:
            conn.execute(insert(SyncRun), rows)


async def profiled(
    engine: SyncEngine, uids: Sequence[str], workers: int, platform: Platform, out: Path
) -> None:
    try:
        # Not a dependency of the project: looked up by name, so the checks pass without it.
        yappi: Any = importlib.import_module("yappi")
    except ImportError:
        raise SystemExit("--profile needs yappi (pip install yappi)") from None

    yappi.set_clock_type("cpu")
    yappi.start(builtins=True)
    result = await one_round(engine, uids, workers, platform)
    yappi.stop()
    stats = yappi.get_func_stats()
    with out.open("w") as f:
        stats.sort("tsub").print_all(out=f, columns={0: ("name", 90), 1: ("ncall", 10),
                                                     2: ("tsub", 8), 3: ("ttot", 8)})  # fmt: skip
        f.write("\n\nby total\n")
        stats.sort("ttot").print_all(out=f, columns={0: ("name", 90), 1: ("ncall", 10),
                                                     2: ("tsub", 8), 3: ("ttot", 8)})  # fmt: skip
    print(f"profiled round: {result.rate:.0f}/s, {result.cpu_ms:.2f} ms CPU a sync -> {out}")


def report(rounds: Sequence[Round], workers: int) -> None:
    for n, r in enumerate(rounds, 1):
        box = "?" if r.sandbox_ms is None else f"{r.sandbox_ms:.2f}"
        print(
            f"round {n}: {r.syncs} no-change syncs in {r.seconds:.2f} s: {r.rate:.0f}/s; "
            f"intdash {r.cpu_ms:.2f} ms CPU a sync; the emulator {box} ms CPU a call, "
            f"{r.calls:.1f} calls a sync"
        )
    rate = statistics.median(r.rate for r in rounds)
    cpu = statistics.median(r.cpu_ms for r in rounds)
    boxes = [r.sandbox_ms for r in rounds if r.sandbox_ms is not None]
    box = f"{statistics.median(boxes):.2f} ms" if boxes else "unknown"
    print()
    print(f"| What | Median of {len(rounds)} rounds | Target | Met |")
    print("|---|---|---|---|")
    print(f"| No-change syncs a second, one process, {workers} workers | {rate:.0f}/s "
          f"| >= {TARGET_RATE:.0f}/s | {'yes' if rate >= TARGET_RATE else 'no'} |")  # fmt: skip
    print(f"| intdash's CPU per no-change sync | {cpu:.2f} ms | <= {TARGET_CPU_MS:.0f} ms "
          f"| {'yes' if cpu <= TARGET_CPU_MS else 'no'} |")  # fmt: skip
    print(f"| The emulator's CPU per listing call (beside it) | {box} | | |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="integrations (default 300)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--database", help="a PostgreSQL URL (default: SQLite in a temp home)")
    parser.add_argument("--profile", metavar="FILE", help="profile one round with yappi")
    parser.add_argument(
        "--history",
        type=int,
        default=8640,
        help="past runs given each integration first (default 8,640: a month of five-minute "
        "syncs; 0 for none)",
    )
    asyncio.run(bench(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
