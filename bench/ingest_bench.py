"""Ingest throughput of the Custom Integration API on loopback.

    python bench/ingest_bench.py [--chunks 10] [--singles 500] [--batches 20] [--clients 8]
                                 [--fleet 10000]

``intdash serve`` runs in a process of its own (SQLite in a throwaway home), and beside it, in
another, the baseline: a bare Starlette app served by the same uvicorn that stores each pushed
invoice with one INSERT into the same SQLite file (``bare_ingest_app.py``). ``--clients``
concurrent clients push single invoices (one per request), each request timed, ``--singles``
to one server and then as many to the other, ``--chunks`` times in turn, so that a change in
the shared machine's speed falls on both alike: invoices per second, p50 and p99 latency, and
the ratio of the two rates (over the whole run, and the median of the chunks').

Before them, once: batches of 1,000 to intdash, invoices per second and latency per batch,
beside ``GET /v1/health`` (the HTTP stack, the key-less route and one database round trip).

The workspace holds ``--fleet`` other integrations (10,000 Xero ones, not yet connected, by
default: the dashboard's scale), so that a push's cost is measured where it is paid, not in a
workspace of one integration.
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

from sqlalchemy import insert

from intdash.core.config import load_settings
from intdash.core.models import Integration
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
    # made before the clock starts: making a client (its TLS context) blocks the loop, and
    # would be counted in the latency of the requests already in flight
    made = [httpx.AsyncClient(timeout=60) for _ in range(clients)]

    async def worker(client: httpx.AsyncClient) -> None:
        async with client:
            for n in counter:
                started = time.perf_counter()
                await one(client, n)
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(client) for client in made))
    return time.perf_counter() - started, latencies


def line(what: str, count: int, seconds: float, latencies: list[float], unit: str) -> str:
    return (
        f"{what}: {count / seconds:,.0f} {unit}/s, p50 {statistics.median(latencies) * 1000:.1f} "
        f"ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
    )


class Process:
    """A server in a process of its own, up once ``health`` answers."""

    def __init__(self, args: list[str], env: dict[str, str], health: str) -> None:
        self.proc = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        proc = self.proc

        def settled() -> str | None:
            if proc.poll() is not None:
                return "exited"
            try:
                httpx.request("GET" if health.endswith("health") else "POST", health, timeout=1)
            except httpx.TransportError:
                return None
            return "up"

        try:
            state = wait_for(settled, 30, every=0.1)
        except AssertionError:
            state = "timed out"
        if state != "up":
            self.stop()
            raise SystemExit(f"{args[2:4]} did not start: {state}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def singles(
    url: str, headers: dict[str, str], clients: int, count: int, first: int
) -> tuple[float, list[float]]:
    async def single(client: httpx.AsyncClient, n: int) -> None:
        answer = await client.post(f"{url}/v1/invoices", json=invoice(first + n), headers=headers)
        assert answer.status_code == 201, answer.text

    return await run(clients, count, single)


def fleet(ws: Workspace, count: int) -> None:
    """``count`` Xero integrations, not yet connected, written at once."""
    now = ws.clock()
    rows = [
        {"uid": f"ITG-FLEET{n:06d}", "type": "xero", "name": f"Company {n:05d}",
         "created_at": now, "settings": {}, "sync_enabled": True, "delivery_failures": 0}
        for n in range(count)
    ]  # fmt: skip
    with ws.db.write_connection() as conn:
        if rows:
            conn.execute(insert(Integration), rows)


async def measure(args: argparse.Namespace, url: str, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}

    async def health(client: httpx.AsyncClient, _n: int) -> None:
        answer = await client.get(f"{url}/v1/health")
        assert answer.status_code == 200

    async def batch(client: httpx.AsyncClient, n: int) -> None:
        body = {"invoices": [invoice(1_000_000 + n * 1000 + i) for i in range(1000)]}
        answer = await client.post(f"{url}/v1/invoices", json=body, headers=headers)
        assert answer.status_code == 201, answer.text

    base_s, base_l = await run(args.clients, args.singles, health)
    many_s, many_l = await run(args.clients, args.batches, batch)
    print(line("0. GET /v1/health", args.singles, base_s, base_l, "requests"))
    print(line("2. batches of 1,000", args.batches * 1000, many_s, many_l, "invoices"))
    ratio = statistics.median(many_l) / statistics.median(base_l)
    print(f"   p50 per batch vs one health request: {ratio:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=500, help="pushes a chunk, each server")
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--fleet", type=int, default=10_000, help="other integrations in the workspace"
    )
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="intdash-ingest-")
    port, bare_port = free_port(), free_port()
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
    fleet(ws, args.fleet)
    print(f"the workspace holds {args.fleet:,} other integrations")
    uid = ws.integrations.create("custom", name="Bench").integration.uid
    key = ws.keys.create(uid, "bench").key
    bare_uid = ws.integrations.create("custom", name="Bare").integration.uid
    with ws.db.read() as session:
        bare_id = ws.integrations.find(session, bare_uid).id
    database = ws.db.sqlite_path
    assert database is not None and bare_id is not None
    url, bare_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bare_port}"
    serve = [sys.executable, "-m", "intdash", "serve", "--no-scheduler"]
    bare = [sys.executable, "-m", "uvicorn", "bare_ingest_app:app", "--app-dir",
            str(Path(__file__).parent), "--port", str(bare_port), "--log-level", "warning",
            "--no-access-log"]  # fmt: skip
    bare_env = {**env, "BARE_DATABASE": str(database), "BARE_INTEGRATION": str(bare_id)}
    headers = {"Authorization": f"Bearer {key}"}
    ours: list[tuple[float, list[float]]] = []
    floor: list[tuple[float, list[float]]] = []
    server = Process(serve, env, f"{url}/v1/health")
    baseline: Process | None = None
    try:
        baseline = Process(bare, bare_env, f"{bare_url}/v1/health")  # a 404: it is up
        asyncio.run(measure(args, url, key))
        # warm both up, untimed
        asyncio.run(singles(url, headers, args.clients, 200, 9_000_000))
        asyncio.run(singles(bare_url, {}, args.clients, 200, 9_500_000))
        for n in range(args.chunks):
            first = 10_000_000 + n * args.singles
            ours.append(asyncio.run(singles(url, headers, args.clients, args.singles, first)))
            floor.append(asyncio.run(
                singles(bare_url, {}, args.clients, args.singles, 50_000_000 + first)
            ))  # fmt: skip
            rate, base = args.singles / ours[-1][0], args.singles / floor[-1][0]
            print(f"chunk {n + 1}: intdash {rate:,.0f} invoices/s, bare app {base:,.0f}/s: "
                  f"ratio {rate / base:.2f}")  # fmt: skip
        stored = sum(1 for _ in ws.invoices.iter_all(uid))
        assert stored == (args.chunks * args.singles + 200) + args.batches * 1000, stored
        assert ws.invoices.verify().ok
    finally:
        server.stop()
        if baseline is not None:
            baseline.stop()
        ws.close()
    count = args.chunks * args.singles
    rate = count / sum(s for s, _ in ours)
    base = count / sum(s for s, _ in floor)
    ratios = [b / s for (s, _), (b, _) in zip(ours, floor, strict=True)]
    latencies = [lat for _, chunk in ours for lat in chunk]
    bare_latencies = [lat for _, chunk in floor for lat in chunk]
    p50, p99 = statistics.median(latencies) * 1000, percentile(latencies, 0.99) * 1000
    print()
    print(f"| What ({args.clients} clients, single invoices, {count:,} to each server in "
          f"{args.chunks} chunks) | Figure | Beside it | Target | Met |")  # fmt: skip
    print("|---|---|---|---|---|")
    print(f"| Pushes a second | {rate:,.0f}/s | the bare app: {base:,.0f}/s | >= 1,000/s "
          f"| {'yes' if rate >= 1000 else 'no'} |")  # fmt: skip
    print(f"| p50 / p99 latency | {p50:.1f} / {p99:.1f} ms | the bare app: "
          f"{statistics.median(bare_latencies) * 1000:.1f} / "
          f"{percentile(bare_latencies, 0.99) * 1000:.1f} ms | p99 < 25 ms "
          f"| {'yes' if p99 < 25 else 'no'} |")  # fmt: skip
    print(f"| Against the bare Starlette + INSERT app | {rate / base:.2f} (chunks: median "
          f"{statistics.median(ratios):.2f}, {min(ratios):.2f}-{max(ratios):.2f}) | | >= 0.5 "
          f"| {'yes' if rate / base >= 0.5 else 'no'} |")  # fmt: skip


if __name__ == "__main__":
    main()
