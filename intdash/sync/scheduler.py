"""The in-process scheduler: one job per syncable integration at its plan's interval.

It runs on the caller's event loop (the dashboard's, or ``intdash serve``'s). Only one process
schedules at a time: it holds a lease on the database, renewed every tick; another takes over
when the lease lapses. Every change to an integration writes an audit event, so the jobs are
brought in line with the integrations whenever the audit trail moves. First runs are spread over
the interval by a hash of the UID, so thousands of integrations do not fire at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func
from sqlmodel import select

from intdash.core.catalog import type_spec
from intdash.core.models import AuditEvent
from intdash.core.services.leases import LeaseInfo, process_identity
from intdash.core.status import Reason
from intdash.sync.deliveries import DeliveryWorker
from intdash.sync.engine import AlreadyRunning, SyncEngine, SyncRefused, Trigger

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

log = logging.getLogger(__name__)

LEASE = "scheduler"
JOB_PREFIX = "sync:"
# integrations in these states still sync (invoices are held, failures retried); one at its
# daily API limit keeps its job, whose runs the engine refuses until the platform's day ends
SYNCING_REASONS = {None, Reason.LIMIT_REACHED, Reason.LAST_SYNC_FAILED, Reason.DAILY_LIMIT}


def spread_offset(uid: str, interval: timedelta) -> timedelta:
    """Where in its interval an integration's syncs fall: fixed per UID, evenly spread."""
    seconds = int(interval.total_seconds())
    digest = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big")
    return timedelta(seconds=digest % max(seconds, 1))


@dataclass(frozen=True)
class Desired:
    uid: str
    interval: timedelta


