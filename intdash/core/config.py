"""Settings: environment variables (``INTDASH_`` prefix, ``__`` between sections) over an
optional TOML file over the defaults.

The TOML file is ``$INTDASH_CONFIG`` when set, else ``config.toml`` in the intdash home.
Every provider URL has the platform's real endpoint as its default and can be pointed at a
local emulator.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from intdash.core.errors import ConfigError

ENV_PREFIX = "INTDASH_"
DEFAULT_SERVER_PORT = 8470
DEFAULT_REDIRECT_URI = "http://localhost:8471/callback"


class _Section(BaseModel):
    """A settings section: an unknown key is a typo to report, not to ignore."""

    model_config = ConfigDict(extra="forbid")


def default_home() -> Path:
    """The platform's user data folder for intdash."""
    return platformdirs.user_data_path("intdash", appauthor=False)


class OAuthAppSettings(_Section):
    """What every OAuth platform needs: the app's credentials and the loopback redirect."""

    client_id: str = Field("", description="OAuth client id of the app.")
    client_secret: SecretStr = Field(SecretStr(""), description="OAuth client secret of the app.")
    redirect_uri: str = Field(DEFAULT_REDIRECT_URI, description="Loopback redirect URI.")


class XeroSettings(OAuthAppSettings):
    """Xero's OAuth 2.0 app and endpoints (the secret may be empty for a PKCE-only app)."""

    authorize_url: str = Field(
        "https://login.xero.com/identity/connect/authorize", description="Authorisation endpoint."
    )
    token_url: str = Field(
        "https://identity.xero.com/connect/token", description="Token and refresh endpoint."
    )
    api_url: str = Field(
        "https://api.xero.com",
        description="API base; /connections and /api.xro/2.0/... are appended.",
    )
    page_size: int = Field(
        1000, ge=1, le=1000, description="Invoices a page (Xero serves up to 1,000 since 2024)."
    )
    daily_reserve: int = Field(
        50,
        ge=0,
        description="Calls of a tenant's daily allowance kept for Sync Now: with this many or "
        "fewer left, scheduled syncs wait for Xero's day to end (00:00 UTC).",
    )


class MyobSettings(OAuthAppSettings):
    """MYOB Business (AccountRight) API key (the client id) and endpoints."""

    authorize_url: str = Field(
        "https://secure.myob.com/oauth2/account/authorize", description="Authorisation endpoint."
    )
    token_url: str = Field(
        "https://secure.myob.com/oauth2/v1/authorize", description="Token and refresh endpoint."
    )
    api_url: str = Field(
        "https://api.myob.com", description="API base; /accountright/... is appended."
    )
    page_size: int = Field(1000, ge=1, le=1000, description="Invoices a page ($top).")
    scope: str = Field(
        "sme-company-file sme-sales",
        description="Scopes asked for at consent (space-separated): MYOB's granular scopes for "
        "the company file and its sales; an API key made before March 2025 may ask for "
        "CompanyFile instead.",
    )


class ZohoSettings(OAuthAppSettings):
    """Zoho Books OAuth client (from Zoho's API console) and endpoints."""

    accounts_url: str = Field(
        "https://accounts.zoho.com",
        description="Accounts server (authorise, token); the consent redirect may name another.",
    )
    api_url: str = Field(
        "https://www.zohoapis.com",
        description="API base when the token response names no api_domain.",
    )
    page_size: int = Field(200, ge=1, le=200, description="Invoices a page (per_page).")
    daily_limit: int = Field(
        1000,
        ge=2,
        description="API calls a day the organisation's Zoho Books plan allows (1,000 on Free up "
        "to 10,000 on Premium): at most half of them read invoices' tax, the rest is left for "
        "listing.",
    )


class ServerSettings(_Section):
    """intdash's own HTTP server (ingest API, health)."""

    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(DEFAULT_SERVER_PORT, ge=1, le=65535, description="Port to bind.")
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body the ingest API reads."
    )
    rate_per_second: float = Field(
        20.0, gt=0, description="Requests per second each API key may make (sustained)."
    )
    rate_burst: int = Field(40, ge=1, description="Requests an API key may make at once.")
    header_timeout: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a request's line and headers (from connecting, "
        "or from the first byte of a next request); then the connection is closed.",
    )
    keep_alive_timeout: int = Field(
        5, ge=1, le=3600, description="Seconds an idle connection is kept open for a next request."
    )
    limit_concurrency: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Connections (and requests in progress) served at once; a request beyond "
        "them is answered 503 with Retry-After.",
    )


class SyncSettings(_Section):
    """How syncs run."""

    claim_seconds: int = Field(
        120,
        ge=5,
        description="A sync's claim lapses this long after its last page if its process dies.",
    )
    time_limit_minutes: int = Field(
        30, ge=1, description="A sync run stops (cancelled) after this."
    )
    delivery_claim_seconds: int = Field(
        60,
        ge=1,
        description="A webhook delivery being attempted is retried after this if its process "
        "dies mid-attempt.",
    )


class LimitSettings(_Section):
    """Default monthly invoice limit of each plan, per integration."""

    starter: int = Field(500, ge=0, description="Starter plan's monthly invoice limit.")
    growth: int = Field(5_000, ge=0, description="Growth plan's monthly invoice limit.")
    scale: int = Field(50_000, ge=0, description="Scale plan's monthly invoice limit.")


def config_path(environ: dict[str, str] | None = None) -> Path:
    """Where the optional TOML settings file is looked for."""
    env = os.environ if environ is None else environ
    explicit = env.get("INTDASH_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    home = env.get("INTDASH_HOME")
    return (Path(home).expanduser() if home else default_home()) / "config.toml"


class Settings(BaseSettings):
    """Every setting of intdash. See the README for the table of variables."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(
        default_factory=default_home,
        description="Folder of the database, the vault key and the logs.",
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default a SQLite file in the home."
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Vault key(s) instead of the key file: 'KEY', or 'N:KEY,M:OLD' newest first.",
    )
    log_level: str = Field("INFO", description="Level of the log file: DEBUG, INFO, WARNING.")
    xero: XeroSettings = Field(default_factory=XeroSettings)
    myob: MyobSettings = Field(default_factory=MyobSettings)
    zoho: ZohoSettings = Field(default_factory=ZohoSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("log_level", mode="after")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_path()),
        )

    @property
    def db_url(self) -> str:
        """The database URL in force."""
        return self.database_url or f"sqlite:///{self.database_path}"

    @property
    def database_path(self) -> Path:
        return self.home / "intdash.db"

    @property
    def key_path(self) -> Path:
        return self.home / "vault.key"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def log_path(self) -> Path:
        return self.log_dir / "intdash.log"


def _env_name(loc: tuple[Any, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning a validation failure into one clear :class:`ConfigError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = _env_name(tuple(first["loc"])) if first["loc"] else "settings"
        where = config_path()
        raise ConfigError(
            f"invalid setting {name}: {first['msg']} (from the environment or {where})"
        ) from None
    except (OSError, ValueError) as exc:  # an unreadable or malformed TOML file
        raise ConfigError(f"cannot read settings file {config_path()}: {exc}") from None
