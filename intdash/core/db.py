"""The database: engine, sessions and migration at start.

SQLite (the default) runs in WAL mode with foreign keys on, a busy timeout, and secure delete
(a wiped credential is overwritten, not left in a free page). Write transactions on SQLite begin
IMMEDIATE, so two processes never deadlock upgrading a read lock. PostgreSQL works by URL.

A database that cannot take a change says so in words (:class:`ReadOnlyDatabase`,
:class:`DiskFull`), never with the statement and its parameters; a SQLite file on a read-only
file system is opened for reading only. The folder of a SQLite file must exist: intdash
creates its home, not the folders an ``INTDASH_DATABASE_URL`` names (a typo there would open
an empty workspace).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import logging
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, ExceptionContext
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlmodel import Session

from intdash.core.errors import ConfigError, DiskFull, ReadOnlyDatabase, StorageError
from intdash.core.migrations import HEAD

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")

MIGRATIONS = Path(__file__).with_name("migrations")
_BEGIN_KEY = "intdash_begin"


def normalise_url(raw: str) -> URL:
    """Parse a database URL, choosing psycopg 3 for plain ``postgresql://`` URLs."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(f"INTDASH_DATABASE_URL is not a database URL: {raw!r}") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite" and url.drivername not in ("sqlite", "sqlite+pysqlite"):
        raise ConfigError(
            f"INTDASH_DATABASE_URL: {url.drivername} is not supported; use sqlite:///PATH "
            "(Python's own sqlite3)"
        )
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"INTDASH_DATABASE_URL: {url.get_backend_name()} is not supported; "
            "use sqlite:///PATH or postgresql://..."
        )
    return url


# how long a SQLite statement waits for another connection's lock before it fails
BUSY_TIMEOUT_MS = 10_000
# the BEGIN mode of a write that must not wait (:meth:`Database.without_waiting`)
_NOWAIT = "IMMEDIATE NOWAIT"


class WouldWait(Exception):
    """A step run by :meth:`Database.without_waiting` would have waited for another writer
    (or has long work to do): nothing of it was committed; run it again where it may wait."""


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # the dialect below emits BEGIN, not the sqlite3 module
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA foreign_keys=ON",
        f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA secure_delete=ON",
    ):
        cursor.execute(pragma)
    cursor.close()


# RETURNING (a sync's start and end), ON CONFLICT DO NOTHING with it
SQLITE_NEEDED = (3, 35)


def sqlite_refused(version: tuple[int, ...]) -> str | None:
    """Why a SQLite library of ``version`` cannot hold intdash's data, or None."""
    if version >= SQLITE_NEEDED:
        return None
    return (
        f"intdash needs SQLite {'.'.join(map(str, SQLITE_NEEDED))} or later; this Python's is "
        f"{'.'.join(map(str, version))}: use a Python built with a newer SQLite, or PostgreSQL"
    )


# values one statement of a multi-row insert binds: under SQLite's smallest limit (999)
MULTI_ROW_VALUES = 960


