"""Bulk upsert on SQLite: intdash's upsert of new invoices with their fiscal records, beside a
plain ``executemany`` of the same rows into the same schema with the same indexes.

    python bench/bulk_bench.py [--count 100000] [--batch 1000] [--rounds 3] [--profile FILE]

Each round makes two throwaway workspaces (every migration applied: the same tables, indexes
and pragmas) and, alternately ``--chunk`` batches at a time (so that a change in the shared
machine's speed falls on both alike), fills one through ``InvoiceService.upsert`` (batches of
``--batch``, each in one write transaction, as a sync's pages are) and the other with the
driver's ``executemany`` of the rows intdash stored, read back from the first: the invoices and
their fiscal records, batch by batch in the same transactions. The baseline does no Python
work a row but the driver's; it is the floor the upsert is measured against.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sqlite3
import statistics
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
from intdash.core.invoices import InvoiceData
from intdash.core.workspace import Workspace

TARGET_RATE = 100_000
TARGET_RATIO = 0.5


def workspace(home: Path) -> tuple[Workspace, int]:
    os.environ["INTDASH_HOME"] = str(home)
    os.environ.pop("INTDASH_DATABASE_URL", None)
    ws = Workspace.open(load_settings(), actor="bench")
    ws.plans.set("scale", monthly_limit=100_000_000)
    uid = ws.integrations.create("custom").integration.uid
    with ws.db.read() as session:
        integration_id = ws.integrations.find(session, uid).id
    assert integration_id is not None
    return ws, integration_id


def ours(ws: Workspace, integration_id: int, invoices: Sequence[InvoiceData], batch: int,
         room: int | None) -> tuple[float, int | None]:  # fmt: skip
    """Seconds to upsert ``invoices`` in batches, each in one write transaction; the room left."""
    started = time.perf_counter()
    for start in range(0, len(invoices), batch):
        with ws.db.write() as session:
            room = ws.invoices.upsert(
                session.connection(), integration_id, invoices[start : start + batch],
                ws.clock(), room,
            ).room  # fmt: skip
    return time.perf_counter() - started, room


def stored_since(db: sqlite3.Connection, table: str, after: int) -> tuple[list[str], list[Any]]:
    """The columns of ``table`` and its rows after rowid ``after``, in order."""
    cursor = db.execute(f"SELECT * FROM {table} WHERE rowid > ? ORDER BY rowid", (after,))  # noqa: S608 - fixed names
    return [c[0] for c in cursor.description], cursor.fetchall()


class Baseline:
    """executemany of the same rows into the same tables, batch by batch, as intdash's
    connections are set up (WAL, synchronous NORMAL, foreign keys on)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            self.db.execute(f"PRAGMA {pragma}")

    def insert(self, tables: dict[str, tuple[list[str], list[Any]]], batch: int) -> float:
        """Seconds to insert the rows of ``tables`` (as many of each), ``batch`` a transaction."""
        statements = {
            table: f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - fixed names
            f"VALUES ({', '.join('?' for _ in columns)})"
            for table, (columns, _) in tables.items()
        }
        count = len(next(iter(tables.values()))[1])
        started = time.perf_counter()
        for start in range(0, count, batch):
            self.db.execute("BEGIN IMMEDIATE")
            for table, (_, rows) in tables.items():
                self.db.executemany(statements[table], rows[start : start + batch])
            self.db.execute("COMMIT")
        return time.perf_counter() - started


def one_round(count: int, batch: int, chunk: int, profile: Path | None) -> tuple[float, float]:
    """intdash's rate and the baseline's, measured alternately ``chunk`` batches at a time (so
    that a change in the machine's speed falls on both alike)."""
    home = Path(tempfile.mkdtemp(prefix="intdash-bulk-"))
    try:
        ws, integration_id = workspace(home / "ours")
        base_ws, base_integration = workspace(home / "base")
        assert base_integration == integration_id
        base_path, path = base_ws.db.sqlite_path, ws.db.sqlite_path
        assert base_path is not None and path is not None
        base_ws.close()
        base = Baseline(base_path)
        reader = sqlite3.connect(path)
        invoices = [sample_invoice(n) for n in range(count)]
        profiler = cProfile.Profile() if profile else None
        spent = floor = 0.0
        room: int | None = None
        seen = {"invoices": 0, "fiscal_records": 0}
        step = batch * chunk
        for start in range(0, count, step):
            if profiler:
                profiler.enable()
            seconds, room = ours(ws, integration_id, invoices[start : start + step], batch, room)
            if profiler:
                profiler.disable()
            spent += seconds
            tables = {t: stored_since(reader, t, after) for t, after in seen.items()}
            assert len(tables["invoices"][1]) == len(tables["fiscal_records"][1])
            for t, (columns, rows) in tables.items():
                seen[t] = rows[-1][columns.index("id" if t == "invoices" else "seq")]
            floor += base.insert(tables, batch)
        if profiler and profile:
            with profile.open("w") as out:
                pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(40)
        assert ws.invoices.verify().records == count
        reader.close()
        base.db.close()
        ws.close()
        return count / spent, count / floor
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--chunk", type=int, default=10, help="batches timed at a time, alternately"
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile intdash's part (one round)")
    args = parser.parse_args(argv)
    results = []
    for n in range(1 if args.profile else args.rounds):
        rate, floor = one_round(
            args.count, args.batch, args.chunk, Path(args.profile) if args.profile else None
        )
        results.append((rate, floor))
        print(f"round {n + 1}: intdash {rate:,.0f} invoices/s, executemany {floor:,.0f}/s, "
              f"ratio {rate / floor:.2f}")  # fmt: skip
    rate = statistics.median(r for r, _ in results)
    ratio = statistics.median(r / f for r, f in results)
    print()
    print(f"| What | Median of {len(results)} | Target | Met |")
    print("|---|---|---|---|")
    print(f"| Bulk upsert with fiscal records, batches of {args.batch:,} | {rate:,.0f} invoices/s "
          f"| >= {TARGET_RATE:,}/s | {'yes' if rate >= TARGET_RATE else 'no'} |")  # fmt: skip
    print(f"| ... against executemany of the same rows, same schema and indexes | {ratio:.2f} "
          f"| >= {TARGET_RATIO} | {'yes' if ratio >= TARGET_RATIO else 'no'} |")  # fmt: skip


if __name__ == "__main__":
    main()
