"""A full Xero sync against Xero's real minute limit (60 calls a minute per tenant), with pages
of 100 (what intdash asked for before; Xero's default) and of 1,000 (Xero's maximum since July
2024, intdash's default now), in the same run against one emulator.

    python bench/xero_paging_bench.py [--size 20000] [--pages 100,1000]

Each line prints the invoices, the listing calls, the seconds, and the bound: the least time the
calls could take at 60 a minute (the first 60 go at once, then one a second), so that the
figure is read against the limit rather than against a clock on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sync_bench import SandboxProcess, connected, fresh_workspace

from intdash.providers.connect import ConnectService
from intdash.sync.engine import SyncEngine

PER_MINUTE = 60


def bound_seconds(calls: int) -> float:
    """The least time ``calls`` can take within 60 a minute (a sliding window)."""
    return 0.0 if calls <= PER_MINUTE else 60.0 * ((calls - 1) // PER_MINUTE)


async def one(size: int, page_size: int) -> None:
    box = SandboxProcess(size)
    try:
        box.control("xero/limits", {"window": "minute", "limit": PER_MINUTE, "seconds": 60})
        ws = fresh_workspace(box)
        ws.settings.xero.page_size = page_size
        service = ConnectService(ws)  # Xero's own limits: 60 a minute, 5 in flight
        uid = await connected(ws, "xero", service)
        before = box.control("stats")["xero"]["api_calls"]
        started = time.perf_counter()
        result = await SyncEngine(ws, service).run(uid)
        elapsed = time.perf_counter() - started
        stats = box.control("stats")["xero"]
        calls = stats["api_calls"] - before
        print(
            f"pages of {page_size:>5,}: {result.fetched:,} invoices in {calls} listing calls, "
            f"{elapsed:6.1f} s (bound at {PER_MINUTE} calls a minute: "
            f"{bound_seconds(calls):.0f} s), {stats['rate_limited']} answers 429, "
            f"outcome {result.outcome.value}" + (f" ({result.error})" if result.error else ""),
            flush=True,
        )
        ws.close()
    finally:
        box.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--pages", default="100,1000", help="page sizes to compare")
    args = parser.parse_args()
    for page_size in (int(p) for p in args.pages.split(",")):
        asyncio.run(one(args.size, page_size))


if __name__ == "__main__":
    main()
