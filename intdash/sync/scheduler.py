"""Each scheduling process's dispatcher: it claims due syncs from the database and runs them.

The database holds the schedule (each integration's ``next_sync_at``, see
:mod:`intdash.core.schedule`), so every process agrees on it and a restart changes nothing.
Every process that schedules (each ``intdash serve``; the dashboard only while no serve runs) is
a worker: it claims due syncs, oldest due first (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
that two machines never take the same one), and runs up to ``INTDASH_SYNC__WORKERS`` of them at
once. APScheduler is the process's clock: it wakes the dispatcher every tick, and at once when
a webhook event or a finished sync makes more work due.

What must stay single keeps its lease: one process (the leader, named in the status line)
sends the webhook deliveries that are due, and (with the V-SDC as the register) the fiscal
outbox: every few seconds, and at once after a transaction that queued something commits.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select
from sqlmodel import col

from intdash.core.models import Integration, Lease, RunOutcome, SyncRun
from intdash.core.schedule import BUSY_RETRY, slot_after
from intdash.core.services.leases import LeaseInfo, process_identity
from intdash.core.services.schedule import Claimed
from intdash.sync.deliveries import DeliveryWorker
from intdash.sync.engine import (
    AlreadyRunning,
    DailyLimitWait,
    StopRequest,
    SyncEngine,
    SyncRefused,
    Trigger,
)
from intdash.sync.fiscalize import FiscalSender

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

log = logging.getLogger(__name__)

LEASE = "scheduler"  # the leader's: webhook deliveries, and who the status line names
WORKER_PREFIX = "worker:"
WAKE_JOB = "intdash:wake"
FISCALIZE_JOB = "intdash:fiscalize"


class Role(StrEnum):
    SERVE = "serve"  # always dispatches
    DASHBOARD = "dashboard"  # dispatches only while no serve does


class SyncScheduler:
    def __init__(
        self,
        workspace: Workspace,
        engine: SyncEngine | None = None,
        *,
        holder: str | None = None,
        role: Role = Role.SERVE,
        workers: int | None = None,
        lease_ttl: timedelta = timedelta(seconds=30),
        tick: timedelta = timedelta(seconds=2),
        deliver: timedelta = timedelta(seconds=5),
    ) -> None:
        self._ws = workspace
        self.engine = engine or SyncEngine(workspace, sleep=self._rest)
        self.holder = holder or f"{process_identity()}:scheduler"
        self.role = role
        self.workers = workers or workspace.settings.sync.workers
        self.lease_ttl = lease_ttl
        self.tick_every = tick
        self.deliver_every = deliver
        self.deliveries = DeliveryWorker(workspace)
        self.fiscal = FiscalSender(workspace)
        self.leading = False  # holds the leader's lease
        self.dispatching = False  # claims due syncs (a dashboard defers to a serve)
        self._renewed: datetime | None = None  # when its leases were last renewed
        self._scheduler: AsyncIOScheduler | None = None
        self._running: dict[str, StopRequest] = {}  # UID -> its cancel
        self._claimed: dict[str, int] = {}  # UID -> integration id, of those running here
        self._resting = 0  # runs waiting to retry: they hold no worker
        self._claiming = asyncio.Lock()
        self._ticking = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.runs_started = 0

    @property
    def worker_lease(self) -> str:
        return f"{WORKER_PREFIX}{self.role.value}:{self.holder}"

    @property
    def running(self) -> frozenset[str]:
        """The UIDs this process is syncing now."""
        return frozenset(self._running)

    # -- life --------------------------------------------------------------------------------

    async def start(self, *, paused: bool = False) -> None:
        """Start on the running loop; the first tick (at once) claims what is due."""
        self._scheduler = AsyncIOScheduler(
            event_loop=asyncio.get_running_loop(),
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
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
        if self.fiscal.enabled:
            self._scheduler.add_job(
                self.fiscalize,
                IntervalTrigger(seconds=self.tick_every.total_seconds()),
                id=FISCALIZE_JOB,
            )
            register = self._ws.register
            if hasattr(register, "on_queued"):  # the V-SDC's: woken once its rows commit
                loop = asyncio.get_running_loop()
                register.on_queued = lambda: loop.call_soon_threadsafe(self.wake_fiscal)

    async def stop(self, grace: float = 30.0) -> None:
        """Stop claiming; running syncs finish their page and stop; the leases are released."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for event in self._running.values():
            event.stop(by="this process stopping")
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace)
        leases = self._ws.leases
        await asyncio.to_thread(leases.release, self.worker_lease, self.holder)
        if self.leading:
            await asyncio.to_thread(leases.release, LEASE, self.holder)
            self.leading = False
        self._renewed = None

    def wake(self, delay: float = 0.0) -> None:
        """Look for due syncs ``delay`` seconds from now. Wakes asked for within a tenth of a
        second of each other are one; a later one is never lost to an earlier one."""
        scheduler = self._scheduler
        if scheduler is None:
            return
        at = datetime.now(UTC) + timedelta(seconds=delay)
        scheduler.add_job(
            self._woken,
            DateTrigger(at),
            id=f"{WAKE_JOB}:{round(at.timestamp() * 10)}",
            replace_existing=True,
        )

    async def _woken(self) -> None:
        # a task of its own: a wake never waits for (nor is skipped for) a dispatch under way
        task = asyncio.create_task(self.dispatch())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the clock ---------------------------------------------------------------------------

    async def tick(self) -> None:
        async with self._ticking:  # one tick at a time, whoever calls it
            await self._tick()

    async def _tick(self) -> None:
        ws = self._ws
        dispatching = await asyncio.to_thread(self._should_dispatch)
        if dispatching != self.dispatching:
            log.info(
                "scheduler: this process (%s) %s",
                self.holder,
                "claims due syncs" if dispatching else "leaves syncs to `intdash serve`",
            )
        self.dispatching = dispatching
        if dispatching:
            got = await asyncio.to_thread(self._hold_leases)
        else:
            await asyncio.to_thread(ws.leases.release, self.worker_lease, self.holder)
            if self.leading:
                await asyncio.to_thread(ws.leases.release, LEASE, self.holder)
            self._renewed = None
            got = False
        if got and not self.leading:
            log.info("scheduler: this process (%s) now sends webhook deliveries", self.holder)
        if not got and self.leading:
            log.info("scheduler: another process took over webhook deliveries")
        self.leading = got
        if dispatching:
            try:
                await asyncio.to_thread(self._resume_orphans)
            except Exception:
                log.exception("looking for syncs left by stopped processes failed")
            await self.dispatch()

    def _hold_leases(self) -> bool:
        """Renew this worker's lease (and the leader's, when leading) every third of their
        life, not every tick; take the leader's when it is free. Whether this one leads."""
        ws, now, ttl = self._ws, self._ws.clock(), self.lease_ttl
        if self._renewed is None or now - self._renewed >= ttl / 3:
            ws.leases.acquire(self.worker_lease, self.holder, ttl)
            self._renewed = now
            if self.leading:
                return ws.leases.acquire(LEASE, self.holder, ttl)
        if self.leading:
            return True
        return ws.leases.current(LEASE) is None and ws.leases.acquire(LEASE, self.holder, ttl)

    def _resume_orphans(self) -> list[int]:
        """Runs left running by a process that has stopped (killed, crashed, its machine
        gone): their claims died with it, so their integrations are due again at once."""
        ws = self._ws
        with ws.db.read() as session:
            left = session.execute(
                select(col(SyncRun.id), col(SyncRun.integration_id))
                .where(col(SyncRun.ended_at).is_(None))
                .where(col(SyncRun.outcome) == RunOutcome.RUNNING.value)
            ).all()
        mine = self._running_ids
        resumed = [
            integration_id
            for run_id, integration_id in left
            if integration_id not in mine
            and not self.engine.running(integration_id)  # its claim died with its process
            and ws.schedule.resume(run_id, integration_id)  # and the run did not just end
        ]
        for integration_id in resumed:
            log.info("a sync left running by a stopped process is due again (%d)", integration_id)
        return resumed

    def _should_dispatch(self) -> bool:
        """A serve always; a dashboard while no serve is at work on the database."""
        if self.role is Role.SERVE:
            return True
        with self._ws.db.read() as session:
            serving = session.execute(
                select(func.count())
                .select_from(Lease)
                .where(Lease.name.like(f"{WORKER_PREFIX}{Role.SERVE.value}:%"))  # type: ignore[attr-defined]
                .where(Lease.expires_at > self._ws.clock())  # type: ignore[arg-type]
            ).scalar_one()
        return int(serving) == 0

    async def deliver(self) -> None:
        """Webhook deliveries that are due, by the leader (claims keep two processes from
        sending one delivery at once in any case)."""
        if not self.leading:
            return
        try:
            await self.deliveries.drain()
        except Exception:
            log.exception("delivering webhooks failed; trying again shortly")

    async def fiscalize(self) -> None:
        """The fiscal outbox, sent to the V-SDC by the leader (its claims keep two processes
        from sending one row in any case)."""
        if not self.leading:
            return
        try:
            await self.fiscal.drain()
        except Exception as exc:
            log.warning("fiscalizing failed (%s); trying again shortly", exc)

    def wake_fiscal(self) -> None:
        """Send the outbox now (a transaction queued rows): the next round, not the next tick."""
        scheduler = self._scheduler
        if scheduler is None or not self.leading:
            return
        scheduler.add_job(
            self.fiscalize,
            DateTrigger(datetime.now(UTC) + timedelta(seconds=0.05)),
            id=f"{FISCALIZE_JOB}:now",
            replace_existing=True,
        )

    def holder_info(self) -> LeaseInfo | None:
        """Which process leads (sends deliveries) now, if any."""
        return self._ws.leases.current(LEASE)

    # -- dispatching -------------------------------------------------------------------------

    @property
    def free(self) -> int:
        return self.workers - (len(self._running) - self._resting)

    async def dispatch(self) -> int:
        """Claim as many due syncs as there are free workers, and start them."""
        if self._scheduler is None or not self.dispatching:
            return 0
        async with self._claiming:
            free = self.free
            if free <= 0:
                return 0
            try:
                claimed = await asyncio.to_thread(self._ws.schedule.claim_due, free)
            except Exception:
                log.exception("claiming due syncs failed; trying again at the next tick")
                return 0
            if self._scheduler is None:  # stopping meanwhile: the claims go back, due now
                now = self._ws.clock()
                for item in claimed:
                    await asyncio.to_thread(self._ws.schedule.defer, item.id, now)
                return 0
            for item in claimed:
                self._start(item)
            if len(claimed) == free:
                self._more = True
            return len(claimed)

    _more = False  # the last claim filled every worker: more may be due

    @property
    def _running_ids(self) -> frozenset[int]:
        return frozenset(self._claimed.values())

    def _start(self, claimed: Claimed) -> None:
        cancel = StopRequest()
        self._running[claimed.uid] = cancel
        self._claimed[claimed.uid] = claimed.id
        task = asyncio.create_task(self._run(claimed, cancel), name=f"sync {claimed.uid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.runs_started += 1

    async def _run(self, claimed: Claimed, cancel: StopRequest) -> None:
        uid = claimed.uid
        try:
            await self.engine.run_with_retries(uid, Trigger.SCHEDULE, cancel=cancel)
        except AlreadyRunning as exc:  # another run goes on: look again once it may be over
            log.info("scheduled sync of %s waits: %s", uid, exc)
            await self._defer(claimed, self._ws.clock() + BUSY_RETRY)
        except DailyLimitWait as exc:
            log.info("scheduled sync of %s skipped: %s", uid, exc)
            await asyncio.to_thread(self._defer_past_reset, claimed)
        except SyncRefused as exc:  # its next slot is already set: it is looked at again then
            log.info("scheduled sync of %s skipped: %s", uid, exc)
        except Exception:
            log.exception("scheduled sync of %s failed", uid)
        finally:
            self._running.pop(uid, None)
            self._claimed.pop(uid, None)
            if self._more and self._scheduler is not None:
                self._more = False
                self.wake()

    async def _defer(self, claimed: Claimed, until: datetime) -> None:
        await asyncio.to_thread(self._ws.schedule.defer, claimed.id, until)

    def _defer_past_reset(self, claimed: Claimed) -> None:
        """Its platform's day is spent: its first slot after the day ends."""
        ws = self._ws
        with ws.db.read() as session:
            row = session.get(Integration, claimed.id)
        if row is None or row.daily_resets_at is None:
            return
        interval = ws.schedule.interval(row.type)
        ws.schedule.defer(claimed.id, slot_after(row.uid, interval, row.daily_resets_at))

    async def _rest(self, seconds: float) -> None:
        """A run waiting to retry holds no worker."""
        self._resting += 1
        try:
            if self._resting and self._scheduler is not None:
                self.wake()
            await asyncio.sleep(seconds)
        finally:
            self._resting -= 1
