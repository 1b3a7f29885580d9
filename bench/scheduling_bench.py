"""Scheduling benchmarks: workers on one PostgreSQL database, crash takeover, Xero webhooks.

    python bench/scheduling_bench.py [--quick] [--integrations 1000] [--rounds 3] [--workers 4]

``--quick``: 200 integrations, one round of each, two kills, five edits.

The Xero emulator runs in this process (its limits out of the way for figures 1 and 2, so that
what is measured is intdash's scheduling, not the platform's patience); each ``intdash serve``
runs in a process of its own, its log in a file. PostgreSQL comes from
``INTDASH_BENCH_DATABASE_URL`` (default ``postgresql://intdash@127.0.0.1:55434/intdash_test``),
in a schema the benchmark makes and drops; without it figures 1 and 2 are skipped and figure 3
runs on SQLite.

1. No-change syncs a second: N integrations (one organisation each, all synced once) made due
   at once, then synced by ONE ``intdash serve`` and by TWO, alternately, a few rounds; the rate
   is N over the time from the round's first run starting to every integration having a new run
   ok (target: two at least 1.8 times one). On the Starter plan, whose hourly slots keep
   second syncs out of a round. Beside it, the CPU a no-change sync costs: the serves' (from
   /proc), the PostgreSQL server's (its processes, when it is local) and the emulator's (its
   server thread's own CPU clock), and what that bounds on this machine's cores.
2. Crash takeover: serve A is mid-sync on some integrations (their calls held at the emulator's
   gate) when it is SIGKILLed; serve B runs beside it. The seconds from the kill until B has
   recorded an ok run of every one of them (target: under 5), and what made B take them.
3. A Xero webhook event's latency to the stored invoice: Scale plan, the webhook key set, the
   emulator posting signed events to a serve's ``/v1/webhooks/xero``; an invoice is edited in
   the emulator, and the time until the edit is in the invoices table is taken, median and max
   of several (target: under 3 s).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, func, make_url, text, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select

from intdash.core.config import load_settings
from intdash.core.models import Integration, Invoice, SyncRun
from intdash.core.workspace import Workspace
from intdash.providers.connect import ConnectService
from intdash.providers.http import httpx
from intdash.sandbox.server import Sandbox
from intdash.sandbox.xero import XeroEmulator
from intdash.sync.engine import SyncEngine
from intdash.sync.scheduler import SyncScheduler
from tests.providers import clone
from tests.waiting import wait_for

DEFAULT_PG = "postgresql://intdash@127.0.0.1:55434/intdash_test"
WEBHOOK_KEY = "bench-" + secrets.token_urlsafe(48)
INTDASH = str(Path(sys.executable).with_name("intdash"))


# -- processes, ports, environment -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def use_env(values: dict[str, str]) -> None:
    """This process's intdash settings are exactly ``values`` (nothing inherited)."""
    for name in [n for n in os.environ if n.startswith("INTDASH_")]:
        del os.environ[name]
    os.environ.update(values)


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Serve:
    """``intdash serve`` (scheduler and HTTP server) on a free port, its log in a file (a pipe
    nobody reads would stop it when full)."""

    def __init__(self, env: dict[str, str], log: Path, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        full = {
            **{k: v for k, v in os.environ.items() if not k.startswith("INTDASH_")},
            **env,
            "INTDASH_SERVER__PORT": str(self.port),
            "INTDASH_SYNC__WORKERS": str(workers),
        }
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [INTDASH, "serve"],
                env=full,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.cpu_at_start = 0.0

    def wait_up(self, timeout: float = 60) -> Serve:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise SystemExit(f"intdash serve exited: {self.log.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout, lambda: f"intdash serve did not start: {self.log}", every=0.05)
        self.cpu_at_start = cpu_seconds(self.proc.pid)
        return self

    def cpu(self) -> float:
        """CPU used since it answered its first health check."""
        return cpu_seconds(self.proc.pid) - self.cpu_at_start

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


class SandboxCpu:
    """The CPU of the sandbox's server thread (its event loop runs every API handler), read
    through the thread's own CPU clock: cheap, and nothing else runs on that thread."""

    def __init__(self) -> None:
        found = [t for t in threading.enumerate() if t.name == "sandbox" and t.ident]
        self.clock = time.pthread_getcpuclockid(found[0].ident or 0) if found else None

    def seconds(self) -> float | None:
        return None if self.clock is None else time.clock_gettime(self.clock)


class ServerCpu:
    """The CPU of the local PostgreSQL server, all its processes: the postmaster with its ended
    children, and its live children (backends come and go). None when it is not local or
    /proc does not show it. Other users of the same server count too."""

    def __init__(self, ws: Workspace) -> None:
        self.postmaster: int | None = None
        try:
            with ws.db.read() as session:
                backend = session.connection().execute(text("SELECT pg_backend_pid()")).scalar()
            status = Path(f"/proc/{backend}/status").read_text()
            ppid = int(next(x for x in status.splitlines() if x.startswith("PPid:")).split()[1])
            if Path(f"/proc/{ppid}/comm").read_text().strip() in ("postgres", "postmaster"):
                self.postmaster = ppid
        except (OSError, StopIteration, ValueError):
            self.postmaster = None

    def seconds(self) -> float | None:
        if self.postmaster is None:
            return None
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            pid, ppid = int(entry.name), int(fields[1])
            if pid == self.postmaster:
                total += sum(int(f) for f in fields[11:15])  # its own, and ended children's
            elif ppid == self.postmaster:
                total += int(fields[11]) + int(fields[12])
        return total / tick


# -- databases -----------------------------------------------------------------------------------


def pg_reachable(url: str) -> str | None:
    """None when PostgreSQL at ``url`` answers; else why not."""
    engine = create_engine(
        make_url(url).set(drivername="postgresql+psycopg"), connect_args={"connect_timeout": 3}
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means: skip
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        engine.dispose()
    return None


@contextmanager
def pg_schema(url: str) -> Iterator[str]:
    """A schema of its own on the server (dropped afterwards): the URL that uses it."""
    schema = f"bench_{secrets.token_hex(6)}"
    base = make_url(url).set(drivername="postgresql+psycopg")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def world(
    db_url: str | None, sandbox: Sandbox, extra: dict[str, str] | None = None
) -> Iterator[tuple[Workspace, dict[str, str], Path]]:
    """A throwaway home and database, intdash pointed at ``sandbox``: the workspace, the
    environment every serve gets, and the home (for the serves' logs)."""
    home = Path(tempfile.mkdtemp(prefix="intdash-sched-"))
    env = {
        "INTDASH_HOME": str(home),
        "INTDASH_DATABASE_URL": db_url or f"sqlite:///{home / 'intdash.db'}",
        **sandbox.settings(f"http://127.0.0.1:{free_port()}/callback"),
        **(extra or {}),
    }
    use_env(env)
    try:
        ws = Workspace.open(load_settings(), actor="bench")
        try:
            yield ws, env, home
        finally:
            ws.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def xero_sandbox(size: int, *, unlimited: bool) -> Sandbox:
    """The sandbox; ``unlimited``: Xero's rate limits out of the way. Its tokens outlive the
    benchmark (every clone shares one, so no refresh may rotate it)."""
    if unlimited:
        xero = XeroEmulator(
            size=size, minute_limit=10**7, day_limit=10**8, concurrent=10**4, access_ttl=86_400
        )
    else:
        xero = XeroEmulator(size=size, access_ttl=86_400)
    return Sandbox(xero=xero).start()


# -- connecting many organisations at once -----------------------------------------------------


async def consent(url: str) -> str:
    """What a browser does with the authorisation URL: where it is sent next."""
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 302, response.text
    return str(response.headers["location"])


async def connect(ws: Workspace, uid: str) -> ConnectService:
    service = ConnectService(ws)
    flow = await service.begin(uid)
    await service.complete(flow, await consent(flow.url))
    return service


async def fleet(ws: Workspace, sandbox: Sandbox, count: int) -> list[int]:
    """``count`` Xero integrations, one organisation each (Xero's per-organisation limits
    then do not decide how fast they sync), all due now: their ids."""
    tenants = [
        sandbox.xero.add_organisation(f"Org {n}", size=20).tenant_id for n in range(count - 1)
    ]
    first = ws.integrations.create("xero").integration.uid
    service = await connect(ws, first)
    sandbox.xero.consent_picks = tenants  # the user consents again and ticks them all
    await consent((await service.begin(first)).url)
    uids = clone(ws, first, tenants, prefix="xero-b")
    with ws.db.read() as session:
        found = session.exec(select(col(Integration.id)).where(col(Integration.uid).in_(uids)))
        return [i for i in found if i is not None]


# -- reading runs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    integration_id: int
    outcome: str
    started_at: datetime
    ended_at: datetime | None
    error: str | None


def runs_since(ws: Workspace, since: datetime, ids: Sequence[int] | None = None) -> list[Run]:
    runs = SyncRun.__table__  # type: ignore[attr-defined]
    query = sa_select(
        runs.c.integration_id, runs.c.outcome, runs.c.started_at, runs.c.ended_at, runs.c.error
    ).where(runs.c.started_at >= since)
    if ids is not None:
        query = query.where(runs.c.integration_id.in_(list(ids)))
    with ws.db.read() as session:
        return [Run(*row) for row in session.connection().execute(query)]


def ok_count(ws: Workspace, since: datetime, ids: Sequence[int] | None = None) -> int:
    query = (
        select(func.count(func.distinct(SyncRun.integration_id)))
        .where(col(SyncRun.started_at) >= since)
        .where(col(SyncRun.outcome) == "ok")
    )
    if ids is not None:
        query = query.where(col(SyncRun.integration_id).in_(list(ids)))
    with ws.db.read() as session:
        return int(session.exec(query).one())


def make_due(ws: Workspace, ids: Sequence[int] | None = None) -> datetime:
    """``UPDATE integrations SET next_sync_at = now`` (of ``ids``, or all): the moment."""
    now = ws.clock()
    statement = update(Integration).values(next_sync_at=now)
    if ids is not None:
        statement = statement.where(col(Integration.id).in_(list(ids)))
    with ws.db.write() as session:
        session.execute(statement)
    return now


def park(ws: Workspace) -> None:
    """Every integration's next sync a day away (nothing due but what a figure makes due)."""
    with ws.db.write() as session:
        session.execute(update(Integration).values(next_sync_at=ws.clock() + timedelta(days=1)))


def next_syncs(ws: Workspace, ids: Sequence[int]) -> list[datetime]:
    with ws.db.read() as session:
        found = session.exec(
            select(col(Integration.next_sync_at)).where(col(Integration.id).in_(list(ids)))
        ).all()
    return [at for at in found if at is not None]


def fmt_range(values: Sequence[float], unit: str = "", digits: int = 2) -> str:
    shown = ", ".join(f"{v:.{digits}f}" for v in values)
    return f"median {statistics.median(values):.{digits}f}{unit} ({shown})"


# -- 1. no-change syncs a second, one serve and two ----------------------------------------------


@dataclass
class Round:
    serves: int
    rate: float  # integrations / span
    span: float  # first run started to every integration's new ok run ended
    wall: float  # serves started to every integration's new ok run
    extra: int  # runs beyond one ok per integration (a slot falling inside the round)
    failed: Counter[str]
    serve_cpu: float  # CPU seconds of the serves, all together
    calls: int  # API calls the emulator answered
    sandbox_cpu: float | None  # CPU seconds of the emulator's thread
    server_cpu: float | None  # CPU seconds of the PostgreSQL server
    overlaps: int  # integrations with two runs at once (two serves must never do that)


def sync_round(
    ws: Workspace,
    env: dict[str, str],
    home: Path,
    sandbox: Sandbox,
    ids: list[int],
    serves: int,
    workers: int,
    meter: SandboxCpu,
    server: ServerCpu,
) -> Round:
    mark = make_due(ws)
    calls_before, cpu_before = sandbox.xero.api_calls, meter.seconds()
    server_before = server.seconds()
    started = time.monotonic()
    procs = [Serve(env, home / f"serve-{n}.log", workers) for n in range(serves)]
    try:
        for proc in procs:
            proc.wait_up()

        def done() -> bool:
            for proc in procs:
                if proc.proc.poll() is not None:
                    raise SystemExit(f"intdash serve exited: {proc.log.read_text()[-3000:]}")
            return ok_count(ws, mark) >= len(ids)

        wait_for(done, 900, "the round did not finish", every=0.2)
        wall = time.monotonic() - started
        cpu_after = meter.seconds()
        server_after = server.seconds()
        calls = sandbox.xero.api_calls - calls_before
        serve_cpu = sum(proc.cpu() for proc in procs)
    finally:
        for proc in procs:
            proc.stop()
    runs = runs_since(ws, mark)
    first_ok: dict[int, Run] = {}
    for run in sorted(runs, key=lambda r: r.started_at):
        if run.outcome == "ok" and run.integration_id not in first_ok:
            first_ok[run.integration_id] = run
    begin = min(r.started_at for r in runs)
    end = max(r.ended_at for r in first_ok.values() if r.ended_at is not None)
    span = (end - begin).total_seconds()
    failed = Counter(f"{r.outcome}: {str(r.error)[:80]}" for r in runs if r.outcome != "ok")
    sandbox_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    server_cpu = (
        None if server_before is None or server_after is None else server_after - server_before
    )
    return Round(
        serves, len(ids) / span, span, wall, len(runs) - len(first_ok), failed, serve_cpu,
        calls, sandbox_cpu, server_cpu, overlapping(runs),
    )  # fmt: skip


def overlapping(runs: list[Run]) -> int:
    """How many integrations had a run start before their previous one ended."""
    spans: dict[int, list[Run]] = {}
    for run in runs:
        spans.setdefault(run.integration_id, []).append(run)
    found = 0
    for each in spans.values():
        each.sort(key=lambda r: r.started_at)
        if any(a.ended_at is None or a.ended_at > b.started_at for a, b in pairwise(each)):
            found += 1
    return found


def per_sync_ms(values: Sequence[float | None], syncs: int) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) / syncs * 1000 if known else None


def figures_one_and_two(
    db_url: str, count: int, rounds: int, workers: int, takeovers: int, held: int
) -> None:
    sandbox = xero_sandbox(20, unlimited=True)
    meter = SandboxCpu()
    try:
        with world(db_url, sandbox) as (ws, env, home):
            server = ServerCpu(ws)
            # Starter polls hourly: a round's syncs move each integration's next sync to a slot
            # up to an hour away, so hardly any falls inside a round (on Scale's 5-minute slots
            # a minute-long round would sync a fifth of them twice)
            ws.plans.set("starter")
            ids = asyncio.run(fleet(ws, sandbox, count))
            print(
                f"1. {len(ids):,} Xero integrations on PostgreSQL, one organisation each, "
                f"INTDASH_SYNC__WORKERS={workers} per serve; first syncs...",
                flush=True,
            )
            first = sync_round(ws, env, home, sandbox, ids, 2, workers, meter, server)
            print(
                f"   first syncs (20 invoices each), two serves: {first.rate:,.1f}/s; "
                "now no-change rounds, alternating one serve and two:",
                flush=True,
            )
            results: list[Round] = []
            for n in range(rounds):
                for serves in (1, 2) if n % 2 == 0 else (2, 1):
                    r = sync_round(ws, env, home, sandbox, ids, serves, workers, meter, server)
                    results.append(r)
                    cpu = f"CPU per sync: serves {r.serve_cpu / len(ids) * 1000:.1f} ms"
                    if r.server_cpu is not None:
                        cpu += f", PostgreSQL {r.server_cpu / len(ids) * 1000:.1f} ms"
                    if r.sandbox_cpu is not None:
                        cpu += f", emulator {r.sandbox_cpu / len(ids) * 1000:.1f} ms"
                    print(
                        f"   round {n + 1}, {serves} serve{'s' if serves > 1 else ''}: "
                        f"{r.rate:,.1f} syncs/s ({r.span:.1f} s from the first run's start, "
                        f"{r.wall:.1f} s from starting the serves; {r.calls / len(ids):.1f} API "
                        f"calls per sync); {cpu}"
                        + (f"; {r.extra} runs more (a slot inside the round)" if r.extra else "")
                        + (f"; not ok: {dict(r.failed)}" if r.failed else "")
                        + (f"; {r.overlaps} SYNCED TWICE AT ONCE" if r.overlaps else ""),
                        flush=True,
                    )
            one = [r.rate for r in results if r.serves == 1]
            two = [r.rate for r in results if r.serves == 2]
            ratio = statistics.median(two) / statistics.median(one)
            print(
                f"1. no-change syncs a second: one serve {fmt_range(one, '/s', 1)}; "
                f"two serves {fmt_range(two, '/s', 1)}; ratio {ratio:.2f} "
                f"(target >= 1.8: {'met' if ratio >= 1.8 else 'NOT met'}); integrations "
                f"synced twice at once: {sum(r.overlaps for r in results)}"
            )
            syncs = len(ids)
            serve_ms = per_sync_ms([r.serve_cpu for r in results], syncs) or 0.0
            server_ms = per_sync_ms([r.server_cpu for r in results], syncs)
            sandbox_ms = per_sync_ms([r.sandbox_cpu for r in results], syncs)
            calls = statistics.median(r.calls for r in results) / syncs
            if sandbox_ms is not None:
                print(
                    f"   the Xero emulator's own CPU: {sandbox_ms / calls * 1000:,.0f} us per API "
                    "call (its server thread's CPU clock; it runs in this process)"
                )
            if server_ms is not None:
                total = serve_ms + server_ms + (sandbox_ms or 0.0)
                print(
                    f"   CPU per no-change sync (medians): intdash serve {serve_ms:.1f} ms, "
                    f"PostgreSQL {server_ms:.1f} ms, emulator {sandbox_ms or 0.0:.1f} ms: "
                    f"{total:.1f} ms. Bounds on this machine ({os.cpu_count()} cores, nothing "
                    f"else running): one serve {1000 / serve_ms:.0f}/s (one core: its "
                    f"interpreter), all of it {1000 * (os.cpu_count() or 1) / total:.0f}/s"
                )
            load = os.getloadavg()
            print(f"   load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
            figure_two(ws, env, home, sandbox, ids, takeovers, held)
    finally:
        sandbox.stop()


# -- 2. the takeover of a SIGKILLed serve's integrations ---------------------------------------

ON_ITS_OWN = 20.0  # seconds B is given to take them over with nothing done after the kill


def tick_seconds() -> float:
    """How often a serve's dispatcher ticks (SyncScheduler's default, which serve uses)."""
    tick = inspect.signature(SyncScheduler.__init__).parameters["tick"].default
    return float(tick.total_seconds()) if isinstance(tick, timedelta) else 5.0


@dataclass
class Takeover:
    by_itself: float | None  # seconds from the kill, with nothing done after it
    after_update: float | None  # seconds from the UPDATE that made them due, when needed
    from_kill: float  # seconds from the kill until B's ok runs of them all
    waiting_for_slot: float | None  # without the UPDATE: seconds until their next slot
    interrupted: list[str]  # how the dead runs were recorded
    found_by_b: int  # lines of B's log saying it found a run left by a stopped process


def takeover(
    ws: Workspace,
    env: dict[str, str],
    home: Path,
    sandbox: Sandbox,
    ids: list[int],
    n: int,
    delay: float,
) -> Takeover:
    gate = sandbox.xero.faults
    serve_b: Serve | None = None
    park(ws)  # only these are due: A claims them and nothing else
    make_due(ws, ids)
    gate.hold(after=0)
    calls_before = sandbox.xero.api_calls
    a = Serve(env, home / f"serve-A{n}.log", workers=len(ids))
    try:
        a.wait_up()

        def a_held() -> bool:
            with ws.db.read() as session:
                running = session.exec(
                    select(func.count())
                    .select_from(SyncRun)
                    .where(col(SyncRun.integration_id).in_(ids))
                    .where(col(SyncRun.outcome) == "running")
                ).one()
            return int(running) == len(ids) and sandbox.xero.api_calls - calls_before >= len(ids)

        wait_for(a_held, 60, "serve A did not start its syncs", every=0.05)
        serve_b = Serve(env, home / f"serve-B{n}.log", workers=len(ids)).wait_up()
        # B has ticked (it claims at start: nothing of A's is due); the kill falls at another
        # moment of B's tick each round
        time.sleep(delay)
        a.kill()
        killed, killed_at = time.monotonic(), ws.clock()
        gate.release()

        def taken() -> bool:
            if serve_b is not None and serve_b.proc.poll() is not None:
                raise SystemExit(f"serve B exited: {serve_b.log.read_text()[-3000:]}")
            return ok_count(ws, killed_at, ids) == len(ids)

        by_itself: float | None = None
        after_update: float | None = None
        waiting: float | None = None
        try:
            wait_for(taken, ON_ITS_OWN, every=0.02)
            by_itself = time.monotonic() - killed
        except AssertionError:
            slots = next_syncs(ws, ids)
            now = ws.clock()
            waiting = min((at - now).total_seconds() for at in slots) if slots else None
            updated = time.monotonic()
            make_due(ws, ids)
            wait_for(taken, 60, "serve B did not take them over after the UPDATE", every=0.02)
            after_update = time.monotonic() - updated
        from_kill = time.monotonic() - killed
        dead = [
            f"{r.outcome}: {r.error}"
            for r in runs_since(ws, killed_at - timedelta(minutes=5), ids)
            if r.outcome not in ("ok", "running") and r.started_at < killed_at
        ]
    finally:
        gate.release()
        if a.proc.poll() is None:
            a.kill()
        if serve_b is not None:
            serve_b.stop()
    said = (
        serve_b.log.read_text(errors="replace").lower().count("stopped process") if serve_b else 0
    )
    return Takeover(by_itself, after_update, from_kill, waiting, dead, said)


def figure_two(
    ws: Workspace,
    env: dict[str, str],
    home: Path,
    sandbox: Sandbox,
    ids: list[int],
    rounds: int,
    held: int,
) -> None:
    print(
        f"2. serve A mid-sync on {held} integrations (held at the emulator's gate), SIGKILLed; "
        "serve B running beside it:",
        flush=True,
    )
    results: list[Takeover] = []
    tick = tick_seconds()
    for n in range(rounds):
        own = ids[1 + n * held : 1 + (n + 1) * held]
        t = takeover(ws, env, home, sandbox, own, n, 0.5 + tick * (n + 0.5) / rounds)
        results.append(t)
        if t.by_itself is not None:
            how = f"B took them over by itself in {t.by_itself:.2f} s"
        else:
            slot = f"{t.waiting_for_slot:,.0f} s away" if t.waiting_for_slot else "unknown"
            how = (
                f"B did NOT take them over within {ON_ITS_OWN:.0f} s: their next sync stayed "
                f"at their next slot (the nearest {slot}); once made due again (their "
                f"next_sync_at set to now) B took them in {t.after_update:.2f} s"
            )
        reasons = Counter(t.interrupted)
        print(
            f"   round {n + 1}: {how}; {t.from_kill:.2f} s from the kill to B's ok runs of all "
            f"{held}; A's runs recorded: {dict(reasons)}; lines of B's log on runs left by a "
            f"stopped process: {t.found_by_b}",
            flush=True,
        )
    if all(t.by_itself is not None for t in results):
        lease = ws.settings.sync.claim_seconds
        print(
            "   what makes B take them: A's claims moved their next sync to their next slot, so "
            f"they are not due; B's tick (every {tick:g} s) finds runs still 'running' whose "
            "claim no live process holds and makes them due, then claims them. B gets each "
            "claim because A's PostgreSQL session, and the advisory lock with it, ended with A "
            "(on one host the lease's pid says so too): A's runs are recorded 'stopped mid-run', "
            f"not 'stopped renewing its claim' as the lapse of the {lease}-second lease would "
            "have them"
        )
    else:
        print(
            "   nothing brings a killed serve's integrations forward: they wait for their next "
            "slot (the claim itself is free at once: once due, B took them within a tick)"
        )
    alone = [t.by_itself for t in results if t.by_itself is not None]
    kill = [t.from_kill for t in results]
    if len(alone) == len(results):
        met = "met" if max(alone) < 5 else "NOT met"
        print(
            f"2. takeover of a SIGKILLed serve's integrations: {fmt_range(alone, ' s')}, "
            f"max {max(alone):.2f} s (target < 5 s: {met})"
        )
    else:
        print(
            f"2. takeover of a SIGKILLed serve's integrations: NOT by itself in "
            f"{len(results) - len(alone)} of {len(results)} rounds (their next sync stays at "
            f"their next slot, up to the plan's interval away); from the kill, with the UPDATE "
            f"after {ON_ITS_OWN:.0f} s: {fmt_range(kill, ' s')} (target < 5 s: NOT met)"
        )


# -- 3. a webhook event's latency to the stored invoice -----------------------------------------


def stored(ws: Workspace, external_id: str) -> Invoice | None:
    with ws.db.read() as session:
        return session.exec(select(Invoice).where(Invoice.external_id == external_id)).first()


@dataclass
class Event:
    latency: float  # the edit to the edited invoice in the table
    posted: float | None  # the edit to the emulator's post answered 200
    run_started: float  # the edit to the sync's start
    run_took: float  # the sync's own time


def webhook_latency(db_url: str | None, reps: int, label: str) -> None:
    sandbox = xero_sandbox(1000, unlimited=False)  # Xero's own limits: 60 calls a minute
    try:
        extra = {"INTDASH_XERO__WEBHOOK_KEY": WEBHOOK_KEY}
        with world(db_url, sandbox, extra) as (ws, env, home):
            ws.plans.set("scale")
            uid = ws.integrations.create("xero", name="Acme").integration.uid

            async def first_sync() -> None:
                service = await connect(ws, uid)
                await SyncEngine(ws, service).run(uid)

            asyncio.run(first_sync())
            with ws.db.read() as session:
                integration_id = ws.integrations.find(session, uid).id
            assert integration_id is not None
            ws.schedule.defer(integration_id, ws.clock() + timedelta(hours=1))  # events only
            serve = Serve(env, home / "serve-webhook.log", workers=4).wait_up()
            try:
                hook = sandbox.xero.webhook
                hook.configure(f"{serve.url}/v1/webhooks/xero", WEBHOOK_KEY)
                intent = hook.intent()
                assert intent["ok"], intent
                events = [
                    edit_and_wait(ws, sandbox, integration_id, 17 + 61 * n) for n in range(reps)
                ]
            finally:
                serve.stop()
    finally:
        sandbox.stop()
    latencies = [e.latency for e in events]
    posted = [e.posted for e in events if e.posted is not None]
    met = "met" if max(latencies) < 3 else "NOT met"
    print(
        f"3{label}. Xero webhook event to stored invoice: {fmt_range(latencies, ' s')}, max "
        f"{max(latencies):.2f} s over {reps} edits (target < 3 s: {met})"
    )
    print(
        f"   of which: edit to the emulator's post answered "
        f"{statistics.median(posted):.2f} s (median), edit to the sync's start "
        f"{statistics.median(e.run_started for e in events):.2f} s, the sync itself "
        f"{statistics.median(e.run_took for e in events):.2f} s"
    )


def edit_and_wait(ws: Workspace, sandbox: Sandbox, integration_id: int, index: int) -> Event:
    hook = sandbox.xero.webhook
    dataset = sandbox.xero.dataset

    def quiet() -> bool:  # the previous edit's sync has ended
        with ws.db.read() as session:
            running = session.exec(
                select(func.count())
                .select_from(SyncRun)
                .where(SyncRun.integration_id == integration_id)
                .where(col(SyncRun.ended_at).is_(None))
            ).one()
        return int(running) == 0

    wait_for(quiet, 60, "a sync did not end", every=0.05)
    time.sleep(0.3)
    before = stored(ws, dataset.invoice(index).id)
    assert before is not None, "the first sync stored it"
    delivered = hook.delivered
    since = ws.clock()
    started = time.monotonic()
    dataset.touch([index])  # an edit in Xero
    edited = dataset.invoice(index)
    assert edited.total != before.total
    posted: float | None = None
    while True:
        if posted is None and hook.delivered > delivered:
            posted = time.monotonic() - started
        found = stored(ws, edited.id)
        if found is not None and found.total == edited.total:
            break
        if time.monotonic() - started > 60:
            raise SystemExit("the edit did not arrive within 60 s")
        time.sleep(0.01)
    latency = time.monotonic() - started
    runs = sorted(runs_since(ws, since, [integration_id]), key=lambda r: r.started_at)
    run = runs[0]
    ended = run.ended_at or ws.clock()
    return Event(
        latency,
        posted,
        (run.started_at - since).total_seconds(),
        (ended - run.started_at).total_seconds(),
    )


# -- main ----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer integrations and rounds")
    parser.add_argument("--integrations", type=int, help="figure 1's fleet (default 1,000)")
    parser.add_argument("--rounds", type=int, help="figure 1's rounds of one and two serves")
    parser.add_argument("--workers", type=int, default=4, help="INTDASH_SYNC__WORKERS per serve")
    args = parser.parse_args(argv)
    count = args.integrations or (200 if args.quick else 1000)
    rounds = args.rounds or (1 if args.quick else 3)
    takeovers = 2 if args.quick else 5
    held = 6
    edits = 5 if args.quick else 10
    url = os.environ.get("INTDASH_BENCH_DATABASE_URL", DEFAULT_PG)
    shown = make_url(url).render_as_string(hide_password=True)
    why_not = pg_reachable(url)
    started = time.monotonic()
    if why_not is None:
        with pg_schema(url) as db_url:
            figures_one_and_two(db_url, count, rounds, args.workers, takeovers, held)
        with pg_schema(url) as db_url:
            webhook_latency(db_url, edits, "a (PostgreSQL)")
        webhook_latency(None, edits, "b (SQLite)")
    else:
        print(f"1. skipped: PostgreSQL is not reachable at {shown} ({why_not})")
        print(f"2. skipped: PostgreSQL is not reachable at {shown} (INTDASH_BENCH_DATABASE_URL)")
        webhook_latency(None, edits, " (SQLite)")
    print(f"({time.monotonic() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