class SyncScheduler:
    def __init__(
        self,
        workspace: Workspace,
        engine: SyncEngine | None = None,
        *,
        holder: str | None = None,
        lease_ttl: timedelta = timedelta(seconds=30),
        tick: timedelta = timedelta(seconds=10),
        deliver: timedelta = timedelta(seconds=5),
    ) -> None:
        self._ws = workspace
        self.engine = engine or SyncEngine(workspace)
        self.holder = holder or f"{process_identity()}:scheduler"
        self.lease_ttl = lease_ttl
        self.tick_every = tick
        self.deliver_every = deliver
        self.deliveries = DeliveryWorker(workspace)
        self.leading = False
        self._scheduler: AsyncIOScheduler | None = None
        self._seen_change: int | None = None
        self._running: dict[str, asyncio.Event] = {}
        self._ticking = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- life --------------------------------------------------------------------------------

    async def start(self, *, paused: bool = False) -> None:
        """Start on the running loop; the first tick takes the lease if it is free."""
        self._scheduler = AsyncIOScheduler(
            event_loop=asyncio.get_running_loop(),
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        self._scheduler.start(paused=paused)
        self._scheduler.add_job(
            self.tick,
            IntervalTrigger(seconds=self.tick_every.total_seconds()),
            id="intdash:tick",
            next_run_time=datetime.now(UTC),
        )
        self._scheduler.add_job(
            self.deliver,
            IntervalTrigger(seconds=self.deliver_every.total_seconds()),
            id="intdash:deliver",
        )

    async def stop(self, grace: float = 30.0) -> None:
        """Stop scheduling; running syncs finish their page and stop; the lease is released."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for event in self._running.values():
            event.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace)
        if self.leading:
            await asyncio.to_thread(self._ws.leases.release, LEASE, self.holder)
            self.leading = False

    # -- leading -----------------------------------------------------------------------------

    async def tick(self) -> None:
        async with self._ticking:  # one tick at a time, whoever calls it
            await self._tick()

    async def _tick(self) -> None:
        got = await asyncio.to_thread(self._ws.leases.acquire, LEASE, self.holder, self.lease_ttl)
        if got and not self.leading:
            log.info("scheduler: this process (%s) now schedules syncs", self.holder)
            self._seen_change = None
        if not got and self.leading:
            log.info("scheduler: another process took over scheduling")
            self._drop_jobs()
        self.leading = got
        if got:
            change = await asyncio.to_thread(self._last_change)
            if change != self._seen_change:
                wanted = await asyncio.to_thread(self.desired)  # reading, off the loop
                self.reconcile(wanted)  # the jobs themselves change on the loop
                self._seen_change = change

    async def deliver(self) -> None:
        """Webhook deliveries that are due, by the process that schedules (claims keep two
        processes from sending one delivery at once in any case)."""
        if not self.leading:
            return
        try:
            await self.deliveries.drain()
        except Exception:
            log.exception("delivering webhooks failed; trying again shortly")

    def _last_change(self) -> int:
        with self._ws.db.read() as session:
            return int(session.exec(select(func.coalesce(func.max(AuditEvent.id), 0))).one() or 0)

    def holder_info(self) -> LeaseInfo | None:
        """Which process schedules now, if any."""
        return self._ws.leases.current(LEASE)

    # -- jobs --------------------------------------------------------------------------------

    def desired(self) -> list[Desired]:
        """The integrations that should have a job, with their interval."""
        ws = self._ws
        interval = timedelta(minutes=ws.plans.current().spec.interval_minutes)
        return [
            Desired(view.uid, interval)
            for view in ws.integrations.listing()
            if type_spec(view.type).oauth and view.status.reason in SYNCING_REASONS
        ]

    def reconcile(self, desired: list[Desired] | None = None) -> int:
        """Bring the jobs in line with the integrations; returns how many jobs there are."""
        scheduler = self._scheduler
        assert scheduler is not None, "start() first"
        wanted = {d.uid: d for d in (self.desired() if desired is None else desired)}
        now = datetime.now(UTC)
        for job in scheduler.get_jobs():
            if not job.id.startswith(JOB_PREFIX):
                continue
            uid = job.id[len(JOB_PREFIX) :]
            want = wanted.pop(uid, None)
            if want is None:
                job.remove()
            elif job.trigger.interval != want.interval:
                job.reschedule(self._trigger(want.interval))
        for want in wanted.values():
            scheduler.add_job(
                self._run,
                self._trigger(want.interval),
                args=[want.uid],
                id=f"{JOB_PREFIX}{want.uid}",
                next_run_time=now + spread_offset(want.uid, want.interval),
                misfire_grace_time=int(want.interval.total_seconds() // 2),
            )
        return sum(1 for job in scheduler.get_jobs() if job.id.startswith(JOB_PREFIX))

    @staticmethod
    def _trigger(interval: timedelta) -> IntervalTrigger:
        jitter = max(1, min(30, int(interval.total_seconds() * 0.02)))
        return IntervalTrigger(seconds=interval.total_seconds(), jitter=jitter, timezone=UTC)

    def _drop_jobs(self) -> None:
        if self._scheduler is None:
            return
        for job in self._scheduler.get_jobs():
            if job.id.startswith(JOB_PREFIX):
                job.remove()

    def next_run(self, uid: str) -> datetime | None:
        if self._scheduler is None:
            return None
        job = self._scheduler.get_job(f"{JOB_PREFIX}{uid}")
        return job.next_run_time if job else None

    def jobs(self) -> dict[str, datetime]:
        if self._scheduler is None:
            return {}
        return {
            job.id[len(JOB_PREFIX) :]: job.next_run_time
            for job in self._scheduler.get_jobs()
            if job.id.startswith(JOB_PREFIX) and job.next_run_time is not None
        }

    async def _run(self, uid: str) -> None:
        cancel = asyncio.Event()
        self._running[uid] = cancel
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self.engine.run_with_retries(uid, Trigger.SCHEDULE, cancel=cancel)
        except (AlreadyRunning, SyncRefused) as exc:
            log.info("scheduled sync of %s skipped: %s", uid, exc)
        except Exception:
            log.exception("scheduled sync of %s failed", uid)
        finally:
            self._running.pop(uid, None)
            if task is not None:
                self._tasks.discard(task)
