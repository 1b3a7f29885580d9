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
    parser.add_argument("--singles", type=int, default=3000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
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
    bare_uid = ws.integrations.create("custom", name="Bare").integration.uid
    with ws.db.read() as session:
        bare_id = ws.integrations.find(session, bare_uid).id
    database = ws.db.sqlite_path
    assert database is not None and bare_id is not None
    url = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-m", "intdash", "serve", "--no-scheduler"]
    bare = [sys.executable, "-m", "uvicorn", "bare_ingest_app:app", "--app-dir",
            str(Path(__file__).parent), "--port", str(port), "--log-level", "warning",
            "--no-access-log"]  # fmt: skip
    bare_env = {**env, "BARE_DATABASE": str(database), "BARE_INTEGRATION": str(bare_id)}
    ours: list[tuple[float, list[float]]] = []
    floor: list[tuple[float, list[float]]] = []
    pushed = 0
    try:
        for n in range(args.rounds):
            server = Process(serve, env, f"{url}/v1/health")
            try:
                if n == 0:
                    asyncio.run(measure(args, url, key))
                first = 10_000_000 * (n + 1)
                ours.append(asyncio.run(
                    singles(url, {"Authorization": f"Bearer {key}"}, args.clients,
                            args.singles, first)
                ))  # fmt: skip
                pushed += args.singles
            finally:
                server.stop()
            server = Process(bare, bare_env, f"{url}/v1/health")
            try:
                floor.append(asyncio.run(
                    singles(url, {}, args.clients, args.singles, 50_000_000 * (n + 1))
                ))  # fmt: skip
            finally:
                server.stop()
            rate = args.singles / ours[-1][0]
            base = args.singles / floor[-1][0]
            print(f"round {n + 1}: intdash {rate:,.0f} invoices/s "
                  f"(p99 {percentile(ours[-1][1], 0.99) * 1000:.1f} ms), bare app "
                  f"{base:,.0f}/s (p99 {percentile(floor[-1][1], 0.99) * 1000:.1f} ms): "
                  f"ratio {rate / base:.2f}")  # fmt: skip
        stored = sum(1 for _ in ws.invoices.iter_all(uid))
        assert stored == pushed + args.batches * 1000, stored
        assert ws.invoices.verify().ok
    finally:
        ws.close()
    rates = [args.singles / s for s, _ in ours]
    ratios = [
        args.singles / s / (args.singles / b) for (s, _), (b, _) in zip(ours, floor, strict=True)
    ]
    p99s = [percentile(lat, 0.99) * 1000 for _, lat in ours]
    p50s = [statistics.median(lat) * 1000 for _, lat in ours]
    rate, ratio, p99 = statistics.median(rates), statistics.median(ratios), statistics.median(p99s)
    print()
    print(f"| What ({args.clients} clients, single invoices, median of {args.rounds}) | Figure "
          "| Target | Met |")  # fmt: skip
    print("|---|---|---|---|")
    print(f"| Pushes a second | {rate:,.0f}/s | >= 1,000/s | {'yes' if rate >= 1000 else 'no'} |")
    print(f"| p50 / p99 latency | {statistics.median(p50s):.1f} / {p99:.1f} ms | p99 < 25 ms "
          f"| {'yes' if p99 < 25 else 'no'} |")  # fmt: skip
    print(f"| Against the bare Starlette + INSERT app | {ratio:.2f} | >= 0.5 "
          f"| {'yes' if ratio >= 0.5 else 'no'} |")  # fmt: skip


if __name__ == "__main__":
    main()
