"""intdash beside Singer's tap-xero, the open-source peer, against one Xero emulator.

    python bench/peer_bench.py [--sizes 5000,20000] [--rounds 3] [--throttled-size 20000]
                               [--bound-size 100000]

1. Unthrottled: for each size, one emulator (``intdash sandbox`` in a process of its own, its
   rate limits out of the way) holding that many invoices; the two tools take turns on it for
   ``--rounds`` rounds (the order swapped every round), each a full sync from nothing. Printed:
   invoices a second for each (the median and the range) and the ratio (target: intdash at least
   3 times tap-xero).
2. At Xero's real limit (60 calls a minute, 5 in flight, 5,000 a day), ``--throttled-size``
   invoices: intdash with its pages of 1,000, intdash with pages of 100 (the calls tap-xero
   makes: it asks for Xero's default page) and tap-xero; then intdash alone on ``--bound-size``
   invoices, enough for its pages of 1,000 to need more than one minute's allowance. Each in an
   emulator of its own, so that one's minute does not hold the next, where the same sync runs
   unthrottled first (twice, the faster kept: its own pace). Each is read against two bounds:
   the least time its listing calls can take at 60 a minute with nothing else to do (the first
   60 at once, then as the window frees: see ``xero_paging_bench.py``), and the same with the
   tool's own pace added (calls no closer together than unthrottled, and the last page taken in
   after the last call); the second is the figure (target: intdash at least 95 % of it).

The same thing is measured for both: every invoice fetched and written. intdash syncs into its
database in this process, timed around the sync, as ``sync_bench.py`` does. tap-xero writes Singer
records to its stdout, a pipe this process reads and counts, timed from the tap's ``main()`` (its
interpreter's start and its imports left out) to the last record read; its whole process's time
is printed beside.

tap-xero 2.6.0 runs in a virtualenv of its own under ``.bench-venvs/`` (made by this script, never
the project's); where it cannot be installed or run, the benchmark says why and is skipped. It
runs unchanged: this file, run with the tap's interpreter and ``--as-tap-xero``, mounts a
``requests`` transport adapter on the tap's session that sends what it addresses to
``api.xero.com`` and ``identity.xero.com`` to the emulator instead (as a hosts file would), and
then calls the tap's ``main()``. Its catalog selects the invoices stream alone, built from the
tap's own schema and metadata (``--tap-xero-catalog``); its refresh token comes from a consent
at the emulator, as intdash's does.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TAP = "tap-xero==2.6.0"
# tap-xero imports six without requiring it: python-dateutil brought it in, and no longer does
# (since 3.0)
EXTRA = "six==1.17.0"
VENV = ROOT / ".bench-venvs" / TAP.replace("==", "-")
START_DATE = "2000-01-01T00:00:00Z"
MARK = "peer-bench: main() at "


# -- inside the tap's interpreter ----------------------------------------------------------------


def as_tap_xero(base: str, argv: list[str]) -> None:
    """Run tap-xero's ``main()`` with its HTTP sent to the emulator at ``base``."""
    adapters: Any = importlib.import_module("requests.adapters")
    client: Any = importlib.import_module("tap_xero.client")
    tap: Any = importlib.import_module("tap_xero")
    routes = {
        "https://api.xero.com/": f"{base}/xero/api/",
        "https://identity.xero.com/": f"{base}/xero/identity/",
    }

    def routed() -> Any:
        adapter = adapters.HTTPAdapter()
        send = adapter.send

        def to_emulator(request: Any, *args: Any, **kwargs: Any) -> Any:
            for real, here in routes.items():
                if request.url.startswith(real):
                    request.url = here + request.url[len(real) :]
            return send(request, *args, **kwargs)

        adapter.send = to_emulator
        return adapter

    made = client.XeroClient.__init__

    def make(self: Any, config: Any) -> None:
        made(self, config)
        for real in routes:
            self.session.mount(real, routed())

    client.XeroClient.__init__ = make
    sys.argv = ["tap-xero", *argv]
    print(f"{MARK}{time.perf_counter()!r}", file=sys.stderr, flush=True)
    tap.main()


def tap_xero_catalog() -> None:
    """Print a catalog of tap-xero's invoices stream alone, selected, from its own schema."""
    tap: Any = importlib.import_module("tap_xero")
    streams: Any = importlib.import_module("tap_xero.streams")
    catalog: Any = importlib.import_module("singer.catalog")
    (stream,) = [s for s in streams.all_streams if s.tap_stream_id == "invoices"]
    schema = tap.load_schema("invoices")
    metadata = tap.load_metadata(stream, schema)
    for entry in metadata:
        if not entry["breadcrumb"]:
            entry["metadata"]["selected"] = True
    entry = catalog.CatalogEntry(
        stream="invoices",
        tap_stream_id="invoices",
        key_properties=stream.pk_fields,
        schema=catalog.Schema.from_dict(schema),
        metadata=metadata,
    )
    print(json.dumps(catalog.Catalog([entry]).to_dict()))


