"""One sync of one integration: claim it, fetch pages since the cursor, upsert each page in one
transaction with the cursor that covers it, and record the run.

A crash at any instant leaves the database at the end of the last committed page: the next run
resumes from that page's cursor, so nothing is lost and nothing is stored twice. A run is never
recorded as ok unless it reached the end.

The claim on an integration (its lease ``sync:ID``) dies with its process: a holder on this host
that has stopped is taken over at once; on PostgreSQL each run also holds a session advisory lock
on a connection of its own, which the server drops with that connection, so a run that gets the
lock knows the claim's holder, on any host, is dead. A holder on another host of a SQLite
database is waited out until its lease lapses. The run taking over records the dead one as
interrupted; a run whose claim was taken over stores no further page and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from intdash.core.budget import DailyBudget, daily_reserve
from intdash.core.catalog import type_spec
from intdash.core.db import WouldWait
from intdash.core.errors import ConflictError, IntdashError
from intdash.core.liveness import holder_dead
from intdash.core.models import Integration, RunOutcome
from intdash.core.plans import LicenceState
from intdash.core.services.invoices import BatchResult
from intdash.core.services.leases import (
    LeaseInfo,
    LeaseLost,
    SessionLock,
    process_identity,
)
from intdash.core.services.plans import PlanView
from intdash.providers.api import ApiClient
from intdash.providers.base import InvoicePage
from intdash.providers.connect import ConnectService
from intdash.providers.errors import ProviderError, RateLimited
from intdash.sync import steps
from intdash.sync.steps import Begun, Pending

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

log = logging.getLogger(__name__)

RETRY_BASE = 30.0  # seconds before the first retry; doubled each time, with jitter
RETRY_CAP = 4  # attempts after the first, before the failure is shown


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"


class AlreadyRunning(ConflictError):
    """Another run of this integration holds the claim."""

    @classmethod
    def held(cls, uid: str, lease: LeaseInfo | None) -> AlreadyRunning:
        who = lease.who if lease is not None else "another process"
        return cls(f"{uid} is already syncing (in {who})")


class SyncRefused(ConflictError):
    """The integration may not sync now (disabled, licence lapsed, nothing to sync from)."""


class DailyLimitWait(SyncRefused):
    """Only the reserve of the tenant's daily API calls is left: syncs that nobody asked for
    wait for the platform's day to end."""


class Cancelled(IntdashError):
    """The run was stopped: asked to (``asked``: by someone, which is no failure) or by reaching
    its time limit (which is)."""

    def __init__(self, message: str, *, asked: bool = True) -> None:
        super().__init__(message)
        self.asked = asked


class StopRequest(asyncio.Event):
    """Asks a run in this process to stop after its current page, and says who asked."""

    by = "this process"

    def stop(self, by: str) -> None:
        self.by = by
        self.set()


class DailyLimitMet(IntdashError):
    """A scheduled run reached the reserve of the tenant's daily API calls, and stops."""

    def __init__(self, budget: DailyBudget) -> None:
        super().__init__(f"daily API limit: {budget.explanation}; the rest is kept for Sync Now")


@dataclass(frozen=True)
class RunResult:
    uid: str
    run_id: int
    outcome: RunOutcome
    fetched: int
    created: int
    updated: int
    held: int
    error: str | None
    retryable: bool = False  # waiting may fix it (not so a refused authorisation)
    resumes_at: datetime | None = None  # stopped by the daily API limit until then

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "run": self.run_id,
            "outcome": self.outcome.value,
            "fetched": self.fetched,
            "created": self.created,
            "updated": self.updated,
            "held": self.held,
            "error": self.error,
            "resumes_at": self.resumes_at.isoformat() if self.resumes_at else None,
        }


def claim_name(integration_id: int) -> str:
    return f"sync:{integration_id}"


def cancel_name(integration_id: int) -> str:
    return f"sync-cancel:{integration_id}"


CANCEL_BY = "cancel by "  # a stop request's holder: who asked


SYNC_LOCKS = "sync"  # the space of the sync claims' advisory locks (PostgreSQL)
LOCK_WAIT = 5.0  # seconds a dead local holder's session may take to end on the server


def _interrupted(claim_other: LeaseInfo | None, dead: bool) -> str:
    """The error of a run whose process stopped mid-run, as the run taking over knows it."""
    if claim_other is None:
        return "its process stopped mid-run"
    if dead:
        return f"its process ({claim_other.who}) stopped mid-run"
    return f"its process ({claim_other.who}) stopped renewing its claim mid-run"


