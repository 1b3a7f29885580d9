"""Ingest throughput of the Custom Integration API on loopback.

    python bench/ingest_bench.py [--singles 2000] [--batches 50] [--clients 8]

``intdash serve`` runs in a process of its own (SQLite in a throwaway home); ``--clients``
concurrent clients then push, each request timed:

1. single invoices (one per request): invoices per second, p50 and p99 latency;
2. batches of 1,000: invoices per second, p50 and p99 latency per batch;

beside the baseline measured in the same run: ``GET /v1/health`` (the HTTP stack, the key-less
route and one database round trip), requests per second and its p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from intdash.core.config import load_settings
from intdash.core.workspace import Workspace
from intdash.providers.http import httpx
from tests.waiting import wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def invoice(n: int) -> dict[str, Any]:
    return {
        "external_id": f"B-{n}",
        "number": f"INV-{n:07d}",
        "contact": "Kowhai Cafe",
        "issue_date": "2026-11-02",
        "currency": "NZD",
        "tax": "15.00",
        "total": "115.00",
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run(
    clients: int, requests: int, one: Callable[[httpx.AsyncClient, int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """``requests`` calls of ``one`` spread over ``clients`` connections: seconds, latencies."""
    latencies: list[float] = []
    counter = iter(range(requests))

    async def worker() -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            for n in counter:
                started = time.perf_counter()
                await one(client, n)
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - started, latencies


def line(what: str, count: int, seconds: float, latencies: list[float], unit: str) -> str:
    return (
        f"{what}: {count / seconds:,.0f} {unit}/s, p50 {statistics.median(latencies) * 1000:.1f} "
        f"ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
    )


async def measure(args: argparse.Namespace, url: str, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}

    async def health(client: httpx.AsyncClient, _n: int) -> None:
        answer = await client.get(f"{url}/v1/health")
        assert answer.status_code == 200

    async def single(client: httpx.AsyncClient, n: int) -> None:
        answer = await client.post(f"{url}/v1/invoices", json=invoice(n), headers=headers)
        assert answer.status_code == 201, answer.text

    async def batch(client: httpx.AsyncClient, n: int) -> None:
        body = {"invoices": [invoice(1_000_000 + n * 1000 + i) for i in range(1000)]}
        answer = await client.post(f"{url}/v1/invoices", json=body, headers=headers)
        assert answer.status_code == 201, answer.text

    base_s, base_l = await run(args.clients, args.singles, health)
    one_s, one_l = await run(args.clients, args.singles, single)
    many_s, many_l = await run(args.clients, args.batches, batch)
    print(line("0. baseline, GET /v1/health", args.singles, base_s, base_l, "requests"))
    print(line("1. single invoices", args.singles, one_s, one_l, "invoices"))
    print(f"   ratio of requests/s to the baseline: {base_s / one_s:.2f}")
    print(line("2. batches of 1,000", args.batches * 1000, many_s, many_l, "invoices"))
    ratio = statistics.median(many_l) / statistics.median(base_l)
    print(f"   p50 per batch vs one health request: {ratio:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="intdash-ingest-")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTDASH_")}
    env.update(
        INTDASH_HOME=home,
        INTDASH_SERVER__PORT=str(port),
        INTDASH_SERVER__RATE_PER_SECOND="1000000",
        INTDASH_SERVER__RATE_BURST="1000000",
    )
    os.environ.update(env)
    ws = Workspace.open(load_settings(), actor="bench")
    ws.plans.set("scale", monthly_limit=100_000_000)
    uid = ws.integrations.create("custom", name="Bench").integration.uid
    key = ws.keys.create(uid, "bench").key
    server = subprocess.Popen(
        [sys.executable, "-m", "intdash", "serve", "--no-scheduler"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def settled() -> str | None:
            if server.poll() is not None:
                return "exited"
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    return "up"
            except httpx.TransportError:
                pass
            return None

        try:
            state = wait_for(settled, 30, every=0.1)
        except AssertionError:
            state = "timed out"
        if state != "up":
            raise SystemExit("intdash serve did not start")
        asyncio.run(measure(args, url, key))
        stored = sum(1 for _ in ws.invoices.iter_all(uid))
        assert stored == args.singles + args.batches * 1000, stored
        assert ws.invoices.verify().ok
    finally:
        server.terminate()
        server.wait(10)
        ws.close()


if __name__ == "__main__":
    main()