# -- the tap's virtualenv ----------------------------------------------------------------------


class Skipped(Exception):
    """tap-xero cannot be installed or run here."""


def tap_python() -> Path:
    """The tap's interpreter, in a virtualenv made (once) for it alone."""
    python = VENV / "bin" / "python"
    done = VENV / ".installed"
    if not done.exists():
        print(f"installing {TAP} into {VENV.relative_to(ROOT)}/ …", flush=True)
        shutil.rmtree(VENV, ignore_errors=True)
        VENV.parent.mkdir(parents=True, exist_ok=True)
        for step in (
            [sys.executable, "-m", "venv", str(VENV)],
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                TAP,
                EXTRA,
            ],
        ):
            made = subprocess.run(step, capture_output=True, text=True, check=False)
            if made.returncode != 0:
                lines = (made.stderr or made.stdout).strip().splitlines()
                why = next(
                    (ln for ln in reversed(lines) if "ERROR" in ln), lines[-1] if lines else ""
                )
                raise Skipped(f"{' '.join(step[-3:])} failed: {why.strip()}")
        done.write_text(f"{TAP}\n{EXTRA}\n")
    check = subprocess.run(
        [str(python), "-c", "import tap_xero, requests"], capture_output=True, text=True
    )
    if check.returncode != 0:
        raise Skipped(f"tap_xero does not import: {check.stderr.strip().splitlines()[-1:]}")
    return python


# -- the runs ------------------------------------------------------------------------------------


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def refresh_token(box: Any) -> str:
    """A consent at the emulator, as tap-xero's user would give one: its refresh token."""
    from intdash.providers.http import httpx

    redirect = "http://localhost:8471/callback"  # registered with the emulator's client
    asked = httpx.get(
        box.settings["INTDASH_XERO__AUTHORIZE_URL"],
        params={
            "client_id": box.settings["INTDASH_XERO__CLIENT_ID"],
            "redirect_uri": redirect,
            "response_type": "code",
            "scope": "openid offline_access accounting.transactions.read",
            "state": "peer",
        },
    )
    code = httpx.URL(asked.headers["location"]).params["code"]
    token = httpx.post(
        box.settings["INTDASH_XERO__TOKEN_URL"],
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect},
        auth=(box.settings["INTDASH_XERO__CLIENT_ID"], box.settings["INTDASH_XERO__CLIENT_SECRET"]),
    )
    token.raise_for_status()
    return str(token.json()["refresh_token"])


class Run:
    """One full sync: invoices written, seconds, CPU seconds, and (for the tap) its whole
    process's time."""

    def __init__(
        self, invoices: int, seconds: float, cpu: float, process: float | None = None
    ) -> None:
        self.invoices, self.seconds, self.cpu, self.process = invoices, seconds, cpu, process
        self.emulator_cpu = 0.0

    @property
    def rate(self) -> float:
        return self.invoices / self.seconds


def run_tap(python: Path, box: Any, catalog: Path) -> Run:
    from intdash.sandbox.xero import TENANT_ID

    work = Path(tempfile.mkdtemp(prefix="peer-tap-"))
    try:
        config = work / "config.json"
        config.write_text(
            json.dumps(
                {
                    "client_id": box.settings["INTDASH_XERO__CLIENT_ID"],
                    "client_secret": box.settings["INTDASH_XERO__CLIENT_SECRET"],
                    "refresh_token": refresh_token(box),
                    "tenant_id": TENANT_ID,
                    "start_date": START_DATE,
                }
            )
        )
        log = work / "stderr.log"
        command = [str(python), __file__, "--as-tap-xero", box.url, "--"]
        command += ["--config", str(config), "--catalog", str(catalog)]
        records = 0
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        with log.open("wb") as errors:
            launched = time.perf_counter()
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(b'{"type": "RECORD"'):
                    records += 1
            ended = time.perf_counter()
            proc.wait()
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = reaped.ru_utime + reaped.ru_stime - children.ru_utime - children.ru_stime
        text = log.read_text(errors="replace")
        if proc.returncode != 0:
            tail = [ln for ln in text.splitlines() if ln.strip()][-3:]
            raise Skipped(f"tap-xero exited {proc.returncode}: {' | '.join(tail)}")
        started = float(text.split(MARK, 1)[1].split()[0])
        return Run(records, ended - started, cpu, ended - launched)
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def run_intdash(box: Any, page_size: int | None, limits: Any | None) -> tuple[Run, int]:
    """A full sync into a new workspace: the run, and the listing calls the emulator answered."""
    from sync_bench import connected, fresh_workspace

    from intdash.providers.connect import ConnectService
    from intdash.sync.engine import SyncEngine

    ws = fresh_workspace(box)
    home = os.environ["INTDASH_HOME"]
    try:
        if page_size is not None:
            ws.settings.xero.page_size = page_size
        service = ConnectService(ws, limits=limits) if limits else ConnectService(ws)
        uid = await connected(ws, "xero", service)
        before = box.control("stats")["xero"]
        started, cpu = time.perf_counter(), time.process_time()
        result = await SyncEngine(ws, service).run(uid)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        after = box.control("stats")["xero"]
        if result.outcome.value != "ok":
            raise RuntimeError(f"the intdash sync ended {result.outcome.value}: {result.error}")
        answered = (after["api_calls"] - after["rate_limited"]) - (
            before["api_calls"] - before["rate_limited"]
        )
        return Run(result.created + result.updated, elapsed, cpu), answered  # written
    finally:
        ws.close()
        shutil.rmtree(home, ignore_errors=True)


