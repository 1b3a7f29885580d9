from __future__ import annotations

from pathlib import Path

import pytest

from intdash.core.config import DEFAULT_SERVER_PORT, config_path, default_home, load_settings
from intdash.core.errors import ConfigError


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    import os

    for name in list(os.environ):
        if name.startswith("INTDASH_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("INTDASH_HOME", str(home))
    return home


def test_defaults_are_the_platforms_real_endpoints(clean_env: Path) -> None:
    settings = load_settings()
    assert settings.home == clean_env
    assert settings.db_url == f"sqlite:///{clean_env / 'intdash.db'}"
    assert settings.xero.authorize_url == "https://login.xero.com/identity/connect/authorize"
    assert settings.xero.token_url == "https://identity.xero.com/connect/token"
    assert settings.xero.api_url == "https://api.xero.com"
    assert settings.myob.authorize_url == "https://secure.myob.com/oauth2/account/authorize"
    assert settings.myob.token_url == "https://secure.myob.com/oauth2/v1/authorize"
    assert settings.myob.api_url == "https://api.myob.com"
    assert settings.zoho.accounts_url == "https://accounts.zoho.com"
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == DEFAULT_SERVER_PORT
    assert (settings.limits.starter, settings.limits.growth, settings.limits.scale) == (
        500,
        5_000,
        50_000,
    )


def test_home_defaults_to_the_platform_data_folder(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INTDASH_HOME")
    assert load_settings().home == default_home()
    assert "intdash" in str(default_home())


def test_nested_environment_variables(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTDASH_XERO__CLIENT_ID", "abc")
    monkeypatch.setenv("INTDASH_XERO__CLIENT_SECRET", "s3cret-value")
    monkeypatch.setenv("INTDASH_XERO__API_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("INTDASH_ZOHO__ACCOUNTS_URL", "http://127.0.0.1:9001")
    monkeypatch.setenv("INTDASH_SERVER__PORT", "9999")
    monkeypatch.setenv("INTDASH_LIMITS__GROWTH", "77")
    settings = load_settings()
    assert settings.xero.client_id == "abc"
    assert settings.xero.client_secret.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(settings)
    assert settings.xero.api_url == "http://127.0.0.1:9000"
    assert settings.zoho.accounts_url == "http://127.0.0.1:9001"
    assert settings.server.port == 9999
    assert settings.limits.growth == 77


def test_toml_file_in_home_and_environment_wins(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_env.mkdir()
    (clean_env / "config.toml").write_text(
        'log_level = "debug"\n[myob]\nclient_id = "from-file"\n[server]\nport = 8000\n'
    )
    assert load_settings().myob.client_id == "from-file"
    assert load_settings().log_level == "DEBUG"
    monkeypatch.setenv("INTDASH_SERVER__PORT", "8001")
    assert load_settings().server.port == 8001


def test_config_path_from_intdash_config(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text('database_url = "sqlite:////tmp/x.db"\n')
    monkeypatch.setenv("INTDASH_CONFIG", str(other))
    assert config_path() == other
    assert load_settings().db_url == "sqlite:////tmp/x.db"


def test_bad_value_names_the_variable(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTDASH_SERVER__PORT", "eighty")
    with pytest.raises(ConfigError, match="INTDASH_SERVER__PORT"):
        load_settings()


def test_unknown_key_in_file_is_refused(clean_env: Path) -> None:
    clean_env.mkdir()
    (clean_env / "config.toml").write_text("[xero]\nclient_ud = 'typo'\n")
    with pytest.raises(ConfigError, match=r"unknown setting `client_ud` in \[xero\] of "):
        load_settings()


def test_malformed_toml_is_reported(clean_env: Path) -> None:
    clean_env.mkdir()
    (clean_env / "config.toml").write_text("this is = = not toml\n")
    with pytest.raises(ConfigError, match="cannot read settings file"):
        load_settings()


def test_bad_log_level(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTDASH_LOG_LEVEL", "chatty")
    with pytest.raises(ConfigError, match="INTDASH_LOG_LEVEL"):
        load_settings()
