from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from intdash.core.db import Database, normalise_url
from intdash.core.dbtypes import canonical_amount
from intdash.core.errors import ConfigError
from intdash.core.migrations import HEAD
from intdash.core.models import Integration, Invoice, metadata
from intdash.core.workspace import Workspace
from tests.conftest import ON_POSTGRES


def test_migrations_create_exactly_the_models(ws: Workspace) -> None:
    with ws.db.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    assert diff == []
    assert ws.db.current_revision() == ws.db.head_revision()


def test_head_constant_matches_the_migration_scripts(ws: Workspace) -> None:
    assert ws.db.head_revision() == HEAD


def test_migrate_is_idempotent(ws: Workspace) -> None:
    assert ws.db.migrate() is False


def test_concurrent_first_start_migrates_once(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()  # the SQLite file's folder (intdash makes its home, not this)
    code = "import sys; from intdash.core.db import Database; Database(sys.argv[1]).migrate()"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, db_url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    db = Database(db_url)
    assert db.current_revision() == db.head_revision()
    assert "invoices" in inspect(db.engine).get_table_names()
    db.dispose()


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite pragmas")
def test_sqlite_runs_in_wal_mode_with_foreign_keys(ws: Workspace) -> None:
    with ws.db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA secure_delete")).scalar() == 1


def test_foreign_keys_are_enforced(ws: Workspace) -> None:
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError), ws.db.write() as session:
        session.add(
            Invoice(
                integration_id=9999,
                external_id="x",
                currency="NZD",
                subtotal=Decimal(1),
                tax=Decimal(0),
                total=Decimal(1),
                received_at=now,
                updated_at=now,
            )
        )


def _integration(ws: Workspace) -> int:
    uid = ws.integrations.create("custom").integration.uid
    with ws.db.read() as session:
        row_id = ws.integrations.find(session, uid).id
    assert row_id is not None
    return row_id


@pytest.mark.parametrize(
    ("stored", "read"),
    [
        ("1234567.89", "1234567.89"),
        ("0.1", "0.10"),
        ("-15.5", "-15.50"),
        ("0.0001", "0.0001"),
        ("99999999999.9999", "99999999999.9999"),
        ("10", "10.00"),
    ],
)
def test_money_is_exact(ws: Workspace, stored: str, read: str) -> None:
    integration_id = _integration(ws)
    now = ws.clock()
    with ws.db.write() as session:
        session.add(
            Invoice(
                integration_id=integration_id,
                external_id="m1",
                currency="AUD",
                subtotal=Decimal(stored),
                tax=Decimal("0"),
                total=Decimal(stored),
                received_at=now,
                updated_at=now,
            )
        )
    with ws.db.read() as session:
        invoice = session.exec(select(Invoice)).one()
    assert invoice.total == Decimal(stored)
    assert str(invoice.total) == read
    assert str(invoice.tax) == "0.00"


def test_money_refuses_more_than_four_places(ws: Workspace) -> None:
    integration_id = _integration(ws)
    now = ws.clock()
    with pytest.raises(Exception, match="more than 4 decimal places"), ws.db.write() as session:
        session.add(
            Invoice(
                integration_id=integration_id,
                external_id="m2",
                currency="AUD",
                subtotal=Decimal("1.00001"),
                tax=Decimal(0),
                total=Decimal("1.00001"),
                received_at=now,
                updated_at=now,
            )
        )
        session.flush()


def test_canonical_amount() -> None:
    assert str(canonical_amount(Decimal("12.3450"))) == "12.345"
    assert str(canonical_amount(Decimal("100"))) == "100.00"


def test_times_come_back_aware_in_utc(ws: Workspace) -> None:
    auckland = timezone(timedelta(hours=13))
    moment = datetime(2026, 3, 1, 9, 30, tzinfo=auckland)
    uid = ws.integrations.create("custom").integration.uid
    with ws.db.write() as session:
        row = ws.integrations.find(session, uid)
        row.last_attempted_sync = moment
        session.add(row)
    with ws.db.read() as session:
        stored = session.exec(select(Integration).where(Integration.uid == uid)).one()
    stored_at = stored.last_attempted_sync
    assert stored_at == moment
    assert stored_at is not None and stored_at.utcoffset() == timedelta(0)


def test_naive_times_are_refused(ws: Workspace) -> None:
    uid = ws.integrations.create("custom").integration.uid
    with pytest.raises(Exception, match="naive datetime"), ws.db.write() as session:
        row = ws.integrations.find(session, uid)
        row.last_attempted_sync = datetime(2026, 1, 1)
        session.add(row)
        session.flush()


