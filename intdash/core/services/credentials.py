"""The credential store: every secret of an integration, encrypted by the vault.

Each value is bound to its row (integration id and name) so a ciphertext moved elsewhere does not
decrypt. Every write bumps the row's version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from intdash.core.errors import VaultError
from intdash.core.models import Credential, Integration
from intdash.core.vault import Vault

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

_CREDENTIALS = Credential.__table__  # type: ignore[attr-defined]
NAMES = sa_select(_CREDENTIALS.c.integration_id, _CREDENTIALS.c.name)  # built once
NAMES_OF = NAMES.where(_CREDENTIALS.c.integration_id.in_(bindparam("ids", expanding=True)))
# an integration's secrets (a few), of which every sync reads its token and tenant: the
# columns alone, without the ORM's objects, and no list of names rendered into the statement
_OF_ONE = sa_select(_CREDENTIALS.c.name, _CREDENTIALS.c.ciphertext, _CREDENTIALS.c.version).where(
    _CREDENTIALS.c.integration_id == bindparam("b_integration")
)

OAUTH_TOKEN = "oauth_token"  # noqa: S105 - credential names
TENANT_ID = "tenant_id"


@dataclass(frozen=True)
class StoredSecret:
    value: str
    version: int


@dataclass(frozen=True)
class Unreadable:
    """A stored secret the vault cannot decrypt: where it is and why, never its value."""

    integration_uid: str
    name: str
    version: int | None  # the key version it was written with; None if not a vault ciphertext
    reason: str


def secret_context(integration_id: int, name: str) -> str:
    """What a secret's ciphertext is bound to: its row."""
    return f"credential:{integration_id}:{name}"


_context = secret_context


class CredentialStore:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def _row(self, session: Session, integration_id: int, name: str) -> Credential | None:
        return session.exec(
            select(Credential).where(
                Credential.integration_id == integration_id, Credential.name == name
            )
        ).first()

    def get(self, session: Session, integration_id: int, name: str) -> StoredSecret | None:
        row = self._row(session, integration_id, name)
        if row is None:
            return None
        return StoredSecret(
            self._ws.vault.decrypt(row.ciphertext, _context(integration_id, name)), row.version
        )

    def get_many(
        self, session: Session, integration_id: int, names: Iterable[str]
    ) -> dict[str, StoredSecret]:
        """Those of ``names`` the integration has, in one read."""
        wanted = set(names)
        if not wanted:
            return {}
        rows = session.connection().execute(_OF_ONE, {"b_integration": integration_id})
        decrypt = self._ws.vault.decrypt
        return {
            name: StoredSecret(decrypt(ciphertext, _context(integration_id, name)), version)
            for name, ciphertext, version in rows
            if name in wanted
        }

    def put(self, session: Session, integration_id: int, name: str, value: str) -> int:
        """Store ``value`` (replacing any earlier one); returns the new version."""
        ciphertext = self._ws.vault.encrypt(value, _context(integration_id, name))
        row = self._row(session, integration_id, name)
        now = self._ws.clock()
        if row is None:
            row = Credential(
                integration_id=integration_id, name=name, ciphertext=ciphertext, updated_at=now
            )
        else:
            row.ciphertext, row.version, row.updated_at = ciphertext, row.version + 1, now
        session.add(row)
        session.flush()
        return row.version

    def delete(self, session: Session, integration_id: int, name: str) -> bool:
        result = session.execute(
            delete(Credential).where(
                col(Credential.integration_id) == integration_id, col(Credential.name) == name
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def names(self, session: Session, integration_id: int) -> set[str]:
        return set(
            session.exec(select(Credential.name).where(Credential.integration_id == integration_id))
        )

    def names_by_integration(
        self, session: Session, ids: list[int] | None = None
    ) -> dict[int, set[str]]:
        """The names of the secrets each integration has (of ``ids``, or of all)."""
        query = NAMES if ids is None else NAMES_OF
        found: dict[int, set[str]] = {}
        for integration_id, name in session.connection().execute(query, {"ids": ids}):
            found.setdefault(integration_id, set()).add(name)
        return found

    def wipe(self, session: Session, integration_id: int) -> int:
        """Delete every secret of an integration; returns how many there were."""
        result = session.execute(
            delete(Credential).where(col(Credential.integration_id) == integration_id)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def reencrypt(self, session: Session) -> int:
        """Re-encrypt every secret not under the vault's current key; returns how many."""
        vault = self._ws.vault
        current = vault.current_version
        count = 0
        for row in session.exec(select(Credential)):
            if vault.version_of(row.ciphertext) == current:
                continue
            context = _context(row.integration_id, row.name)
            row.ciphertext = vault.encrypt(vault.decrypt(row.ciphertext, context), context)
            session.add(row)
            count += 1
        session.flush()
        return count

    def check(self, session: Session) -> tuple[int, list[Unreadable]]:
        """Try to decrypt every stored secret; returns how many there are and the ones that
        cannot be read (in integration, then name, order). Nothing is written."""
        vault = self._ws.vault
        rows = session.exec(
            select(
                col(Integration.uid),
                col(Credential.integration_id),
                col(Credential.name),
                col(Credential.ciphertext),
            )
            .join(Integration, col(Integration.id) == col(Credential.integration_id))
            .order_by(col(Integration.uid), col(Credential.name))
        ).all()
        unreadable: list[Unreadable] = []
        for uid, integration_id, name, ciphertext in rows:
            try:
                vault.decrypt(ciphertext, _context(integration_id, name))
            except VaultError as exc:
                unreadable.append(Unreadable(uid, name, _version_or_none(ciphertext), str(exc)))
        return len(rows), unreadable

    def count_not_current(self, session: Session) -> int:
        vault = self._ws.vault
        current = vault.current_version
        return sum(
            1
            for ciphertext in session.exec(select(Credential.ciphertext))
            if vault.version_of(ciphertext) != current
        )


def _version_or_none(ciphertext: str) -> int | None:
    try:
        return Vault.version_of(ciphertext)
    except VaultError:
        return None
