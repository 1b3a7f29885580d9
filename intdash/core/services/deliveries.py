"""The outbox of Custom/Webhook integrations.

A delivery is written in the transaction that fiscalizes its invoice, so a crash or a restart
delivers it late, never not at all: with the local register, the upsert's transaction that
records it; with TaxCore's V-SDC, the transaction that stores what the SDC signed (a sale or a
refund the SDC refused is delivered once it is signed, after the operator's retry, never
before), so that the delivery carries the SDC's invoice number and verification URL.

Attempts are claimed (the row is pushed forward in time before the POST), so two processes do
not send the same delivery at once, and a claim whose holder dies lapses and is taken again:
deliveries are at least once, with one ``webhook-id`` for all the attempts of one delivery so
that a receiver can drop repeats.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, insert, or_, select, update

from intdash.core.catalog import Flow, type_spec, types_that
from intdash.core.errors import ConflictError, NotFoundError
from intdash.core.models import Delivery, DeliveryState, Integration, Invoice
from intdash.core.tokens import TokenSource, system_tokens

if TYPE_CHECKING:
    from intdash.core.services.stored import StoredInvoice
    from intdash.core.workspace import Workspace

DELIVERIES = Delivery.__table__  # type: ignore[attr-defined]
INTEGRATIONS = Integration.__table__  # type: ignore[attr-defined]
INVOICES = Invoice.__table__  # type: ignore[attr-defined]

SIGNING_SECRET = "signing_secret"  # noqa: S105 - a credential's name
# the secrets rotated out whose overlaps have not ended: a credential (JSON, encrypted like every
# other), each secret with the end of its own overlap
OLD_SECRETS = "signing_secrets_old"
# how a rotation kept its one old secret before several were kept: read until they lapse
LEGACY_PREVIOUS_SECRET = "signing_secret_previous"  # noqa: S105 - a credential
LEGACY_PREVIOUS_UNTIL = "signing_secret_previous_until"  # a setting: its end (ISO)
GIVE_UP_AFTER = timedelta(hours=24)
FAILURES_IN_A_ROW = 20
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)


def new_signing_secret(tokens: TokenSource = system_tokens) -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes (from ``tokens``) in base64."""
    return "whsec_" + base64.b64encode(tokens.token_bytes(32)).decode()


def secret_hint(secret: str) -> str:
    """A signing secret as shown after the once-only dialog: its kind and its last four
    characters (base64 padding aside), enough to tell which one a receiver holds."""
    return "whsec_…" + secret.removeprefix("whsec_").rstrip("=")[-4:]


@dataclass(frozen=True)
class OldSecret:
    """A secret rotated out that still signs, until ``until``."""

    secret: str
    until: datetime


@dataclass(frozen=True)
class LiveSecret:
    """A secret that signs a webhook's deliveries now, as the operator is shown it: masked,
    with the end of its overlap (None for the current one, which has none)."""

    hint: str
    until: datetime | None

    @property
    def current(self) -> bool:
        return self.until is None

    def describe(self) -> str:
        if self.until is None:
            return f"{self.hint} (current)"
        return f"{self.hint} valid until {self.until.astimezone(UTC):%Y-%m-%d %H:%M} UTC"

    def to_json(self) -> dict[str, Any]:
        return {
            "secret": self.hint,
            "current": self.current,
            "valid_until": self.until.astimezone(UTC).isoformat() if self.until else None,
        }


