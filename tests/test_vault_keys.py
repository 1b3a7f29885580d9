"""The database knows the vault keys its secrets are under, and intdash will not start with a
missing or wrong key: it says so in one line, makes no key and writes nothing."""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from intdash.core.config import load_settings
from intdash.core.db import Database
from intdash.core.errors import VaultError
from intdash.core.vault import check_value, generate_key, parse_keyring
from intdash.core.workspace import Workspace
from tests.conftest import run_intdash

PASSWORD = "Planted-Password-4Rt7"
NEW_PASSWORD = "Planted-Password-9Yu2"


def _ok(env: dict[str, str], *args: str) -> Any:
    result = run_intdash(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _add_myob(env: dict[str, str], password: str = PASSWORD) -> str:
    added = _ok(env, "integrations", "add", "myob", "--set", f"company_file_password={password}")
    return str(added["uid"])


def _rows(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to show that nothing was written."""
    db = Database(db_url)
    try:
        with db.engine.connect() as conn:
            return {
                table: sorted(
                    (tuple(row) for row in conn.execute(text(f'SELECT * FROM "{table}"'))),  # noqa: S608
                    key=repr,
                )
                for table in sorted(inspect(conn).get_table_names())
            }
    finally:
        db.dispose()


def _recorded(db_url: str) -> dict[int, str]:
    db = Database(db_url)
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT version, check_value FROM vault_keys"))
            return {int(version): str(check) for version, check in rows}
    finally:
        db.dispose()


def _key_file_checks(path: Path) -> dict[int, str]:
    keys, _ = parse_keyring(path.read_text(), str(path), first_is_current=False)
    return {version: check_value(key, version) for version, key in keys.items()}


def _refusal(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("intdash: ")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# -- a deleted key file -------------------------------------------------------------------------


def test_deleted_key_file_with_secrets_is_refused_and_nothing_is_made(
    env: dict[str, str],
) -> None:
    uid = _add_myob(env)
    key_path = Path(env["INTDASH_HOME"]) / "vault.key"
    key_path.unlink()
    before = _rows(env["INTDASH_DATABASE_URL"])
    for args in (
        ["integrations", "list"],
        ["integrations", "show", uid],
        ["integrations", "configure", uid, "--set", f"company_file_password={NEW_PASSWORD}"],
        ["integrations", "add", "myob", "--set", f"company_file_password={NEW_PASSWORD}"],
        ["vault", "rotate"],
        ["plan", "show"],
    ):
        result = run_intdash(*args, env=env)
        line = _refusal(result, str(key_path), "missing", "key version 1", "restore", "backup")
        assert "INTDASH_SECRET_KEY=1:KEY" in line
        assert not key_path.exists(), args
        assert NEW_PASSWORD not in result.stderr + result.stdout
    assert _rows(env["INTDASH_DATABASE_URL"]) == before


def test_serve_refuses_a_deleted_key_file(env: dict[str, str]) -> None:
    _add_myob(env)
    key_path = Path(env["INTDASH_HOME"]) / "vault.key"
    key_path.unlink()
    before = _rows(env["INTDASH_DATABASE_URL"])
    with socket.socket() as probe:  # a free port, should it serve (it must not)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_intdash("serve", env={**env, "INTDASH_SERVER__PORT": str(port)})
    _refusal(result, str(key_path), "key version 1")
    assert not key_path.exists()
    assert _rows(env["INTDASH_DATABASE_URL"]) == before


def _run_in_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run the installed script with a terminal for its standard streams (the dashboard
    needs one); returns its exit code and all it wrote."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("INTDASH_")}
    script = Path(sys.executable).with_name("intdash")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(script), *args], stdin=slave, stdout=slave, stderr=slave, env={**base, **env}
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the other end closed
                    break
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.wait(timeout=10), output.decode(errors="replace")


def test_the_dashboard_refuses_a_deleted_key_file(env: dict[str, str]) -> None:
    _add_myob(env)
    key_path = Path(env["INTDASH_HOME"]) / "vault.key"
    key_path.unlink()
    before = _rows(env["INTDASH_DATABASE_URL"])
    code, output = _run_in_terminal(env)
    assert code != 0, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.startswith("intdash: ")]
    assert len(lines) == 1, output
    assert str(key_path) in lines[0] and "key version 1" in lines[0]
    assert not key_path.exists()
    assert _rows(env["INTDASH_DATABASE_URL"]) == before


def test_locate_works_without_the_key(env: dict[str, str]) -> None:
    _add_myob(env)
    key_path = Path(env["INTDASH_HOME"]) / "vault.key"
    key_path.unlink()
    assert _ok(env, "locate")["key"] == str(key_path)
    assert not key_path.exists()


def test_an_empty_vault_gets_a_key(env: dict[str, str]) -> None:
    key_path = Path(env["INTDASH_HOME"]) / "vault.key"
    assert _ok(env, "integrations", "list") == []
    assert key_path.exists()
    assert _recorded(env["INTDASH_DATABASE_URL"]) == _key_file_checks(key_path)
    # and, with nothing stored under it yet, a deleted one is not made again in silence
    key_path.unlink()
    _refusal(run_intdash("integrations", "list", env=env), str(key_path), "key version 1")
    assert not key_path.exists()


def test_an_empty_vault_keyed_from_the_environment_records_that_key(env: dict[str, str]) -> None:
    key = generate_key()
    env_key = {**env, "INTDASH_SECRET_KEY": key}
    uid = _add_myob(env_key)
    assert not (Path(env["INTDASH_HOME"]) / "vault.key").exists()
    raw = base64.urlsafe_b64decode(key)
    assert _recorded(env["INTDASH_DATABASE_URL"]) == {1: check_value(raw, 1)}
    assert _ok(env_key, "integrations", "show", uid)["uid"] == uid


def test_a_check_value_is_not_the_key(env: dict[str, str]) -> None:
    _add_myob(env)
    key_text = (Path(env["INTDASH_HOME"]) / "vault.key").read_text().split(":", 1)[1].strip()
    recorded = _recorded(env["INTDASH_DATABASE_URL"])
    assert len(recorded[1]) == 64
    raw = base64.urlsafe_b64decode(key_text)
    for table in _rows(env["INTDASH_DATABASE_URL"]).values():
        for row in table:
            for cell in row:
                assert key_text not in str(cell) and raw.hex() not in str(cell)


# -- a wrong key -------------------------------------------------------------------------------


def test_wrong_environment_key_is_refused_and_configure_writes_nothing(
    env: dict[str, str],
) -> None:
    uid = _add_myob(env)
    before = _rows(env["INTDASH_DATABASE_URL"])
    wrong = {**env, "INTDASH_SECRET_KEY": generate_key()}
    result = run_intdash(
        "integrations", "configure", uid, "--set", f"company_file_password={NEW_PASSWORD}",
        env=wrong,
    )  # fmt: skip
    line = _refusal(result, "INTDASH_SECRET_KEY", "different key of version 1", "key version 1")
    assert str(Path(env["INTDASH_HOME"]) / "vault.key") in line  # where the right key is
    assert NEW_PASSWORD not in result.stderr + result.stdout
    assert _rows(env["INTDASH_DATABASE_URL"]) == before
    # the right key still reads everything
    assert _ok(env, "integrations", "show", uid)["uid"] == uid


def test_wrong_key_file_is_refused(env: dict[str, str]) -> None:
    uid = _add_myob(env)
    key_path = Path(env["INTDASH_HOME"]) / "vault.key"
    key_path.write_text(f"1:{generate_key()}\n")
    key_path.chmod(0o600)
    before = _rows(env["INTDASH_DATABASE_URL"])
    result = run_intdash("integrations", "show", uid, env=env)
    _refusal(result, str(key_path), "different key of version 1", "restore")
    assert _rows(env["INTDASH_DATABASE_URL"]) == before


def test_a_wrong_key_is_refused_before_any_secret_is_stored(env: dict[str, str]) -> None:
    """Two keys must not write under one version: the first one used is the vault's."""
    _ok(env, "integrations", "list")
    wrong = {**env, "INTDASH_SECRET_KEY": generate_key()}
    result = run_intdash(
        "integrations", "add", "myob", "--set", f"company_file_password={NEW_PASSWORD}", env=wrong
    )
    _refusal(result, "INTDASH_SECRET_KEY", "version 1")
    assert _ok(env, "integrations", "list") == []


def test_a_running_process_refuses_a_key_file_swapped_under_it(ws: Workspace) -> None:
    created = ws.integrations.create("myob", values={"company_file_password": PASSWORD})
    key_path = ws.settings.key_path
    key_path.write_text(f"1:{generate_key()}\n")
    key_path.chmod(0o600)
    os.utime(key_path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    with pytest.raises(VaultError, match="different key of version 1"):
        ws.integrations.configure(created.integration.uid, {"company_file_password": "x" * 12})
    with ws.db.read() as session:
        row = ws.integrations.find(session, created.integration.uid)
        assert row.id is not None
        assert ws.credentials.names(session, row.id) == {"company_file_password"}


# -- intdash vault check -----------------------------------------------------------------------


def test_vault_check_lists_secrets_under_a_removed_key_version(env: dict[str, str]) -> None:
    old, new = generate_key(), generate_key()
    first = _add_myob({**env, "INTDASH_SECRET_KEY": old})
    both = {**env, "INTDASH_SECRET_KEY": f"2:{new},1:{old}"}
    second = _add_myob(both, NEW_PASSWORD)  # written under version 2
    only_new = {**env, "INTDASH_SECRET_KEY": f"2:{new}"}
    before = _rows(env["INTDASH_DATABASE_URL"])

    _refusal(run_intdash("integrations", "list", env=only_new), "INTDASH_SECRET_KEY", "version 1")

    result = run_intdash("vault", "check", env=only_new)
    assert result.returncode == 1, result.stderr
    assert first in result.stdout and "company_file_password" in result.stdout
    assert second not in result.stdout
    assert "v1" in result.stdout
    assert "1 of 2 secrets cannot be read" in result.stderr
    for secret in (PASSWORD, NEW_PASSWORD, old, new):
        assert secret not in result.stdout + result.stderr

    result = run_intdash("vault", "check", "--json", env=only_new)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["secrets"] == 2
    assert [(u["integration"], u["secret"], u["key_version"]) for u in data["unreadable"]] == [
        (first, "company_file_password", 1)
    ]
    assert "INTDASH_SECRET_KEY" in data["keys_problem"]

    assert run_intdash("vault", "check", env=both).stdout.strip() == "all 2 secrets readable"
    assert _rows(env["INTDASH_DATABASE_URL"]) == before


def test_vault_check_with_the_key_file_deleted(env: dict[str, str]) -> None:
    uid = _add_myob(env)
    key_path = Path(env["INTDASH_HOME"]) / "vault.key"
    key_path.unlink()
    result = run_intdash("vault", "check", env=env)
    assert result.returncode == 1
    assert uid in result.stdout and "company_file_password" in result.stdout
    assert str(key_path) in result.stdout
    assert not key_path.exists()


def test_rotation_records_the_new_key_and_check_passes(env: dict[str, str]) -> None:
    _add_myob(env)
    _ok(env, "integrations", "add", "webhook", "--set", "url=https://example.com/h")
    key_path = Path(env["INTDASH_HOME"]) / "vault.key"
    first = _ok(env, "vault", "check")
    assert first["ok"] is True and first["secrets"] == 2
    assert _ok(env, "vault", "rotate")["version"] == 2
    assert _recorded(env["INTDASH_DATABASE_URL"]) == _key_file_checks(key_path)
    assert set(_recorded(env["INTDASH_DATABASE_URL"])) == {2}
    result = run_intdash("vault", "check", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "all 2 secrets readable"
    # the retired key version 1 is not needed, so a key file without it opens
    assert _ok(env, "integrations", "list")


def test_rotation_with_environment_keys_records_the_new_key(env: dict[str, str]) -> None:
    old, new = generate_key(), generate_key()
    _add_myob({**env, "INTDASH_SECRET_KEY": old})
    assert (
        _ok({**env, "INTDASH_SECRET_KEY": f"2:{new},1:{old}"}, "vault", "rotate")["reencrypted"]
        == 1
    )
    assert _recorded(env["INTDASH_DATABASE_URL"]) == {
        2: check_value(base64.urlsafe_b64decode(new), 2)
    }
    only_new = {**env, "INTDASH_SECRET_KEY": f"2:{new}"}
    assert run_intdash("vault", "check", env=only_new).returncode == 0
    assert _ok(only_new, "integrations", "list")


# -- a workspace from before the versions were recorded ---------------------------------------


def _as_before_recording(ws: Workspace) -> None:
    """Take the schema back to before vault_keys, as a workspace made by an older intdash."""
    config = ws.db._alembic_config()
    previous = ScriptDirectory.from_config(config).get_revision("0010").down_revision
    assert isinstance(previous, str)
    with ws.db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, previous)
    assert "vault_keys" not in inspect(ws.db.engine).get_table_names()


def test_an_upgraded_workspace_opens_and_records_its_keys(ws: Workspace) -> None:
    uid = ws.integrations.create("myob", values={"company_file_password": PASSWORD})
    _as_before_recording(ws)
    settings = ws.settings
    ws.close()
    again = Workspace.open(settings)
    try:
        assert _recorded(settings.db_url) == _key_file_checks(settings.key_path)
        view = again.integrations.get(uid.integration.uid)
        with again.db.read() as session:
            row = again.integrations.find(session, view.uid)
            assert row.id is not None
            stored = again.credentials.get(session, row.id, "company_file_password")
        assert stored is not None and stored.value == PASSWORD
    finally:
        again.close()


def test_an_upgraded_workspace_with_a_wrong_key_is_refused(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.integrations.create("myob", values={"company_file_password": PASSWORD})
    _as_before_recording(ws)
    ws.close()
    monkeypatch.setenv("INTDASH_SECRET_KEY", generate_key())
    settings = load_settings()
    with pytest.raises(VaultError, match="INTDASH_SECRET_KEY holds a different key of version 1"):
        Workspace.open(settings)
    assert _recorded(settings.db_url) == {}


def test_an_upgraded_workspace_without_its_key_file_is_refused(ws: Workspace) -> None:
    ws.integrations.create("myob", values={"company_file_password": PASSWORD})
    _as_before_recording(ws)
    ws.close()
    ws.settings.key_path.unlink()
    with pytest.raises(VaultError, match="missing"):
        Workspace.open(ws.settings)
    assert not ws.settings.key_path.exists()
    assert _recorded(ws.settings.db_url) == {}


def test_rotation_never_reuses_a_recorded_version(ws: Workspace) -> None:
    """A version recorded for another key (say, once given in INTDASH_SECRET_KEY) that no
    secret is under is not taken again by a rotation of the key file."""
    ws.integrations.create("myob", values={"company_file_password": PASSWORD})
    with ws.db.write() as session:
        session.execute(
            text("INSERT INTO vault_keys (version, check_value, recorded_at) VALUES (2, :c, :at)"),
            {"c": "0" * 64, "at": ws.clock().isoformat()},
        )
    assert ws.vault_ops.rotate().version == 3
    assert _recorded(ws.settings.db_url) == _key_file_checks(ws.settings.key_path)
    assert ws.vault_ops.check().ok
