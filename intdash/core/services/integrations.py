"""Integrations: create, list, show, configure and remove, each with its derived status."""

from __future__ import annotations

import builtins
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BindParameter, Row, bindparam, func
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from intdash.core.budget import DailyBudget, daily_reserve
from intdash.core.catalog import Action, IntegrationType, TypeSpec, type_spec
from intdash.core.clock import month_start
from intdash.core.errors import ConflictError, FieldErrors, NotFoundError
from intdash.core.models import (
    ApiKey,
    AuditEvent,
    Integration,
    Invoice,
    Lease,
    MonthlyUsage,
    SyncRun,
)
from intdash.core.plans import LicenceState
from intdash.core.services.credentials import OAUTH_TOKEN
from intdash.core.status import Status, StatusFacts, derive_status

if TYPE_CHECKING:
    from intdash.core.services.leases import LeaseInfo
    from intdash.core.services.plans import PlanView
    from intdash.core.workspace import Workspace

INTEGRATIONS = Integration.__table__  # type: ignore[attr-defined]
KEYS = ApiKey.__table__  # type: ignore[attr-defined]
USAGE = MonthlyUsage.__table__  # type: ignore[attr-defined]

# The reads behind every listing and every change the dashboard sees, built once with their
# parameters bound at each call: building a statement costs more than running it here.
_LIVE = INTEGRATIONS.c.removed_at.is_(None)
EVERY_ROW = sa_select(INTEGRATIONS).order_by(INTEGRATIONS.c.id)
LIVE_ROWS = EVERY_ROW.where(_LIVE)
FIRST_LIVE_ROWS = (
    sa_select(INTEGRATIONS).where(_LIVE).order_by(INTEGRATIONS.c.uid).limit(bindparam("first"))
)
_OF_IDS: BindParameter[int] = bindparam("ids", expanding=True)
USAGE_IN_MONTH = sa_select(USAGE.c.integration_id, USAGE.c.fiscalized).where(
    USAGE.c.month == bindparam("month")
)
USAGE_OF = USAGE_IN_MONTH.where(USAGE.c.integration_id.in_(_OF_IDS))
MONTH_TOTAL = sa_select(func.coalesce(func.sum(USAGE.c.fiscalized), 0)).where(
    USAGE.c.month == bindparam("month")
)
LIVE_KEYS = (
    sa_select(KEYS.c.integration_id, func.count())
    .where(KEYS.c.revoked_at.is_(None))
    .group_by(KEYS.c.integration_id)
)
LIVE_KEYS_OF = LIVE_KEYS.where(KEYS.c.integration_id.in_(_OF_IDS))
FINGERPRINT = sa_select(
    sa_select(func.max(col(AuditEvent.id))).scalar_subquery(),
    sa_select(func.max(col(SyncRun.id))).scalar_subquery(),
    sa_select(func.max(col(SyncRun.ended_at))).scalar_subquery(),
    sa_select(func.max(col(Invoice.id))).scalar_subquery(),
    sa_select(func.max(col(Integration.invoices_changed_at))).scalar_subquery(),
    sa_select(func.max(col(Integration.last_attempted_sync))).scalar_subquery(),  # deliveries
    sa_select(func.max(col(Lease.expires_at))).scalar_subquery(),
)
IN_LIST_MAX = 500  # more ids than this: read every row and pick, rather than list them all

