"""Leases: named claims with an expiry, shared by every process on the database.

A holder takes a lease when it is free or expired, renews it while it works, and releases it
when done. If the holder dies, its lease is taken over at once when the holder was a process of
this host (it is no longer running, or its pid now belongs to a process started later: see
:mod:`intdash.core.liveness`); a holder on another host is waited out until its lease lapses.
On PostgreSQL a :class:`SessionLock` beside a lease tells at once whether its holder, on any
host, is alive.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from intdash.core.errors import IntdashError
from intdash.core.liveness import ProcessId, holder_dead, parse_holder, process_identity
from intdash.core.models import Lease

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

__all__ = ["LeaseInfo", "LeaseLost", "LeaseService", "SessionLock", "process_identity"]

_LEASES = Lease.__table__  # type: ignore[attr-defined]
# built once: a sync takes, extends and gives back its claim in every run
BY_NAME = select(_LEASES).where(_LEASES.c.name == bindparam("b_name"))
BY_NAME_LOCKED = BY_NAME.with_for_update()
_VALUES: dict[str, Any] = {
    "name": bindparam("b_name"),
    "holder": bindparam("b_holder"),
    "acquired_at": bindparam("b_at"),
    "expires_at": bindparam("b_until"),
}
INSERT = insert(_LEASES).values(_VALUES)
# a claim nobody holds, in one statement (its name returned when it was taken); when another
# holds it, nothing is written and claim_in reads who
INSERT_FREE = {
    "sqlite": sqlite_insert(_LEASES)
    .values(_VALUES)
    .on_conflict_do_nothing()
    .returning(_LEASES.c.name),
    "postgresql": pg_insert(_LEASES)
    .values(_VALUES)
    .on_conflict_do_nothing()
    .returning(_LEASES.c.name),
}
EXTEND = (
    update(_LEASES)
    .where(_LEASES.c.name == bindparam("b_name"), _LEASES.c.holder == bindparam("b_holder"))
    .values(expires_at=bindparam("b_until"))
)
TAKE = (
    update(_LEASES)
    .where(_LEASES.c.name == bindparam("b_name"))
    .values(
        holder=bindparam("b_holder"), acquired_at=bindparam("b_at"), expires_at=bindparam("b_until")
    )
)
# a holder's claim given back (its name returned when it was still the holder's)
GIVE_BACK = (
    delete(_LEASES)
    .where(_LEASES.c.name == bindparam("b_claim"), _LEASES.c.holder == bindparam("b_holder"))
    .returning(_LEASES.c.name)
)
# ... and a request to stop its work dropped, whoever made it, in the same statement
GIVE_BACK_AND_DROP = (
    delete(_LEASES)
    .where(
        or_(
            and_(_LEASES.c.name == bindparam("b_claim"), _LEASES.c.holder == bindparam("b_holder")),
            _LEASES.c.name == bindparam("b_cancel"),
        )
    )
    .returning(_LEASES.c.name)
)
DROP = delete(_LEASES).where(_LEASES.c.name == bindparam("b_name"))


@dataclass(frozen=True)
class LeaseInfo:
    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime

    @property
    def process(self) -> ProcessId | None:
        """The process that holds it, if its holder names one."""
        return parse_holder(self.holder)

    @property
    def who(self) -> str:
        """The holder in an operator's words: host:pid, or the holder's own name."""
        return str(self.process or self.holder)


@dataclass(frozen=True)
class Claim:
    """What :meth:`LeaseService.claim` did."""

    granted: bool
    #: refused: the lease that stands; granted: another holder's lease it replaced (lapsed, or
    #: its holder dead), or None
    other: LeaseInfo | None
    #: granted over a holder known to be dead (not merely lapsed)
    over_dead: bool = False


class LeaseLost(IntdashError):
    """A holder renewing its lease found that another holder had taken it over."""

    def __init__(self, name: str, now: LeaseInfo | None) -> None:
        by = f"by {now.who}" if now is not None else "and released"
        super().__init__(f"its claim ({name}) was taken over {by}")
        self.now = now


def _info(row: Lease) -> LeaseInfo:
    return LeaseInfo(row.name, row.holder, row.acquired_at, row.expires_at)


class LeaseService:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def acquire(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Take (or, for its holder, renew) the lease; False when someone else holds it."""
        return self.claim(name, holder, ttl).granted

    def claim(self, name: str, holder: str, ttl: timedelta, *, others_dead: bool = False) -> Claim:
        """Take (or, for its holder, renew) the lease, saying whose it replaced. It is taken
        from another holder whose lease lapsed, or who is a dead process of this host, or
        whatever the lease says when the caller knows every other holder is dead
        (``others_dead``: it holds the :class:`SessionLock` that goes with the lease)."""
        try:
            with self._ws.db.write() as session:
                return self.claim_in(session.connection(), name, holder, ttl, others_dead)
        except IntegrityError:  # another process inserted it first
            return Claim(False, self.current(name))

    def claim_in(
        self, conn: Connection, name: str, holder: str, ttl: timedelta, others_dead: bool = False
    ) -> Claim:
        """:meth:`claim` in the caller's write transaction (which a concurrent insert of the
        same lease fails with IntegrityError, on PostgreSQL)."""
        now = self._ws.clock()
        values = {"b_name": name, "b_holder": holder, "b_at": now, "b_until": now + ttl}
        if conn.execute(INSERT_FREE[conn.dialect.name], values).first() is not None:
            return Claim(True, None)  # nobody held it
        query = BY_NAME if self._ws.db.is_sqlite else BY_NAME_LOCKED
        row = conn.execute(query, {"b_name": name}).first()
        if row is None:  # given back since (PostgreSQL: another transaction held it a moment)
            conn.execute(INSERT, values)
            return Claim(True, None)
        if row.holder == holder:
            conn.execute(EXTEND, {"b_name": name, "b_holder": holder, "b_until": now + ttl})
            return Claim(True, None)
        other = LeaseInfo(row.name, row.holder, row.acquired_at, row.expires_at)
        dead = others_dead or holder_dead(row.holder)
        if row.expires_at > now and not dead:
            return Claim(False, other)
        conn.execute(TAKE, {"b_name": name, "b_holder": holder, "b_at": now, "b_until": now + ttl})
        return Claim(True, other, dead)

    def renew_in(self, conn: Connection, name: str, holder: str, ttl: timedelta) -> None:
        """:meth:`renew` in the caller's transaction, on its connection."""
        until = self._ws.clock() + ttl
        if (
            conn.execute(EXTEND, {"b_name": name, "b_holder": holder, "b_until": until}).rowcount
            != 1
        ):
            row = conn.execute(BY_NAME, {"b_name": name}).first()
            now = LeaseInfo(row.name, row.holder, row.acquired_at, row.expires_at) if row else None
            raise LeaseLost(name, now)

    def renew(self, session: Session, name: str, holder: str, ttl: timedelta) -> None:
        """Extend ``holder``'s lease in the caller's write transaction; :class:`LeaseLost`
        when it is no longer the holder (it was taken over, and maybe released since)."""
        row = session.get(Lease, name, with_for_update=not self._ws.db.is_sqlite)
        if row is None or row.holder != holder:
            raise LeaseLost(name, _info(row) if row is not None else None)
        row.expires_at = self._ws.clock() + ttl
        session.add(row)

    def release(self, name: str, holder: str) -> None:
        with self._ws.db.write() as session:
            session.execute(
                delete(Lease).where(col(Lease.name) == name, col(Lease.holder) == holder)
            )

    def drop(self, name: str) -> None:
        """Remove the lease of that name, whoever holds it (a request, not a process's claim)."""
        with self._ws.db.write() as session:
            session.execute(delete(Lease).where(col(Lease.name) == name))

    def current(self, name: str, session: Session | None = None) -> LeaseInfo | None:
        """The live lease of that name, if any (read in ``session`` when given): not lapsed,
        and not held by a process of this host that has stopped."""
        found = self.stored(name, session)
        if found is None or found.expires_at <= self._ws.clock() or holder_dead(found.holder):
            return None
        return found

    def stored(self, name: str, session: Session | None = None) -> LeaseInfo | None:
        """The lease of that name as stored, lapsed or not, whoever holds it."""
        if session is None:
            with self._ws.db.read() as own:
                return self.stored(name, own)
        row = session.connection().execute(BY_NAME, {"b_name": name}).first()
        if row is None:
            return None
        return LeaseInfo(row.name, row.holder, row.acquired_at, row.expires_at)

    def session_lock(self, space: str, key: int) -> SessionLock | None:
        """A lock that dies with its holder's connection, on PostgreSQL; None on SQLite (whose
        holders are told alive by their process: one host)."""
        return None if self._ws.db.is_sqlite else SessionLock(self._ws.db.engine, space, key)


