"""The fiscal outbox, as the sender and the operator use it: what is due is claimed in one
short transaction (marked ``sent`` before the SDC is called, outside any transaction), and each
answer is recorded: the SDC's whole response (``signed``), its refusal (``failed``: the operator
acts, then ``intdash fiscal retry``), or its unavailability (``pending`` again, later, with
backoff; or still ``sent`` when the request may have reached it).

Never twice: a row left ``sent`` (its answer timed out, or its process died) is reconciled
before anything else is sent: the same request, with the same ``RequestId``, is sent again, and
the SDC answers it with what it signed. Never lost: rows are written in the transaction that
records the sale or refund, and a restart takes up what it finds. An invoice's rows go in order:
a refund waits for its sale's signature, whose number and time it names; so does a credit
note's, whose sale is another invoice's.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, exists, func, select, update
from sqlmodel import Session

from intdash.core.fiscal_models import FiscalOutbox, OutboxStatus
from intdash.core.fiscal_vsdc import new_request_id
from intdash.core.models import Integration, RecordKind
from intdash.core.services.fiscal_requests import (
    Mapping_,
    UnmappedTaxCode,
    build_request,
    group_of,
    refund_request,
)
from intdash.core.services.fiscal_setup import FiscalSetup

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

OUTBOX = FiscalOutbox.__table__  # type: ignore[attr-defined]
INTEGRATIONS = Integration.__table__  # type: ignore[attr-defined]
PENDING, SENT = OutboxStatus.PENDING.value, OutboxStatus.SENT.value
SIGNED, FAILED = OutboxStatus.SIGNED.value, OutboxStatus.FAILED.value
WITHDRAWN = OutboxStatus.WITHDRAWN.value
DONE = (SIGNED, WITHDRAWN)  # an invoice's rows after these go ahead
FIRST_RETRY = timedelta(seconds=1)
LONGEST_RETRY = timedelta(minutes=5)
LEASE_MARGIN = timedelta(seconds=10)


def retry_delay(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff from a second, capped at five minutes, with ±20 % jitter."""
    base: timedelta = min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), LONGEST_RETRY)
    return base * (0.8 + 0.4 * (rng or random).random())


@dataclass(frozen=True)
class ToSign:
    """One request to send: the row, its ``RequestId`` and body (the same on every retry)."""

    id: int
    invoice_id: int
    integration_id: int
    kind: str
    request_id: str
    request: dict[str, Any]
    reconcile: bool  # sent before without an answer: the SDC may have signed it


@dataclass(frozen=True)
class Waiting:
    """An integration's invoices not signed yet: waiting (pending or sent) and refused."""

    waiting: int = 0
    failed: int = 0
    first_error: str | None = None  # of the oldest refused


@dataclass(frozen=True)
class Counts:
    pending: int = 0
    sent: int = 0
    signed: int = 0
    failed: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "pending": self.pending,
            "sent": self.sent,
            "signed": self.signed,
            "failed": self.failed,
        }


# built once: every signed invoice stores its response with it
_SIGNED = (
    update(OUTBOX)
    .where(OUTBOX.c.id == bindparam("b_id"), OUTBOX.c.status == SENT)
    .values(
        status=SIGNED,
        signed_at=bindparam("b_at"),
        error=None,
        sdc_invoice_number=bindparam("b_number"),
        sdc_time=bindparam("b_time"),
        invoice_counter=bindparam("b_counter"),
        total_counter=bindparam("b_total"),
        verification_url=bindparam("b_url"),
        qr=bindparam("b_qr"),
        journal=bindparam("b_journal"),
        signature=bindparam("b_signature"),
        response=bindparam("b_response"),
    )
)