def test_urls() -> None:
    assert normalise_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(ConfigError, match="not supported"):
        normalise_url("mysql://u@h/db")
    with pytest.raises(ConfigError, match="not a database URL"):
        normalise_url("nonsense")


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite file permissions")
def test_database_file_is_private(ws: Workspace) -> None:
    path = ws.db.sqlite_path
    assert path is not None
    assert path.stat().st_mode & 0o077 == 0


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's BEGIN modes")
def test_sqlite_writes_take_the_lock_at_once(ws: Workspace) -> None:
    from sqlalchemy import event

    seen: list[str] = []  # what SQLite itself is told

    def trace(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.set_trace_callback(seen.append)

    event.listen(ws.db.engine, "checkout", trace)
    with ws.db.write() as session:
        session.exec(select(Integration)).all()
    with ws.db.read() as session:
        session.exec(select(Integration)).all()
    with ws.db.write_connection() as conn:  # the pushes' and syncs' writer
        conn.execute(select(Integration)).all()
    # a connection told to begin IMMEDIATE whose transaction never began: not the next one's
    with ws.db.engine.connect() as conn:
        conn.execution_options(intdash_begin="IMMEDIATE")
    with ws.db.read() as session:
        session.exec(select(Integration)).all()
    begins = [s for s in seen if s.startswith("BEGIN")]
    assert begins == ["BEGIN IMMEDIATE", "BEGIN DEFERRED", "BEGIN IMMEDIATE", "BEGIN DEFERRED"]


def test_sqlite_through_another_driver_is_refused() -> None:
    with pytest.raises(ConfigError, match="sqlite\\+pysqlcipher is not supported"):
        normalise_url("sqlite+pysqlcipher:///tmp/x.db")
    assert normalise_url("sqlite+pysqlite:///tmp/x.db").drivername == "sqlite+pysqlite"


def test_a_batchs_stored_invoices_are_found_whatever_their_ids(ws: Workspace) -> None:
    """The upsert finds what a batch already stored (SQLite looks them up through a JSON array
    of the ids): an id with quotes, a backslash, other scripts or a NUL is updated, not
    inserted again (which the unique index would refuse)."""
    from tests.test_fiscal_rules import sale, source, upsert

    ids = ['q"uote', "back\\slash", "Ünïcødé 🧾", "  spaced ", "123"]
    if not ON_POSTGRES:  # PostgreSQL's text holds no NUL at all
        ids.append("nul\x00byte")
    uid = source(ws)
    first = [replace(sale(n), external_id=i) for n, i in enumerate(ids)]
    assert upsert(ws, uid, *first).created == len(ids)
    again = [replace(invoice, total=Decimal("230.00"), tax=Decimal("30.00")) for invoice in first]
    result = upsert(ws, uid, *again)
    assert (result.created, result.updated) == (0, len(ids))


def test_concurrent_writers_in_several_processes(ws: Workspace, env: dict[str, str]) -> None:
    code = (
        "from intdash.core.workspace import Workspace\n"
        "ws = Workspace.open()\n"
        "for n in range(15):\n"
        "    uid = ws.integrations.create('custom').integration.uid\n"
        "    ws.integrations.configure(uid, {'name': f'p{n}'})\n"
        "    ws.keys.create(uid, 'k')\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    views = ws.integrations.listing()
    assert len(views) == 45
    assert len({v.uid for v in views}) == 45
    assert all(v.status.active for v in views)


def test_a_newer_schema_is_named(ws: Workspace) -> None:
    with ws.db.write() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ConfigError, match=r"revision '9999'.*newer intdash"):
        ws.db.migrate()


def test_monthly_usage_backfilled_from_the_register(ws: Workspace) -> None:
    """A workspace from before the usage counts: the migration counts its records by month."""
    from alembic import command

    from intdash.core.models import MonthlyUsage
    from tests.test_integrations import add_invoices

    ws.plans.set("scale", monthly_limit=1000)
    uid = ws.integrations.create("custom", name="ERP").integration.uid
    add_invoices(ws, uid, 7)
    ws.clock.advance(days=20)  # type: ignore[attr-defined]  # into December
    add_invoices(ws, uid, 3, start=7)
    config = ws.db._alembic_config()
    with ws.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
        command.upgrade(config, "head")
    with ws.db.read() as session:
        counts = sorted(
            (row.month.isoformat(), row.fiscalized) for row in session.exec(select(MonthlyUsage))
        )
    assert counts == [("2026-11-01", 7), ("2026-12-01", 3)]
    assert ws.integrations.get(uid).invoices_this_month == 3


@pytest.mark.parametrize("count", [0, 1, 2, 319, 320, 321, 641, 1000])
def test_rows_go_in_several_a_statement_in_order_and_exact(tmp_path: Path, count: int) -> None:
    """insert_rows (a bulk sync's invoices and fiscal records on SQLite): every row, in order,
    each value as given, whatever the number of rows against the rows a statement holds."""
    from sqlalchemy import create_engine, event

    from intdash.core.db import MULTI_ROW_VALUES, insert_rows

    engine = create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    rows = [
        (n, f"text {n} 'quoted'", None if n % 7 else Decimal(n).to_eng_string())
        for n in range(count)
    ]
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c TEXT)")
        insert_rows(conn, "INSERT INTO t (a, b, c) VALUES", rows)
        stored = conn.exec_driver_sql("SELECT id, a, b, c FROM t ORDER BY id").all()
    assert [tuple(r[1:]) for r in stored] == rows
    assert [r[0] for r in stored] == list(range(1, count + 1))  # numbered in the order given
    per = MULTI_ROW_VALUES // 3
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(inserts) == (count > 0) * ((count >= per) + (count % per > 0))
    if count >= per:
        assert inserts[0].count("(?, ?, ?)") == per


