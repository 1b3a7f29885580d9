"""The syncs started from the dashboard (Sync Now, and the first sync after a consent).

They are the app's, not a screen's: each is an asyncio task that the registry owns, so it runs
whatever screen is shown, and leaving the screen that started it neither stops it nor touches a
screen that is gone. A screen that shows syncs listens while it is mounted; it is told the UID
whenever one starts, commits a page or ends, and reads how far it has come from the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from intdash.core.services.invoices import BatchResult
    from intdash.core.workspace import Workspace
    from intdash.sync.engine import RunResult, StopRequest, Trigger

log = logging.getLogger(__name__)


def _stop_request() -> StopRequest:
    from intdash.sync.engine import StopRequest  # when first needed: a quick start

    return StopRequest()


Listener = Callable[[str], None]  # told the UID of a sync that started, moved on or ended


@dataclass
class DashboardSync:
    """One sync the dashboard runs, and how far it has come."""

    uid: str
    trigger: Trigger | None  # None: by hand (the engine's "manual")
    cancel: StopRequest = field(default_factory=_stop_request)
    totals: BatchResult | None = None  # after its last committed page (None: none yet)
    result: RunResult | None = None  # when it ended with a run recorded
    error: BaseException | None = None  # when it ended without one (refused, or a bug)

    @property
    def fetched(self) -> int:
        return self.totals.fetched if self.totals else 0

    def progress(self) -> str:
        """How far it has come, in words."""
        if self.totals is None:
            return "starting"
        totals = self.totals
        return (
            f"fetched {totals.fetched:,}, created {totals.created:,}, "
            f"updated {totals.updated:,}, held {totals.held:,}"
        )


class DashboardSyncs:
    """The dashboard's running syncs, by UID: at most one each."""

    def __init__(self, workspace: Workspace, *, ended: Callable[[DashboardSync], None]) -> None:
        self._ws = workspace
        self._ended = ended
        self._running: dict[str, DashboardSync] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._listeners: list[Listener] = []
        self.closing = False

    def get(self, uid: str) -> DashboardSync | None:
        return self._running.get(uid)

    def __contains__(self, uid: object) -> bool:
        return uid in self._running

    def start(self, uid: str, trigger: Trigger | None = None) -> DashboardSync:
        """Start syncing ``uid`` on the running loop (the one running already if there is)."""
        running = self._running.get(uid)
        if running is not None:
            return running
        sync = self._running[uid] = DashboardSync(uid, trigger)
        self._tasks[uid] = asyncio.create_task(self._run(sync), name=f"dashboard sync {uid}")
        self._tell(uid)
        return sync

    def stop(self, uid: str) -> bool:
        """Ask the sync of ``uid`` to stop after its current page; False if none runs here."""
        sync = self._running.get(uid)
        if sync is None:
            return False
        sync.cancel.stop(by=f"{self._ws.actor} in the dashboard")
        return True

    async def _run(self, sync: DashboardSync) -> None:
        from intdash.sync.engine import SyncEngine, Trigger  # when first needed: a quick start

        def moved(totals: BatchResult) -> None:
            sync.totals = totals
            self._tell(sync.uid)

        try:
            sync.result = await SyncEngine(self._ws).run(
                sync.uid, sync.trigger or Trigger.MANUAL, cancel=sync.cancel, progress=moved
            )
        except asyncio.CancelledError:  # the dashboard is closing (the run is recorded stopped)
            raise
        except Exception as exc:  # refused (disabled, already syncing elsewhere…), or a bug
            sync.error = exc
        finally:
            self._running.pop(sync.uid, None)
            self._tasks.pop(sync.uid, None)
            self._tell(sync.uid)
        if not self.closing:
            self._ended(sync)

    # -- listening ---------------------------------------------------------------------------

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Tell ``listener`` of every change from now on; returns what stops it."""
        self._listeners.append(listener)

        def stop() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return stop

    def _tell(self, uid: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(uid)
            except Exception:  # one screen's trouble is not the sync's
                log.exception("showing the progress of the sync of %s failed", uid)

    # -- closing -----------------------------------------------------------------------------

    async def close(self, grace: float = 10.0) -> None:
        """Stop every sync: each is recorded as stopped (its committed pages are kept, and the
        next sync goes on from them)."""
        self.closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
