"""Shared fixtures: every test gets its own home and database.

The database is a SQLite file in the test's folder, or, when ``INTDASH_TEST_DATABASE_URL``
names a PostgreSQL server, a schema of its own there (dropped afterwards).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from intdash.core.config import Settings, load_settings
from intdash.core.workspace import Workspace

PG_URL = os.environ.get("INTDASH_TEST_DATABASE_URL")
ON_POSTGRES = bool(PG_URL)


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 15, 12, 0, tzinfo=UTC))


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'home' / 'intdash.db'}"
        return
    schema = f"t_{secrets.token_hex(6)}"
    base = make_url(PG_URL).set(drivername="postgresql+psycopg")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def env(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of a test's intdash: its own home and database, nothing inherited."""
    for name in list(os.environ):
        if name.startswith("INTDASH_"):
            monkeypatch.delenv(name)
    values = {"INTDASH_HOME": str(tmp_path / "home"), "INTDASH_DATABASE_URL": db_url}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings()


@pytest.fixture
def ws(settings: Settings, clock: FakeClock) -> Iterator[Workspace]:
    workspace = Workspace.open(settings, clock=clock, actor="tester")
    yield workspace
    workspace.close()


def run_intdash(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script, as an operator would, with only ``env`` set."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("INTDASH_")}
    script = Path(sys.executable).with_name("intdash")
    return subprocess.run(
        [str(script), *args],
        env={**base, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