def insert_rows(conn: Connection, head: str, rows: Sequence[Sequence[Any]]) -> None:
    """``head`` (``INSERT INTO t (a, b, ...) VALUES``) for each of ``rows``, in order, through
    SQLite's driver, several rows a statement: the driver's executemany binds, steps and resets
    each row on its own, and a bulk sync's rows go in about 15 % faster this way."""
    if not rows:
        return
    width = len(rows[0])
    per = max(1, MULTI_ROW_VALUES // width)
    whole = len(rows) - len(rows) % per
    if whole:
        flat = list(itertools.chain.from_iterable(rows[:whole]))
        size = per * width
        chunks = [tuple(flat[at : at + size]) for at in range(0, len(flat), size)]
        conn.exec_driver_sql(_multi_row(head, width, per), chunks)
    if whole < len(rows):
        rest = tuple(itertools.chain.from_iterable(rows[whole:]))
        conn.exec_driver_sql(_multi_row(head, width, len(rows) - whole), rest)


@functools.lru_cache(maxsize=256)
def _multi_row(head: str, width: int, count: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return f"{head} {', '.join([one] * count)}"


class SQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite, beginning each transaction itself: DEFERRED, or IMMEDIATE where the
    connection was given the ``intdash_begin`` option (:meth:`Database.write`).

    The usual recipe, a listener of the engine's "begin" event, has SQLAlchemy dispatch the
    engine's events around every statement it runs, which cost a short write transaction
    (a pushed invoice's) about a sixth of its CPU."""

    supports_statement_cache = True  # it compiles nothing differently

    def set_connection_execution_options(
        self, connection: Connection, opts: Mapping[str, Any]
    ) -> None:
        super().set_connection_execution_options(connection, opts)
        mode = opts.get(_BEGIN_KEY)
        if mode is not None:  # for the transaction about to begin on it
            connection.connection.info[_BEGIN_KEY] = mode

    def do_begin(self, dbapi_connection: Any) -> None:
        mode = dbapi_connection.info.pop(_BEGIN_KEY, "DEFERRED")
        cursor = dbapi_connection.cursor()
        try:
            if mode == _NOWAIT:
                _begin_now(cursor)
            else:
                cursor.execute(f"BEGIN {mode}")
        finally:
            cursor.close()


def _begin_now(cursor: sqlite3.Cursor) -> None:
    """BEGIN IMMEDIATE, or WouldWait where another connection holds the write lock."""
    cursor.execute("PRAGMA busy_timeout=0")
    try:
        cursor.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        # (SQLITE_BUSY_RECOVERY, SQLITE_BUSY_SNAPSHOT...: the extended codes of a busy file)
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY:
            raise WouldWait("another connection is writing") from None
        raise
    finally:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


registry.register("sqlite.intdash", __name__, "SQLiteDialect")


def _forget_begin(_dbapi_connection: Any, record: Any) -> None:
    """A BEGIN mode given to a connection whose transaction never began is not the next's."""
    record.info.pop(_BEGIN_KEY, None)


def _create_private(path: Path) -> None:
    """Create an empty file only its owner can read (SQLite gives its -wal and -shm files the
    database file's mode). Its folder must exist."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _on_read_only_file_system(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _open_sqlite_file(path: Path) -> None:
    """Make sure the SQLite file can be opened: its folder exists, and the file is created
    (private) if it is missing."""
    if not path.parent.is_dir():
        raise ConfigError(
            f"the folder of the database {path} does not exist: {path.parent} "
            "(create it, or correct INTDASH_DATABASE_URL)"
        )
    if path.is_dir():
        raise ConfigError(f"the database {path} is a folder, not a file")
    if path.exists():
        return
    try:
        _create_private(path)
    except OSError as exc:
        raise ConfigError(f"cannot create the database {path}: {exc.strerror or exc}") from None


def _no_room(path: Path) -> bool:
    """Whether the file system of ``path`` is (all but) full."""
    try:
        stat = os.statvfs(path.parent)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < 256 * 1024


_SQLITE_FULL = {"SQLITE_FULL"}
_PG_DISK_FULL = {"53100"}  # disk_full
_PG_READ_ONLY = {"25006"}  # read_only_sql_transaction (a standby, default_transaction_read_only)


def storage_error(error: BaseException, database: str) -> StorageError | None:
    """The words for a driver's error that means the database cannot store anything now, or
    None for any other error. ``database`` names it (a path, or a URL without its password)."""
    sqlite_name = getattr(error, "sqlite_errorname", None)
    sqlstate = getattr(error, "sqlstate", None)
    text = str(error).lower()
    if (
        sqlite_name in _SQLITE_FULL
        or sqlstate in _PG_DISK_FULL
        or "database or disk is full" in text
        or "could not extend file" in text
        or "no space left on device" in text
    ):
        return DiskFull(
            f"disk full: the database {database} has no room left (free some space, then try "
            "again); nothing of the change that failed was stored"
        )
    if (
        (isinstance(sqlite_name, str) and sqlite_name.startswith("SQLITE_READONLY"))
        or sqlstate in _PG_READ_ONLY
        or "readonly database" in text
        or "read-only transaction" in text
    ):
        return ReadOnlyDatabase(
            f"the database {database} is read-only: it can be read but nothing can be changed "
            "(check the permissions of the file and its folder, and that the file system is "
            "writable)"
        )
    return None


class Database:
    """An engine plus the sessions the services use."""

    def __init__(self, url: str, *, echo: bool = False, held_connections: int = 0) -> None:
        """``held_connections``: how many connections the process may hold for long (each
        running sync holds one for its advisory lock on PostgreSQL), beyond its pool's usual
        five."""
        self.url = normalise_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self._writers = threading.RLock()  # SQLite's writers in this process, in turn
        self._now_only = threading.local()  # without_waiting() on this thread
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        #: a SQLite file on a read-only file system: opened for reading only
        self.read_only_media = False
        if self.is_sqlite:
            refused = sqlite_refused(sqlite3.sqlite_version_info)
            if refused:
                raise ConfigError(refused)
            path = self.sqlite_path
            if path is not None:
                _open_sqlite_file(path)
                self.read_only_media = _on_read_only_file_system(path)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
            if path is not None and self.read_only_media:
                # WAL needs a -shm file beside the database, which cannot be made here, so
                # SQLite reads it as immutable (without locks): nothing here can write it (a
                # writer elsewhere, behind a read-only bind, could only make a read stale)
                uri = f"file:{urllib.parse.quote(str(path))}?mode=ro&immutable=1"
                kwargs["creator"] = lambda: sqlite3.connect(
                    uri, uri=True, check_same_thread=False, timeout=10
                )
        else:
            kwargs["pool_pre_ping"] = True
            kwargs["pool_size"] = 5 + held_connections
        try:
            bound = self.url.set(drivername="sqlite+intdash") if self.is_sqlite else self.url
            self.engine: Engine = create_engine(bound, **kwargs)
        except ModuleNotFoundError as exc:
            if self.is_sqlite or exc.name is None or exc.name.split(".")[0] != "psycopg":
                raise
            raise ConfigError(
                "a PostgreSQL database needs psycopg: pip install 'intdash[postgres]'"
            ) from None
        event.listen(self.engine, "handle_error", self._storage_error)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "checkin", _forget_begin)

    def _storage_error(self, context: ExceptionContext) -> None:
        """Raise a full disk or a read-only database in words, without the SQL."""
        path = self.sqlite_path
        error = context.original_exception
        found = storage_error(error, str(path) if path is not None else self.describe())
        if found is None and path is not None and _no_room(path):
            # SQLite reports a -shm or -wal file it cannot grow as an I/O error
            name = getattr(error, "sqlite_errorname", "")
            if isinstance(name, str) and name.startswith("SQLITE_IOERR"):
                found = storage_error(
                    sqlite3.OperationalError("database or disk is full"), str(path)
                )
        if found is not None:
            raise found from None

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite or not self.url.database or self.url.database == ":memory:":
            return None
        return Path(self.url.database).expanduser()

    def describe(self) -> str:
        """The URL with any password hidden."""
        return self.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; it commits nothing."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextlib.contextmanager
    def without_waiting(self) -> Iterator[None]:
        """Within it, on this thread, a write that would wait for another writer (of this
        process or another) raises :class:`WouldWait` as it begins, instead of waiting.

        For the short steps of a sync run on the event loop (SQLite): a hop to a thread and
        back cost a no-change sync more than its statements. A step that meets a writer, or
        has long work to do (:meth:`may_wait` is then False), runs again in a thread."""
        before = getattr(self._now_only, "on", False)
        self._now_only.on = True
        try:
            yield
        finally:
            self._now_only.on = before

    def at_once(
        self, step: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> tuple[_T] | None:
        """``step`` run here and now, :meth:`without_waiting` (SQLite): its result, in a
        1-tuple. None where it would have waited for another writer, or had long work to do:
        it committed nothing, and is for a thread (and always on PostgreSQL)."""
        if not self.is_sqlite:
            return None
        try:
            with self.without_waiting():
                return (step(*args, **kwargs),)
        except WouldWait:
            return None

    @property
    def may_wait(self) -> bool:
        """False within :meth:`without_waiting`: long work is to raise :class:`WouldWait`."""
        return not getattr(self._now_only, "on", False)

    @contextlib.contextmanager
    def _turn(self) -> Iterator[str | None]:
        """This process's turn to write, on SQLite: the BEGIN mode its transaction takes (None
        on PostgreSQL, whose writers do not queue here)."""
        if not self.is_sqlite:
            yield None
        elif self.may_wait:
            # SQLite has one writer at a time: this process's writers queue here, in turn,
            # rather than in SQLite's busy handler, whose growing sleeps make long waits
            with self._writers:
                yield "IMMEDIATE"
        elif self._writers.acquire(blocking=False):
            try:
                yield _NOWAIT
            finally:
                self._writers.release()
        else:
            raise WouldWait("another thread of this process is writing")

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction takes the write lock at once and commits at the end."""
        with self._turn() as begin, Session(self.engine, expire_on_commit=False) as session:
            if begin is not None:
                session.connection(execution_options={_BEGIN_KEY: begin})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextlib.contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """:meth:`write` without the ORM session: a connection in a transaction that takes the
        write lock at once and commits at the end (the hottest writers, which run Core
        statements only)."""
        with self._turn() as begin, self.engine.connect() as conn:
            if begin is not None:
                conn.execution_options(**{_BEGIN_KEY: begin})
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()

    # -- migrations -------------------------------------------------------------------------

    def _alembic_config(self) -> Config:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        return config

    def current_revision(self) -> str | None:
        """The schema's revision, read without loading Alembic."""
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def head_revision(self) -> str | None:
        """The newest revision as Alembic's scripts say."""
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def migrate(self) -> bool:
        """Bring the schema to the newest revision; returns whether anything was applied."""
        try:
            current = self.current_revision()
            if current == HEAD:
                return False
            if self.read_only_media:
                raise ReadOnlyDatabase(
                    f"the database {self.sqlite_path} is on a read-only file system, and this "
                    f"intdash must upgrade its schema (from {current!r} to {HEAD!r}) first"
                )
            from alembic import command

            with self._migration_lock():
                if self.current_revision() == HEAD:
                    return False  # another process did it while we waited
                config = self._alembic_config()
                with self.engine.begin() as connection:
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
        except OperationalError as exc:
            raise ConfigError(f"cannot open database {self.describe()}: {exc.orig}") from None
        except Exception as exc:
            if type(exc).__name__ != "CommandError":  # alembic.util.exc.CommandError
                raise
            raise ConfigError(
                f"database {self.describe()} has schema revision {self.current_revision()!r}, "
                f"which this intdash does not know (it knows up to {HEAD!r}): is it from a "
                "newer intdash?"
            ) from None
        log.info("database migrated to %s", HEAD)
        return True

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if not self.is_sqlite:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(4772001)"))
                connection.commit()
                try:
                    yield
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(4772001)"))
                    connection.commit()
            return
        path = self.sqlite_path
        if path is None:
            yield
            return
        lock_path = path.with_name(path.name + ".migrate-lock")
        _create_private(lock_path)
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