async def _prefetched(
    pages: AsyncIterator[InvoicePage], ahead: int = 2
) -> AsyncIterator[InvoicePage]:
    """The same pages, in the same order, with the next ones fetched while the caller stores
    the current one (so network and database time overlap)."""
    queue: asyncio.Queue[InvoicePage | BaseException | None] = asyncio.Queue(maxsize=ahead)

    async def produce() -> None:
        try:
            async for page in pages:
                await queue.put(page)
            await queue.put(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer, in order
            await queue.put(exc)

    producer = asyncio.create_task(produce())
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await producer


class SyncEngine:
    def __init__(
        self,
        workspace: Workspace,
        connect: ConnectService | None = None,
        *,
        time_limit: timedelta | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._ws = workspace
        self.connect = connect or ConnectService(workspace)
        settings = workspace.settings.sync
        self.time_limit = time_limit or timedelta(minutes=settings.time_limit_minutes)
        self.claim_ttl = timedelta(seconds=settings.claim_seconds)  # renewed with every page
        self._sleep = sleep
        self._jitter = jitter
        self.holder = f"{process_identity()}:engine"
        # the integrations this engine syncs now, each with its advisory lock (PostgreSQL)
        self._held: dict[int, SessionLock | None] = {}
        self._holding = threading.Lock()

    # -- blocking steps (run in a thread) ----------------------------------------------------

    def _begin(self, uid: str, trigger: Trigger) -> Begun:
        """Check the integration may sync, and claim it: one read, then one write that takes
        the claim and records the run's start."""
        ws = self._ws
        with ws.db.read() as session:
            row = ws.integrations.find_live(session, uid)
            assert row.id is not None
            spec = type_spec(row.type)
            if not spec.oauth:
                raise SyncRefused(f"{row.uid} is a {spec.label}: it does not sync from a platform")
            plan = ws.plans.current(session)
            parts = self.connect.parts_in(session, row)
        if plan.licence is LicenceState.LAPSED:
            raise SyncRefused(f"the licence lapsed on {plan.licence_expires}: syncing has stopped")
        if not row.sync_enabled:
            raise SyncRefused(f"sync is disabled for {row.uid}: enable it first")
        budget = DailyBudget.current(row, ws.clock())
        reserve = daily_reserve(ws.settings, row.type)
        if trigger is not Trigger.MANUAL and budget is not None and budget.spent(reserve):
            raise DailyLimitWait(
                f"{row.uid} waits for its platform's day to end (daily API limit: "
                f"{budget.explanation})"
            )
        run_id = self._claim(row, trigger, plan)
        return Begun(row, run_id, plan, parts)

    def _claim(self, row: Integration, trigger: Trigger, plan: PlanView) -> int:
        """Take the claim on the integration and record the run's start, in one transaction;
        AlreadyRunning naming the claim's live holder."""
        ws, uid, integration_id = self._ws, row.uid, row.id
        assert integration_id is not None
        name = claim_name(integration_id)
        with self._holding:
            if integration_id in self._held:
                raise AlreadyRunning.held(uid, ws.leases.stored(name))
            self._held[integration_id] = None
        try:
            lock = ws.leases.session_lock(SYNC_LOCKS, integration_id)
            if lock is not None:
                if not self._lock(lock, name):  # its holder's session is alive
                    raise AlreadyRunning.held(uid, ws.leases.current(name))
                self._held[integration_id] = lock
            now = ws.clock()
            try:
                with ws.db.write_connection() as conn:
                    # holding the lock, any other holder is dead: its lease is taken over
                    claim = ws.leases.claim_in(
                        conn, name, self.holder, self.claim_ttl, lock is not None
                    )
                    if not claim.granted:
                        raise AlreadyRunning.held(uid, claim.other)
                    steps.drop(conn, cancel_name(integration_id))  # an old request
                    why = _interrupted(claim.other, claim.over_dead)
                    next_at = ws.schedule.after(uid, row.type, now, plan)
                    # where the run starts from, as its claim stands: a run that held the claim
                    # until a moment ago has moved the cursor since the integration was read
                    run_id, fresh = steps.start(
                        conn, integration_id, trigger.value, now, next_at, why
                    )
                    row.cursor, row.sync_from, row.remote_id = fresh
                    # held invoices get room when the month turns (a plan change releases them)
                    released = ws.invoices.release_due(conn, integration_id, now)
            except IntegrityError:  # another process inserted the claim first
                raise AlreadyRunning.held(uid, ws.leases.current(name)) from None
        except WouldWait:  # nothing was written: the claim is taken again in a thread
            self._let_go(integration_id, lease=False)
            raise
        except BaseException:
            self._let_go(integration_id)
            raise
        if released:
            log.info("%s: %d held invoices released", uid, released)
        return run_id

    def _lock(self, lock: SessionLock, name: str) -> bool:
        """Take the advisory lock of a claim. When the lease names a process of this host that
        has stopped, the server may not have ended its session yet: wait for that a little."""
        deadline = time.monotonic() + LOCK_WAIT
        while not lock.try_acquire():
            stood = self._ws.leases.stored(name)
            if stood is None or not holder_dead(stood.holder) or time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _let_go(self, integration_id: int, *, lease: bool = True) -> None:
        """Release the claim: its lease (unless the caller's transaction has), then the
        advisory lock."""
        try:
            if lease:
                self._ws.leases.release(claim_name(integration_id), self.holder)
        finally:
            with self._holding:
                lock = self._held.pop(integration_id, None)
            if lock is not None:
                lock.release()

    def _commit_page(
        self,
        integration_id: int,
        run_id: int,
        page: InvoicePage,
        totals: BatchResult,
        daily: DailyBudget | None = None,
    ) -> str | None:
        """Store a page, its cursor and the run's totals in one transaction, extending the
        claim (taken over, this run stores no more); who asked the run to stop, if anyone."""
        ws = self._ws
        now = ws.clock()
        with ws.db.write() as session:
            conn = session.connection()
            ws.leases.renew_in(conn, claim_name(integration_id), self.holder, self.claim_ttl)
            # the room is counted once a run (when first needed): nothing else fiscalizes for
            # the integration meanwhile
            result = ws.invoices.upsert(conn, integration_id, page.invoices, now, totals.room)
            # the run's totals take this page only once it is committed (a full disk may refuse)
            counted = replace(totals)
            counted.add(result)
            conn.execute(steps.CURSOR, {"b_id": integration_id, "b_cursor": page.cursor})
            steps.store_daily(conn, integration_id, daily)
            conn.execute(
                steps.PROGRESS,
                {
                    "b_id": run_id,
                    "b_fetched": counted.fetched,
                    "b_created": counted.created,
                    "b_updated": counted.updated,
                    "b_held": counted.held,
                },
            )
            request = ws.leases.current(cancel_name(integration_id), session)
        totals.add(result)
        totals.room = result.room
        return request.holder.removeprefix(CANCEL_BY) if request is not None else None

    def _remember_remote(self, integration_id: int, remote_id: str) -> None:
        with self._ws.db.write() as session:
            session.execute(
                update(Integration)
                .where(col(Integration.id) == integration_id)
                .values(remote_id=remote_id)
            )

    def _finish(
        self,
        integration_id: int,
        run_id: int,
        outcome: RunOutcome,
        error: str | None,
        show: bool,
        daily: DailyBudget | None = None,
        lost: bool = False,
        cursor: Pending | None = None,
    ) -> None:
        """Record the run's end and release its claim, in one transaction (``lost``: another
        run has the claim now, and any cancel request is that run's). ``cursor``: that of an
        empty last page, kept while the claim is still this run's."""
        ws = self._ws
        now = ws.clock()
        lease_given = again = False
        try:
            with ws.db.write_connection() as conn:
                # (lost: any request to stop is the run's that has the claim now)
                cancel = None if lost else cancel_name(integration_id)
                ours = steps.give_back(conn, claim_name(integration_id), self.holder, cancel)
                conn.execute(
                    steps.END,
                    {"b_id": run_id, "b_outcome": outcome.value, "b_now": now, "b_error": error},
                )
                steps.ended(
                    conn,
                    integration_id,
                    now,
                    ok=outcome is RunOutcome.OK,
                    error=error if show else None,
                    cursor=cursor if ours else None,
                    daily=daily,
                )
            lease_given = True
        except WouldWait:  # nothing was written: the run still holds its claim
            again = True
            raise
        except Exception:
            if ws.db.may_wait:
                raise
            # on the event loop: giving the claim back is a write that may have to wait, so
            # the end is made again in a thread (it committed nothing), and fails there as it
            # must, the claim given back where a write may wait
            again = True
            raise WouldWait("the run's end failed on the event loop") from None
        finally:
            if not again:
                self._let_go(integration_id, lease=not lease_given)

    # -- running -----------------------------------------------------------------------------

    async def run(
        self,
        uid: str,
        trigger: Trigger = Trigger.MANUAL,
        *,
        cancel: asyncio.Event | None = None,
        show_failure: bool = True,
        progress: Callable[[BatchResult], None] | None = None,
    ) -> RunResult:
        """One sync; failures are recorded and returned, not raised (but for refusals).
        ``progress`` is told the run's totals so far after each page is committed."""
        # on the event loop where that needs no wait: a step's hop to a thread and back, and the
        # interpreter's lock passed between the two threads at each of its statements, cost a
        # sync that finds nothing more than its statements
        done = self._ws.db.at_once(self._begin, uid, trigger)
        if done is not None:
            begun = done[0]
        else:
            begin = asyncio.ensure_future(asyncio.to_thread(self._begin, uid, trigger))
            try:
                begun = await asyncio.shield(begin)
            except asyncio.CancelledError:
                begin.add_done_callback(self._abandoned)  # the claim may be taken all the same
                raise
        row, run_id = begun.row, begun.run_id
        assert row.id is not None
        integration_id = row.id
        pending: Pending | None = None  # the cursor of an empty last page, kept at the end
        renewed = asyncio.get_running_loop().time()  # the claim was taken (or last extended)
        renew_every = self.claim_ttl.total_seconds() / 3
        lost = quiet = False  # its claim taken over; stopped as asked (neither is a failure)
        totals = BatchResult()
        deadline = asyncio.get_running_loop().time() + self.time_limit.total_seconds()
        outcome, error, retryable = RunOutcome.OK, None, False
        reserve = daily_reserve(self._ws.settings, row.type)
        api: ApiClient | None = None
        stopped_for_the_day = False
        try:
            async with self.connect.client_for(row, begun.parts) as api:
                if api.tenant is not None and api.tenant.id != row.remote_id:
                    # connected before intdash kept it in the clear (webhook events name it)
                    await asyncio.to_thread(self._remember_remote, integration_id, api.tenant.id)
                since: date | None = row.sync_from
                async for page in _prefetched(api.connector.pages(api, row.cursor, since)):
                    asked: str | None = None
                    loop = asyncio.get_running_loop()
                    # a page with nothing to store keeps its cursor for the run's end, unless
                    # the claim is due to be extended (and a stop request looked for): a run of
                    # empty pages (invoices read again, unchanged) must not let it lapse
                    if page.invoices or loop.time() - renewed > renew_every:
                        asked = await asyncio.to_thread(
                            self._commit_page, integration_id, run_id, page, totals, api.daily
                        )
                        pending, renewed = None, loop.time()
                    else:
                        pending = Pending(page.cursor)
                    if progress is not None:
                        progress(replace(totals))
                    # a sync nobody asked for leaves the day's last calls to Sync Now
                    if trigger is not Trigger.MANUAL and api.daily and api.daily.spent(reserve):
                        raise DailyLimitMet(api.daily)
                    if cancel is not None and cancel.is_set():
                        raise Cancelled(f"stopped by {getattr(cancel, 'by', 'this process')}")
                    if asked is not None:
                        raise Cancelled(f"stopped by {asked}")
                    if asyncio.get_running_loop().time() > deadline:
                        raise Cancelled(f"time limit of {self.time_limit} reached", asked=False)
        except Cancelled as exc:  # stopped as asked: a cancelled run, not a failure
            outcome, error, quiet = RunOutcome.CANCELLED, str(exc), exc.asked
        except LeaseLost as exc:  # another run took the claim over: it goes on, this one stops
            who = f" (in {exc.now.who})" if exc.now is not None else ""
            outcome, lost = RunOutcome.CANCELLED, True
            error = f"stopped: another run{who} took its claim over"
        except asyncio.CancelledError:
            daily = api.daily if api is not None else None
            await asyncio.shield(
                asyncio.to_thread(
                    self._finish, integration_id, run_id, RunOutcome.CANCELLED, "stopped",
                    False, daily, False, pending,
                )
            )  # fmt: skip
            raise
        except ProviderError as exc:
            outcome = RunOutcome.PARTIAL if totals.fetched else RunOutcome.FAILED
            error = str(exc)
            stopped_for_the_day = isinstance(exc, RateLimited) and exc.daily
            retryable = exc.retryable and not stopped_for_the_day
        except DailyLimitMet as exc:
            outcome, error, stopped_for_the_day = RunOutcome.PARTIAL, str(exc), True
        except IntdashError as exc:
            outcome = RunOutcome.PARTIAL if totals.fetched else RunOutcome.FAILED
            error = str(exc)
        except Exception as exc:  # a bug: recorded, never 'ok', and logged with its traceback
            log.exception("sync of %s failed", uid)
            outcome, error = RunOutcome.FAILED, f"internal error: {type(exc).__name__}: {exc}"
        daily = api.daily if api is not None else None
        resumes_at = daily.resets_at if stopped_for_the_day and daily is not None else None
        # a stop for the day is shown by the status (daily API limit), not as a failure
        show = show_failure and resumes_at is None and not lost and not quiet
        end = (integration_id, run_id, outcome, error, show, daily, lost, pending)
        if self._ws.db.at_once(self._finish, *end) is None:
            await asyncio.to_thread(self._finish, *end)
        log.info(
            "sync %s (%s): %s, fetched %d, created %d, updated %d, held %d%s",
            row.uid, trigger.value, outcome.value, totals.fetched, totals.created,
            totals.updated, totals.held, f": {error}" if error else "",
        )  # fmt: skip
        return RunResult(
            row.uid, run_id, outcome, totals.fetched, totals.created, totals.updated,
            totals.held, error, retryable, resumes_at,
        )  # fmt: skip

    def _abandoned(self, begin: asyncio.Future[Begun]) -> None:
        """A run cancelled while it claimed: once the claim is taken, record the run stopped
        and give the claim back (in a thread of its own: the loop may be closing)."""
        if begin.cancelled() or begin.exception() is not None:
            return
        begun = begin.result()
        assert begun.row.id is not None
        stopped = (begun.row.id, begun.run_id, RunOutcome.CANCELLED, "stopped", False)
        threading.Thread(target=self._finish, args=stopped, name="sync-abandoned").start()

    async def run_with_retries(
        self,
        uid: str,
        trigger: Trigger = Trigger.SCHEDULE,
        *,
        attempts: int = RETRY_CAP + 1,
        cancel: asyncio.Event | None = None,
    ) -> RunResult:
        """Retry failures with exponential backoff and jitter; the integration shows the failure
        only when the last attempt fails. Authorisation failures and refusals are not retried."""
        for attempt in range(attempts):
            last = attempt == attempts - 1
            result = await self.run(uid, trigger, cancel=cancel, show_failure=last)
            if result.outcome in (RunOutcome.OK, RunOutcome.CANCELLED) or last:
                return result
            if result.resumes_at is not None:  # the day's calls are spent: not a failure
                return result
            if not result.retryable:
                await asyncio.to_thread(self._show, uid, result.error or result.outcome.value)
                return result
            if cancel is not None and cancel.is_set():
                return result
            await self._sleep(RETRY_BASE * 2**attempt * (1 + self._jitter()))
        raise AssertionError("unreachable")

    def _show(self, uid: str, error: str) -> None:
        with self._ws.db.write() as session:
            row = self._ws.integrations.find(session, uid)
            row.last_sync_error = error
            session.add(row)

    def request_cancel(self, uid: str, by: str | None = None) -> bool:
        """Ask the run of ``uid`` (in any process) to stop after its current page, saying who
        asks (the workspace's actor by default)."""
        ws = self._ws
        with ws.db.read() as session:
            row = ws.integrations.find(session, uid)
        assert row.id is not None
        if not self.running(row.id):
            return False
        who = by or ws.actor
        ws.leases.drop(cancel_name(row.id))
        ws.leases.acquire(cancel_name(row.id), f"{CANCEL_BY}{who}"[:120], timedelta(minutes=10))
        return True

    def running(self, integration_id: int) -> bool:
        """Whether a live process (any) holds the integration's claim: a dead one's does not
        count, though its lease may not have lapsed yet."""
        ws = self._ws
        if ws.leases.current(claim_name(integration_id)) is None:  # none, lapsed, or dead here
            return False
        lock = ws.leases.session_lock(SYNC_LOCKS, integration_id)
        return lock is None or lock.held_elsewhere()  # PostgreSQL: dead on any host
