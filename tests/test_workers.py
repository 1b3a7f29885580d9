"""Many workers on one PostgreSQL database: each `intdash serve` claims due syncs with
``FOR UPDATE SKIP LOCKED``, so two machines never take the same integration at once and each
one added adds capacity."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from intdash.core.models import Integration, SyncRun
from intdash.core.schedule import slot_after
from intdash.core.workspace import Workspace
from intdash.sandbox.server import Sandbox
from intdash.sandbox.xero import XeroEmulator
from tests.conftest import ON_POSTGRES
from tests.providers import (
    clone,
    connect,
    consent,
    free_port,
    pws,
    redirect_uri,
    sandbox_env,
)
from tests.waiting import wait_for

__all__ = ["pws", "redirect_uri", "sandbox_env"]  # fixtures

pytestmark = pytest.mark.skipif(
    not ON_POSTGRES, reason="workers sharing a database: PostgreSQL (INTDASH_TEST_DATABASE_URL)"
)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """One Xero organisation that a thousand integrations read, its limits out of the way:
    what is measured is intdash's claims, not the platform's patience."""
    xero = XeroEmulator(size=20, minute_limit=10**7, day_limit=10**8, concurrent=10**4)
    box = Sandbox(xero=xero).start()
    yield box
    box.stop()


def _runs(ws: Workspace) -> list[SyncRun]:
    with ws.db.read() as session:
        return list(session.exec(select(SyncRun)))


def serve_logging_to(log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``intdash serve`` with its log in a file (a pipe nobody reads would stop it when full)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("INTDASH_")}
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("intdash")), "serve"],
            env={**base, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )


async def test_two_serves_share_a_thousand_integrations_and_never_sync_one_twice_at_once(
    pws: Workspace, sandbox: Sandbox, sandbox_env: dict[str, str], tmp_path: Path
) -> None:
    pws.plans.set("scale")
    # a thousand organisations, so that Xero's limits per organisation (60 calls a minute, which
    # intdash keeps to) do not decide how fast they sync
    tenants = [sandbox.xero.add_organisation(f"Org {n}", size=20).tenant_id for n in range(999)]
    first = pws.integrations.create("xero").integration.uid
    service = await connect(pws, first)
    # the user consents again and ticks the other organisations: connections for them all
    sandbox.xero.consent_picks = tenants
    await consent((await service.begin(first)).url)
    uids = clone(pws, first, tenants)
    env = {**sandbox_env, "INTDASH_SYNC__WORKERS": "4"}
    logs = [tmp_path / f"serve-{n}.log" for n in range(2)]
    procs = [
        serve_logging_to(log, env={**env, "INTDASH_SERVER__PORT": str(free_port())}) for log in logs
    ]
    try:

        def synced() -> bool:
            ok = {r.integration_id for r in _runs(pws) if r.outcome == "ok"}
            return len(ok) == len(uids)

        def progress() -> str:
            runs = _runs(pws)
            errors = Counter(str(r.error)[:120] for r in runs if r.outcome != "ok")
            return f"runs by outcome: {Counter(r.outcome for r in runs)}; errors: {errors}"

        wait_for(synced, timeout=240, every=0.5, message=progress)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
    errs = [log.read_text() for log in logs]
    runs = _runs(pws)
    by_integration: dict[int, list[SyncRun]] = defaultdict(list)
    for run in runs:
        by_integration[run.integration_id].append(run)
    assert len(by_integration) == len(uids)
    # none ran twice at once; a second run only at its next slot (Xero's, on Scale: 5 minutes)
    interval = timedelta(minutes=5)
    with pws.db.read() as session:
        uid_of = {row.id: row.uid for row in session.exec(select(Integration))}
    for integration_id, each in by_integration.items():
        spans = sorted((r.started_at, r.ended_at) for r in each)
        for (started, ended), (later, _) in itertools.pairwise(spans):
            assert ended is not None and ended <= later
            assert later >= slot_after(uid_of[integration_id], interval, started)
    # every run but those the stop cut short completed
    stopped = {("cancelled", "stopped by this process stopping"), ("cancelled", "stopped")}
    assert {(run.outcome, run.error) for run in runs} <= {("ok", None), *stopped}
    # both processes did their share
    shares = []
    for err in errs:
        lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        shares.append(sum(1 for e in lines if "(schedule): ok" in str(e.get("msg", ""))))
    assert sum(shares) == sum(1 for run in runs if run.outcome == "ok"), shares
    assert min(shares) >= len(uids) // 5, shares
