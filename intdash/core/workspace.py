"""A workspace: the settings, database, vault, clock, token source and actor every service
works with."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from intdash.core import fiscal_models  # noqa: F401 - its tables, on the one metadata
from intdash.core.clock import Clock, system_clock
from intdash.core.config import Settings, load_settings
from intdash.core.db import Database
from intdash.core.tokens import TokenSource, system_tokens
from intdash.core.vault import Vault

if TYPE_CHECKING:
    from intdash.core.fiscal import FiscalRegister
    from intdash.core.services.apikeys import ApiKeyService
    from intdash.core.services.audit import AuditService
    from intdash.core.services.credentials import CredentialStore
    from intdash.core.services.deliveries import DeliveryService
    from intdash.core.services.fiscal_outbox import FiscalService
    from intdash.core.services.ingest import IngestService
    from intdash.core.services.integrations import IntegrationService
    from intdash.core.services.invoices import InvoiceService
    from intdash.core.services.leases import LeaseService
    from intdash.core.services.plans import PlanService
    from intdash.core.services.schedule import ScheduleService
    from intdash.core.services.vaultops import VaultService


def current_os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, as in some containers
        return "unknown"


@dataclass
class Workspace:
    settings: Settings
    db: Database
    vault: Vault
    clock: Clock = system_clock
    actor: str = field(default_factory=current_os_user)
    tokens: TokenSource = system_tokens

    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        *,
        clock: Clock = system_clock,
        tokens: TokenSource = system_tokens,
        actor: str | None = None,
        migrate: bool = True,
        check_vault: bool = True,
    ) -> Workspace:
        """Open (creating if needed) the settings' workspace, migrated to the newest schema.

        The vault's keys are checked against the database first (see
        :mod:`intdash.core.services.vaultkeys`): a missing or wrong key refuses the workspace.
        Only diagnostics pass ``check_vault=False``; their vault makes no key and records none.
        """
        from intdash.core.services.vaultkeys import open_vault

        settings = settings or load_settings()
        settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = Database(settings.db_url, held_connections=settings.sync.workers)
        try:
            if migrate:
                db.migrate()
            vault = open_vault(settings, db, clock=clock, check=check_vault)
        except BaseException:
            db.dispose()
            raise
        workspace = cls(settings, db, vault, clock, tokens=tokens)
        if actor:
            workspace.actor = actor
        return workspace

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @cached_property
    def deliveries(self) -> DeliveryService:
        from intdash.core.services.deliveries import DeliveryService

        return DeliveryService(self)

    @cached_property
    def ingest(self) -> IngestService:
        from intdash.core.services.ingest import IngestService

        return IngestService(self)

    @cached_property
    def audit(self) -> AuditService:
        from intdash.core.services.audit import AuditService

        return AuditService(self)

    @cached_property
    def credentials(self) -> CredentialStore:
        # the credential store, also over the taxpayer's fiscal secrets (rotated and checked
        # with every other secret)
        from intdash.core.services.fiscal_setup import SecretStore

        return SecretStore(self)

    @cached_property
    def plans(self) -> PlanService:
        from intdash.core.services.plans import PlanService

        return PlanService(self)

    @cached_property
    def integrations(self) -> IntegrationService:
        from intdash.core.services.integrations import IntegrationService

        return IntegrationService(self)

    @cached_property
    def invoices(self) -> InvoiceService:
        from intdash.core.services.invoices import InvoiceService

        return InvoiceService(self, register=self.register)

    @cached_property
    def register(self) -> FiscalRegister:
        """The fiscal register the settings choose (INTDASH_FISCAL__REGISTER): the local hash
        chain, or TaxCore's V-SDC fed from the outbox."""
        if self.settings.fiscal.register == "vsdc":
            from intdash.core.fiscal_vsdc import VsdcRegister

            return VsdcRegister(self.tokens)
        from intdash.core.fiscal import HashChainRegister

        return HashChainRegister()

    @cached_property
    def fiscal(self) -> FiscalService:
        from intdash.core.services.fiscal_outbox import FiscalService

        return FiscalService(self)

    @cached_property
    def keys(self) -> ApiKeyService:
        from intdash.core.services.apikeys import ApiKeyService

        return ApiKeyService(self)

    @cached_property
    def leases(self) -> LeaseService:
        from intdash.core.services.leases import LeaseService

        return LeaseService(self)

    @cached_property
    def schedule(self) -> ScheduleService:
        from intdash.core.services.schedule import ScheduleService

        return ScheduleService(self)

    @cached_property
    def vault_ops(self) -> VaultService:
        from intdash.core.services.vaultops import VaultService

        return VaultService(self)
