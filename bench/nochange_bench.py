"""No-change incremental syncs: what one process spends on a sync that finds nothing new.

This is what the scheduler does thousands of times an hour. ``--count`` Xero integrations, one
organisation each, are synced once in full; then every one of them is synced again, rounds in
a row, ``--workers`` at a time, as a serve's workers would. Each of those syncs is two listing
calls (invoices, then credit notes) that answer nothing new.

Printed, per round and as medians: syncs a second, intdash's CPU per sync (the process's CPU
less the emulator's server thread, read on that thread's own clock), and beside it the emulator's
own CPU per call (its server thread's CPU over the calls it answered): the cost of the same
HTTP exchange on the other side.

    python bench/nochange_bench.py [--count 300] [--rounds 5] [--workers 4] [--database URL]
    python bench/nochange_bench.py --profile out.txt   # yappi, every thread, one round
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scheduling_bench import SandboxCpu, fleet, world, xero_sandbox
from sqlmodel import col, select

from intdash.core.models import Integration, RunOutcome
from intdash.core.workspace import Workspace
from intdash.sandbox.xero import XeroEmulator
from intdash.sync.engine import SyncEngine, Trigger

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


def uids_of(ws: Workspace, ids: Sequence[int]) -> list[str]:
    with ws.db.read() as session:
        found = session.exec(select(col(Integration.uid)).where(col(Integration.id).in_(ids)))
        return list(found)


async def sync_all(engine: SyncEngine, uids: Sequence[str], workers: int) -> list[RunOutcome]:
    queue = list(reversed(uids))
    outcomes: list[RunOutcome] = []

    async def worker() -> None:
        while queue:
            result = await engine.run(queue.pop(), Trigger.SCHEDULE)
            outcomes.append(result.outcome)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return outcomes


async def one_round(
    engine: SyncEngine,
    uids: Sequence[str],
    workers: int,
    sandbox_cpu: SandboxCpu,
    xero: XeroEmulator,
) -> Round:
    calls0 = xero.api_calls
    cpu0, box0, wall0 = time.process_time(), sandbox_cpu.seconds(), time.perf_counter()
    outcomes = await sync_all(engine, uids, workers)
    wall, cpu, box = time.perf_counter() - wall0, time.process_time() - cpu0, sandbox_cpu.seconds()
    calls = xero.api_calls - calls0
    bad = [o for o in outcomes if o is not RunOutcome.OK]
    if bad:
        raise SystemExit(f"{len(bad)} syncs were not ok: {bad[:3]}")
    box_s = None if box is None or box0 is None else box - box0
    ours = cpu - (box_s or 0.0)
    n = len(outcomes)
    per_call = None if box_s is None else 1000 * box_s / max(calls, 1)
    return Round(n, wall, 1000 * ours / n, per_call, calls / n)


async def bench(args: argparse.Namespace) -> None:
    sandbox = xero_sandbox(20, unlimited=True)
    try:
        with world(args.database, sandbox) as (ws, _env, _home):
            ids = await fleet(ws, sandbox, args.count)
            uids = uids_of(ws, ids)
            engine = SyncEngine(ws)
            sandbox_cpu = SandboxCpu()
            first = await one_round(engine, uids, args.workers, sandbox_cpu, sandbox.xero)
            print(f"full syncs of {len(uids)} integrations (20 invoices each): {first.rate:.0f}/s")
            if args.profile:
                out = Path(args.profile)
                await profiled(engine, uids, args.workers, sandbox_cpu, sandbox.xero, out)
                return
            rounds = [
                await one_round(engine, uids, args.workers, sandbox_cpu, sandbox.xero)
                for _ in range(args.rounds)
            ]
            report(rounds, args.workers)
    finally:
        sandbox.stop()


async def profiled(
    engine: SyncEngine,
    uids: Sequence[str],
    workers: int,
    sandbox_cpu: SandboxCpu,
    xero: XeroEmulator,
    out: Path,
) -> None:
    try:
        # Not a dependency of the project: looked up by name, so the checks pass without it.
        yappi: Any = importlib.import_module("yappi")
    except ImportError:
        raise SystemExit("--profile needs yappi (pip install yappi)") from None

    yappi.set_clock_type("cpu")
    yappi.start(builtins=True)
    result = await one_round(engine, uids, workers, sandbox_cpu, xero)
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
    asyncio.run(bench(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
