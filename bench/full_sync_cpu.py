"""A full sync's CPU, platform by platform, beside the emulator's CPU serving it.

    python bench/full_sync_cpu.py [--platforms xero,myob] [--size 10000] [--rounds 3]

For each platform, ``intdash sandbox`` in a process of its own holding ``--size`` invoices (no
credit notes), and ``--rounds`` full syncs from nothing into new workspaces, each at intdash's
own pace within the platform's limits (Xero: 60 calls a minute, lifted here, as its pages of
1,000 make few calls; MYOB: 8 calls a second, kept: a MYOB sync is bound by it). Printed for
each: the seconds, the calls, intdash's CPU per 1,000 invoices (this process, timed around the
sync) and beside it the emulator's CPU per 1,000 invoices over the same sync (its process's, from
/proc): the baseline, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer_bench import cpu_of
from sync_bench import SandboxProcess, connected, fresh_workspace

from intdash.providers.connect import ConnectService
from intdash.sync.engine import SyncEngine


async def one_sync(
    box: SandboxProcess, platform: str, size: int
) -> tuple[float, float, float, int]:
    """Seconds, intdash's CPU seconds, the emulator's CPU seconds, and the platform's calls."""
    ws = fresh_workspace(box)
    home = os.environ["INTDASH_HOME"]
    try:
        service = ConnectService(ws)
        uid = await connected(ws, platform, service)
        calls = box.control("stats")[platform]["api_calls"]
        served = cpu_of(box.proc.pid)
        started, cpu = time.perf_counter(), time.process_time()
        result = await SyncEngine(ws, service).run(uid)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        served = cpu_of(box.proc.pid) - served
        calls = box.control("stats")[platform]["api_calls"] - calls
        if result.outcome.value != "ok" or result.created != size:
            raise RuntimeError(f"the {platform} sync ended {result.outcome.value}: {result.error}")
        return elapsed, cpu, served, calls
    finally:
        ws.close()
        shutil.rmtree(home, ignore_errors=True)


async def measure(platforms: list[str], size: int, rounds: int) -> None:
    box = SandboxProcess(size, credit_notes=False)
    try:
        box.xero_limits()
        for platform in platforms:
            runs = [await one_sync(box, platform, size) for _ in range(rounds)]
            for n, (seconds, cpu, served, calls) in enumerate(runs, 1):
                print(f"   {platform} round {n}: {size:,} in {seconds:.2f} s, {calls} calls; "
                      f"CPU {cpu:.2f} s, the emulator's {served:.2f} s", flush=True)  # fmt: skip
            ours = statistics.median(cpu for _, cpu, _, _ in runs) / size * 1e6
            theirs = statistics.median(served for _, _, served, _ in runs) / size * 1e6
            seconds = statistics.median(s for s, _, _, _ in runs)
            print(f"{platform}: a full sync of {size:,} invoices in {seconds:.2f} s; intdash's CPU "
                  f"{ours:.0f} ms per 1,000 invoices, the emulator's {theirs:.0f} ms serving them "
                  f"(ratio {ours / theirs:.2f}); load average "
                  f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)  # fmt: skip
    finally:
        box.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--platforms", default="xero,myob", help="of xero and myob")
    parser.add_argument("--size", type=int, default=10_000, help="invoices in the emulator")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    platforms = [p for p in args.platforms.split(",") if p]
    unknown = sorted(set(platforms) - {"xero", "myob"})
    if unknown:
        parser.error(f"--platforms: {', '.join(unknown)} is not xero or myob")
    asyncio.run(measure(platforms, args.size, args.rounds))


if __name__ == "__main__":
    main()
