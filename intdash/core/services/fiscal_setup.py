"""What fiscalization by the V-SDC is set up with: the taxpayer's secrets (the ``.pfx``, its
password, the PAC) in the vault; what intdash knows of the SDC (its last status, with the tax
labels, and since when it has been unreachable); each integration's tax codes mapped to labels.

The secrets are encrypted by the vault like every integration's, bound to their names, and are
re-encrypted by a key rotation and tried by ``intdash vault check`` with the others
(:class:`SecretStore` is the workspace's credential store, covering them too).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from intdash.core.errors import ConflictError, NotFoundError, VaultError
from intdash.core.fiscal_models import FiscalSecret, FiscalState, TaxLabelMap
from intdash.core.services.credentials import CredentialStore, Unreadable
from intdash.core.services.fiscal_requests import NO_CODE, Label, group_of, labels_of
from intdash.core.vault import Vault

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

SECRETS = FiscalSecret.__table__  # type: ignore[attr-defined]
STATE = FiscalState.__table__  # type: ignore[attr-defined]
MAP = TaxLabelMap.__table__  # type: ignore[attr-defined]
PFX, PASSWORD, PAC = "pfx", "pfx_password", "pac"
CERTIFICATE = "certificate"  # state: what the operator is shown of it (no secret)
STATUS = "status"  # state: the SDC's last GET /api/v3/status
REACH = "reach"  # state: {"unavailable_since", "error"} while the SDC cannot be reached
_REACH_ROW = select(STATE.c.name).where(STATE.c.name == REACH)
EXPIRY_WARNING = timedelta(days=30)


def secret_context(name: str) -> str:
    return f"fiscal:{name}"


@dataclass(frozen=True)
class TaxpayerSecrets:
    pfx: bytes
    password: str
    pac: str

    def __repr__(self) -> str:
        return "TaxpayerSecrets(…)"


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    not_after: datetime
    fingerprint: str

    def days_left(self, now: datetime) -> int:
        return (self.not_after - now).days

    def warning(self, now: datetime) -> str | None:
        """What the operator is told of a certificate expired or expiring within 30 days."""
        if self.not_after <= now:
            return f"the taxpayer's certificate expired on {self.not_after:%Y-%m-%d}"
        if self.not_after - now <= EXPIRY_WARNING:
            days = max(self.days_left(now), 0)
            return (
                f"the taxpayer's certificate expires on {self.not_after:%Y-%m-%d} "
                f"(in {days} day{'' if days == 1 else 's'}): run intdash fiscal configure "
                "with its renewal"
            )
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "expires": self.not_after.isoformat(),
            "fingerprint": self.fingerprint,
        }


class SecretStore(CredentialStore):
    """The workspace's credential store, also over the taxpayer's fiscal secrets: a vault key
    rotation re-encrypts them and ``intdash vault check`` tries them with every other."""

    def reencrypt(self, session: Session) -> int:
        count = super().reencrypt(session)
        vault = self._ws.vault
        current = vault.current_version
        for row in session.exec(select(FiscalSecret)).scalars():  # type: ignore[call-overload]
            if vault.version_of(row.ciphertext) == current:
                continue
            context = secret_context(row.name)
            row.ciphertext = vault.encrypt(vault.decrypt(row.ciphertext, context), context)
            session.add(row)
            count += 1
        session.flush()
        return count

    def check(self, session: Session) -> tuple[int, list[Unreadable]]:
        total, unreadable = super().check(session)
        vault = self._ws.vault
        rows = session.connection().execute(select(SECRETS.c.name, SECRETS.c.ciphertext)).all()
        for name, ciphertext in rows:
            try:
                vault.decrypt(ciphertext, secret_context(name))
            except VaultError as exc:
                version = _version_or_none(ciphertext)
                unreadable.append(Unreadable("(fiscal)", name, version, str(exc)))
        return total + len(rows), unreadable

    def count_not_current(self, session: Session) -> int:
        vault = self._ws.vault
        current = vault.current_version
        fiscal = session.connection().execute(select(SECRETS.c.ciphertext)).scalars()
        return super().count_not_current(session) + sum(
            1 for c in fiscal if vault.version_of(c) != current
        )


def _version_or_none(ciphertext: str) -> int | None:
    try:
        return Vault.version_of(ciphertext)
    except VaultError:
        return None


def _upsert(session: Session, table: Any, values: dict[str, Any], keys: list[str]) -> None:
    conn = session.connection()
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(table).values(values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=keys,
            set_={k: statement.excluded[k] for k in values if k not in keys},
        )
    )


class FiscalSetup:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._group: tuple[bool, int | None] = (False, None)  # (read yet, the labels' group)

    # -- the taxpayer's secrets ---------------------------------------------------------------

    def store_secrets(self, secrets: TaxpayerSecrets, certificate: CertificateInfo) -> None:
        """Keep the taxpayer's secrets (checked by the caller: the password opens the .pfx)."""
        ws = self._ws
        now = ws.clock()
        values = {
            PFX: base64.b64encode(secrets.pfx).decode("ascii"),
            PASSWORD: secrets.password,
            PAC: secrets.pac,
        }
        with ws.db.write() as session:
            for name, value in values.items():
                ciphertext = ws.vault.encrypt(value, secret_context(name))
                _upsert(
                    session,
                    SECRETS,
                    {"name": name, "ciphertext": ciphertext, "updated_at": now},
                    ["name"],
                )
            self._put_state(session, CERTIFICATE, certificate.to_json())
            ws.audit.record(
                session,
                "fiscal.configured",
                detail=f"certificate {certificate.subject}, "
                f"expires {certificate.not_after:%Y-%m-%d}",
            )

    def secrets(self) -> TaxpayerSecrets | None:
        """The taxpayer's secrets, or None before ``intdash fiscal configure``."""
        ws = self._ws
        with ws.db.read() as session:
            rows: dict[str, str] = dict(
                session.connection().execute(select(SECRETS.c.name, SECRETS.c.ciphertext)).all()
            )
        if not all(name in rows for name in (PFX, PASSWORD, PAC)):
            return None
        plain = {name: ws.vault.decrypt(rows[name], secret_context(name)) for name in rows}
        return TaxpayerSecrets(base64.b64decode(plain[PFX]), plain[PASSWORD], plain[PAC])

    def certificate(self) -> CertificateInfo | None:
        found = self.state(CERTIFICATE)
        if found is None:
            return None
        return CertificateInfo(
            str(found["subject"]),
            datetime.fromisoformat(str(found["expires"])),
            str(found["fingerprint"]),
        )

    # -- what intdash knows of the SDC ----------------------------------------------------------

    def state(self, name: str, session: Session | None = None) -> dict[str, Any] | None:
        if session is None:
            with self._ws.db.read() as own:
                return self.state(name, own)
        value = (
            session.connection()
            .execute(select(STATE.c.value).where(STATE.c.name == name))
            .scalar_one_or_none()
        )
        return None if value is None else dict(json.loads(value))

    def _put_state(self, session: Session, name: str, value: dict[str, Any]) -> None:
        _upsert(
            session,
            STATE,
            {"name": name, "value": json.dumps(value), "updated_at": self._ws.clock()},
            ["name"],
        )

    def _drop_state(self, session: Session, name: str) -> None:
        session.connection().execute(delete(STATE).where(STATE.c.name == name))

    def store_status(self, status: dict[str, Any]) -> None:
        """The SDC's answer to GET /api/v3/status (its labels, their group)."""
        with self._ws.db.write() as session:
            self._put_state(session, STATUS, status)
        self._group = (True, group_of(status))

    def status(self) -> dict[str, Any] | None:
        return self.state(STATUS)

    def labels(self) -> list[Label]:
        found = self.status()
        return labels_of(found) if found else []

    def group(self) -> int | None:
        """The group of the labels as last read (kept by this process once read: another's
        newer reading makes the sender read them again, which is all it costs)."""
        known, group = self._group
        if not known:
            found = self.status()
            group = group_of(found) if found else None
            self._group = (True, group)
        return group

    def reachable(self, now: datetime) -> None:
        with self._ws.db.write() as session:
            self._drop_state(session, REACH)

    def answered(self, session: Session) -> bool:
        """In the caller's write transaction: the SDC answers, so it is no longer recorded
        unreachable; whether it was."""
        was = session.connection().execute(_REACH_ROW).first() is not None
        if was:
            self._drop_state(session, REACH)
        return was

    def unreachable(self, error: str, now: datetime) -> None:
        """The SDC could not be reached: since when (the first time), and the latest why."""
        with self._ws.db.write() as session:
            found = self.state(REACH, session)
            since = found["unavailable_since"] if found else now.isoformat()
            self._put_state(session, REACH, {"unavailable_since": since, "error": error})

    def unavailable(self) -> tuple[datetime, str] | None:
        """Since when the SDC has been unavailable, and why; None while it answers."""
        found = self.state(REACH)
        if not found:
            return None
        return datetime.fromisoformat(str(found["unavailable_since"])), str(found["error"])

    # -- tax codes -> labels ------------------------------------------------------------------

    def map_code(self, uid: str, code: str, label: str) -> None:
        """Fiscalize an integration's tax ``code`` (``-``: lines without one) with ``label``."""
        ws = self._ws
        label = label.strip().upper()
        known = {found.label for found in self.labels()}
        if known and label not in known:
            raise ConflictError(
                f"the SDC's current tax rates have no label {label} "
                f"(they have {', '.join(sorted(known))})"
            )
        if not label.isalnum() or len(label) > 8:
            raise ConflictError(f"{label!r} is not a TaxCore tax label (one letter, e.g. A)")
        code = code.strip()
        if not code or len(code) > 100:
            raise ConflictError("a tax code is 1 to 100 characters (- for lines without one)")
        with ws.db.write() as session:
            row = ws.integrations.find(session, uid)
            _upsert(
                session,
                MAP,
                {
                    "integration_id": row.id,
                    "tax_code": code,
                    "label": label,
                    "updated_at": ws.clock(),
                },
                ["integration_id", "tax_code"],
            )
            ws.audit.record(session, "fiscal.mapped", uid, f"tax code {code} -> label {label}")

    def unmap_code(self, uid: str, code: str) -> None:
        ws = self._ws
        with ws.db.write() as session:
            row = ws.integrations.find(session, uid)
            done = session.connection().execute(
                delete(MAP).where(MAP.c.integration_id == row.id).where(MAP.c.tax_code == code)
            )
            if not done.rowcount:
                raise NotFoundError(f"{uid} has no mapping of tax code {code}")
            ws.audit.record(session, "fiscal.unmapped", uid, f"tax code {code}")

    def mapping(self, session: Session, integration_id: int) -> dict[str, str]:
        return dict(
            session.connection()
            .execute(
                select(MAP.c.tax_code, MAP.c.label).where(MAP.c.integration_id == integration_id)
            )
            .all()
        )

    def mappings(self, uid: str | None = None) -> list[tuple[str, str, str]]:
        """(integration UID, tax code, label), of one integration or all."""
        from intdash.core.models import Integration

        integrations = Integration.__table__  # type: ignore[attr-defined]
        query = (
            select(integrations.c.uid, MAP.c.tax_code, MAP.c.label)
            .join(integrations, integrations.c.id == MAP.c.integration_id)
            .order_by(integrations.c.uid, MAP.c.tax_code)
        )
        with self._ws.db.read() as session:
            if uid is not None:
                query = query.where(
                    integrations.c.id == self._ws.integrations.find(session, uid).id
                )
            return [(r[0], r[1], r[2]) for r in session.connection().execute(query)]


__all__ = ["NO_CODE", "FiscalSetup", "SecretStore", "TaxpayerSecrets"]
