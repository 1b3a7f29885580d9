"""API keys of Custom Integrations: ``idk_<key id>_<secret>``, shown once, stored as a hash.

The secret has about 190 bits of randomness, so a single SHA-256 (salted with the key id) is
enough: there is nothing to guess. Verification takes the same time whether the key id exists
or not, and compares digests in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, update
from sqlmodel import Session, col, select

from intdash.core.catalog import type_spec
from intdash.core.errors import ConflictError, FieldErrors, NotFoundError
from intdash.core.models import ApiKey, Integration

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

KEY_PREFIX = "idk"
KEY_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
KEY_ID_LENGTH = 10
SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"  # noqa: S105
SECRET_LENGTH = 32
LABEL_MAX = 200
LAST_USED_EVERY = timedelta(seconds=60)  # write "last used" at most this often per key
_KEY_SHAPE = re.compile(r"^idk_([a-z0-9]{1,32})_([A-Za-z0-9]{16,128})$")
_DUMMY_HASH = "0" * 64


def parse_label(text: str) -> str:
    """A key's label as stored (trimmed); ValueError says what is wrong with it."""
    label = text.strip()
    if not label:
        raise ValueError("must not be empty")
    if len(label) > LABEL_MAX:
        raise ValueError(f"must be at most {LABEL_MAX} characters")
    return label


def _hash(key_id: str, secret: str) -> str:
    return hashlib.sha256(f"{key_id}:{secret}".encode()).hexdigest()


class KeyState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True)
class ApiKeyView:
    key_id: str
    integration_uid: str
    label: str
    created: datetime
    last_used: datetime | None
    revoked: datetime | None

    @property
    def state(self) -> KeyState:
        return KeyState.REVOKED if self.revoked else KeyState.ACTIVE

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "integration": self.integration_uid,
            "label": self.label,
            "created": self.created.isoformat(),
            "last_used": self.last_used.isoformat() if self.last_used else None,
            "revoked": self.revoked.isoformat() if self.revoked else None,
            "state": self.state.value,
        }


@dataclass(frozen=True)
class CreatedKey:
    key: str  # the whole key: shown once, never stored
    view: ApiKeyView


class KeyProblem(StrEnum):
    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    REVOKED = "revoked"


@dataclass(frozen=True)
class KeyCheck:
    """The outcome of verifying a presented key; ``problem`` is None when it is good."""

    problem: KeyProblem | None
    key_id: str | None = None
    integration_uid: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _view(row: ApiKey, uid: str) -> ApiKeyView:
    return ApiKeyView(row.key_id, uid, row.label, row.created_at, row.last_used_at, row.revoked_at)


