"""Invoices pushed by a Custom Integration: the same upsert, monthly limit and fiscal register as
synced ones (a pushed void refunds a fiscalized invoice), with each invoice's outcome and fiscal
records to answer with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from intdash.core.catalog import type_spec
from intdash.core.errors import ConflictError, FieldErrors, IntdashError, NotFoundError
from intdash.core.invoices import InvoiceData
from intdash.core.models import ApiKey, Integration
from intdash.core.plans import LicenceState
from intdash.core.services.plans import CURRENT
from intdash.core.services.stored import StoredInvoice, read_stored, with_outcome
from intdash.core.status import Reason

if TYPE_CHECKING:
    from intdash.core.services.plans import PlanView
    from intdash.core.workspace import Workspace


class IntegrationRefused(IntdashError):
    """The key is good but its integration may not take invoices now (answered with 403)."""


class _OneFailed(Exception):
    """A push of a group failed as it wrote: the group is written again, each push guarded."""


class KeyRefused(IntdashError):
    """The key was revoked or removed since it was checked (answered with 401)."""


@dataclass(frozen=True)
class Push:
    """One request's invoices, for the integration of the key (``key_id``) that sent them."""

    key_id: str
    uid: str
    invoices: Sequence[InvoiceData]


@dataclass(frozen=True)
class Pushed:
    """What became of a push: its invoices as stored, or why it was refused."""

    stored: list[StoredInvoice] | None = None
    error: IntdashError | None = None


_KEYS = ApiKey.__table__  # type: ignore[attr-defined]
_INTEGRATIONS = Integration.__table__  # type: ignore[attr-defined]
# the key's state and its integration's, as the push is written (revoked or disabled a moment
# ago: refused); the integration's row is locked, one push of it at a time, so that the
# month's room is counted right
_KEY_ROWS = select(
    _KEYS.c.key_id,
    _KEYS.c.id.label("key_row"),
    _KEYS.c.revoked_at,
    _KEYS.c.last_used_at,
    _INTEGRATIONS.c.id,
    _INTEGRATIONS.c.uid,
    _INTEGRATIONS.c.type,
    _INTEGRATIONS.c.removed_at,
    _INTEGRATIONS.c.sync_enabled,
).join(_INTEGRATIONS, _INTEGRATIONS.c.id == _KEYS.c.integration_id)
_KEY_AND_INTEGRATION = _KEY_ROWS.where(_KEYS.c.key_id == bindparam("b_key"))
_KEY_AND_INTEGRATION_LOCKED = _KEY_AND_INTEGRATION.with_for_update(of=_INTEGRATIONS)
# the keys of a group's pushes at once, where no row is locked (SQLite: its write lock is the
# whole database's)
_KEYS_AND_INTEGRATIONS = _KEY_ROWS.where(_KEYS.c.key_id.in_(bindparam("b_keys", expanding=True)))


def repeated(external_ids: Sequence[str]) -> list[tuple[int, int]]:
    """Each position whose external id came before, with the position where it first came."""
    first: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []
    for at, external_id in enumerate(external_ids):
        if external_id in first:
            repeats.append((at, first[external_id]))
        else:
            first[external_id] = at
    return repeats


