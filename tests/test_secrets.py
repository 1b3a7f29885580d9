"""Planted secrets must never be found in the raw database or in the logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from intdash.core.logs import configure_logging
from intdash.core.redact import MASK, redact, register_secret
from intdash.core.services.credentials import OAUTH_TOKEN
from intdash.core.workspace import Workspace
from tests.conftest import ON_POSTGRES, run_intdash

PLANTED = {
    "password": "Planted-Password-7Kq2",
    "header": "Planted-Header-Token-9Zx4",
    "access": "Planted-Access-Token-3Mv8",
    "refresh": "Planted-Refresh-Token-5Wn1",
    "tenant": "Planted-Tenant-Id-2Hb6",
}


def _raw_database(ws: Workspace) -> bytes:
    """Every byte the database holds: the SQLite files as they are on disk, or on PostgreSQL
    every row of every table as text."""
    path = ws.db.sqlite_path
    if path is not None:
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())
    dump = []
    with ws.db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                dump.append(repr(tuple(row)))
    return "\n".join(dump).encode()


def _logs(ws: Workspace) -> bytes:
    return b"".join(p.read_bytes() for p in ws.settings.log_dir.glob("*") if p.is_file())


def test_planted_secrets_are_nowhere_in_clear(env: dict[str, str]) -> None:
    debug_env = {**env, "INTDASH_LOG_LEVEL": "DEBUG"}

    def cli(*args: str, stdin: str | None = None) -> dict[str, object]:
        result = run_intdash("--verbose", *args, "--json", env=debug_env, stdin=stdin)
        assert result.returncode == 0, result.stderr
        for secret in PLANTED.values():
            assert secret not in result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    myob = cli(
        "integrations", "add", "myob", "--set", f"company_file_password={PLANTED['password']}"
    )
    hook = cli(
        "integrations", "add", "webhook", "--set", "url=https://example.com/h",
        "--set", f"headers=Authorization: Bearer {PLANTED['header']}",
    )  # fmt: skip
    custom = cli("integrations", "add", "custom")
    api_key = str(cli("keys", "create", str(custom["uid"]), "--label", "erp")["key"])
    signing = str(hook["signing_secret"])
    cli("integrations", "configure", str(myob["uid"]), "--set", "company_file_password=-",
        stdin=PLANTED["password"] + "-2\n")  # fmt: skip
    cli("vault", "rotate")

    from intdash.core.config import load_settings

    configure_logging(load_settings().log_path, "DEBUG")
    ws = Workspace.open(load_settings())
    try:
        with ws.db.write() as session:
            row = ws.integrations.find(session, str(myob["uid"]))
            assert row.id is not None
            token = {"access_token": PLANTED["access"], "refresh_token": PLANTED["refresh"]}
            ws.credentials.put(session, row.id, OAUTH_TOKEN, json.dumps(token))
            ws.credentials.put(session, row.id, "tenant_id", PLANTED["tenant"])
        # reading them back (as a connector would) logs nothing either
        with ws.db.read() as session:
            stored = ws.credentials.get(session, row.id, OAUTH_TOKEN)
            assert stored is not None and PLANTED["refresh"] in stored.value
        logging.getLogger("intdash.test").debug("token in hand: %s", stored.value)
        assert ws.integrations.get(str(myob["uid"])).status.active

        secrets = [*PLANTED.values(), PLANTED["password"] + "-2", api_key, signing]
        secrets.append(api_key.split("_", 2)[2])  # the secret part of the API key alone
        database, logs = _raw_database(ws), _logs(ws)
        assert logs, "the commands should have logged something"
        assert b"integration.created" in logs
        for secret in secrets:
            assert secret.encode() not in database, f"{secret} is in the database"
            assert secret.encode() not in logs, f"{secret} is in the logs"
        assert b"https://example.com/h" in database  # the search does see row data
        assert b"enc:v2:" in database  # the secrets are there, encrypted under the new key
    finally:
        ws.close()


@pytest.mark.skipif(ON_POSTGRES, reason="reads the SQLite file")
def test_removed_credentials_are_overwritten_on_disk(ws: Workspace) -> None:
    uid = ws.integrations.create("myob", values={"company_file_password": "x" * 12}).integration.uid
    with ws.db.read() as session:
        ciphertext = session.execute(text("SELECT ciphertext FROM credentials")).scalar_one()
    ws.integrations.remove(uid)
    with ws.db.engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    path = ws.db.sqlite_path
    assert path is not None
    assert ciphertext.encode() not in path.read_bytes()


def test_redaction_of_shapes_and_known_secrets() -> None:
    register_secret("known-secret-value")
    text_in = (
        "got known-secret-value and idk_abcd1234_ZZZZyyyyXXXXwwww1234 with "
        "Authorization: Bearer eyJhbGciOi.abc and refresh_token=r1r2r3r4 "
        '{"client_secret": "cs-1"} Zoho-oauthtoken 1000.abc'
    )
    out = redact(text_in)
    for leaked in ("known-secret-value", "ZZZZyyyy", "eyJhbGciOi", "r1r2r3r4", "cs-1", "1000.abc"):
        assert leaked not in out
    assert "idk_abcd1234_" + MASK in out


def test_exceptions_in_logs_are_redacted(tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "x.log"
    configure_logging(log_path, "INFO")
    register_secret("secret-in-an-exception")
    try:
        raise RuntimeError("failed with secret-in-an-exception")
    except RuntimeError:
        logging.getLogger("intdash.test").exception("boom")
    for handler in logging.getLogger().handlers:
        handler.flush()
    content = log_path.read_text()
    assert "failed with" in content
    assert "secret-in-an-exception" not in content
    assert oct(log_path.stat().st_mode & 0o777) == oct(0o600)


def test_callback_urls_and_ordinary_words() -> None:
    out = redact("GET /callback?code=abc123XYZ&state=st4te-value HTTP/1.1 exit code=1")
    assert "abc123XYZ" not in out and "st4te-value" not in out
    assert out.endswith("exit code=1")