def retry_delay(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff from 30 s, capped at an hour, with ±20 % jitter."""
    base: timedelta = min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), LONGEST_RETRY)
    jitter: float = 0.8 + 0.4 * (rng or random).random()
    return base * jitter


@dataclass(frozen=True)
class DeliveryRow:
    """A delivery as the dashboard and the CLI list it."""

    id: int
    event_id: str
    invoice_external_id: str
    invoice_number: str | None
    source_uid: str
    created_at: datetime
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "invoice": self.invoice_external_id,
            "number": self.invoice_number,
            "integration": self.source_uid,
            "created": self.created_at.isoformat(),
            "state": self.state,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "next_attempt": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "delivered": self.delivered_at.isoformat() if self.delivered_at else None,
        }


@dataclass(frozen=True)
class Claimed:
    """One attempt to make: where, how to sign, and what."""

    delivery_id: int
    webhook_id: int
    webhook_uid: str
    event_id: str
    url: str
    headers: dict[str, str]
    secrets: tuple[str, ...]
    source_uid: str
    invoice: StoredInvoice


# built once: every fiscalized invoice asks which webhooks take it
_HOOKS = (
    select(INTEGRATIONS.c.id, INTEGRATIONS.c.settings)
    # the types one by one, not a list expanded into the statement each time it runs
    .where(or_(*(INTEGRATIONS.c.type == kind.value for kind in types_that(Flow.DELIVERS))))
    .where(INTEGRATIONS.c.removed_at.is_(None))
    .where(INTEGRATIONS.c.sync_enabled.is_(True))
)
_UIDS = select(INTEGRATIONS.c.id, INTEGRATIONS.c.uid).where(
    INTEGRATIONS.c.id.in_(bindparam("b_ids", expanding=True))
)


class DeliveryService:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    # -- writing the outbox (in the fiscalizing transaction) ----------------------------------

    def enqueue(
        self, conn: Connection, fiscalized: Sequence[tuple[int, int]], now: datetime
    ) -> int:
        """Queue a delivery of each ``(invoice id, integration id)`` just recorded in the
        register to every enabled webhook that takes that integration's invoices; with the
        V-SDC as the register, nothing yet: :meth:`enqueue_signed` queues each once the SDC
        has signed it."""
        if self._ws.settings.fiscal.register == "vsdc":
            return 0
        return self._enqueue(conn, fiscalized, now)

    def enqueue_signed(
        self, conn: Connection, invoice_id: int, integration_id: int, now: datetime
    ) -> int:
        """Queue the deliveries of an invoice whose sale or refund the SDC has just signed, in
        the transaction that stores its response."""
        return self._enqueue(conn, [(invoice_id, integration_id)], now)

    def _enqueue(
        self, conn: Connection, fiscalized: Sequence[tuple[int, int]], now: datetime
    ) -> int:
        if not fiscalized:
            return 0
        hooks = conn.execute(_HOOKS).all()
        if not hooks:
            return 0
        uids: dict[int, str] = dict(
            conn.execute(_UIDS, {"b_ids": sorted({source for _, source in fiscalized})}).all()
        )
        rows = []
        for hook_id, settings in hooks:
            wanted = _scope((settings or {}).get("deliver"))
            for invoice_id, source in fiscalized:
                if wanted is None or uids.get(source) in wanted:
                    rows.append(
                        {
                            "webhook_id": hook_id,
                            "invoice_id": invoice_id,
                            "event_id": "msg_" + self._ws.tokens.token_urlsafe(18),
                            "created_at": now,
                            "state": DeliveryState.PENDING.value,
                            "attempts": 0,
                            "next_attempt_at": now,
                        }
                    )
        if rows:
            conn.execute(insert(DELIVERIES), rows)
        return len(rows)

    # -- attempts -----------------------------------------------------------------------------

    def claim(self, limit: int = 50) -> list[Claimed]:
        """Take up to ``limit`` due deliveries of active webhooks for one attempt each."""
        ws = self._ws
        now = ws.clock()
        # an attempt's claim: should its process die mid-attempt, the delivery is due again
        claim = timedelta(seconds=ws.settings.sync.delivery_claim_seconds)
        with ws.db.write() as session:
            conn = session.connection()
            due = conn.execute(
                select(DELIVERIES.c.id, DELIVERIES.c.webhook_id, DELIVERIES.c.invoice_id,
                       DELIVERIES.c.event_id)
                .join(INTEGRATIONS, INTEGRATIONS.c.id == DELIVERIES.c.webhook_id)
                .where(DELIVERIES.c.state == DeliveryState.PENDING.value)
                .where(DELIVERIES.c.next_attempt_at <= now)
                .where(INTEGRATIONS.c.removed_at.is_(None))
                .where(INTEGRATIONS.c.sync_enabled.is_(True))
                .where(INTEGRATIONS.c.last_sync_error.is_(None))
                .order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()  # fmt: skip
            if not due:
                return []
            conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id.in_([d.id for d in due]))
                .values(next_attempt_at=now + claim)
            )
            hooks = {}
            for hook_id in {d.webhook_id for d in due}:
                row = session.get(Integration, hook_id)
                assert row is not None
                hooks[hook_id] = (row, self.target(session, row, now))
            invoices = {
                r.id: (r.integration_id, r.external_id)
                for r in conn.execute(
                    select(INVOICES.c.id, INVOICES.c.integration_id, INVOICES.c.external_id).where(
                        INVOICES.c.id.in_([d.invoice_id for d in due])
                    )
                )
            }
            sources: dict[int, str] = dict(
                conn.execute(
                    select(INTEGRATIONS.c.id, INTEGRATIONS.c.uid).where(
                        INTEGRATIONS.c.id.in_({s for s, _ in invoices.values()})
                    )
                ).all()
            )
            wanted: dict[int, list[str]] = {}
            for source_id, external_id in invoices.values():
                wanted.setdefault(source_id, []).append(external_id)
            stored = {
                (source_id, external_id): invoice
                for source_id, external_ids in wanted.items()
                for external_id, invoice in ws.ingest.read(conn, source_id, external_ids).items()
            }
        claimed = []
        for d in due:
            row, (url, headers, signing) = hooks[d.webhook_id]
            source_id, external_id = invoices[d.invoice_id]
            claimed.append(
                Claimed(
                    d.id, d.webhook_id, row.uid, d.event_id, url, headers, signing,
                    sources[source_id], stored[(source_id, external_id)],
                )
            )  # fmt: skip
        return claimed

    def target(
        self, session: Any, row: Integration, now: datetime
    ) -> tuple[str, dict[str, str], tuple[str, ...]]:
        """Where a webhook's deliveries go: its URL, its custom headers, the secrets that sign."""
        assert row.id is not None
        stored = self._ws.credentials.get(session, row.id, "headers")
        headers: dict[str, str] = json.loads(stored.value) if stored else {}
        return str(row.settings.get("url", "")), headers, self.signing_secrets(session, row, now)

    def signing_secrets(self, session: Any, row: Integration, now: datetime) -> tuple[str, ...]:
        """The secrets that sign now: the current one, then each old one whose overlap has not
        ended, newest first."""
        assert row.id is not None
        found = []
        current = self._ws.credentials.get(session, row.id, SIGNING_SECRET)
        if current is not None:
            found.append(current.value)
        found += [old.secret for old in self._old_secrets(session, row, now)]
        return tuple(found)

    def _old_secrets(self, session: Any, row: Integration, now: datetime) -> list[OldSecret]:
        """The secrets rotated out whose overlaps end after ``now``, the latest end first."""
        assert row.id is not None
        credentials = self._ws.credentials
        kept: list[OldSecret] = []
        stored = credentials.get(session, row.id, OLD_SECRETS)
        if stored is not None:
            kept += [
                OldSecret(str(item["secret"]), datetime.fromisoformat(str(item["until"])))
                for item in json.loads(stored.value)
            ]
        legacy_until = row.settings.get(LEGACY_PREVIOUS_UNTIL)
        if legacy_until:
            legacy = credentials.get(session, row.id, LEGACY_PREVIOUS_SECRET)
            if legacy is not None:
                kept.append(OldSecret(legacy.value, datetime.fromisoformat(legacy_until)))
        live = [old for old in kept if old.until > now]
        return sorted(live, key=lambda old: old.until, reverse=True)

    def live_secrets(self, uid: str) -> list[LiveSecret]:
        """The secrets that sign a webhook's deliveries now, masked: the current one, then
        each old one with the end of its overlap, the latest end first."""
        ws = self._ws
        now = ws.clock()
        with ws.db.read() as session:
            row = self._webhook(session, uid)
            assert row.id is not None
            current = ws.credentials.get(session, row.id, SIGNING_SECRET)
            old = self._old_secrets(session, row, now)
        shown = [LiveSecret(secret_hint(current.value), None)] if current is not None else []
        return shown + [LiveSecret(secret_hint(o.secret), o.until) for o in old]

    def record(self, claimed: Claimed, status: int | None, error: str | None) -> None:
        """The outcome of one attempt: 2xx is delivered; anything else is tried again later,
        and 24 hours of it, or 20 failures in a row at one webhook, turn the webhook Inactive."""
        ws = self._ws
        now = ws.clock()
        ok = status is not None and 200 <= status < 300
        with ws.db.write() as session:
            conn = session.connection()
            # one outcome at a time per webhook: its run of failures is counted on its row
            failures = conn.execute(
                select(INTEGRATIONS.c.delivery_failures)
                .where(INTEGRATIONS.c.id == claimed.webhook_id)
                .with_for_update()
            ).scalar_one()
            row = conn.execute(
                select(DELIVERIES).where(DELIVERIES.c.id == claimed.delivery_id)
            ).one()
            attempts = row.attempts + 1
            values: dict[str, Any] = {
                "attempts": attempts,
                "last_attempt_at": now,
                "last_status": status,
                "last_error": (error or "")[:400] or None,
            }
            given_up = not ok and now - row.created_at >= GIVE_UP_AFTER
            if ok:
                values.update(state=DeliveryState.DELIVERED.value, delivered_at=now)
                failures = 0  # a success ends the run of failures at this webhook
            else:
                values.update(
                    state=(DeliveryState.FAILED if given_up else DeliveryState.PENDING).value,
                    next_attempt_at=now + retry_delay(attempts),
                )
                failures += 1
            conn.execute(update(DELIVERIES).where(DELIVERIES.c.id == row.id).values(values))
            # a webhook's "sync" is its deliveries: what the dashboard shows as its last sync
            hook: dict[str, Any] = {"delivery_failures": failures, "last_attempted_sync": now}
            if ok:
                hook["last_successful_sync"] = now
            if given_up or failures >= FAILURES_IN_A_ROW:
                said = f"HTTP {status}" if status is not None else (error or "no answer")
                why = (
                    f"{claimed.url} failed for 24 hours ({said})"
                    if given_up
                    else f"{failures} failed attempts in a row at {claimed.url} ({said})"
                )
                hook["last_sync_error"] = why
                ws.audit.record(session, "webhook.failing", claimed.webhook_uid, why)
            conn.execute(
                update(INTEGRATIONS).where(INTEGRATIONS.c.id == claimed.webhook_id).values(hook)
            )

    # -- the operator's view ------------------------------------------------------------------

    def list(self, uid: str, limit: int = 200) -> list[DeliveryRow]:
        """A webhook's deliveries, newest first."""
        source = INTEGRATIONS.alias("source")
        with self._ws.db.read() as session:
            hook = self._webhook(session, uid)
            rows = session.connection().execute(
                select(DELIVERIES, INVOICES.c.external_id, INVOICES.c.number,
                       source.c.uid.label("source_uid"))
                .join(INVOICES, INVOICES.c.id == DELIVERIES.c.invoice_id)
                .join(source, source.c.id == INVOICES.c.integration_id)
                .where(DELIVERIES.c.webhook_id == hook.id)
                .order_by(DELIVERIES.c.id.desc())
                .limit(limit)
            ).all()  # fmt: skip
        return [
            DeliveryRow(
                r.id,
                r.event_id,
                r.external_id,
                r.number,
                r.source_uid,
                r.created_at,
                r.state,
                r.attempts,
                r.last_status,
                r.last_error,
                r.next_attempt_at if r.state == DeliveryState.PENDING.value else None,
                r.delivered_at,
            )
            for r in rows
        ]

    def resend(self, uid: str, delivery_id: int) -> None:
        """Deliver again now, whatever became of it (the same webhook-id: receivers that
        dropped it as a repeat see it as such)."""
        ws = self._ws
        with ws.db.write() as session:
            hook = self._webhook(session, uid)
            done = session.connection().execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id == delivery_id)
                .where(DELIVERIES.c.webhook_id == hook.id)
                .values(
                    state=DeliveryState.PENDING.value,
                    next_attempt_at=ws.clock(),
                )
            )
            if not done.rowcount:
                raise NotFoundError(f"{uid} has no delivery {delivery_id}")
            ws.audit.record(session, "webhook.resend", uid, f"delivery {delivery_id}")

    def rotate_secret(self, uid: str, overlap: timedelta = timedelta(hours=24)) -> str:
        """A new signing secret (returned, shown once); the one it replaces keeps signing beside
        it for ``overlap``, so that receivers can switch without missing a delivery. Secrets
        rotated out before, whose own overlaps have not ended, sign on until their ends."""
        ws = self._ws
        now = ws.clock()
        with ws.db.write() as session:
            row = self._webhook(session, uid)
            assert row.id is not None
            # one rotation at a time per webhook: each reads the old secrets the last one wrote
            session.connection().execute(
                select(INTEGRATIONS.c.id).where(INTEGRATIONS.c.id == row.id).with_for_update()
            )
            current = ws.credentials.get(session, row.id, SIGNING_SECRET)
            older = self._old_secrets(session, row, now)
            replaced = (
                [OldSecret(current.value, now + overlap)]
                if current is not None and overlap > timedelta(0)
                else []
            )
            old = replaced + older
            fresh = new_signing_secret(ws.tokens)
            ws.credentials.put(session, row.id, SIGNING_SECRET, fresh)
            if old:
                kept = [{"secret": o.secret, "until": o.until.isoformat()} for o in old]
                ws.credentials.put(session, row.id, OLD_SECRETS, json.dumps(kept))
            else:
                ws.credentials.delete(session, row.id, OLD_SECRETS)
            # the one old secret of the earlier form is among those kept now, if it signs still
            ws.credentials.delete(session, row.id, LEGACY_PREVIOUS_SECRET)
            if LEGACY_PREVIOUS_UNTIL in row.settings:
                row.settings = {k: v for k, v in row.settings.items() if k != LEGACY_PREVIOUS_UNTIL}
                session.add(row)
            ws.audit.record(
                session,
                "webhook.secret_rotated",
                uid,
                f"the old secret signs until {now + overlap}"
                + ("; older ones until their own ends" if older else ""),
            )
        return fresh

    def _webhook(self, session: Any, uid: str) -> Integration:
        row = self._ws.integrations.find(session, uid)
        if not type_spec(row.type).delivers:
            raise ConflictError(f"{uid} is not a Custom/Webhook integration")
        return row


def _scope(deliver: Any) -> set[str] | None:
    """None for every integration's invoices, else the UIDs chosen."""
    if deliver in (None, "", "all"):
        return None
    if isinstance(deliver, list):
        return {str(u) for u in deliver}
    return {part.strip() for part in str(deliver).split(",") if part.strip()}