UID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: read aloud, typed safely
UID_LENGTH = 6
NAME_MAX = 200
COMMON_FIELDS = ("name", "sync_from", "sync_enabled")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _iso(moment: datetime | date | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True)
class IntegrationView:
    """An integration as the faces show it: its data, its status and what it may do."""

    uid: str
    type: IntegrationType
    name: str
    created: datetime
    status: Status
    sync_enabled: bool
    sync_from: date | None
    cursor: str | None
    last_attempted_sync: datetime | None
    last_successful_sync: datetime | None
    last_sync_error: str | None
    invoices_changed_at: datetime | None  # when any of its invoices was last written
    removed_at: datetime | None
    settings: Mapping[str, Any]
    secrets_set: tuple[str, ...]
    invoices_this_month: int
    monthly_limit: int
    daily_budget: DailyBudget | None = None  # today's API calls left, while the day lasts
    daily_reserve: int = 0

    @property
    def daily_budget_low(self) -> DailyBudget | None:
        """Today's calls when only the reserve is left: Sync Now asks before spending them."""
        budget = self.daily_budget
        return budget if budget is not None and budget.spent(self.daily_reserve) else None

    @property
    def spec(self) -> TypeSpec:
        return type_spec(self.type)

    @property
    def runs_are(self) -> str:
        """What its "last sync" times are of, in its type's word: a webhook's are deliveries."""
        return self.spec.activity

    @property
    def last_activity(self) -> datetime | None:
        """When it last did its work: its last successful sync or delivery; a Custom
        Integration is not synced, so its last push (the last write of its invoices)."""
        return self.invoices_changed_at if self.spec.pushes else self.last_successful_sync

    def activity(self) -> list[tuple[str, datetime | str | None]]:
        """What it does, in its type's words (a platform's syncs, a Custom Integration's
        pushes, a webhook's deliveries): labelled times (None: never) and states."""
        spec = self.spec
        enabled = "enabled" if self.sync_enabled else "disabled"
        month = ("This month", f"{self.invoices_this_month:,} of {self.monthly_limit:,}")
        if spec.pushes:
            accepted = "accepted" if self.sync_enabled else "refused (disabled)"
            return [(f"Last {self.runs_are}", self.last_activity), ("Pushes", accepted), month]
        times: list[tuple[str, datetime | str | None]] = [
            (f"Last attempted {self.runs_are}", self.last_attempted_sync),
            (f"Last successful {self.runs_are}", self.last_successful_sync),
        ]
        if spec.delivers:  # it fiscalizes nothing itself
            return [*times, ("Deliveries", enabled)]
        since = self.sync_from.isoformat() if self.sync_from else "the beginning"
        states = [("Sync from", since), ("Sync", enabled), month]
        if self.daily_budget is not None:  # until its platform's day ends (the reason says when)
            states.append(("Calls left today", f"{self.daily_budget.remaining:,}"))
        return [*times, *states]

    @property
    def actions(self) -> tuple[Action, ...]:
        return () if self.removed_at else self.spec.actions

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form of ``intdash integrations show --json``."""
        return {
            "uid": self.uid,
            "type": self.type.value,
            "type_label": self.spec.label,
            "name": self.name,
            "created": _iso(self.created),
            "status": "active" if self.status.active else "inactive",
            "reason": self.status.reason.value if self.status.reason else None,
            "reason_detail": self.status.detail,
            "sync_enabled": self.sync_enabled,
            "sync_from": _iso(self.sync_from),
            "last_attempted_sync": _iso(self.last_attempted_sync),
            "last_successful_sync": _iso(self.last_successful_sync),
            "invoices_changed_at": _iso(self.invoices_changed_at),
            "last_sync_error": self.last_sync_error,
            "removed": self.removed_at is not None,
            "removed_at": _iso(self.removed_at),
            "settings": dict(self.settings),
            "secrets": {f.name: f.name in self.secrets_set for f in self.spec.fields if f.secret},
            "invoices_this_month": self.invoices_this_month,
            "monthly_limit": self.monthly_limit,
            "daily_api_calls": self.daily_budget.to_json() if self.daily_budget else None,
            "actions": [a.value for a in self.actions],
        }


@dataclass(frozen=True)
class Overview:
    """What the dashboard's main screen shows, read together."""

    views: list[IntegrationView]
    plan: PlanView
    used: int  # invoices fiscalized this month, every integration
    scheduler: LeaseInfo | None  # who schedules syncs, if anybody does


@dataclass(frozen=True)
class CreatedIntegration:
    integration: IntegrationView
    generated_secrets: Mapping[str, str]  # made at creation and shown this once only


@dataclass(frozen=True)
class _Changes:
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


