"""The environment as a clumsy operator leaves it: a read-only home or database, a full disk,
absurd numbers, a database URL or home with a typo, settings misspelt. Each is said in one line
that names what is wrong; none prints a traceback, and none loses or corrupts data.

Read-only and full file systems are real ones: a small tmpfs mounted for the test (remounted
read-only where needed), or ``chattr +i`` for an immutable file. Root ignores file modes, so
``chmod a-w`` proves nothing here; where the platform cannot mount or set the flag the test
is skipped, saying why.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from intdash.core.config import (
    OTHER_VARIABLES,
    config_path,
    environment_names,
    load_settings,
)
from intdash.core.db import storage_error
from intdash.core.errors import ConfigError, DiskFull, ReadOnlyDatabase
from intdash.core.logs import PrivateRotatingFileHandler, configure_logging
from intdash.core.workspace import Workspace
from intdash.providers.http import httpx
from intdash.sandbox.server import Sandbox
from tests.conftest import ON_POSTGRES, run_intdash
from tests.providers import connect, redirect_uri, sandbox, sandbox_env

__all__ = ["redirect_uri", "sandbox", "sandbox_env"]  # fixtures

ROOT = Path(__file__).resolve().parent.parent
NO_FILE_DATABASE = "the database is on the PostgreSQL server, not a file a test can constrain"


# -- helpers ---------------------------------------------------------------------------------


def one_line(stderr: str, *fragments: str) -> str:
    """The single line ``intdash: ...`` on stderr, holding every fragment."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("intdash: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def no_internals(text: str) -> None:
    """Nothing of the machinery: no traceback, no SQL, no parameters."""
    leaks = ("Traceback", "Logging error", "INSERT", "UPDATE ", "SELECT", "[parameters")
    for leak in (*leaks, "sqlalche.me"):
        assert leak not in text, text


class SmallDisk:
    """A tmpfs of a few megabytes, mounted at ``path`` for one test."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir()
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a small file system here: {mounted.stderr.strip()}")
        self.filler = path / "filler"

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)
        assert not os.access(self.path, os.W_OK) or _read_only(self.path)

    def fill(self, leave: int = 0) -> None:
        """Take all the room but ``leave`` bytes."""
        stat = os.statvfs(self.path)
        room = stat.f_bavail * stat.f_frsize - leave
        with self.filler.open("ab") as handle:
            os.posix_fallocate(handle.fileno(), 0, max(room, 1))

    def free(self) -> None:
        self.filler.unlink()

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


def _read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


@pytest.fixture
def disks(tmp_path: Path) -> Iterator[list[SmallDisk]]:
    made: list[SmallDisk] = []
    yield made
    for disk in reversed(made):
        disk.unmount()


def small_disk(disks: list[SmallDisk], tmp_path: Path, size: str = "8M") -> SmallDisk:
    disk = SmallDisk(tmp_path / f"disk{len(disks)}", size)
    disks.append(disk)
    return disk


def home_on(
    disk: SmallDisk, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """``env`` with the home on ``disk`` and, on SQLite, the database in it (the default)."""
    moved = {**env, "INTDASH_HOME": str(disk.path / "home")}
    monkeypatch.setenv("INTDASH_HOME", moved["INTDASH_HOME"])
    if not ON_POSTGRES:
        del moved["INTDASH_DATABASE_URL"]
        monkeypatch.delenv("INTDASH_DATABASE_URL")
    return moved


# -- 10. a read-only home --------------------------------------------------------------------


def test_read_only_home_logs_on_stderr_and_still_reads(
    env: dict[str, str], tmp_path: Path, disks: list[SmallDisk], monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = small_disk(disks, tmp_path)
    env = home_on(disk, env, monkeypatch)
    added = run_intdash("integrations", "add", "custom", "--name", "ERP", "--json", env=env)
    assert added.returncode == 0, added.stderr
    uid = json.loads(added.stdout)["uid"]
    disk.read_only()
    log_file = disk.path / "home" / "logs" / "intdash.log"
    for args in (["integrations", "list", "--json"], ["integrations", "show", uid, "--json"]):
        listed = run_intdash(*args, env=env)
        assert listed.returncode == 0, listed.stderr
        assert uid in listed.stdout
        one_line(
            listed.stderr,
            f"cannot write the log file {log_file}",
            "Read-only file system",
            "logging to standard error",
        )
    refused = run_intdash("integrations", "add", "custom", env=env)
    if ON_POSTGRES:  # the database is elsewhere and writable
        assert refused.returncode == 0, refused.stderr
        return
    assert refused.returncode != 0
    no_internals(refused.stderr)
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 2, refused.stderr  # the log file once, then the refusal
    assert "logging to standard error" in lines[0]
    assert lines[1] == lines[1].strip()
    assert re.fullmatch(r"intdash: the database \S+intdash\.db is read-only: .*", lines[1])


def test_a_log_file_that_fails_midway_says_so_once(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """/dev/full takes the file open, then refuses every write as a full disk does."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this platform")
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(Path("/dev/full"), "INFO")
        log = logging.getLogger("intdash.test")
        for n in range(150):
            log.info("record %d", n)
        log.warning("the disk is full, and this says so")
        log.error("so does this")
        err = capfd.readouterr().err
    finally:
        for handler in list(root.handlers):
            if handler not in saved[0]:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(saved[1])
    assert "Logging error" not in err and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines[0] == (
        "intdash: cannot write the log file /dev/full: No space left on device: "
        "logging to standard error"
    )
    # warnings and errors follow on stderr; the command's own output says what info would
    assert lines[1:] == [
        "WARNING intdash.test: the disk is full, and this says so",
        "ERROR intdash.test: so does this",
    ]


