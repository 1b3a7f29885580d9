"""Settings: environment variables (``INTDASH_`` prefix, ``__`` between sections) over an
optional TOML file over the defaults.

The TOML file is ``$INTDASH_CONFIG`` when set, else ``config.toml`` in the intdash home.
Every provider URL has the platform's real endpoint as its default and can be pointed at a
local emulator.

A name intdash does not know is refused, in the words of the place it was written: an
environment variable by its name, a TOML key as ``key`` in its table of the file. So is a
malformed value, named the same way.
"""

from __future__ import annotations

import difflib
import os
import re
import string
import tomllib
import unicodedata
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from intdash.core.errors import ConfigError

ENV_PREFIX = "INTDASH_"
#: ``INTDASH_`` variables that are not settings but are read elsewhere: never refused.
OTHER_VARIABLES: dict[str, str] = {
    "INTDASH_CONFIG": "the TOML settings file (read by config_path)",
    "INTDASH_TEST_DATABASE_URL": "the PostgreSQL database of the test suite (tests/conftest.py)",
    "INTDASH_BENCH_DATABASE_URL": "the PostgreSQL database of bench/scheduling_bench.py",
}
DEFAULT_SERVER_PORT = 8470
MAX_MONTHLY_LIMIT = 1_000_000_000  # invoices a month per integration: a sane bound, well in int32
DAY_SECONDS = 24 * 60 * 60
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
    webhook_key: SecretStr = Field(
        SecretStr(""),
        description="The webhook key of the Xero app's webhook: events posted to "
        "/v1/webhooks/xero are verified with it. Set, a Scale plan syncs on Xero's events and "
        "polls only as a backstop.",
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
        4 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Largest request body the ingest API reads.",
    )
    rate_per_second: float = Field(
        20.0, gt=0, le=1_000_000, description="Requests per second each API key may make."
    )
    rate_burst: int = Field(
        40, ge=1, le=1_000_000, description="Requests an API key may make at once."
    )
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
        le=DAY_SECONDS,
        description="A sync's claim lapses this long after its last page. A claim of a stopped "
        "process on this machine, or of any on PostgreSQL, is taken over at once; this is the "
        "backstop for another machine's.",
    )
    time_limit_minutes: int = Field(
        30, ge=1, le=7 * 24 * 60, description="A sync run stops (cancelled) after this."
    )
    workers: int = Field(
        4,
        ge=1,
        le=1000,
        description="Syncs this process runs at once when it schedules (each `intdash serve`, "
        "or the dashboard when no serve runs).",
    )
    delivery_claim_seconds: int = Field(
        60,
        ge=1,
        le=DAY_SECONDS,
        description="A webhook delivery being attempted is retried after this if its process "
        "dies mid-attempt.",
    )


# `register` is also ABCMeta.register on the class (never on a settings object): pydantic
# warns of the shadowing, which is harmless here and keeps the setting's agreed name
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"Field name \"register\"", UserWarning)

    class FiscalSettings(_Section):
        """Which fiscal register signs the invoices, and where TaxCore's V-SDC is."""

        model_config = ConfigDict(extra="forbid", validate_default=True)

        register: Literal["local", "vsdc"] = Field(
            "local",
            description="`local`: the local SHA-256 chain (the demo, tests); `vsdc`: TaxCore's "
            "V-SDC signs every invoice (the taxpayer's certificate and PAC set with "
            "`intdash fiscal configure`).",
        )
        vsdc_url: str = Field(
            "",
            description="The V-SDC's base URL (https://…; /api/v3/... is appended), e.g. Fiji's "
            "sandbox https://vsdc.sandbox.vms.frcs.org.fj.",
        )
        vsdc_ca: Path | None = Field(
            None,
            description="A CA file (PEM) to trust for the V-SDC instead of the system's, e.g. the "
            "sandbox emulator's own CA.",
        )
        timeout: float = Field(
            30.0,
            gt=0,
            le=600,
            description="Seconds an invoice's signing may take before it is "
            "reconciled as a time-out.",
        )

        @field_validator("vsdc_url", mode="after")
        @classmethod
        def _check_url(cls, value: str, info: ValidationInfo) -> str:
            url = value.strip().rstrip("/")
            if not url and info.data.get("register") == "vsdc":
                raise ValueError(
                    "INTDASH_FISCAL__VSDC_URL (the V-SDC's https:// URL) is needed when the "
                    "register is vsdc"
                )
            if url and not re.fullmatch(r"https://[^\s/?#]+(/[^\s?#]*)?", url):
                raise ValueError(f"{value!r} is not an https:// URL (the V-SDC speaks TLS only)")
            return url

        @field_validator("vsdc_ca", mode="after")
        @classmethod
        def _check_ca(cls, value: Path | None) -> Path | None:
            if value is None or str(value) == "":
                return None
            path = value.expanduser()
            if not path.is_file():
                raise ValueError(f"{path} is not a file (a CA certificate in PEM)")
            return path