def test_a_bulk_batch_is_written_several_rows_a_statement(ws: Workspace) -> None:
    """A page of new invoices and their fiscal records reach SQLite in multi-row statements,
    with the invoices numbered in the page's order and each record naming its own."""
    from sqlalchemy import event

    from tests.test_integrations import add_invoices

    if ON_POSTGRES:
        pytest.skip("SQLite's bulk path")
    uid = ws.integrations.create("custom").integration.uid
    ws.plans.set("scale")
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(args[2])

    event.listen(ws.db.engine, "before_cursor_execute", seen)
    try:
        add_invoices(ws, uid, 1000)
    finally:
        event.remove(ws.db.engine, "before_cursor_execute", seen)
    into = [s for s in statements if s.startswith(("INSERT INTO invoices", "INSERT INTO fiscal"))]
    assert into and all(s.count("), (") > 0 for s in into[:2]), [s[:80] for s in into]
    with ws.db.read() as session:
        found = select(Invoice.id, Invoice.external_id).order_by(col(Invoice.id))
        rows = session.exec(found).all()
    assert [e for _, e in rows] == [f"ext-{n}" for n in range(1000)]
    assert ws.invoices.verify().records == 1000


def test_a_sqlite_without_returning_is_refused_by_name() -> None:
    from intdash.core.db import SQLITE_NEEDED, sqlite_refused

    assert sqlite_refused((3, 31, 1)) == (
        "intdash needs SQLite 3.35 or later; this Python's is 3.31.1: use a Python built with "
        "a newer SQLite, or PostgreSQL"
    )
    assert sqlite_refused(SQLITE_NEEDED) is None
    assert sqlite_refused((3, 46, 0)) is None


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's write lock")
def test_a_write_that_must_not_wait_is_refused_while_another_connection_writes(
    ws: Workspace,
) -> None:
    from intdash.core.db import BUSY_TIMEOUT_MS, WouldWait

    ws.plans.set("starter")
    db = ws.db
    assert db.sqlite_path is not None
    other = sqlite3.connect(db.sqlite_path, isolation_level=None)  # another process's
    other.execute("BEGIN IMMEDIATE")
    try:
        with db.without_waiting():
            assert not db.may_wait
            with pytest.raises(WouldWait), db.write_connection() as conn:
                conn.execute(text("UPDATE plan SET monthly_limit = 7"))
            with pytest.raises(WouldWait), db.write() as session:
                session.execute(text("UPDATE plan SET monthly_limit = 7"))
            with db.read() as session:  # reading never waits for a writer (WAL)
                session.execute(text("SELECT count(*) FROM integrations")).one()
    finally:
        other.execute("COMMIT")
        other.close()
    assert db.may_wait
    with db.engine.connect() as conn:  # each connection waits for a lock as before
        timeouts = {conn.exec_driver_sql("PRAGMA busy_timeout").scalar()}
    assert timeouts == {BUSY_TIMEOUT_MS}
    with db.without_waiting(), db.write_connection() as conn:  # free now: written at once
        conn.execute(text("UPDATE plan SET monthly_limit = 7"))
    with db.read() as session:
        assert session.execute(text("SELECT monthly_limit FROM plan")).scalar() == 7


@pytest.mark.skipif(ON_POSTGRES, reason="this process's SQLite writers")
def test_a_write_that_must_not_wait_is_refused_while_another_thread_writes(
    ws: Workspace,
) -> None:
    from intdash.core.db import WouldWait

    db = ws.db
    writing, done = threading.Event(), threading.Event()

    def long_write() -> None:
        with db.write_connection():
            writing.set()
            done.wait(30)

    writer = threading.Thread(target=long_write)
    writer.start()
    try:
        assert writing.wait(30)
        with db.without_waiting(), pytest.raises(WouldWait), db.write_connection():
            pass
    finally:
        done.set()
        writer.join(30)
    with db.without_waiting(), db.write_connection() as conn:  # the turn is free again
        conn.execute(text("SELECT 1"))