def cpu_of(pid: int) -> float:
    """A process's CPU seconds so far (user and system), from /proc; 0 where there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_thousand(runs: list[Run], emulator: bool = False) -> float:
    """Median CPU milliseconds per 1,000 invoices (the tool's, or the emulator's for it)."""
    return statistics.median(
        (r.emulator_cpu if emulator else r.cpu) / r.invoices * 1e6 for r in runs
    )


def summary(runs: list[Run]) -> str:
    rates = sorted(r.rate for r in runs)
    return f"{statistics.median(rates):,.0f}/s ({rates[0]:,.0f} to {rates[-1]:,.0f})"


async def unthrottled(
    python: Path, catalog: Path, size: int, rounds: int
) -> tuple[list[Run], list[Run]]:
    from sync_bench import SandboxProcess

    from intdash.providers.ratelimit import RateLimits

    box = SandboxProcess(size, credit_notes=False)  # tap-xero's invoices stream alone
    tap: list[Run] = []
    ours: list[Run] = []
    try:
        box.xero_limits()
        unlimited = {"xero": RateLimits(100_000, 1.0, 5)}
        print(f"{size:,} invoices, {rounds} rounds ({load()})", flush=True)
        for n in range(rounds):
            order = ("tap", "intdash") if n % 2 == 0 else ("intdash", "tap")
            for tool in order:
                served = cpu_of(box.proc.pid)
                if tool == "tap":
                    run = run_tap(python, box, catalog)
                    tap.append(run)
                    extra = f" (whole process {run.process:.2f} s)"
                else:
                    run, _ = await run_intdash(box, None, unlimited)
                    ours.append(run)
                    extra = ""
                run.emulator_cpu = cpu_of(box.proc.pid) - served
                if run.invoices != size:
                    raise RuntimeError(f"{tool} wrote {run.invoices:,} of {size:,} invoices")
                print(
                    f"   round {n + 1} {tool:>8}: {run.invoices:,} in {run.seconds:.2f} s, "
                    f"{run.rate:,.0f}/s{extra}; CPU {run.cpu:.2f} s, the emulator's "
                    f"{run.emulator_cpu:.2f} s",
                    flush=True,
                )
    finally:
        box.close()
    ratio = statistics.median(r.rate for r in ours) / statistics.median(r.rate for r in tap)
    print(
        f"1. {size:,} invoices, unthrottled emulator: intdash {summary(ours)}, "
        f"tap-xero {summary(tap)}; ratio {ratio:.2f} (target >= 3) ({load()})\n"
        f"   CPU per 1,000 invoices: intdash {per_thousand(ours):.0f} ms (the emulator "
        f"{per_thousand(ours, True):.0f} ms serving it), tap-xero {per_thousand(tap):.0f} ms, "
        f"its interpreter's start included (the emulator {per_thousand(tap, True):.0f} ms); "
        f"tap-xero's CPU over intdash's {per_thousand(tap) / per_thousand(ours):.2f}",
        flush=True,
    )
    return tap, ours


def paced_bound(calls: int, alone: float, per_minute: int) -> float:
    """The least time ``calls`` can take within ``per_minute`` calls a minute (a sliding window)
    for a tool that, unthrottled, makes them one every ``alone / calls`` seconds and has one
    page to take in after the last: :func:`xero_paging_bench.bound_seconds` with the tool's own
    pace added."""
    pace = alone / calls
    times: list[float] = []
    for n in range(calls):
        earliest = times[-1] + pace if times else 0.0
        if n >= per_minute:
            earliest = max(earliest, times[n - per_minute] + 60.0)
        times.append(earliest)
    return times[-1] + pace


async def throttled(
    python: Path, catalog: Path, what: str, size: int, page_size: int | None
) -> None:
    """One sync at 60 calls a minute, in an emulator of its own, after the same sync unthrottled
    in the same emulator (its own pace, for the bound)."""
    from sync_bench import SandboxProcess
    from xero_paging_bench import PER_MINUTE, bound_seconds

    from intdash.providers.ratelimit import RateLimits

    def answered() -> tuple[int, int]:
        stats = box.control("stats")["xero"]
        return stats["api_calls"] - stats["rate_limited"], stats["rate_limited"]

    async def sync(limits: Any | None) -> tuple[Run, int, int]:
        before, refused_before = answered()
        if what == "tap-xero":
            run = run_tap(python, box, catalog)
        else:
            run, _ = await run_intdash(box, page_size, limits)
        after, refused = answered()
        if run.invoices != size:
            raise RuntimeError(f"{what} wrote {run.invoices:,} of {size:,} invoices")
        return run, after - before, refused - refused_before

    def first(measured: tuple[Run, int, int]) -> float:
        return measured[0].seconds

    box = SandboxProcess(size, credit_notes=False)  # tap-xero's invoices stream alone
    try:
        box.xero_limits()
        unlimited = {"xero": RateLimits(100_000, 1.0, 5)}
        # twice, the faster kept: a new emulator's first listing is slower than its next
        alone, alone_calls, _ = min([await sync(unlimited), await sync(unlimited)], key=first)
        box.xero_limits(PER_MINUTE, 5000)  # Xero's own: 60 a minute, 5,000 a day (anew)
        run, calls, refused = await sync(None)  # intdash's own pacing
    finally:
        box.close()
    bound = bound_seconds(calls)
    paced = paced_bound(alone_calls, alone.seconds, PER_MINUTE)
    naive = (
        f"the bound at {PER_MINUTE} a minute, {bound:.0f} s, is {bound / run.seconds:.0%} of it"
        if bound
        else "its calls fit a minute's allowance"
    )
    target = " (target >= 95 %)" if what.startswith("intdash") else ""
    print(
        f"2. {what}, {size:,} invoices: {run.seconds:.1f} s, {run.rate:,.0f}/s, {calls} listing "
        f"calls, {refused} answers 429; {naive}; at its own unthrottled pace ({alone.seconds:.2f} "
        f"s for {alone_calls} calls just before) the bound is {paced:.1f} s: "
        f"{paced / run.seconds:.0%}{target} ({load()})",
        flush=True,
    )


async def measure(args: argparse.Namespace) -> None:
    try:
        python = tap_python()
        made = subprocess.run(
            [str(python), __file__, "--tap-xero-catalog"], capture_output=True, text=True
        )
        if made.returncode != 0:
            raise Skipped(f"no catalog from tap-xero: {made.stderr.strip()[-300:]}")
        catalog = Path(tempfile.mkdtemp(prefix="peer-")) / "catalog.json"
        catalog.write_text(made.stdout)
        atexit.register(shutil.rmtree, catalog.parent, ignore_errors=True)
        for size in (int(s) for s in args.sizes.split(",") if s):
            await unthrottled(python, catalog, size, args.rounds)
        if args.throttled_size:
            size = args.throttled_size
            print(f"at Xero's 60 calls a minute ({load()})", flush=True)
            for what, page_size in (
                ("intdash", None),
                ("intdash, pages of 100", 100),
                ("tap-xero", None),
            ):
                await throttled(python, catalog, what, size, page_size)
        if args.bound_size:
            await throttled(python, catalog, "intdash", args.bound_size, None)
    except Skipped as why:
        print(f"tap-xero: skipped ({why})")
        sys.exit(0)


def main() -> None:
    if sys.argv[1:2] == ["--as-tap-xero"]:
        as_tap_xero(sys.argv[2], sys.argv[4:])  # argv[3] is "--"
        return
    if sys.argv[1:2] == ["--tap-xero-catalog"]:
        tap_xero_catalog()
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="5000,20000", help="invoices, one emulator each")
    parser.add_argument("--rounds", type=int, default=3, help="syncs of each tool per size")
    parser.add_argument(
        "--throttled-size", type=int, default=20_000, help="invoices at 60 calls a minute (0: none)"
    )
    parser.add_argument(
        "--bound-size",
        type=int,
        default=100_000,
        help="invoices for intdash alone at 60 calls a minute, enough for its pages of 1,000 to "
        "need more than a minute's allowance (0: none)",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT))
    import asyncio

    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
