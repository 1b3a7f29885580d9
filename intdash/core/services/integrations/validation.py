"""The rules an integration's settings follow: the common fields (name, sync from, sync
enabled), each type's own fields, required ones, and the UIDs a webhook delivers from. Every
problem is collected before failing, each under its field's name."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, col, select

from intdash.core.catalog import TypeSpec
from intdash.core.errors import FieldErrors
from intdash.core.models import Integration

NAME_MAX = 200
COMMON_FIELDS = ("name", "sync_from", "sync_enabled")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Changes:
    """A validated change: the table's own columns, the type's settings and its secrets (None:
    delete the secret)."""

    columns: dict[str, Any]
    settings: dict[str, Any]
    secrets: dict[str, str | None]

    @property
    def names(self) -> list[str]:
        return sorted({*self.columns, *self.settings, *self.secrets})


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"must be true or false, not {text!r}")


def parse_changes(
    session: Session,
    spec: TypeSpec,
    values: Mapping[str, str],
    *,
    clock: Callable[[], datetime],
    creating: bool,
    secrets_present: set[str] | None = None,
    current_settings: Mapping[str, Any] | None = None,
) -> Changes:
    """Validate ``values`` for a type, collecting every problem before failing."""
    errors: dict[str, str] = {}
    columns: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    secret_values: dict[str, str | None] = {}
    for key, raw in values.items():
        try:
            if key in COMMON_FIELDS:
                columns[key] = parse_common(key, raw, clock)
                continue
            field = spec.field(key)
            if field is None:
                accepted = ", ".join((*COMMON_FIELDS, *spec.field_names))
                raise ValueError(f"is not a setting of {spec.label}; accepted: {accepted}")
            value = field.parse(raw)
            if field.secret:
                secret_values[key] = None if value is None else secret_text(value)
            else:
                settings[key] = value
        except ValueError as exc:
            errors[key] = str(exc)
    if creating:
        for field in spec.fields:
            if field.name in values or field.default is None or field.secret:
                continue
            settings[field.name] = field.parse(field.default)
    # required fields must hold a value once the change is applied
    present_settings = {**(current_settings or {}), **settings}
    present_secrets = (secrets_present or set()) | {
        k for k, v in secret_values.items() if v is not None
    }
    present_secrets -= {k for k, v in secret_values.items() if v is None}
    for field in spec.fields:
        if not field.required or field.name in errors:
            continue
        held = (
            field.name in present_secrets
            if field.secret
            else (present_settings.get(field.name) not in (None, ""))
        )
        if not held:
            errors[field.name] = "is required"
    if "deliver" in settings and isinstance(settings["deliver"], list):
        unknown = unknown_uids(session, settings["deliver"])
        if unknown:
            errors["deliver"] = f"no integration with UID {unknown[0]!r}"
    if errors:
        raise FieldErrors(errors)
    return Changes(columns, settings, secret_values)


def parse_common(key: str, raw: str, clock: Callable[[], datetime]) -> Any:
    """A common field's value: a name, a day not after today (``clock``'s), or a flag."""
    if key == "name":
        name = raw.strip()
        if not name:
            raise ValueError("must not be empty")
        if len(name) > NAME_MAX:
            raise ValueError(f"must be at most {NAME_MAX} characters, not {len(name)}")
        if _CONTROL.search(name):
            raise ValueError("must not contain control characters")
        return name
    if key == "sync_from":
        text = raw.strip()
        if text.lower() in ("", "none"):
            return None
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"must be a date as YYYY-MM-DD, not {text!r}") from None
        if day > clock().date():
            raise ValueError(f"must not be in the future ({day} is after today)")
        return day
    return parse_bool(raw)


def unknown_uids(session: Session, uids: list[str]) -> list[str]:
    """Those of ``uids`` no integration has (removed ones count as known)."""
    known = set(session.exec(select(Integration.uid).where(col(Integration.uid).in_(uids))))
    return [uid for uid in uids if uid not in known]


def secret_text(value: Any) -> str:
    """How a secret-kind field is stored in the vault: text, headers as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
