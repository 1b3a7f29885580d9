"""The vault's keys as the database knows them, and the check made before anything is read or
written with them.

The database records each key version its secrets are under with the key's check value (an
HMAC of a fixed label under the key: it recognises the key and cannot give it back). A workspace
opens only if, for every version that secrets are stored under, the key at hand is there and is
the recorded one; else it refuses in one line naming where the keys come from, the versions it
needs and how to put them back, having written nothing. A key file is made only for an empty
vault: no secret stored and no version recorded.

A workspace from before the versions were recorded has secrets and no record: a version is then
recorded once its key has decrypted one of the secrets under it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from intdash.core.clock import Clock
from intdash.core.config import Settings
from intdash.core.db import Database
from intdash.core.errors import VaultError
from intdash.core.models import Credential, VaultKey
from intdash.core.services.credentials import secret_context
from intdash.core.vault import PREFIX, Vault

_KEYS = VaultKey.__table__  # type: ignore[attr-defined]
_HEAD = 24  # enough of a ciphertext to hold "enc:v<N>:"
REFUSED = "; nothing was changed ('intdash vault check' lists the secrets affected)"


@dataclass(frozen=True)
class KeySurvey:
    """What the database holds: the recorded key versions and the versions secrets are under."""

    recorded: dict[int, str] = field(default_factory=dict)  # version -> check value
    in_use: dict[int, int] = field(default_factory=dict)  # version -> secrets under it

    @property
    def secrets(self) -> int:
        return sum(self.in_use.values())

    @property
    def empty(self) -> bool:
        return not self.recorded and not self.in_use

    @property
    def needed(self) -> list[int]:
        """The versions the vault must have: those secrets are under, or else those recorded."""
        return sorted(self.in_use or self.recorded)


def recorded(session: Session) -> dict[int, str]:
    return {row.version: row.check_value for row in session.exec(select(VaultKey))}


def survey(session: Session) -> KeySurvey:
    in_use: dict[int, int] = {}
    for head in session.exec(select(func.substr(col(Credential.ciphertext), 1, _HEAD))):
        try:
            version = Vault.version_of(head)
        except VaultError:
            continue  # damaged: 'intdash vault check' names it
        in_use[version] = in_use.get(version, 0) + 1
    return KeySurvey(recorded(session), in_use)


def _decrypts_one(session: Session, vault: Vault, version: int) -> bool:
    """Whether the vault's key of ``version`` decrypts a secret stored under it."""
    rows = session.exec(
        select(Credential).where(col(Credential.ciphertext).startswith(f"{PREFIX}{version}:"))
    )
    for row in rows:
        try:
            vault.decrypt(row.ciphertext, secret_context(row.integration_id, row.name))
        except VaultError:
            continue  # a damaged row, or the wrong key: another row tells which
        return True
    return False


def _versions(versions: Sequence[int]) -> str:
    return ("version " if len(versions) == 1 else "versions ") + ", ".join(map(str, versions))


def refusal(
    vault: Vault,
    found: KeySurvey,
    key_path: Path,
    *,
    missing: Sequence[int] = (),
    wrong: Sequence[int] = (),
) -> str:
    """One line: what is wrong with the keys, the versions needed and how to put them back."""
    problems = []
    if not vault.present:
        problems.append(f"vault key file {key_path} is missing")
    else:
        if missing:
            problems.append(f"{vault.source} has no key of {_versions(missing)}")
        if wrong:
            problems.append(
                f"{vault.source} holds a different key of {_versions(wrong)} than the one "
                "recorded in the database"
            )
    needed = found.needed
    if found.secrets:
        secrets = f"{found.secrets} secret{'' if found.secrets == 1 else 's'}"
        held = f"the database holds {secrets} under key {_versions(needed)}"
    else:
        held = f"the database records key {_versions(needed)} (no secret stored yet)"
    setting = "INTDASH_SECRET_KEY=" + ",".join(f"{v}:KEY" for v in sorted(needed, reverse=True))
    if vault.from_environment:
        fix = (
            f"set {setting} with the right key of {_versions(needed)}, or unset "
            f"INTDASH_SECRET_KEY to use the key file {key_path}"
        )
    else:
        held_keys = "the key" if len(needed) == 1 else "the keys"
        fix = f"restore {key_path} from backup (or set {setting} with {held_keys} it held)"
    return f"{' and '.join(problems)}, but {held}: {fix}"