class IngestService:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def check(self, uid: str) -> None:
        """Raise unless ``uid`` is a Custom Integration that may take invoices now (asked on
        every request: the few facts that refuse one, not the whole status)."""
        ws = self._ws
        with ws.db.read() as session:
            row = ws.integrations.find(session, uid)
            plan = ws.plans.current(session)
        refused = _refusal(row, plan)
        if refused is not None:
            raise IntegrationRefused(refused)

    def accept(self, uid: str, invoices: Sequence[InvoiceData]) -> list[StoredInvoice]:
        """Upsert ``invoices`` for ``uid`` in one transaction; returns each as stored, in the
        order given. An external id given twice is refused (which copy holds would be a guess,
        and only one would be fiscalized)."""
        repeats = repeated([data.external_id for data in invoices])
        if repeats:
            raise FieldErrors(
                {
                    f"invoices[{at}].external_id": f"the same as invoices[{first}].external_id"
                    for at, first in repeats
                }
            )
        for attempt in range(3):
            try:
                return self._accept(uid, invoices)
            except IntegrityError:
                # the same new invoice pushed twice at once: the other insert won; again, it
                # is now an update or nothing
                if attempt == 2:
                    raise ConflictError(
                        "the same invoices are being pushed concurrently; retry"
                    ) from None
        raise AssertionError("unreachable")

    def _accept(self, uid: str, invoices: Sequence[InvoiceData]) -> list[StoredInvoice]:
        ws = self._ws
        now = ws.clock()
        with ws.db.write() as session:
            conn = session.connection()
            # one push at a time per integration, so that the month's room is counted right
            row = conn.execute(
                select(Integration.__table__)  # type: ignore[attr-defined]
                .where(Integration.__table__.c.uid == uid)  # type: ignore[attr-defined]
                .with_for_update()
            ).first()
            if row is None:
                raise NotFoundError(f"no integration with UID {uid!r}")
            ws.invoices.release_held(conn, row.id, now)
            result = ws.invoices.upsert(conn, row.id, invoices, now, track=True)
            outcomes = result.outcomes or {}
            stored = self.read(conn, row.id, [data.external_id for data in invoices])
        return [
            with_outcome(stored[data.external_id], outcomes.get(data.external_id))
            for data in invoices
        ]

    def accept_group(self, pushes: Sequence[Push]) -> list[Pushed]:
        """Write concurrent pushes in one transaction, committed once: one wait for the disk
        for all of them, and none answered before it is durable. Each key and integration is
        checked again in the transaction, so a key revoked a moment ago writes nothing.

        Pushes are written straight, without a savepoint each (refusals are found before a push
        writes anything); should one fail as it writes, the transaction is rolled back and the
        group written again with a savepoint for each, so that one failure leaves the others
        as they are."""
        try:
            return self._group(pushes, guarded=False)
        except _OneFailed:
            return self._group(pushes, guarded=True)

    def _group(self, pushes: Sequence[Push], *, guarded: bool) -> list[Pushed]:
        ws = self._ws
        now = ws.clock()
        with ws.db.write_connection() as conn:
            plan = ws.plans.view_of(conn.execute(CURRENT).first())
            query = _KEY_AND_INTEGRATION if ws.db.is_sqlite else _KEY_AND_INTEGRATION_LOCKED
            if guarded:
                done: list[Pushed | None] = [None] * len(pushes)
                for n in _in_lock_order(pushes):
                    done[n] = self._guarded(conn, query, plan, pushes[n], now)
                return [outcome for outcome in done if outcome is not None]
            return self._together(conn, query, plan, pushes, now)

    def _together(
        self, conn: Connection, query: Any, plan: PlanView, pushes: Sequence[Push], now: datetime
    ) -> list[Pushed]:
        """The straight path: each push checked, then the pushes of one integration upserted
        as one batch and read back at once (so that a group costs about what one push does),
        in the order they came; pushes that share an invoice go one by one, in order."""
        ws = self._ws
        outcomes: list[Pushed | None] = [None] * len(pushes)
        checked: dict[int, Any] = {}
        keys = sorted({push.key_id for push in pushes})
        # the keys read at once, unless integrations' rows are to be locked one at a time
        at_once = len(keys) == 1 or ws.db.is_sqlite
        if len(keys) == 1:
            found = {keys[0]: conn.execute(query, {"b_key": keys[0]}).first()}
        elif at_once:
            found = {r.key_id: r for r in conn.execute(_KEYS_AND_INTEGRATIONS, {"b_keys": keys})}
        for n in _in_lock_order(pushes):
            push = pushes[n]
            if at_once:
                row = _check(found.get(push.key_id), plan, push)
            else:
                row = self._checked(conn, query, plan, push)
            if isinstance(row, IntdashError):
                outcomes[n] = Pushed(error=row)
            else:
                checked[n] = row
        members: dict[int, list[int]] = {}
        for n, row in checked.items():
            members.setdefault(row.id, []).append(n)
        touched: set[int] = set()
        try:
            for integration_id, group in members.items():
                ids = [data.external_id for n in group for data in pushes[n].invoices]
                if len(set(ids)) != len(ids):  # one invoice twice: in order, one push at a time
                    for n in group:
                        outcomes[n] = self._write(conn, checked[n], plan, pushes[n], now)
                    continue
                for n in group:
                    if checked[n].key_row not in touched:
                        touched.add(checked[n].key_row)
                        ws.keys.touch_in(conn, checked[n].key_row, checked[n].last_used_at, now)
                ws.invoices.release_due(conn, integration_id, now)
                batch = [data for n in group for data in pushes[n].invoices]
                result = ws.invoices.upsert(
                    conn, integration_id, batch, now, limit=plan.monthly_limit, track=True
                )
                told = result.outcomes or {}
                stored = self.read(conn, integration_id, ids)
                for n in group:
                    outcomes[n] = Pushed(
                        [
                            with_outcome(stored[data.external_id], told.get(data.external_id))
                            for data in pushes[n].invoices
                        ]
                    )
        except (DBAPIError, IntdashError) as exc:  # IntegrityError too: one push's, perhaps
            raise _OneFailed from exc
        done = [outcome for outcome in outcomes if outcome is not None]
        assert len(done) == len(pushes)
        return done

    def _checked(self, conn: Connection, query: Any, plan: PlanView, push: Push) -> Any:
        """The key's and integration's row, or the refusal (nothing written)."""
        return _check(conn.execute(query, {"b_key": push.key_id}).first(), plan, push)

    def _write(
        self, conn: Connection, row: Any, plan: PlanView, push: Push, now: datetime
    ) -> Pushed:
        ws = self._ws
        ws.keys.touch_in(conn, row.key_row, row.last_used_at, now)
        ws.invoices.release_due(conn, row.id, now)
        result = ws.invoices.upsert(
            conn, row.id, push.invoices, now, limit=plan.monthly_limit, track=True
        )
        outcomes = result.outcomes or {}
        ids = [data.external_id for data in push.invoices]
        stored = self.read(conn, row.id, ids)
        return Pushed([with_outcome(stored[i], outcomes.get(i)) for i in ids])

    def _guarded(
        self, conn: Connection, query: Any, plan: PlanView, push: Push, now: datetime
    ) -> Pushed:
        for attempt in range(3):
            try:
                with conn.begin_nested():
                    row = self._checked(conn, query, plan, push)
                    if isinstance(row, IntdashError):
                        return Pushed(error=row)
                    return self._write(conn, row, plan, push, now)
            except IntegrityError:
                # the same new invoice pushed at once through another process: its insert won;
                # again, it is now an update or nothing
                if attempt == 2:
                    return Pushed(
                        error=ConflictError(
                            "the same invoices are being pushed concurrently; retry"
                        )
                    )
            except IntdashError as exc:
                return Pushed(error=exc)
            except DBAPIError as exc:  # its savepoint is rolled back: the others stand
                if _deadlock(exc) and attempt < 2:
                    continue
                return Pushed(
                    error=ConflictError(
                        f"the push could not be stored now; retry ({_first_line(exc)})"
                    )
                )
        raise AssertionError("unreachable")

    def get(self, uid: str, external_id: str) -> StoredInvoice:
        with self._ws.db.read() as session:
            row = self._ws.integrations.find(session, uid)
            assert row.id is not None
            found = self.read(session.connection(), row.id, [external_id])
        if external_id not in found:
            raise NotFoundError(f"{uid} has no invoice with external id {external_id!r}")
        return found[external_id]

    def read(
        self, conn: Any, integration_id: int, external_ids: list[str]
    ) -> dict[str, StoredInvoice]:
        """See :func:`~intdash.core.services.stored.read_stored`."""
        vsdc = self._ws.settings.fiscal.register == "vsdc"
        return read_stored(conn, integration_id, external_ids, vsdc=vsdc)