class FiscalService:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self.setup = FiscalSetup(workspace)

    @property
    def lease(self) -> timedelta:
        """How long a sent row is left to its sender before it is reconciled."""
        return timedelta(seconds=self._ws.settings.fiscal.timeout) + LEASE_MARGIN

    # -- the sender's side --------------------------------------------------------------------

    def claim(self, limit: int = 50) -> list[ToSign]:
        """Take what is to be sent now: rows left sent first (reconciled, and nothing else
        until they are); else up to ``limit`` due rows, each the first unsigned one of its
        invoice. Each is marked sent with its request built (kept for every retry); a row whose
        request cannot be built (a tax code without a label) fails at once, naming why."""
        ws = self._ws
        now = ws.clock()
        with ws.db.write() as session:
            conn = session.connection()
            left = conn.execute(
                select(OUTBOX.c.id, OUTBOX.c.next_attempt_at)
                .where(OUTBOX.c.status == SENT)
                .order_by(OUTBOX.c.id)
                .with_for_update(skip_locked=True)
            ).all()
            if left:
                due = [r.id for r in left if r.next_attempt_at <= now]
                return self._mark(session, due, now, reconcile=True)
            # (below: the first unsigned row of each invoice that is due, and whose sale, if it
            # names one, is signed)
            earlier = OUTBOX.alias("earlier")
            named = OUTBOX.alias("named")
            due_now = (
                select(OUTBOX.c.id)
                .where(OUTBOX.c.status == PENDING)
                .where(OUTBOX.c.next_attempt_at <= now)
                .where(
                    ~exists().where(
                        and_(
                            earlier.c.invoice_id == OUTBOX.c.invoice_id,
                            earlier.c.id < OUTBOX.c.id,
                            earlier.c.status.not_in(DONE),
                        )
                    )
                )
                .where(
                    ~exists().where(
                        and_(named.c.id == OUTBOX.c.refers_to, named.c.status != SIGNED)
                    )
                )
                .order_by(OUTBOX.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            while True:
                first = list(conn.execute(due_now).scalars())
                claimed = self._mark(session, first, now, reconcile=False)
                if claimed or not first:
                    return claimed
                # every row taken failed as its request was built (unmapped tax codes): those
                # are failed now, and the rows after them are as due; unless some wait for
                # the SDC's labels, whose rows stay as they were
                waiting = conn.execute(
                    select(OUTBOX.c.id)
                    .where(OUTBOX.c.id.in_(first))
                    .where(OUTBOX.c.status == PENDING)
                    .limit(1)
                ).first()
                if waiting is not None:
                    return []

    def _mark(
        self, session: Session, ids: list[int], now: datetime, *, reconcile: bool
    ) -> list[ToSign]:
        if not ids:
            return []
        conn = session.connection()
        rows = conn.execute(select(OUTBOX).where(OUTBOX.c.id.in_(ids)).order_by(OUTBOX.c.id)).all()
        sales = {
            r.id: r
            for r in conn.execute(
                select(OUTBOX).where(OUTBOX.c.id.in_({r.refers_to for r in rows if r.refers_to}))
            )
        }
        mappings: dict[int, Mapping_] = {}
        claimed: list[ToSign] = []
        for row in rows:
            request: dict[str, Any] | None
            if row.request is not None:
                request = json.loads(row.request)
            else:
                try:
                    request = self._request(session, row, sales, mappings)
                except UnmappedTaxCode as exc:
                    conn.execute(
                        update(OUTBOX)
                        .where(OUTBOX.c.id == row.id)
                        .values(status=FAILED, error=str(exc))
                    )
                    continue
                if request is None:
                    continue  # its labels are not known yet: the sender asks the SDC first
            conn.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id == row.id)
                .values(
                    status=SENT,
                    request=json.dumps(request),
                    attempts=row.attempts + 1,
                    sent_at=now,
                    next_attempt_at=now + self.lease,
                )
            )
            claimed.append(
                ToSign(
                    row.id,
                    row.invoice_id,
                    row.integration_id,
                    row.kind,
                    row.request_id,
                    request,
                    reconcile,
                )
            )
        return claimed

    def _request(
        self, session: Session, row: Any, sales: Mapping[int, Any], mappings: dict[int, Mapping_]
    ) -> dict[str, Any] | None:
        if row.kind == RecordKind.REFUND.value:
            sale = sales[row.refers_to]
            return refund_request(json.loads(sale.request), sale.sdc_invoice_number, sale.sdc_time)
        own = self._sale_request(session, row, mappings)
        if own is None or row.kind != RecordKind.CREDIT.value:
            return own
        # a credit note: its own items, refunded against the sale of the invoice it credits
        sale = sales[row.refers_to]
        return refund_request(own, sale.sdc_invoice_number, sale.sdc_time)

    def _sale_request(
        self, session: Session, row: Any, mappings: dict[int, Mapping_]
    ) -> dict[str, Any] | None:
        mapping = mappings.get(row.integration_id)
        if mapping is None:
            labels = self.setup.labels()
            if not labels:
                return None
            integration = (
                session.connection()
                .execute(
                    select(INTEGRATIONS.c.uid, INTEGRATIONS.c.name).where(
                        INTEGRATIONS.c.id == row.integration_id
                    )
                )
                .one()
            )
            mapping = mappings[row.integration_id] = Mapping_(
                integration.name,
                integration.uid,
                self.setup.mapping(session, row.integration_id),
                labels,
            )
        return build_request(json.loads(row.content), mapping)

    def signed(self, item: ToSign, response: Mapping[str, Any]) -> bool:
        """Store the SDC's whole response; returns whether its tax labels changed since they
        were read (``taxGroupRevision``), so that the sender reads them again."""
        ws = self._ws
        now = ws.clock()
        with ws.db.write() as session:
            conn = session.connection()
            stored = conn.execute(
                _SIGNED,
                {
                    "b_id": item.id,
                    "b_at": now,
                    "b_number": _text(response.get("invoiceNumber"), 100),
                    "b_time": _text(response.get("sdcDateTime"), 64),
                    "b_counter": _text(response.get("invoiceCounter"), 100),
                    "b_total": _int(response.get("totalCounter")),
                    "b_url": _text(response.get("verificationUrl")),
                    "b_qr": _text(response.get("verificationQRCode")),
                    "b_journal": _text(response.get("journal")),
                    "b_signature": _text(response.get("signature")),
                    "b_response": json.dumps(response),
                },
            )
            if not stored.rowcount:  # recorded already (a late answer after its reconciliation)
                return False
            # its webhook deliveries carry what the SDC signed: queued with it
            ws.deliveries.enqueue_signed(conn, item.invoice_id, item.integration_id, now)
            self._answered(session, now)
        revision = response.get("taxGroupRevision")
        return revision is not None and _int(revision) != self.setup.group()

    def refused(self, item: ToSign, message: str) -> None:
        """The SDC refused the request: it waits for the operator (``intdash fiscal retry``)."""
        ws = self._ws
        with ws.db.write() as session:
            session.connection().execute(
                update(OUTBOX)
                .where(OUTBOX.c.id == item.id)
                .values(status=FAILED, error=message[:2000])
            )
            uid = (
                session.connection()
                .execute(select(INTEGRATIONS.c.uid).where(INTEGRATIONS.c.id == item.integration_id))
                .scalar_one_or_none()
            )
            ws.audit.record(session, "fiscal.refused", uid, message[:400])

    def unavailable(self, item: ToSign, message: str, *, after_sending: bool) -> None:
        """No answer: tried again later; a request that may have reached the SDC stays sent
        and is reconciled (sent again as it was) before anything else."""
        ws = self._ws
        now = ws.clock()
        with ws.db.write() as session:
            attempts = (
                session.connection()
                .execute(select(OUTBOX.c.attempts).where(OUTBOX.c.id == item.id))
                .scalar_one()
            )
            session.connection().execute(
                update(OUTBOX)
                .where(OUTBOX.c.id == item.id)
                .values(
                    status=SENT if after_sending or item.reconcile else PENDING,
                    next_attempt_at=now + retry_delay(attempts),
                    error=message[:2000],
                )
            )
        self.setup.unreachable(message, now)

    def store_status(self, status: dict[str, Any]) -> None:
        self.setup.store_status(status)
        with self._ws.db.write() as session:
            self._answered(session, self._ws.clock())

    def _answered(self, session: Session, now: datetime) -> None:
        """The SDC answers (again): no longer recorded unreachable, and, if it was, what waited
        for it is due now, not after its backoff."""
        if self.setup.answered(session):
            session.connection().execute(
                update(OUTBOX)
                .where(OUTBOX.c.status == PENDING)
                .where(OUTBOX.c.next_attempt_at > now)
                .values(next_attempt_at=now)
            )

    # -- the operator's side ------------------------------------------------------------------

    def retry(self, uid: str | None = None) -> int:
        """Send what the SDC refused again (after the fix: a mapping, the certificate): each
        gets a new request, built afresh, with a new ``RequestId``."""
        ws = self._ws
        now = ws.clock()
        with ws.db.write() as session:
            query = update(OUTBOX).where(OUTBOX.c.status == FAILED)
            if uid is not None:
                query = query.where(
                    OUTBOX.c.integration_id == ws.integrations.find(session, uid).id
                )
            conn = session.connection()
            ids = (
                conn.execute(
                    select(OUTBOX.c.id).where(query.whereclause)  # type: ignore[arg-type]
                )
                .scalars()
                .all()
            )
            for row_id in ids:
                conn.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.id == row_id)
                    .values(
                        status=PENDING,
                        request=None,
                        request_id=new_request_id(ws.tokens),
                        next_attempt_at=now,
                        error=None,
                    )
                )
            if ids:
                ws.audit.record(session, "fiscal.retry", uid, f"{len(ids)} sent again")
        return len(ids)

    def counts(self) -> Counts:
        with self._ws.db.read() as session:
            found: dict[str, int] = dict(
                session.connection()
                .execute(select(OUTBOX.c.status, func.count()).group_by(OUTBOX.c.status))
                .all()
            )
        return Counts(
            found.get(PENDING, 0), found.get(SENT, 0), found.get(SIGNED, 0), found.get(FAILED, 0)
        )

    def waiting(self, session: Session) -> dict[int, Waiting]:
        """Each integration's invoices not signed yet (for its status)."""
        conn = session.connection()
        counts: dict[int, dict[str, int]] = {}
        for integration_id, status, n in conn.execute(
            select(OUTBOX.c.integration_id, OUTBOX.c.status, func.count())
            .where(OUTBOX.c.status.not_in(DONE))
            .group_by(OUTBOX.c.integration_id, OUTBOX.c.status)
        ):
            counts.setdefault(integration_id, {})[status] = n
        found = {}
        for integration_id, by_status in counts.items():
            error = None
            if by_status.get(FAILED):
                error = conn.execute(
                    select(OUTBOX.c.error)
                    .where(OUTBOX.c.integration_id == integration_id)
                    .where(OUTBOX.c.status == FAILED)
                    .order_by(OUTBOX.c.id)
                    .limit(1)
                ).scalar_one_or_none()
            found[integration_id] = Waiting(
                by_status.get(PENDING, 0) + by_status.get(SENT, 0), by_status.get(FAILED, 0), error
            )
        return found

    def reasons(self, session: Session) -> dict[int, tuple[str | None, str | None]]:
        """Each integration's fiscal reasons, in words, for its status (StatusFacts'
        ``sdc_refused`` and ``sdc_waiting``): invoices the SDC refused, and invoices waiting
        while the SDC is unavailable (``3 invoices waiting for the SDC: unavailable since
        14:02 (why)``). Invoices on their way to an SDC that answers are no reason."""
        down = self.setup.unavailable()
        found = {}
        for integration_id, waiting in self.waiting(session).items():
            refused = waiting_text = None
            if waiting.failed:
                n = waiting.failed
                refused = (
                    f"{n} invoice{'' if n == 1 else 's'} refused by the SDC: "
                    f"{waiting.first_error} (then intdash fiscal retry)"
                )
            if waiting.waiting and down is not None:
                n = waiting.waiting
                waiting_text = (
                    f"{n} invoice{'' if n == 1 else 's'} waiting for the SDC: unavailable "
                    f"since {down[0].astimezone():%H:%M} ({down[1]})"
                )
            if refused or waiting_text:
                found[integration_id] = (refused, waiting_text)
        return found

    def group_changed(self, revision: int | None) -> bool:
        known = self.setup.group()
        return revision is not None and known is not None and revision != known


def _text(value: Any, limit: int | None = None) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:limit] if limit else text


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


__all__ = ["Counts", "FiscalService", "ToSign", "Waiting", "group_of", "retry_delay"]
