"""When each integration syncs next, derived from stored facts so that every process agrees.

An integration's syncs fall on fixed slots: ``EPOCH + phase + k * interval``, where the interval
follows from the plan (and the platform's limits) and the phase from a hash of the UID, so that
thousands of integrations spread evenly over the interval. Its next sync is the first slot after
its last attempt; the database keeps it (``integrations.next_sync_at``) for any worker to claim
when due. A slot missed while no process ran is therefore run once, soon after one starts, and a
restart moves nothing. A platform's webhook event brings the next sync forward to
:data:`EVENT_DELAY` from now (Scale only), which coalesces a burst of events into one sync.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from intdash.core.catalog import TypeSpec
from intdash.core.plans import Tier, TierSpec
from intdash.core.status import Reason, Status

if TYPE_CHECKING:
    from intdash.core.config import Settings

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
BACKSTOP = timedelta(minutes=30)  # how often a platform that sends events is still polled
EVENT_DELAY = timedelta(seconds=1)  # events this close together make one sync
BUSY_RETRY = timedelta(seconds=10)  # due while another run of it goes on: looked at again then
HANDOFF = timedelta(minutes=1)  # a sync started by hand after a consent: a worker's if it is not


def phase(uid: str, interval: timedelta) -> timedelta:
    """Where in its interval an integration's slots fall: fixed per UID, evenly spread."""
    seconds = max(int(interval.total_seconds()), 1)
    digest = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big")
    return timedelta(seconds=digest % seconds)


def slot_after(uid: str, interval: timedelta, moment: datetime) -> datetime:
    """The integration's first slot strictly after ``moment``."""
    first = EPOCH + phase(uid, interval)
    passed = (moment - first) // interval  # whole intervals (floor, also before the epoch)
    return first + (passed + 1) * interval


def next_due(
    uid: str, interval: timedelta, last_attempt: datetime | None, now: datetime
) -> datetime:
    """When an integration with no stored next sync is due: at its first slot after its last
    attempt (which may have passed: then it is due now), or now when it never synced."""
    if last_attempt is None:
        return now
    return slot_after(uid, interval, last_attempt)


def poll_interval(plan: TierSpec, spec: TypeSpec, *, events: bool) -> timedelta:
    """How often an integration of ``spec``'s type is polled on ``plan``. With the platform's
    events received, Scale syncs on each event and polls only as a backstop; other plans wait
    for their slots (and poll at their interval). Never more often than the platform's daily
    allowance bears."""
    interval = timedelta(minutes=max(plan.interval_minutes, spec.min_poll_minutes))
    if events and spec.events and plan.tier is Tier.SCALE:
        return max(interval, BACKSTOP)
    return interval


@dataclass(frozen=True)
class NextSync:
    """When an integration syncs next, or why it will not (``at`` None, ``reason`` in words)."""

    at: datetime | None
    reason: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "next_sync": self.at.astimezone(UTC).isoformat() if self.at else None,
            "next_sync_reason": self.reason,
        }


NOT_SCHEDULED = NextSync(None)

# integrations in these states still sync (invoices are held, failures retried); one at its
# daily API limit waits for its platform's day to end
SYNCING_REASONS = frozenset(
    {None, Reason.LIMIT_REACHED, Reason.LAST_SYNC_FAILED, Reason.DAILY_LIMIT}
)


def events_received(settings: Settings, spec: TypeSpec) -> bool:
    """Whether intdash is set up to receive the platform's signed events (its webhook key)."""
    section = getattr(settings, spec.type.value, None)
    key = getattr(section, "webhook_key", None)
    return spec.events and key is not None and bool(key.get_secret_value())


def describe(
    *,
    uid: str,
    spec: TypeSpec,
    status: Status,
    stored: datetime | None,
    last_attempt: datetime | None,
    interval: timedelta,
    resumes_at: datetime | None,
    now: datetime,
) -> NextSync:
    """When the integration syncs next (the stored time, or the one derived from its last
    attempt until a scheduler stores it), or why it will not."""
    if spec.pushes:
        return NextSync(None, "it does not sync: its invoices are pushed to intdash's API")
    if not spec.syncs:
        return NextSync(None, "it does not sync: it receives deliveries of invoices")
    if status.reason not in SYNCING_REASONS:
        return NextSync(None, status.explanation)
    at = stored if stored is not None else next_due(uid, interval, last_attempt, now)
    if status.reason is Reason.DAILY_LIMIT and resumes_at is not None and at < resumes_at:
        at = slot_after(uid, interval, resumes_at)
    return NextSync(at)