def _check(row: Any, plan: PlanView, push: Push) -> Any:
    """``row`` (the push's key and its integration, as read in the transaction), or the
    refusal of the push (nothing written)."""
    if row is None or row.uid != push.uid:
        return KeyRefused("unknown API key")
    if row.revoked_at is not None:
        return KeyRefused("this API key has been revoked")
    refused = _refusal(row, plan)
    return IntegrationRefused(refused) if refused is not None else row


def _in_lock_order(pushes: Sequence[Push]) -> list[int]:
    """The pushes' positions in the order their integrations are locked (by UID): two groups
    locking the same integrations always take them in the same order, never each waiting for
    the other's."""
    return sorted(range(len(pushes)), key=lambda n: pushes[n].uid)


def _deadlock(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in ("40P01", "40001")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _refusal(row: Any, plan: PlanView) -> str | None:
    """Why the integration (a row with uid, type, removed_at and sync_enabled) takes no
    invoices now, or None. A reached monthly limit refuses nothing: the invoices are taken,
    and held."""
    if not type_spec(row.type).pushes:
        return f"{row.uid} is not a Custom Integration"
    reason = (
        Reason.REMOVED
        if row.removed_at is not None
        else Reason.LICENCE_LAPSED
        if plan.licence is LicenceState.LAPSED
        else Reason.SYNC_DISABLED
        if not row.sync_enabled
        else None
    )
    return None if reason is None else f"{row.uid} takes no invoices: {reason.value}"
