"""Vault operations that touch the database: rotation to a new key, and the check of every
stored secret."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text

from intdash.core.errors import ConflictError
from intdash.core.services import vaultkeys
from intdash.core.services.credentials import Unreadable

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace


@dataclass(frozen=True)
class RotationResult:
    version: int
    reencrypted: int
    retired: list[int]


@dataclass(frozen=True)
class CheckResult:
    secrets: int
    unreadable: list[Unreadable]
    keys_problem: str | None  # why intdash would refuse to open, if it would

    @property
    def ok(self) -> bool:
        return not self.unreadable and self.keys_problem is None


class VaultService:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def rotate(self) -> RotationResult:
        """Re-encrypt every secret under a new key, then retire the old keys.

        With a key file, the new key is added to it first (older keys stay readable), every
        secret is re-encrypted in one transaction, and only then are the old keys dropped, so a
        crash at any point leaves every secret readable. With ``INTDASH_SECRET_KEY`` the operator
        puts the new key first in it; this re-encrypts under that key.
        """
        ws = self._ws
        vault = ws.vault
        if vault.from_environment:
            with ws.db.read() as session:
                pending = ws.credentials.count_not_current(session)
            if pending == 0:
                raise ConflictError(
                    "every secret is already under the first key of INTDASH_SECRET_KEY: put a "
                    "new key first ('intdash vault genkey' makes one, e.g. "
                    "INTDASH_SECRET_KEY=2:NEW,1:OLD) and run 'intdash vault rotate' again"
                )
        else:
            with ws.db.read() as session:
                recorded = vaultkeys.recorded(session)
            vault.add_key(above=max(recorded, default=0))  # never a version recorded before
        with ws.db.write() as session:
            vaultkeys.record_current(session, vault, ws.clock())  # the new key's check value
            count = ws.credentials.reencrypt(session)
            ws.audit.record(
                session,
                "vault.rotated",
                detail=f"{count} secrets re-encrypted under key version {vault.current_version}",
            )
        with ws.db.write() as session:
            # a process that encrypted with the old key meanwhile: catch its rows too, with
            # writers shut out until the old keys are gone
            if not ws.db.is_sqlite:
                session.execute(text("LOCK TABLE credentials IN EXCLUSIVE MODE"))
            ws.credentials.reencrypt(session)
            retired = vault.retire_all_but_current()
            vaultkeys.prune(session, vault)
        return RotationResult(vault.current_version, count, retired)

    def check(self) -> CheckResult:
        """Try every stored secret with the keys at hand, and judge the keys as opening a
        workspace would; writes nothing, shows no value."""
        ws = self._ws
        with ws.db.read() as session:
            total, unreadable = ws.credentials.check(session)
            found = vaultkeys.survey(session)
            diagnosis = vaultkeys.diagnose(session, ws.vault, found, ws.settings.key_path)
        return CheckResult(total, unreadable, diagnosis.problem)
