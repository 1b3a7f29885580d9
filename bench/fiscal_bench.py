"""Signed invoices a second through the V-SDC emulator: intdash's outbox and sender beside a
bare client of the same emulator, in the same run.

    python bench/fiscal_bench.py [--count 400] [--rounds 2] [--concurrency 4]

The emulator runs in a process of its own (``intdash sandbox``: HTTPS, client certificates,
the PAC checked). The bare client posts ready-made invoice requests over one mutual-TLS
connection pool, ``--concurrency`` at a time: the emulator's own bound for this machine. intdash
then fiscalizes as many invoices: stored by the upsert (each queued in the outbox in the same
transaction), then sent by ``FiscalSender.drain`` (claimed outside any transaction, signed,
the whole answer stored). Alternately, rounds in a row. Target: at least 80 % of the bound.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import sample_invoice

from intdash.core.config import load_settings
from intdash.core.workspace import Workspace
from intdash.providers.http import httpx
from intdash.providers.vsdc import Credentials, tls_context
from intdash.sync.fiscalize import FiscalSender, configure
from tests.waiting import wait_for

TARGET = 0.8


class Emulator:
    """``intdash sandbox`` with its V-SDC, and what it printed for it."""

    def __init__(self, folder: Path) -> None:
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("intdash")), "sandbox", "--port", "0",
             "--size", "0", "--vsdc-dir", str(folder)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        printed: dict[str, str] = {}
        for line in self.proc.stdout:
            if m := re.match(r"export (INTDASH_FISCAL__\w+)=(\S+)", line):
                printed[m[1]] = m[2]
            elif m := re.match(r"# V-SDC certificate \(\.pfx\): (\S+)", line):
                printed["pfx"] = m[1]
            elif m := re.match(r"# V-SDC certificate password: (\S+)", line):
                printed["password"] = m[1]
            elif m := re.match(r"# V-SDC PAC: (\S+)", line):
                printed["pac"] = m[1]
            if len(printed) == 5:
                break
        if len(printed) != 5:
            self.stop()
            raise SystemExit(f"intdash sandbox did not print its V-SDC: {sorted(printed)}")
        self.url = printed["INTDASH_FISCAL__VSDC_URL"]
        self.ca = printed["INTDASH_FISCAL__VSDC_CA"]
        self.credentials = Credentials(
            Path(printed["pfx"]).read_bytes(), printed["password"], printed["pac"]
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def request(n: int) -> dict[str, Any]:
    """What intdash sends for one of the benchmark's invoices (115.00, 15 % VAT: label A)."""
    return {
        "DateAndTimeOfIssue": "2026-01-05T00:00:00",
        "Cashier": "intdash",
        "InvoiceType": 0,
        "TransactionType": 0,
        "InvoiceNumber": f"INV-{n:07d}",
        "Payment": [{"Amount": 115.0, "PaymentType": 0}],
        "Items": [
            {"Name": "Invoice", "Quantity": 1.0, "Discount": 0.0, "Labels": ["A"],
             "UnitPrice": 115.0, "TotalAmount": 115.0}
        ],
    }  # fmt: skip


async def bare(emulator: Emulator, count: int, first: int, concurrency: int) -> float:
    context = tls_context(emulator.credentials, Path(emulator.ca))
    numbers = iter(range(first, first + count))
    headers = {"PAC": emulator.credentials.pac, "Accept-Language": "en-US"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=emulator.url, verify=context, timeout=30, limits=limits
    ) as client:
        await client.get("/api/v3/status", headers=headers)  # connected, as intdash's client is

        async def worker() -> None:
            for n in numbers:
                answer = await client.post(
                    "/api/v3/invoices",
                    json=request(n),
                    headers={**headers, "RequestId": f"{n:032x}"},
                )
                assert answer.status_code == 200, answer.text

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


def ours(emulator: Emulator, home: Path, count: int, first: int) -> float:
    os.environ.update(
        INTDASH_HOME=str(home),
        INTDASH_FISCAL__REGISTER="vsdc",
        INTDASH_FISCAL__VSDC_URL=emulator.url,
        INTDASH_FISCAL__VSDC_CA=emulator.ca,
    )
    os.environ.pop("INTDASH_DATABASE_URL", None)
    ws = Workspace.open(load_settings(), actor="bench")
    try:
        creds = emulator.credentials
        asyncio.run(configure(ws, creds.pfx, creds.password, creds.pac))
        ws.plans.set("scale", monthly_limit=100_000_000)
        uid = ws.integrations.create("custom").integration.uid
        with ws.db.read() as session:
            integration_id = ws.integrations.find(session, uid).id
        assert integration_id is not None
        invoices = [sample_invoice(first + n) for n in range(count)]

        async def run() -> float:
            sender = FiscalSender(ws)
            await sender.client()  # its mutual-TLS context made, as in a running serve
            started = time.perf_counter()
            with ws.db.write() as session:
                ws.invoices.upsert(session.connection(), integration_id, invoices, ws.clock())
            signed = 0
            while signed < count:
                done = await sender.drain()
                if not done:
                    raise SystemExit(f"the sender stopped: {sender.last_problem}")
                signed += done
            return count / (time.perf_counter() - started)

        rate = asyncio.run(run())
        assert ws.fiscal.counts().signed == count
        return rate
    finally:
        ws.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="as intdash's sender")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="intdash-fiscal-"))
    emulator = Emulator(folder / "vsdc")
    results: list[tuple[float, float]] = []
    try:
        wait_for(lambda: emulator.proc.poll() is None, 5)
        for n in range(args.rounds):
            base = asyncio.run(bare(emulator, args.count, 1_000_000 * (n + 1), args.concurrency))
            rate = ours(emulator, folder / f"home-{n}", args.count, 10_000_000 * (n + 1))
            results.append((rate, base))
            print(f"round {n + 1}: intdash {rate:,.0f} signed/s, bare client {base:,.0f}/s, "
                  f"ratio {rate / base:.2f}")  # fmt: skip
    finally:
        emulator.stop()
        shutil.rmtree(folder, ignore_errors=True)
    rate = statistics.median(r for r, _ in results)
    ratio = statistics.median(r / b for r, b in results)
    print()
    print(f"| What (median of {len(results)}) | Figure | Target | Met |")
    print("|---|---|---|---|")
    print(f"| Invoices signed a second through the emulator, outbox and sender | {rate:,.0f}/s "
          "| | |")  # fmt: skip
    print(f"| ... against a bare client of the emulator | {ratio:.2f} | >= {TARGET} "
          f"| {'yes' if ratio >= TARGET else 'no'} |")  # fmt: skip


if __name__ == "__main__":
    main()
