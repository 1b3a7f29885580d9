"""Sending the fiscal outbox to TaxCore's V-SDC, outside any database transaction.

Each round claims what is due (:meth:`FiscalService.claim`: rows left ``sent`` first, to be
reconciled by sending the same request under the same ``RequestId``; else the first unsigned row
of each invoice), calls the SDC a few at a time, and records each answer. The SDC being
unavailable ends the round (the rows wait with backoff, and the integration says why); a
refusal waits for the operator. The tax labels are read from the SDC's status before the first
request is built, and again when a response's ``taxGroupRevision`` shows they changed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from intdash.core.errors import IntdashError
from intdash.core.services.fiscal_outbox import ToSign
from intdash.core.services.fiscal_setup import CertificateInfo, TaxpayerSecrets
from intdash.providers.vsdc import (
    CertificateError,
    Credentials,
    CredentialsRefused,
    SdcRefused,
    SdcUnavailable,
    VsdcClient,
    certificate_of,
    shared_vsdc,
)
from intdash.sync.rounds import drain as rounds_drain

if TYPE_CHECKING:
    from intdash.core.workspace import Workspace

log = logging.getLogger("intdash.fiscalize")
BATCH = 50
CONCURRENCY = 4  # requests in flight at once


class NotConfigured(IntdashError):
    """The V-SDC is chosen but the taxpayer's certificate and PAC are not stored yet."""


class FiscalSender:
    def __init__(self, workspace: Workspace, client: VsdcClient | None = None) -> None:
        self._ws = workspace
        self._client = client
        self._lock = asyncio.Lock()
        self.last_problem: str | None = None  # why the last round stopped, if it did

    @property
    def enabled(self) -> bool:
        return self._ws.settings.fiscal.register == "vsdc"

    async def client(self) -> VsdcClient:
        if self._client is not None:
            return self._client
        ws = self._ws
        secrets = await asyncio.to_thread(ws.fiscal.setup.secrets)
        if secrets is None:
            raise NotConfigured(
                "the taxpayer's certificate and PAC are not set: run intdash fiscal configure"
            )
        settings = ws.settings.fiscal
        try:
            return shared_vsdc(
                settings.vsdc_url,
                Credentials(secrets.pfx, secrets.password, secrets.pac),
                ca_file=settings.vsdc_ca,
                timeout=settings.timeout,
            )
        except CertificateError as exc:
            raise NotConfigured(f"the stored certificate cannot be used: {exc}") from None

    async def refresh_labels(self, client: VsdcClient | None = None) -> dict[str, object]:
        """Read the SDC's status (its current tax labels) and keep it."""
        client = client or await self.client()
        status = await client.status()
        await asyncio.to_thread(self._ws.fiscal.store_status, status)
        return status

    async def run_once(self, limit: int = BATCH) -> int:
        """One round: returns how many requests got an answer (signed or refused); 0 when
        nothing was due or the SDC could not be reached."""
        if not self.enabled:
            return 0
        async with self._lock:  # one round at a time in this process
            return await self._round(limit)

    async def _round(self, limit: int) -> int:
        ws = self._ws
        certificate = await asyncio.to_thread(ws.fiscal.setup.certificate)
        if certificate is not None and certificate.not_after <= ws.clock():
            # the SDC's handshake refuses it: nothing is sent, and the operator is told why
            self.last_problem = str(certificate.warning(ws.clock()))
            await asyncio.to_thread(
                ws.fiscal.setup.unreachable,
                f"{self.last_problem}: run intdash fiscal configure with its renewal",
                ws.clock(),
            )
            return 0
        try:
            client = await self.client()
        except NotConfigured as exc:  # said by intdash fiscal status; nothing is lost meanwhile
            if self.last_problem != str(exc):
                log.warning("the fiscal outbox waits: %s", exc)
            self.last_problem = str(exc)
            return 0
        if await asyncio.to_thread(ws.fiscal.setup.status) is None:
            try:
                await self.refresh_labels(client)
            except SdcUnavailable as exc:
                await asyncio.to_thread(ws.fiscal.setup.unreachable, str(exc), ws.clock())
                self.last_problem = str(exc)
                return 0
        claimed = await asyncio.to_thread(ws.fiscal.claim, limit)
        if not claimed:
            return 0
        at_once = asyncio.Semaphore(CONCURRENCY)
        outcomes: list[bool | None] = []
        stale = False

        async def send(item: ToSign) -> None:
            nonlocal stale
            async with at_once:
                try:
                    response = await client.sign(item.request, item.request_id)
                except CredentialsRefused as exc:  # not this invoice's fault: all of them wait
                    log.warning("outbox row %d waits: %s", item.id, exc)
                    await asyncio.to_thread(
                        ws.fiscal.unavailable, item, str(exc), after_sending=False
                    )
                    self.last_problem = str(exc)
                    outcomes.append(None)
                    return
                except SdcRefused as exc:
                    log.warning("the SDC refused outbox row %d: %s", item.id, exc)
                    await asyncio.to_thread(ws.fiscal.refused, item, str(exc))
                    outcomes.append(True)
                    return
                except SdcUnavailable as exc:
                    log.info("outbox row %d waits: %s", item.id, exc)
                    await asyncio.to_thread(
                        ws.fiscal.unavailable, item, str(exc), after_sending=exc.after_sending
                    )
                    self.last_problem = str(exc)
                    outcomes.append(None)
                    return
                changed = await asyncio.to_thread(ws.fiscal.signed, item, response)
                stale = stale or changed
                outcomes.append(True)

        await asyncio.gather(*(send(item) for item in claimed))
        if stale:
            try:
                await self.refresh_labels(client)
            except SdcUnavailable as exc:
                log.info("reading the SDC's new tax labels failed: %s", exc)
        if None in outcomes:
            return 0  # the SDC is unavailable: the round ends, the rows wait their backoff
        self.last_problem = None
        return len(outcomes)

    async def drain(self, rounds: int = 1000) -> int:
        """Send what is due until nothing is, the SDC is unavailable, or ``rounds`` rounds."""
        return await rounds_drain(self.run_once, rounds)