def test_a_failed_log_file_hands_records_to_its_fallback() -> None:
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = PrivateRotatingFileHandler("/dev/full")
    handler.fallback = Collect(logging.INFO)
    try:
        for n in range(3):
            handler.handle(logging.makeLogRecord({"msg": f"r{n}", "levelno": logging.INFO}))
    finally:
        handler.close()
    assert handler.failed
    assert records == ["r0", "r1", "r2"]


# -- 11. a read-only database ----------------------------------------------------------------


@pytest.mark.skipif(ON_POSTGRES, reason=NO_FILE_DATABASE)
def test_immutable_database_file_is_named_in_one_line(env: dict[str, str]) -> None:
    added = run_intdash("integrations", "add", "custom", "--name", "ERP", "--json", env=env)
    assert added.returncode == 0, added.stderr
    database = Path(env["INTDASH_DATABASE_URL"].removeprefix("sqlite:///"))
    flagged = subprocess.run(["chattr", "+i", str(database)], capture_output=True, text=True)
    if flagged.returncode != 0:
        pytest.skip(f"cannot make a file immutable here: {flagged.stderr.strip()}")
    try:
        assert not os.access(database, os.W_OK) or _immutable(database)
        refused = run_intdash("integrations", "add", "custom", "--name", "second", env=env)
        listed = run_intdash("integrations", "list", "--json", env=env)
    finally:
        subprocess.run(["chattr", "-i", str(database)], check=True)
    assert refused.returncode not in (0, 70)
    no_internals(refused.stderr)
    one_line(refused.stderr, f"the database {database} is read-only")
    assert listed.returncode == 0, listed.stderr
    assert [i["name"] for i in json.loads(listed.stdout)] == ["ERP"]
    # nothing was lost: the file takes changes again once it may
    again = run_intdash("integrations", "add", "custom", "--name", "second", env=env)
    assert again.returncode == 0, again.stderr


def _immutable(path: Path) -> bool:
    shown = subprocess.run(["lsattr", str(path)], capture_output=True, text=True, check=False)
    return "i" in shown.stdout.split()[0] if shown.stdout else False


@pytest.mark.skipif(not ON_POSTGRES, reason="a PostgreSQL session made read-only")
def test_read_only_postgresql_is_named_in_one_line(env: dict[str, str]) -> None:
    added = run_intdash("integrations", "add", "custom", "--name", "ERP", env=env)
    assert added.returncode == 0, added.stderr
    from sqlalchemy import make_url

    url = make_url(env["INTDASH_DATABASE_URL"])
    options = url.query["options"]
    assert isinstance(options, str)
    read_only = url.update_query_dict(
        {"options": options + " -cdefault_transaction_read_only=on"}
    ).render_as_string(hide_password=False)
    refused = run_intdash(
        "integrations", "add", "custom", env={**env, "INTDASH_DATABASE_URL": read_only}
    )
    assert refused.returncode not in (0, 70)
    no_internals(refused.stderr)
    one_line(refused.stderr, "the database", "is read-only")