def advisory_keys(connection: Connection, space: str, key: int) -> tuple[int, int]:
    """The two keys of PostgreSQL's ``pg_*advisory_lock(int, int)`` for ``key`` in ``space``:
    the first from the space and the schema (each schema of a database is a workspace of its
    own), the second ``key`` (an int4)."""
    schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    first = zlib.crc32(f"intdash:{space}:{schema}".encode())
    if not -(2**31) <= key < 2**31:
        raise ValueError(f"advisory lock key out of range: {key}")
    return first - 2**32 if first >= 2**31 else first, key


class SessionLock:
    """A PostgreSQL session-level advisory lock, held on a connection of its own for as long
    as it is held: the server drops it when that connection ends, so it dies with the process
    holding it, on whatever host. Its connection is not idle in a transaction meanwhile."""

    def __init__(self, engine: Engine, space: str, key: int) -> None:
        self._engine, self.space, self.key = engine, space, key
        self._connection: Connection | None = None
        self._keys = (0, 0)

    @property
    def held(self) -> bool:
        return self._connection is not None

    def try_acquire(self) -> bool:
        """Take the lock if no session holds it; False when one does (its holder is alive)."""
        assert self._connection is None, "already held"
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            self._keys = keys = advisory_keys(connection, self.space, self.key)
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": keys[0], "b": keys[1]}
            ).scalar_one()
        except BaseException:
            connection.invalidate()
            connection.close()
            raise
        if not got:
            connection.close()
            return False
        self._connection = connection
        return True

    def release(self) -> None:
        """Unlock and give the connection back (closed, should unlocking fail: the server then
        drops the lock with the session)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            keys = self._keys
            connection.execute(
                text("SELECT pg_advisory_unlock(:a, :b)"), {"a": keys[0], "b": keys[1]}
            )
        except BaseException:
            connection.invalidate()  # a pooled session must not keep the lock
            raise
        finally:
            connection.close()

    def held_elsewhere(self) -> bool:
        """Whether another session holds the lock now (without taking it)."""
        with self._engine.connect() as connection:
            keys = advisory_keys(connection, self.space, self.key)
            found = connection.execute(
                text(
                    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                    " AND classid = CAST(CAST(:a AS bigint) AS oid)"
                    " AND objid = CAST(CAST(:b AS bigint) AS oid) AND objsubid = 2"
                    " AND pid <> pg_backend_pid()"
                ),
                {"a": keys[0] & 0xFFFFFFFF, "b": keys[1] & 0xFFFFFFFF},
            ).first()
            connection.rollback()
        return found is not None