class IntegrationService:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    # -- reading ----------------------------------------------------------------------------

    def list(self, *, include_removed: bool = False) -> list[IntegrationView]:
        """Every integration, oldest first, with its status."""
        with self._ws.db.read() as session:
            rows = self._rows(session, include_removed=include_removed)
            return self._views(session, rows)

    def overview(self, *, first: int | None = None) -> Overview:
        """The integrations (or the ``first`` few by UID), the plan, the month's usage and who
        schedules syncs, in one read: what the dashboard's main screen shows."""
        with self._ws.db.read() as session:
            plan = self._ws.plans.current(session)
            views = self._views(session, self._rows(session, first=first), plan)
            used = self._month_total(session)
            holder = self._ws.leases.current("scheduler", session)
        return Overview(views, plan, used, holder)

    @staticmethod
    def _rows(
        session: Session, *, include_removed: bool = False, first: int | None = None
    ) -> builtins.list[Row[Any]]:
        """Rows of the table, not ORM objects: views are all they make, at a fraction of the
        cost (10,000 of them are read on every change the dashboard sees). ``first``: only the
        first few live ones by UID (what a screen shows while it reads the rest)."""
        if first is not None:
            return builtins.list(session.connection().execute(FIRST_LIVE_ROWS, {"first": first}))
        query = EVERY_ROW if include_removed else LIVE_ROWS
        return builtins.list(session.connection().execute(query))

    def fingerprint(self) -> tuple[Any, ...]:
        """Something that changes whenever anything an operator sees changes, from any process,
        at the cost of a few index look-ups: what the dashboard polls."""
        with self._ws.db.read() as session:
            row = session.connection().execute(FINGERPRINT).one()
        return tuple(row)

    def runs(self, uid: str, limit: int = 200) -> builtins.list[SyncRun]:
        """The integration's sync runs, newest first."""
        with self._ws.db.read() as session:
            row = self.find(session, uid)
            return builtins.list(
                session.exec(
                    select(SyncRun)
                    .where(SyncRun.integration_id == row.id)
                    .order_by(col(SyncRun.id).desc())
                    .limit(limit)
                )
            )

    def get(self, uid: str) -> IntegrationView:
        with self._ws.db.read() as session:
            return self._views(session, [self.find(session, uid)])[0]

    def find(self, session: Session, uid: str) -> Integration:
        row = session.exec(select(Integration).where(Integration.uid == uid.strip())).first()
        if row is None:
            raise NotFoundError(f"no integration with UID {uid!r} ('intdash integrations list')")
        return row

    def find_live(self, session: Session, uid: str) -> Integration:
        row = self.find(session, uid)
        if row.removed_at is not None:
            raise ConflictError(f"integration {row.uid} was removed on {row.removed_at:%Y-%m-%d}")
        return row

    def _views(
        self,
        session: Session,
        rows: Sequence[Integration | Row[Any]],
        plan: PlanView | None = None,
    ) -> builtins.list[IntegrationView]:
        """Views of ``rows`` with their status, in a fixed number of queries."""
        if not rows:
            return []
        if plan is None:
            plan = self._ws.plans.current(session)
        ids = [row.id for row in rows if row.id is not None]
        secret_names = self._ws.credentials.names_by_integration(
            session, ids if len(ids) <= IN_LIST_MAX else None
        )
        month = self.invoices_this_month(session, ids)
        keys = self._live_keys(session, ids)
        now = self._ws.clock()
        return [
            self._view(row, plan, secret_names.get(row.id or 0, set()), month, keys, now)
            for row in rows
        ]

    def invoices_this_month(self, session: Session, ids: Iterable[int]) -> dict[int, int]:
        """Invoices each integration fiscalized this month: what counts against the limit."""
        ids = builtins.list(ids)
        month = month_start(self._ws.clock()).date()
        query = USAGE_OF if len(ids) <= IN_LIST_MAX else USAGE_IN_MONTH
        found = session.connection().execute(query, {"month": month, "ids": ids})
        return {int(i): int(n) for i, n in found}

    def _month_total(self, session: Session) -> int:
        """Invoices fiscalized this month across every integration."""
        month = month_start(self._ws.clock()).date()
        return int(session.connection().execute(MONTH_TOTAL, {"month": month}).scalar_one())

    @staticmethod
    def _live_keys(session: Session, ids: builtins.list[int]) -> dict[int, int]:
        query = LIVE_KEYS_OF if len(ids) <= IN_LIST_MAX else LIVE_KEYS
        return {int(i): int(n) for i, n in session.connection().execute(query, {"ids": ids})}

    def _view(
        self,
        row: Integration | Row[Any],
        plan: PlanView,
        secret_names: set[str],
        month: Mapping[int, int],
        keys: Mapping[int, int],
        now: datetime,
    ) -> IntegrationView:
        spec = type_spec(row.type)
        row_id = row.id or 0
        missing = tuple(
            f.name
            for f in spec.fields
            if f.required and f.name not in secret_names and row.settings.get(f.name) in (None, "")
        )
        facts = StatusFacts(
            removed=row.removed_at is not None,
            licence_lapsed=plan.licence is LicenceState.LAPSED,
            oauth=spec.oauth,
            authorised=OAUTH_TOKEN in secret_names,
            auth_error=row.auth_error,
            missing_fields=missing,
            needs_api_key=spec.needs_api_key,
            live_api_keys=keys.get(row_id, 0),
            sync_enabled=row.sync_enabled,
            invoices_this_month=month.get(row_id, 0),
            monthly_limit=plan.monthly_limit,
            last_sync_error=row.last_sync_error,
            delivers=spec.delivers,
            daily_budget=DailyBudget.current(row, now) if spec.oauth else None,
            daily_reserve=daily_reserve(self._ws.settings, spec.type.value),
        )
        return IntegrationView(
            uid=row.uid,
            type=spec.type,
            name=row.name,
            created=row.created_at,
            status=derive_status(facts),
            sync_enabled=row.sync_enabled,
            sync_from=row.sync_from,
            cursor=row.cursor,
            last_attempted_sync=row.last_attempted_sync,
            last_successful_sync=row.last_successful_sync,
            last_sync_error=row.last_sync_error,
            invoices_changed_at=row.invoices_changed_at,
            removed_at=row.removed_at,
            settings=dict(row.settings),
            secrets_set=tuple(sorted(n for n in secret_names if spec.field(n) is not None)),
            invoices_this_month=facts.invoices_this_month,
            monthly_limit=plan.monthly_limit,
            daily_budget=facts.daily_budget,
            daily_reserve=facts.daily_reserve,
        )

    # -- validation -------------------------------------------------------------------------

    def _parse(
        self,
        session: Session,
        spec: TypeSpec,
        values: Mapping[str, str],
        *,
        creating: bool,
        secrets_present: set[str] | None = None,
        current_settings: Mapping[str, Any] | None = None,
    ) -> _Changes:
        """Validate ``values`` for a type, collecting every problem before failing."""
        errors: dict[str, str] = {}
        columns: dict[str, Any] = {}
        settings: dict[str, Any] = {}
        secret_values: dict[str, str | None] = {}
        for key, raw in values.items():
            try:
                if key in COMMON_FIELDS:
                    columns[key] = self._parse_common(key, raw)
                    continue
                field = spec.field(key)
                if field is None:
                    accepted = ", ".join((*COMMON_FIELDS, *spec.field_names))
                    raise ValueError(f"is not a setting of {spec.label}; accepted: {accepted}")
                value = field.parse(raw)
                if field.secret:
                    secret_values[key] = None if value is None else _secret_text(value)
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
            unknown = self._unknown_uids(session, settings["deliver"])
            if unknown:
                errors["deliver"] = f"no integration with UID {unknown[0]!r}"
        if errors:
            raise FieldErrors(errors)
        return _Changes(columns, settings, secret_values)

    def _parse_common(self, key: str, raw: str) -> Any:
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
            if day > self._ws.clock().date():
                raise ValueError(f"must not be in the future ({day} is after today)")
            return day
        return parse_bool(raw)

    @staticmethod
    def _unknown_uids(session: Session, uids: builtins.list[str]) -> builtins.list[str]:
        known = set(session.exec(select(Integration.uid).where(col(Integration.uid).in_(uids))))
        return [uid for uid in uids if uid not in known]

    # -- changing ---------------------------------------------------------------------------

    def create(
        self,
        type: IntegrationType | str,
        name: str | None = None,
        values: Mapping[str, str] | None = None,
    ) -> CreatedIntegration:
        """Create an integration; required settings must be given (others may follow)."""
        spec = type_spec(type)
        given = dict(values or {})
        if name is not None:
            given["name"] = name
        ws = self._ws
        for attempt in range(5):
            try:
                with ws.db.write() as session:
                    changes = self._parse(session, spec, given, creating=True)
                    uid = self._new_uid(session, spec)
                    row = Integration(
                        uid=uid,
                        type=spec.type.value,
                        name=changes.columns.get("name") or f"{spec.label} {uid.split('-')[1]}",
                        created_at=ws.clock(),
                        settings=changes.settings,
                        sync_enabled=changes.columns.get("sync_enabled", True),
                        sync_from=changes.columns.get("sync_from"),
                    )
                    session.add(row)
                    session.flush()
                    assert row.id is not None
                    for key, value in changes.secrets.items():
                        if value is not None:
                            ws.credentials.put(session, row.id, key, value)
                    generated = {key: _generate(key) for key in spec.generated_secrets}
                    for key, value in generated.items():
                        ws.credentials.put(session, row.id, key, value)
                    ws.audit.record(
                        session,
                        "integration.created",
                        uid,
                        f"{spec.label} '{row.name}'"
                        + (f", settings: {', '.join(changes.names)}" if changes.names else ""),
                    )
                    view = self._views(session, [row])[0]
                return CreatedIntegration(view, generated)
            except IntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _new_uid(self, session: Session, spec: TypeSpec) -> str:
        while True:
            suffix = "".join(secrets.choice(UID_ALPHABET) for _ in range(UID_LENGTH))
            uid = f"{spec.uid_prefix}-{suffix}"
            if session.exec(select(Integration.id).where(Integration.uid == uid)).first() is None:
                return uid

    def configure(self, uid: str, values: Mapping[str, str]) -> IntegrationView:
        """Change settings; what is not given is kept (secrets too, unless retyped)."""
        if not values:
            raise FieldErrors({"settings": "nothing to change: give at least one KEY=VALUE"})
        ws = self._ws
        with ws.db.write() as session:
            row = self.find_live(session, uid)
            assert row.id is not None
            spec = type_spec(row.type)
            changes = self._parse(
                session,
                spec,
                values,
                creating=False,
                secrets_present=ws.credentials.names(session, row.id),
                current_settings=row.settings,
            )
            for key, value in changes.columns.items():
                setattr(row, key, value)
            if "sync_from" in changes.columns:
                row.cursor = None  # the next sync starts again from the new date
            if spec.delivers and (changes.settings or changes.columns.get("sync_enabled") is True):
                # reconfigured or enabled again: deliveries resume, their count from nothing
                row.last_sync_error = None
                row.delivery_failures = 0
            if changes.settings:
                row.settings = {**row.settings, **changes.settings}
            session.add(row)
            for key, secret in changes.secrets.items():
                if secret is None:
                    ws.credentials.delete(session, row.id, key)
                else:
                    ws.credentials.put(session, row.id, key, secret)
            ws.audit.record(
                session, "integration.configured", row.uid, "changed: " + ", ".join(changes.names)
            )
            session.flush()
            return self._views(session, [row])[0]

    def set_sync_enabled(self, uid: str, enabled: bool) -> IntegrationView:
        return self.configure(uid, {"sync_enabled": "true" if enabled else "false"})

    def remove(self, uid: str) -> IntegrationView:
        """Stop all syncing, wipe the credentials, keep every invoice, and audit it."""
        ws = self._ws
        with ws.db.write() as session:
            row = self.find_live(session, uid)
            assert row.id is not None
            row.removed_at = ws.clock()
            row.sync_enabled = False
            session.add(row)
            wiped = ws.credentials.wipe(session, row.id)
            kept = session.exec(
                select(func.count()).select_from(Invoice).where(Invoice.integration_id == row.id)
            ).one()
            ws.audit.record(
                session,
                "integration.removed",
                row.uid,
                f"sync stopped, {wiped} credentials wiped, {kept} invoices kept",
            )
            session.flush()
            return self._views(session, [row])[0]


def _generate(name: str) -> str:
    """A secret intdash makes for an integration at its creation."""
    if name == "signing_secret":
        from intdash.core.services.deliveries import new_signing_secret

        return new_signing_secret()  # Standard Webhooks' shape, for receivers' libraries
    return secrets.token_urlsafe(32)


def _secret_text(value: Any) -> str:
    """How a secret-kind field is stored in the vault: text, headers as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
