"""Integrations: create, list, show, configure and remove, each with its derived status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, bindparam, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from intdash.core.catalog import IntegrationType, TypeSpec, type_spec
from intdash.core.clock import month_start
from intdash.core.errors import ConflictError, FieldErrors, NotFoundError
from intdash.core.models import Integration, Invoice, SyncRun
from intdash.core.services import fiscal_views
from intdash.core.services.integrations import queries
from intdash.core.services.integrations.validation import parse_changes
from intdash.core.services.integrations.views import (
    CreatedIntegration,
    IntegrationView,
    Overview,
    RunningSync,
    build_view,
)
from intdash.core.tokens import TokenSource

if TYPE_CHECKING:
    from intdash.core.services.plans import PlanView
    from intdash.core.workspace import Workspace

UID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: read aloud, typed safely
UID_LENGTH = 6
# built once: every sync, push check and dashboard action finds its integration by UID
_BY_UID = select(Integration).where(Integration.uid == bindparam("b_uid"))


class IntegrationService:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    # -- reading ----------------------------------------------------------------------------

    def listing(self, *, include_removed: bool = False) -> list[IntegrationView]:
        """Every integration, oldest first, with its status."""
        with self._ws.db.read() as session:
            rows = queries.integration_rows(session, include_removed=include_removed)
            return self._views(session, rows)

    def overview(self, *, first: int | None = None) -> Overview:
        """The integrations (or the ``first`` few by UID), the plan, the month's usage, who
        schedules syncs and the syncs running now in any process (not for the first few: what
        a screen shows before the rest is read costs no more than it must), in one read: what
        the dashboard's main screen shows."""
        with self._ws.db.read() as session:
            plan = self._ws.plans.current(session)
            rows = queries.integration_rows(session, first=first)
            views = self._views(session, rows, plan)
            month = month_start(self._ws.clock()).date()
            if first is None:
                used, runs = queries.month_and_running(session, month)
            else:
                used, runs = queries.month_total(session, month), {}
            holder = self._ws.leases.current("scheduler", session)
        running = {row.uid: RunningSync(*runs[row.id]) for row in rows if row.id in runs}
        return Overview(views, plan, used, holder, running)

    def fingerprint(self) -> tuple[Any, ...]:
        """Something that changes whenever anything an operator sees changes, from any process,
        at the cost of a few index look-ups: what the dashboard polls."""
        with self._ws.db.read() as session:
            return queries.fingerprint(session)

    def runs(self, uid: str, limit: int = 200) -> list[SyncRun]:
        """The integration's sync runs, newest first."""
        with self._ws.db.read() as session:
            row = self.find(session, uid)
            return list(
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
        row = session.exec(_BY_UID, params={"b_uid": uid.strip()}).first()
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
    ) -> list[IntegrationView]:
        """Views of ``rows`` with their status, in a fixed number of queries."""
        if not rows:
            return []
        if plan is None:
            plan = self._ws.plans.current(session)
        ids = [row.id for row in rows if row.id is not None]
        secret_names = self._ws.credentials.names_by_integration(
            session, ids if queries.listable(ids) else None
        )
        month = self.invoices_this_month(session, ids)
        keys = queries.live_keys(session, ids)
        now = self._ws.clock()
        settings = self._ws.settings
        fiscal = fiscal_views.reasons(self._ws, session)
        return [
            build_view(
                row, plan, secret_names.get(row.id or 0, set()), month, keys, now, settings, fiscal
            )
            for row in rows
        ]

    def invoices_this_month(self, session: Session, ids: Iterable[int]) -> dict[int, int]:
        """Invoices each integration fiscalized this month: what counts against the limit."""
        month = month_start(self._ws.clock()).date()
        return queries.usage_in_month(session, month, list(ids))

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
                    changes = parse_changes(session, spec, given, clock=ws.clock, creating=True)
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
                    generated = {key: _generate(key, ws.tokens) for key in spec.generated_secrets}
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
            suffix = self._ws.tokens.choice(UID_ALPHABET, UID_LENGTH)
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
            changes = parse_changes(
                session,
                spec,
                values,
                clock=ws.clock,
                creating=False,
                secrets_present=ws.credentials.names(session, row.id),
                current_settings=row.settings,
            )
            was_enabled = row.sync_enabled
            for key, value in changes.columns.items():
                setattr(row, key, value)
            if "sync_from" in changes.columns:
                row.cursor = None  # the next sync starts again from the new date
            if changes.columns.get("sync_enabled") is True and not was_enabled:
                row.next_sync_at = None  # derived again from its last attempt: due if passed
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


def _generate(name: str, tokens: TokenSource) -> str:
    """A secret intdash makes for an integration at its creation."""
    if name == "signing_secret":
        from intdash.core.services.deliveries import new_signing_secret

        return new_signing_secret(tokens)  # Standard Webhooks' shape, for receivers' libraries
    return tokens.token_urlsafe(32)