@dataclass(frozen=True)
class Configured:
    certificate: CertificateInfo
    warning: str | None  # the certificate expires soon, or the SDC could not be asked


async def configure(ws: Workspace, pfx: bytes, password: str, pac: str) -> Configured:
    """Check and keep the taxpayer's secrets: the password must open the .pfx, its certificate
    must not have expired, and (the V-SDC's URL being set) the SDC must take them; an SDC that
    cannot be reached is said, and the secrets kept. :class:`CertificateError` or
    :class:`CredentialsRefused` in words otherwise; nothing is kept then."""
    pac = pac.strip()
    if not pac:
        raise CertificateError("the PAC is empty")
    found = certificate_of(pfx, password)
    certificate = CertificateInfo(found.subject, found.not_after, found.fingerprint)
    now = ws.clock()
    if certificate.not_after <= now:
        raise CertificateError(
            f"the certificate ({certificate.subject}) expired on "
            f"{certificate.not_after:%Y-%m-%d}: the SDC refuses it; use its renewal"
        )
    warning = certificate.warning(now)
    settings = ws.settings.fiscal
    status = None
    if settings.vsdc_url:
        client = VsdcClient(
            settings.vsdc_url,
            Credentials(pfx, password, pac),
            ca_file=settings.vsdc_ca,
            timeout=min(settings.timeout, 15.0),
        )
        try:
            status = await client.status()
        except SdcRefused as exc:
            raise CredentialsRefused(exc.status, str(exc)) from None
        except SdcUnavailable as exc:
            warning = f"{exc}: the certificate and PAC are kept, untried"
        finally:
            await client.aclose()
    secrets = TaxpayerSecrets(pfx, password, pac)
    await asyncio.to_thread(ws.fiscal.setup.store_secrets, secrets, certificate)
    if status is not None:
        await asyncio.to_thread(ws.fiscal.store_status, status)
    return Configured(certificate, warning)