class LimitSettings(_Section):
    """Default monthly invoice limit of each plan, per integration."""

    starter: int = Field(
        500, ge=0, le=MAX_MONTHLY_LIMIT, description="Starter plan's monthly invoice limit."
    )
    growth: int = Field(
        5_000, ge=0, le=MAX_MONTHLY_LIMIT, description="Growth plan's monthly invoice limit."
    )
    scale: int = Field(
        50_000, ge=0, le=MAX_MONTHLY_LIMIT, description="Scale plan's monthly invoice limit."
    )


# -- the dashboard's keymap: binding ids to keys, in Textual's names --------------------------

KEY_MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")
NAMED_KEYS = frozenset(
    {"escape", "enter", "tab", "space", "backspace", "delete", "insert", "home", "end",
     "pageup", "pagedown", "up", "down", "left", "right", *(f"f{n}" for n in range(1, 25))}
)  # fmt: skip
# Unicode's names that the dashboard's keys shorten (as Textual does): `/` is `slash`
_SHORTER = {"solidus": "slash", "reverse_solidus": "backslash", "commercial_at": "at",
            "hyphen_minus": "minus", "plus_sign": "plus", "low_line": "underscore"}  # fmt: skip
KEY_ALIASES = {"esc": "escape", "return": "enter", "pgup": "pageup", "pgdn": "pagedown",
               "del": "delete", "ins": "insert"}  # fmt: skip
BINDING_ID = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


def key_name(character: str) -> str:
    """A character's key name: a letter or digit as it is, another character by its Unicode
    name in lower case (``?`` is ``question_mark``, ``/`` is ``slash``)."""
    if character.isalnum():
        return character
    try:
        name = unicodedata.name(character).lower().replace("-", "_").replace(" ", "_")
    except ValueError:
        return character
    return _SHORTER.get(name, name)


CHARACTER_KEYS = {key_name(c): c for c in string.punctuation}