@dataclass(frozen=True)
class Diagnosis:
    problem: str | None  # why the workspace must not open, in one line
    to_record: dict[int, str]  # check values to record when it opens


def diagnose(session: Session, vault: Vault, found: KeySurvey, key_path: Path) -> Diagnosis:
    """Judge the keys at hand against the database; reads only."""
    if not vault.present:
        if found.empty and not vault.from_environment:
            return Diagnosis(None, {})  # an empty vault: a key file is made when it opens
        return Diagnosis(refusal(vault, found, key_path), {})
    checks = vault.checks()
    missing = sorted(v for v in found.in_use if v not in checks)
    wrong = sorted(v for v, c in checks.items() if v in found.recorded and found.recorded[v] != c)
    to_record: dict[int, str] = {}
    for version in sorted(found.in_use):
        if version in checks and version not in found.recorded:
            if _decrypts_one(session, vault, version):
                to_record[version] = checks[version]
            else:
                wrong.append(version)
    current = vault.current_version
    if current not in found.recorded and current not in wrong:
        to_record[current] = checks[current]
    if missing or wrong:
        problem = refusal(vault, found, key_path, missing=missing, wrong=sorted(wrong))
        return Diagnosis(problem, {})
    return Diagnosis(None, to_record)


def record(session: Session, checks: Mapping[int, str], at: datetime) -> dict[int, str]:
    """Record check values for versions not recorded yet (a version already recorded keeps its
    value); returns every recorded version's check value."""
    if checks:
        conn = session.connection()
        dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        statement = dialect_insert(_KEYS).values(
            [{"version": v, "check_value": c, "recorded_at": at} for v, c in checks.items()]
        )
        conn.execute(statement.on_conflict_do_nothing(index_elements=["version"]))
    return recorded(session)


def record_current(session: Session, vault: Vault, at: datetime) -> None:
    """Record the check value of the vault's current key (after a rotation made it), in the
    caller's transaction; refuse if that version is recorded with another key."""
    version = vault.current_version
    found = record(session, {version: vault.checks()[version]}, at)
    vault.expect(found)  # raises if the recorded one is another key


def prune(session: Session, vault: Vault) -> list[int]:
    """Forget the versions no secret is under any more, but the current one; returns them."""
    found = survey(session)
    keep = {*found.in_use, vault.current_version}
    gone = sorted(v for v in found.recorded if v not in keep)
    if gone:
        session.execute(delete(VaultKey).where(col(VaultKey.version).in_(gone)))
    return gone


def open_vault(settings: Settings, db: Database, *, clock: Clock, check: bool = True) -> Vault:
    """The vault of a workspace, its keys checked against the database (unless not ``check``,
    for diagnostics: then nothing is made or recorded)."""
    if settings.secret_key is not None:
        vault = Vault(env_keys=settings.secret_key.get_secret_value())
    else:
        vault = Vault(key_file=settings.key_path)
    if not check:
        return vault
    with db.read() as session:
        found = survey(session)
        diagnosis = diagnose(session, vault, found, settings.key_path)
    if diagnosis.problem is not None:
        raise VaultError(diagnosis.problem + REFUSED)
    if not vault.present:  # an empty vault: its first key
        vault = Vault(key_file=settings.key_path, create=True)
        diagnosis = Diagnosis(None, {vault.current_version: vault.checks()[vault.current_version]})
    known = found.recorded
    if diagnosis.to_record:
        with db.write() as session:
            known = record(session, diagnosis.to_record, clock())
            checks = vault.checks()
            wrong = sorted(v for v, c in checks.items() if v in known and known[v] != c)
            if wrong:  # another process recorded another key meanwhile
                found = survey(session)
                raise VaultError(refusal(vault, found, settings.key_path, wrong=wrong) + REFUSED)
    vault.expect(known)
    return vault