class ApiKeyService:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._known: dict[str, tuple[str, str]] = {}  # key id: its secret's hash, its UID

    def _custom_integration(self, session: Session, uid: str) -> Integration:
        row = self._ws.integrations.find_live(session, uid)
        if not type_spec(row.type).needs_api_key:
            raise ConflictError(
                f"API keys belong to Custom Integrations; {row.uid} is of type {row.type}"
            )
        return row

    def create(self, uid: str, label: str) -> CreatedKey:
        try:
            label = parse_label(label)
        except ValueError as exc:
            raise FieldErrors({"label": str(exc)}) from None
        ws = self._ws
        with ws.db.write() as session:
            integration = self._custom_integration(session, uid)
            assert integration.id is not None
            while True:
                key_id = ws.tokens.choice(KEY_ID_ALPHABET, KEY_ID_LENGTH)
                taken = session.exec(select(ApiKey.id).where(ApiKey.key_id == key_id)).first()
                if taken is None:
                    break
            secret = ws.tokens.choice(SECRET_ALPHABET, SECRET_LENGTH)
            row = ApiKey(
                key_id=key_id,
                integration_id=integration.id,
                secret_hash=_hash(key_id, secret),
                label=label,
                created_at=ws.clock(),
            )
            session.add(row)
            ws.audit.record(session, "api_key.created", integration.uid, f"{key_id} '{label}'")
            session.flush()
            return CreatedKey(f"{KEY_PREFIX}_{key_id}_{secret}", _view(row, integration.uid))

    def list(self, uid: str) -> list[ApiKeyView]:
        with self._ws.db.read() as session:
            integration = self._ws.integrations.find(session, uid)
            rows = session.exec(
                select(ApiKey)
                .where(ApiKey.integration_id == integration.id)
                .order_by(col(ApiKey.id))
            )
            return [_view(row, integration.uid) for row in rows]

    def revoke(self, key_id: str) -> ApiKeyView:
        ws = self._ws
        with ws.db.write() as session:
            found = session.exec(
                select(ApiKey, Integration.uid)
                .join(Integration, col(Integration.id) == ApiKey.integration_id)
                .where(ApiKey.key_id == key_id.strip())
            ).first()
            if found is None:
                raise NotFoundError(f"no API key with id {key_id!r}")
            row, uid = found
            if row.revoked_at is not None:
                raise ConflictError(
                    f"API key {row.key_id} was already revoked on {row.revoked_at:%Y-%m-%d}"
                )
            row.revoked_at = ws.clock()
            session.add(row)
            ws.audit.record(session, "api_key.revoked", uid, row.key_id)
            session.flush()
            return _view(row, uid)

    def verify(self, presented: str) -> KeyCheck:
        """Check a presented key in constant time and note when it was last used."""
        match = _KEY_SHAPE.match(presented.strip())
        key_id, secret = (match.group(1), match.group(2)) if match else ("", "")
        with self._ws.db.read() as session:
            found = session.exec(
                select(ApiKey, Integration.uid)
                .join(Integration, col(Integration.id) == ApiKey.integration_id)
                .where(ApiKey.key_id == key_id)
            ).first()
        stored = found[0].secret_hash if found else _DUMMY_HASH
        good = hmac.compare_digest(_hash(key_id, secret), stored)
        if not match:
            return KeyCheck(KeyProblem.MALFORMED)
        if found is None or not good:
            return KeyCheck(KeyProblem.UNKNOWN)
        row, uid = found
        if row.revoked_at is not None:
            return KeyCheck(KeyProblem.REVOKED, row.key_id, uid)
        self._touch(row)
        return KeyCheck(None, row.key_id, uid)

    def check_secret(self, presented: str) -> KeyCheck:
        """The key id and integration of a presented key whose secret is right, without
        looking at whether it is revoked: that is checked where the request is written
        (:meth:`IngestService.accept_group`). A key's secret and integration never change,
        so what was read is kept for the process's life; an unknown key is read every time."""
        match = _KEY_SHAPE.match(presented.strip())
        key_id, secret = (match.group(1), match.group(2)) if match else ("", "")
        known = self._known.get(key_id)
        if known is None:
            with self._ws.db.read() as session:
                found = session.exec(
                    select(ApiKey.secret_hash, Integration.uid)
                    .join(Integration, col(Integration.id) == ApiKey.integration_id)
                    .where(ApiKey.key_id == key_id)
                ).first()
            if found is not None and match:
                known = self._known[key_id] = (found[0], found[1])
        stored = known[0] if known else _DUMMY_HASH
        good = hmac.compare_digest(_hash(key_id, secret), stored)
        if not match:
            return KeyCheck(KeyProblem.MALFORMED)
        if known is None or not good:
            return KeyCheck(KeyProblem.UNKNOWN)
        return KeyCheck(None, key_id, known[1])

    def touch_in(
        self, conn: Connection, key_row: int, last_used_at: datetime | None, now: datetime
    ) -> None:
        """Note, in the caller's transaction, that the key was used (at most once a minute)."""
        if last_used_at is not None and now - last_used_at < LAST_USED_EVERY:
            return
        conn.execute(update(ApiKey).where(col(ApiKey.id) == key_row).values(last_used_at=now))

    def _touch(self, row: ApiKey) -> None:
        now = self._ws.clock()
        if row.last_used_at is not None and now - row.last_used_at < LAST_USED_EVERY:
            return
        with self._ws.db.write() as session:
            session.execute(
                update(ApiKey)
                .where(col(ApiKey.id) == row.id)
                .where(
                    col(ApiKey.last_used_at).is_(None)
                    | (col(ApiKey.last_used_at) < now - LAST_USED_EVERY)
                )
                .values(last_used_at=now)
            )