def normalise_key(key: str) -> str:
    """One key (``ctrl+k``, ``?``, ``question_mark``, ``esc``, ``f5``) in the long form the
    dashboard binds; ValueError names what is wrong."""
    if key == "+" or key.endswith("++"):
        key = key[:-1] + "plus"
    *modifiers, base = key.split("+")
    if not base:
        raise ValueError(f"`{key}` is not a key (space is `space`, `+` is `plus`)")
    for modifier in modifiers:
        if modifier not in KEY_MODIFIERS:
            raise ValueError(f"`{key}`: `{modifier}` is not one of {', '.join(KEY_MODIFIERS)}")
    base = KEY_ALIASES.get(base, base)
    if len(base) == 1 and base.isprintable():
        base = key_name(base)
    elif base not in NAMED_KEYS and base not in CHARACTER_KEYS:
        close = difflib.get_close_matches(base, sorted(NAMED_KEYS | set(CHARACTER_KEYS)), n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        raise ValueError(
            f"`{key}` is not a key{hint}: a key is a character, a character's name "
            "(`question_mark`) or escape, enter, tab, space, backspace, delete, insert, home, "
            "end, pageup, pagedown, up, down, left, right, f1 to f24, after any of "
            + ", ".join(f"{m}+" for m in KEY_MODIFIERS)
        )
    return "+".join([*modifiers, base])


def normalise_keymap(keymap: Mapping[str, str]) -> dict[str, str]:
    """The ``[keymap]`` table checked, its keys in long form (several keys of one binding
    separated by commas: ``"j,down"``); ValueError says each thing that is wrong."""
    problems, normal = [], {}
    for binding_id, keys in keymap.items():
        if not BINDING_ID.fullmatch(binding_id):
            problems.append(f"`{binding_id}` is not a binding id (ids are like `sync-now`)")
            continue
        try:
            normal[binding_id] = ",".join(normalise_key(k.strip()) for k in keys.split(","))
        except ValueError as exc:
            problems.append(f"{binding_id}: {exc}")
    if problems:
        raise ValueError("; ".join(problems))
    return normal


def config_path(environ: Mapping[str, str] | None = None) -> Path:
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
    fiscal: FiscalSettings = Field(default_factory=FiscalSettings)
    keymap: dict[str, str] = Field(
        default_factory=dict,
        description='The dashboard\'s keys by binding id (the [keymap] table): `filter = "f"`, '
        "several keys separated by commas; the README's key tables give every id.",
    )

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

    @field_validator("keymap", mode="after")
    @classmethod
    def _check_keymap(cls, value: dict[str, str]) -> dict[str, str]:
        return normalise_keymap(value)

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
            InitSettingsSource(settings_cls, init_kwargs=read_settings_file()),
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


# -- loading ---------------------------------------------------------------------------------


def read_settings_file(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The TOML settings file's contents; nothing when the default file is absent. A file named
    by ``INTDASH_CONFIG`` must exist."""
    env = os.environ if environ is None else environ
    path = config_path(env)
    named = "INTDASH_CONFIG names" if env.get("INTDASH_CONFIG") else "the settings file"
    if path.is_dir():
        raise ConfigError(f"{named} {path}, which is a folder: it must be a TOML file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if env.get("INTDASH_CONFIG"):
            raise ConfigError(f"INTDASH_CONFIG names {path}, which does not exist") from None
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read settings file {path}: {reason}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot read settings file {path}: not valid TOML: {exc}") from None


def _section(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def environment_names() -> set[str]:
    """Every environment variable that is a setting (or a whole section, as JSON)."""
    names: set[str] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            names.add(prefix + name.upper())
            section = _section(field.annotation)
            if section is not None:
                walk(section, prefix + name.upper() + "__")

    walk(Settings, ENV_PREFIX)
    return names


def _did_you_mean(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _unknown_variables(environ: Mapping[str, str]) -> list[str]:
    known = environment_names()
    return [
        f"unknown environment variable {name}{_did_you_mean(name.upper(), known)}"
        for name in sorted(environ)
        if name.upper().startswith(ENV_PREFIX)
        and name.upper() not in known
        and name.upper() not in OTHER_VARIABLES
    ]


def _where(table: tuple[str, ...], path: Path) -> str:
    return f"in [{'.'.join(table)}] of {path}" if table else f"in {path}"


def _unknown_keys(
    data: Mapping[str, Any],
    path: Path,
    model: type[BaseModel] = Settings,
    table: tuple[str, ...] = (),
) -> list[str]:
    problems: list[str] = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            hint = difflib.get_close_matches(key, list(model.model_fields), n=1)
            also = f" (did you mean `{hint[0]}`?)" if hint else ""
            problems.append(f"unknown setting `{key}` {_where(table, path)}{also}")
            continue
        section = _section(field.annotation)
        if section is not None and isinstance(value, dict):
            problems.extend(_unknown_keys(value, path, section, (*table, key)))
    return problems


def _origin(
    loc: tuple[Any, ...], environ: Mapping[str, str], data: Mapping[str, Any], path: Path
) -> str:
    """Where the value at ``loc`` was written: its environment variable, or its TOML key."""
    parts = [str(part) for part in loc]
    written = {name.upper(): name for name in environ}
    for size in range(len(parts), 0, -1):  # INTDASH_XERO__PAGE_SIZE, else INTDASH_XERO (JSON)
        name = ENV_PREFIX + "__".join(part.upper() for part in parts[:size])
        if name in written:
            rest = ".".join(parts[size:])
            return f"setting {written[name]}" + (f" ({rest})" if rest else "")
    node: Any = data
    for depth, part in enumerate(parts):
        if not isinstance(node, Mapping) or part not in node:
            break
        if depth == len(parts) - 1 or not isinstance(node[part], Mapping):
            return f"setting `{part}` {_where(tuple(parts[:depth]), path)}"
        node = node[part]
    return "setting " + (".".join(parts) or "(all)")


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning an unknown name or a malformed value into one clear
    :class:`ConfigError` that names where it was written."""
    environ = dict(os.environ)
    path = config_path(environ)
    data = read_settings_file(environ)
    problems = _unknown_variables(environ) + _unknown_keys(data, path)
    if problems:
        raise ConfigError("; ".join(problems))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(
            "; ".join(
                f"invalid {_origin(tuple(error['loc']), environ, data, path)}: {error['msg']}"
                for error in exc.errors()
            )
        ) from None
    except SettingsError as exc:  # a section's variable that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        where = _origin((field[1],), environ, data, path) if field else "setting"
        raise ConfigError(f"invalid {where}: not a JSON object of its settings") from None


def make_home(settings: Settings) -> Path:
    """Create the intdash home if it is missing: the platform's default folder with any of its
    parents, a home named elsewhere only in a folder that exists (a typo in its path must not
    open a new, empty workspace)."""
    home = settings.home
    if home.is_dir():
        return home
    if home.exists():
        raise ConfigError(f"the intdash home {home} is not a folder")
    default = home == default_home()
    if not default and not home.parent.is_dir():
        raise ConfigError(
            f"the folder of the intdash home {home} does not exist: {home.parent} "
            "(create it, or correct INTDASH_HOME)"
        )
    try:
        home.mkdir(parents=default, exist_ok=True, mode=0o700)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot create the intdash home {home}: {reason}") from None
    return home
