"""The database: engine, sessions and migration at start.

SQLite (the default) runs in WAL mode with foreign keys on, a busy timeout, and secure delete
(a wiped credential is overwritten, not left in a free page). Write transactions on SQLite begin
IMMEDIATE, so two processes never deadlock upgrading a read lock. PostgreSQL works by URL.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlmodel import Session

from intdash.core.errors import ConfigError
from intdash.core.migrations import HEAD

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

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
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"INTDASH_DATABASE_URL: {url.get_backend_name()} is not supported; "
            "use sqlite:///PATH or postgresql://..."
        )
    return url


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # let SQLAlchemy's "begin" event below emit BEGIN, not the sqlite3 module
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA busy_timeout=10000",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA secure_delete=ON",
    ):
        cursor.execute(pragma)
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get(_BEGIN_KEY, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def _create_private(path: Path) -> None:
    """Create an empty file only its owner can read (SQLite gives its -wal and -shm files the
    database file's mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Database:
    """An engine plus the sessions the services use."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self._writers: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self.is_sqlite else contextlib.nullcontext()
        )
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                _create_private(Path(database).expanduser())
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)

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
    def write(self) -> Iterator[Session]:
        """A session whose transaction takes the write lock at once and commits at the end."""
        # SQLite has one writer at a time: this process's writers queue here, in turn, rather
        # than in SQLite's busy handler, whose growing sleeps make the slowest waits long
        with self._writers, Session(self.engine, expire_on_commit=False) as session:
            if self.is_sqlite:
                session.connection(execution_options={_BEGIN_KEY: "IMMEDIATE"})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

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
            if self.current_revision() == HEAD:
                return False
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