def test_driver_errors_that_mean_no_room_or_no_writing() -> None:
    import psycopg.errors

    cases: list[tuple[BaseException, type[Exception]]] = [
        (sqlite3.OperationalError("database or disk is full"), DiskFull),
        (sqlite3.OperationalError("attempt to write a readonly database"), ReadOnlyDatabase),
        (
            psycopg.errors.DiskFull(
                'could not extend file "base/16384/16402": No space left on device'
            ),
            DiskFull,
        ),
        (
            psycopg.errors.ReadOnlySqlTransaction(
                "cannot execute INSERT in a read-only transaction"
            ),
            ReadOnlyDatabase,
        ),
    ]
    for error, kind in cases:
        found = storage_error(error, "DB")
        assert isinstance(found, kind), (error, found)
        assert "DB" in str(found)
    assert storage_error(sqlite3.OperationalError("no such table: x"), "DB") is None
    assert storage_error(OperationalError("SELECT 1", {}, ValueError("x")), "DB") is None


# -- 12. a full disk -------------------------------------------------------------------------


def _stored(env: dict[str, str], uid: str) -> int:
    listed = run_intdash("invoices", "list", "--integration", uid, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    return len(json.loads(listed.stdout))


@pytest.mark.skipif(ON_POSTGRES, reason=NO_FILE_DATABASE)
def test_a_sync_on_a_full_disk_reports_what_it_stored(
    sandbox_env: dict[str, str],
    sandbox: Sandbox,
    tmp_path: Path,
    disks: list[SmallDisk],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    disk = small_disk(disks, tmp_path, "16M")
    env = home_on(disk, sandbox_env, monkeypatch)
    env["INTDASH_XERO__PAGE_SIZE"] = "100"
    monkeypatch.setenv("INTDASH_XERO__PAGE_SIZE", "100")
    with Workspace.open(load_settings(), actor="tester") as ws:
        ws.plans.set("scale")
        uid = ws.integrations.create("xero").integration.uid
        asyncio.run(connect(ws, uid))
    disk.fill(leave=600 * 1024)  # room for a few pages of the 25
    synced = run_intdash("sync", uid, env=env)
    assert synced.returncode == 1, (synced.stdout, synced.stderr)
    no_internals(synced.stdout + synced.stderr)
    assert synced.stderr.lower().count("disk full") == 1, synced.stderr
    assert len(synced.stderr.strip().splitlines()) <= 2, synced.stderr
    said = re.fullmatch(
        r"(partial|failed): fetched ([\d,]+), created ([\d,]+), updated 0, held 0\n",
        synced.stdout,
    )
    assert said, synced.stdout
    created = int(said[3].replace(",", ""))
    disk.free()
    assert 0 < created < 2500
    assert _stored(env, uid) == created  # what it said it stored, it stored
    # with room again, the next sync stores the rest, and the database is whole
    again = run_intdash("sync", uid, "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["created"] == 2500 - created
    assert _stored(env, uid) == 2500
    with sqlite3.connect(disk.path / "home" / "intdash.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.skipif(ON_POSTGRES, reason=NO_FILE_DATABASE)
def test_a_database_that_cannot_open_on_a_full_disk_says_so(
    env: dict[str, str], tmp_path: Path, disks: list[SmallDisk], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite cannot make its -shm file: an I/O error to it, a full disk to the operator."""
    disk = small_disk(disks, tmp_path)
    env = home_on(disk, env, monkeypatch)
    added = run_intdash("integrations", "add", "custom", "--name", "ERP", env=env)
    assert added.returncode == 0, added.stderr
    disk.fill()
    listed = run_intdash("integrations", "list", env=env)
    assert listed.returncode == 1
    no_internals(listed.stderr)
    assert listed.stderr.count("disk full") == 1, listed.stderr
    assert listed.stderr.strip().splitlines()[-1].startswith("intdash: disk full: the database ")
    disk.free()
    again = run_intdash("integrations", "list", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert [i["name"] for i in json.loads(again.stdout)] == ["ERP"]


@pytest.mark.skipif(ON_POSTGRES, reason=NO_FILE_DATABASE)
def test_ingest_answers_503_with_retry_after_on_a_full_disk(
    env: dict[str, str], tmp_path: Path, disks: list[SmallDisk], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_ingest import LiveServer, bearer, custom, invoice

    disk = small_disk(disks, tmp_path, "16M")
    home_on(disk, env, monkeypatch)
    monkeypatch.setenv("INTDASH_SERVER__RATE_BURST", "1000")
    batch = {"invoices": [invoice(n) for n in range(1000)]}
    with Workspace.open(load_settings(), actor="tester") as ws:
        uid, key = custom(ws, limit=5000)
        disk.fill(leave=64 * 1024)
        with LiveServer(ws) as live, httpx.Client(timeout=30) as client:
            refused = client.post(f"{live.url}/v1/invoices", json=batch, headers=bearer(key))
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["Retry-After"]) > 0
            assert refused.json()["error"] == "disk_full"
            no_internals(refused.text)
            disk.free()
            taken = client.post(f"{live.url}/v1/invoices", json=batch, headers=bearer(key))
            assert taken.status_code == 201, taken.text
            assert taken.json()["created"] == 1000
        assert ws.integrations.get(uid).invoices_this_month == 1000


def _postgresql_disk_fills(ws: Workspace, after: int) -> None:
    """From the ``after``-th invoice on, PostgreSQL answers as when its disk is full (SQLSTATE
    53100, its own words): a trigger in the test's schema, dropped with it."""
    from sqlalchemy import text

    body = f"IF (SELECT count(*) FROM invoices) >= {int(after)} THEN RAISE EXCEPTION "  # noqa: S608 - an int, in DDL
    with ws.db.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION no_room() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                + body
                + "'could not extend file \"base/16384/16402\": No space left on device' "
                "USING ERRCODE = 'disk_full'; END IF; RETURN NEW; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER no_room BEFORE INSERT ON invoices "
                "FOR EACH ROW EXECUTE FUNCTION no_room()"
            )
        )


def _postgresql_disk_freed(ws: Workspace) -> None:
    from sqlalchemy import text

    with ws.db.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER no_room ON invoices"))


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL's own disk-full error")
def test_a_sync_when_postgresqls_disk_fills_reports_what_it_stored(
    sandbox_env: dict[str, str], sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**sandbox_env, "INTDASH_XERO__PAGE_SIZE": "100"}
    monkeypatch.setenv("INTDASH_XERO__PAGE_SIZE", "100")
    with Workspace.open(load_settings(), actor="tester") as ws:
        ws.plans.set("scale")
        uid = ws.integrations.create("xero").integration.uid
        asyncio.run(connect(ws, uid))
        _postgresql_disk_fills(ws, after=300)
        synced = run_intdash("sync", uid, env=env)
        assert synced.returncode == 1, (synced.stdout, synced.stderr)
        no_internals(synced.stdout + synced.stderr)
        one_line(synced.stderr, "disk full: the database postgresql")
        said = re.fullmatch(
            r"partial: fetched ([\d,]+), created ([\d,]+), updated 0, held 0\n", synced.stdout
        )
        assert said, synced.stdout
        created = int(said[2].replace(",", ""))
        assert 0 < created < 2500
        assert _stored(env, uid) == created
        _postgresql_disk_freed(ws)
    again = run_intdash("sync", uid, "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert _stored(env, uid) == 2500


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL's own disk-full error")
def test_ingest_answers_503_when_postgresqls_disk_is_full(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_ingest import LiveServer, bearer, custom, invoice

    monkeypatch.setenv("INTDASH_SERVER__RATE_BURST", "1000")
    with Workspace.open(load_settings(), actor="tester") as ws:
        uid, key = custom(ws, limit=5000)
        _postgresql_disk_fills(ws, after=0)
        with LiveServer(ws) as live, httpx.Client(timeout=30) as client:
            refused = client.post(f"{live.url}/v1/invoices", json=invoice(1), headers=bearer(key))
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["Retry-After"]) > 0
            assert refused.json()["error"] == "disk_full"
            no_internals(refused.text)
            _postgresql_disk_freed(ws)
            taken = client.post(f"{live.url}/v1/invoices", json=invoice(1), headers=bearer(key))
            assert taken.status_code == 201, taken.text
        assert ws.integrations.get(uid).invoices_this_month == 1


# -- 13. absurd numbers ----------------------------------------------------------------------


def test_numbers_beyond_any_sense_are_refused_in_one_line(env: dict[str, str]) -> None:
    huge = "99999999999999999999999"
    for args, name in [
        (["invoices", "list", "--limit", huge], "--limit"),
        (["invoices", "list", "--limit", huge, "--json"], "--limit"),
        (["plan", "set", "scale", "--limit", huge], "--limit"),
        (["deliveries", "resend", "webhook-x", huge], "DELIVERY_ID"),
        (["deliveries", "rotate-secret", "webhook-x", "--overlap-hours", huge], "--overlap-hours"),
        (["deliveries", "list", "webhook-x", "--limit", huge], "--limit"),
    ]:
        result = run_intdash(*args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        no_internals(result.stderr)
        one_line(result.stderr, name, huge, "is not in the range")
    plan = run_intdash("plan", "show", "--json", env=env)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["monthly_invoice_limit"] == 500  # unchanged


def test_the_plan_service_bounds_the_limit_for_every_face(ws: Workspace) -> None:
    from intdash.core.errors import FieldErrors

    with pytest.raises(FieldErrors, match="limit: must be at most 1,000,000,000"):
        ws.plans.set("scale", monthly_limit=10**23)
    assert ws.plans.current().limit_is_default


def test_numeric_settings_are_bounded(env: dict[str, str]) -> None:
    huge = "99999999999999999999999"
    for name in (
        "INTDASH_LIMITS__STARTER",
        "INTDASH_SYNC__CLAIM_SECONDS",
        "INTDASH_SYNC__TIME_LIMIT_MINUTES",
        "INTDASH_SERVER__MAX_BODY_BYTES",
    ):
        result = run_intdash("integrations", "list", env={**env, name: huge})
        assert result.returncode == 1, (name, result.stdout)
        one_line(result.stderr, f"invalid setting {name}: ", "less than or equal")


# -- 14. a database URL or a home with a typo ------------------------------------------------


def test_a_database_in_a_missing_folder_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    result = run_intdash(
        "integrations", "list", env={**env, "INTDASH_DATABASE_URL": f"sqlite:///{missing}/x.db"}
    )
    assert result.returncode == 1
    one_line(result.stderr, "does not exist", str(missing), "INTDASH_DATABASE_URL")
    assert not (tmp_path / "no").exists()


def test_a_home_in_a_missing_folder_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "typo" / "home"
    result = run_intdash("integrations", "list", env={**env, "INTDASH_HOME": str(home)})
    assert result.returncode == 1
    one_line(result.stderr, "does not exist", str(tmp_path / "typo"), "INTDASH_HOME")
    assert not (tmp_path / "typo").exists()


def test_the_homes_own_folder_is_made(env: dict[str, str], tmp_path: Path) -> None:
    """The home named by INTDASH_HOME (its parent exists), and the platform's default home
    with its parents."""
    named = run_intdash("integrations", "list", env=env)
    assert named.returncode == 0, named.stderr
    assert Path(env["INTDASH_HOME"]).is_dir()
    xdg = tmp_path / "xdg" / "data"  # where platformdirs puts the default home on Linux
    if sys.platform != "linux":
        pytest.skip("the default home is found by platformdirs from XDG_DATA_HOME on Linux")
    # the default home with its default database: a workspace of its own
    default_env = {
        k: v for k, v in env.items() if k not in ("INTDASH_HOME", "INTDASH_DATABASE_URL")
    }
    made = run_intdash("integrations", "list", env={**default_env, "XDG_DATA_HOME": str(xdg)})
    assert made.returncode == 0, made.stderr
    assert (xdg / "intdash").is_dir()
    assert (xdg / "intdash").stat().st_mode & 0o077 == 0


# -- 15. settings misspelt -------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("INTDASH_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("INTDASH_HOME", str(home))
    return home


def refused(match: str) -> Any:
    return pytest.raises(ConfigError, match=re.escape(match))


def test_intdash_config_must_name_a_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INTDASH_CONFIG", str(tmp_path / "nope.toml"))
    with refused(f"INTDASH_CONFIG names {tmp_path / 'nope.toml'}, which does not exist"):
        load_settings()
    monkeypatch.setenv("INTDASH_CONFIG", str(tmp_path))
    with refused(f"INTDASH_CONFIG names {tmp_path}, which is a folder"):
        load_settings()
    (clean_env / "config.toml").mkdir()
    monkeypatch.delenv("INTDASH_CONFIG")
    with refused("is a folder"):
        load_settings()


def test_unknown_environment_variables_are_named_as_written(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTDASH_LOG_LEVL", "debug")
    with refused("unknown environment variable INTDASH_LOG_LEVL (did you mean INTDASH_LOG_LEVEL?)"):
        load_settings()
    monkeypatch.delenv("INTDASH_LOG_LEVL")
    monkeypatch.setenv("INTDASH_XERO__CLIENT_UD", "x")
    with refused("unknown environment variable INTDASH_XERO__CLIENT_UD"):
        load_settings()
    monkeypatch.delenv("INTDASH_XERO__CLIENT_UD")
    monkeypatch.setenv("INTDASH_XERO__CLIENT_ID__MORE", "x")
    with refused("unknown environment variable INTDASH_XERO__CLIENT_ID__MORE"):
        load_settings()


def test_unknown_toml_keys_are_named_as_written(clean_env: Path) -> None:
    path = clean_env / "config.toml"
    path.write_text('log_levl = "DEBUG"\n[xero]\nclient_ud = "typo"\n[server]\nport = 8480\n')
    with pytest.raises(ConfigError) as refusal:
        load_settings()
    message = str(refusal.value)
    assert f"unknown setting `log_levl` in {path} (did you mean `log_level`?)" in message
    assert f"unknown setting `client_ud` in [xero] of {path}" in message
    assert "INTDASH_" not in message


def test_malformed_values_are_named_where_written(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = clean_env / "config.toml"
    path.write_text("[xero]\npage_size = 5000\n")
    with refused(f"invalid setting `page_size` in [xero] of {path}: "):
        load_settings()
    monkeypatch.setenv("INTDASH_XERO__PAGE_SIZE", "0")  # the environment wins, and is named
    with refused("invalid setting INTDASH_XERO__PAGE_SIZE: "):
        load_settings()
    monkeypatch.setenv("INTDASH_XERO__PAGE_SIZE", "100")
    assert load_settings().xero.page_size == 100
    monkeypatch.setenv("INTDASH_SERVER", "not json")
    with refused("invalid setting INTDASH_SERVER: not a JSON object"):
        load_settings()


def test_variables_read_elsewhere_are_kept(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTDASH_TEST_DATABASE_URL", "postgresql://somewhere/else")
    (clean_env / "other.toml").write_text("[server]\nport = 8480\n")
    monkeypatch.setenv("INTDASH_CONFIG", str(clean_env / "other.toml"))
    monkeypatch.setenv("INTDASH_SECRET_KEY", "k")
    monkeypatch.setenv("INTDASH_DATABASE_URL", "sqlite:///x.db")
    settings = load_settings()
    assert settings.server.port == 8480
    assert config_path() == clean_env / "other.toml"


def test_every_intdash_variable_the_project_names_is_known() -> None:
    """The code, scripts, CI and README name only settings and the variables read elsewhere."""
    known = environment_names() | set(OTHER_VARIABLES)
    places = [ROOT / "README.md", ROOT / "tests" / "conftest.py", ROOT / "tests" / "providers.py"]
    for folder in ("intdash", "bench", "scripts", ".ci"):
        places += [p for p in (ROOT / folder).rglob("*") if p.is_file() and p.suffix != ".pyc"]
    named: dict[str, Path] = {}
    for place in places:
        try:
            text = place.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        text = re.sub(r"unknown environment variable INTDASH_\w+", "", text)  # examples
        for name in re.findall(r"\bINTDASH_[A-Z0-9_]*[A-Z0-9]\b", text):
            named.setdefault(name, place)
    assert named, "no INTDASH_ names found"
    unknown = {name: str(place) for name, place in named.items() if name not in known}
    assert not unknown


def test_the_cli_names_a_misspelt_variable_in_one_line(env: dict[str, str]) -> None:
    result = run_intdash("integrations", "list", env={**env, "INTDASH_LOG_LEVL": "DEBUG"})
    assert result.returncode == 1
    one_line(result.stderr, "unknown environment variable INTDASH_LOG_LEVL")
    assert not Path(env["INTDASH_HOME"]).exists()  # refused before anything was made


# psycopg made unimportable in the child's own code, as on a machine without the postgres extra
WITHOUT_PSYCOPG = """
import sys
from importlib.abc import MetaPathFinder


class NoPsycopg(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "psycopg" or name.startswith("psycopg."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoPsycopg())
sys.argv = ["intdash", *sys.argv[1:]]
from intdash.cli import main

main()
"""


def test_postgresql_without_psycopg_names_the_extra_in_one_line(env: dict[str, str]) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("INTDASH_")}
    url = "postgresql://intdash@127.0.0.1:9/intdash"  # never reached: the driver is missing
    refused = subprocess.run(
        [sys.executable, "-c", WITHOUT_PSYCOPG, "integrations", "list"],
        env={**base, **env, "INTDASH_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode not in (0, 70), refused.stderr
    no_internals(refused.stderr)
    one_line(refused.stderr, "psycopg", "pip install 'intdash[postgres]'")
