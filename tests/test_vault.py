from __future__ import annotations

import stat
from pathlib import Path

import pytest

from intdash.core.errors import ConflictError, VaultError
from intdash.core.services.credentials import OAUTH_TOKEN
from intdash.core.vault import Vault, generate_key
from intdash.core.workspace import Workspace


def test_round_trip_and_fresh_nonce(tmp_path: Path) -> None:
    vault = Vault(key_file=tmp_path / "vault.key", create=True)
    first = vault.encrypt("refresh-token-value", "credential:1:oauth_token")
    second = vault.encrypt("refresh-token-value", "credential:1:oauth_token")
    assert first != second
    assert first.startswith("enc:v1:")
    assert "refresh-token-value" not in first
    assert vault.decrypt(first, "credential:1:oauth_token") == "refresh-token-value"


def test_ciphertext_is_bound_to_its_place(tmp_path: Path) -> None:
    vault = Vault(key_file=tmp_path / "vault.key", create=True)
    token = vault.encrypt("secret-for-one", "credential:1:oauth_token")
    with pytest.raises(VaultError, match="cannot be decrypted"):
        vault.decrypt(token, "credential:2:oauth_token")


def test_tampering_is_detected(tmp_path: Path) -> None:
    vault = Vault(key_file=tmp_path / "vault.key", create=True)
    token = vault.encrypt("value-to-protect", "ctx")
    body = token[-10:]
    flipped = token[:-10] + ("A" if body[0] != "A" else "B") + body[1:]
    with pytest.raises(VaultError):
        vault.decrypt(flipped, "ctx")


def test_key_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "home" / "vault.key"
    Vault(key_file=path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("1:")


def test_key_file_open_to_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    Vault(key_file=path, create=True)
    path.chmod(0o644)
    with pytest.raises(VaultError, match="chmod 600"):
        Vault(key_file=path)


def test_environment_keys(tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    by_old = Vault(env_keys=old).encrypt("secret-under-old", "ctx")
    both = Vault(env_keys=f"2:{new},1:{old}")
    assert both.current_version == 2
    assert both.decrypt(by_old, "ctx") == "secret-under-old"
    assert both.encrypt("x" * 8, "ctx").startswith("enc:v2:")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not base64 !!", "base64"),
        ("c2hvcnQ=", "32 bytes"),
        ("x:" + "A" * 44, "not a positive number"),
    ],
)
def test_malformed_environment_key(value: str, message: str) -> None:
    with pytest.raises(VaultError, match=message):
        Vault(env_keys=value)


def test_unknown_key_version_is_named(tmp_path: Path) -> None:
    token = Vault(env_keys=f"7:{generate_key()}").encrypt("some-secret", "ctx")
    with pytest.raises(VaultError, match="version 7"):
        Vault(key_file=tmp_path / "vault.key", create=True).decrypt(token, "ctx")


def _plant(ws: Workspace) -> dict[str, str]:
    created = ws.integrations.create("webhook", values={"url": "https://example.com/hook"})
    myob = ws.integrations.create("myob", values={"company_file_password": "pw-planted-123"})
    with ws.db.write() as session:
        row = ws.integrations.find(session, myob.integration.uid)
        assert row.id is not None
        ws.credentials.put(session, row.id, OAUTH_TOKEN, '{"refresh_token": "rt-planted-456"}')
    return {
        "hook": created.integration.uid,
        "myob": myob.integration.uid,
        "signing": created.generated_secrets["signing_secret"],
    }


def _read_all(ws: Workspace, uids: dict[str, str]) -> tuple[str, str, str]:
    with ws.db.read() as session:
        hook = ws.integrations.find(session, uids["hook"])
        myob = ws.integrations.find(session, uids["myob"])
        assert hook.id and myob.id
        signing = ws.credentials.get(session, hook.id, "signing_secret")
        password = ws.credentials.get(session, myob.id, "company_file_password")
        token = ws.credentials.get(session, myob.id, OAUTH_TOKEN)
    assert signing and password and token
    return signing.value, password.value, token.value


def test_rotation_reencrypts_everything_and_retires_the_old_key(ws: Workspace) -> None:
    uids = _plant(ws)
    before = _read_all(ws, uids)
    key_path = ws.settings.key_path
    old_file = key_path.read_text()
    result = ws.vault_ops.rotate()
    assert result.version == 2
    assert result.reencrypted == 3
    assert result.retired == [1]
    assert key_path.read_text().startswith("2:")
    assert old_file.strip() not in key_path.read_text()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    with ws.db.read() as session:
        assert ws.credentials.count_not_current(session) == 0
    # a second process, opening the key file afresh, still reads everything
    other = Workspace.open(ws.settings)
    try:
        assert _read_all(other, uids) == before
    finally:
        other.close()
    assert _read_all(ws, uids) == before
    assert ws.audit.list()[0].action == "vault.rotated"


def test_a_running_process_follows_a_rotation_made_by_another(ws: Workspace) -> None:
    uids = _plant(ws)
    before = _read_all(ws, uids)
    other = Workspace.open(ws.settings)
    try:
        other.vault_ops.rotate()
        other.vault_ops.rotate()
    finally:
        other.close()
    assert ws.vault.current_version == 3
    assert _read_all(ws, uids) == before


def test_rotation_with_environment_keys(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from intdash.core.config import load_settings

    old = generate_key()
    monkeypatch.setenv("INTDASH_SECRET_KEY", old)
    env_ws = Workspace.open(load_settings())
    try:
        uids = _plant(env_ws)
        before = _read_all(env_ws, uids)
        with pytest.raises(ConflictError, match="put a new key first"):
            env_ws.vault_ops.rotate()
    finally:
        env_ws.close()
    monkeypatch.setenv("INTDASH_SECRET_KEY", f"2:{generate_key()},1:{old}")
    env_ws = Workspace.open(load_settings())
    try:
        result = env_ws.vault_ops.rotate()
        assert (result.version, result.reencrypted, result.retired) == (2, 3, [])
        assert _read_all(env_ws, uids) == before
    finally:
        env_ws.close()
    assert not load_settings().key_path.exists()  # keys from the environment: no key file
