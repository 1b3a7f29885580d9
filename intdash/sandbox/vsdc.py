"""An emulator of TaxCore's V-SDC, the tax authority's online signing service (Fiji's VMS,
Vanuatu's VSMS), as strict as the public record says the real one is (../shared/TAXCORE.md).

Served by :class:`~intdash.sandbox.vsdc_server.VsdcServer` over HTTPS with client certificates
required: the TLS handshake refuses a client without a certificate, with an expired one, or with
one another CA signed. The taxpayer is the one the client certificate was issued to.

``POST /api/v3/invoices`` signs one invoice. The ``PAC`` header must be the certificate's (else
401), ``Content-Type`` JSON (else 415), the body as :mod:`~intdash.sandbox.vsdc_invoice` checks it
(else 400 listing every problem). Errors have TaxCore's shape: ``{"Message": ...,
"MessageDetails": [{"Code", "Property", "Message"}]}``. The answer is TaxCore's invoice response:
``invoiceNumber`` ``{requestedBy}-{signedBy}-{totalCounter}``, counters per taxpayer that only
go up (``totalCounter``; ``transactionTypeCounter`` per kind of invoice, ``invoiceCounter``
``"N/M"`` with that kind's extension: ``NS``/``NR`` for a normal sale/refund, ``PS``, ``CS``,
``TS``, ``AS`` and their ``…R`` for pro forma, copy, training and advance), tax items from the
labels (prices include tax), a ``verificationUrl``, its QR code as a base64 PNG, the
``journal`` and an Ed25519 ``signature`` (see :mod:`~intdash.sandbox.vsdc_receipt`).

**Verification.** As TaxCore's verification site is public, the URL (``/v/?vl=TOKEN``) points at
``verification_base``, where the server runs :attr:`VsdcEmulator.verification_app` on a listener
of its own that asks for no client certificate (see :mod:`~intdash.sandbox.vsdc_verify`).

**RequestId.** Whether the real V-SDC de-duplicates on the ``RequestId`` header is unconfirmed;
this emulator does: the same ``RequestId`` from the same taxpayer with the same body answers the
response signed the first time (200, no second invoice, the counters unchanged), even while the
first call's answer is still held by a fault; with a different body it answers 409 naming
``RequestId``. A ``RequestId`` is at most 32 characters.

**Reconciling.** Two ways to learn what was signed after a time-out: ``GET /api/v3/status``
carries ``lastInvoiceNumber``, the taxpayer's latest (TaxCore's E-SDC has it; the V-SDC's is
unconfirmed), and ``GET /api/v3/invoices/requests/{RequestId}`` (this emulator's own; the real
service has no such call on record) answers the signed response for that ``RequestId``, or 404.

``GET /api/v3/status``, ``/api/v3/attention`` (200, empty) and
``/api/v3/environment-parameters`` need the certificate too; a ``PAC`` header, when sent, must
match. Control, over the same HTTPS: ``GET /_sandbox/vsdc`` (state), ``POST /_sandbox/vsdc/faults``
(``{"down": bool, "hold": N, "sign_then_hold": N, "release": true, "reject": {"status",
"code", "property", "message", "count"}, "clear": true}``), ``POST /_sandbox/vsdc/rates``
(``{"rates": {"A": 12.5, ...}, "categories"?: {"A": "VAT"}}``: a new group of tax rates),
``GET /_sandbox/vsdc/invoices`` (``?requestId=`` ``&taxpayer=``) and ``GET /_sandbox/vsdc/key``
(the signature's public key). The state (see :mod:`~intdash.sandbox.vsdc_state`) is behind one
lock: in memory, or also in the SQLite file ``state`` names, so that a restart resumes.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from intdash.sandbox.vsdc_control import control_routes
from intdash.sandbox.vsdc_faults import VsdcFaults
from intdash.sandbox.vsdc_invoice import InvoiceRequest, RequestError, detail, parse_request
from intdash.sandbox.vsdc_pki import Taxpayer, code
from intdash.sandbox.vsdc_rates import TaxRates, fiji_rates, rates_of, stamp
from intdash.sandbox.vsdc_receipt import Signer, journal, qr_png, tax_items
from intdash.sandbox.vsdc_state import Signed, VsdcState, VsdcStateError
from intdash.sandbox.vsdc_verify import verification_app

UNAVAILABLE = {"Message": "The service is unavailable.", "MessageDetails": []}
EXTENSIONS = "NPCTA"  # Normal, ProForma, Copy, Training, Advance; then S(ale) or R(efund)


class VsdcEmulator:
    def __init__(
        self,
        find_taxpayer: Callable[[bytes], Taxpayer | None],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        uid: str | None = None,
        state: Path | None = None,
    ) -> None:
        self.find_taxpayer = find_taxpayer
        self.clock = clock
        self.state = VsdcState(
            state,
            uid=lambda: uid or code(8),
            key=Ed25519PrivateKey.generate,
            rates=lambda: fiji_rates(1, clock()),
        )
        self.uid = self.state.uid  # signedBy
        self.signer = Signer(self.state.key)
        self.faults = VsdcFaults()
        self.peers: dict[tuple[str, int], bytes] = {}  # client address -> its certificate (DER)
        self.api_calls = 0
        self.lock = threading.Lock()
        self.verification_base: str | None = None  # the verification pages' https://host:port
        api = "/api/v3"
        self.app = Starlette(
            routes=[
                Route(f"{api}/invoices", self._invoice, methods=["POST"]),
                Route(f"{api}/invoices/requests/{{request_id}}", self._by_request_id),
                Route(f"{api}/status", self._status),
                Route(f"{api}/attention", self._attention),
                Route(f"{api}/environment-parameters", self._environment),
                *control_routes(self),
            ]
        )
        self.verification_app = verification_app(self)

    def close(self) -> None:
        """Close the state's file (the emulator answers nothing more)."""
        with self.lock:
            self.state.close()

    # -- tax rates ------------------------------------------------------------------------------

    @property
    def rates_history(self) -> list[TaxRates]:
        return self.state.rates_history

    @property
    def rates(self) -> TaxRates:
        return self.rates_history[-1]

    def set_rates(
        self,
        rates: Mapping[str, float | int | Decimal],
        categories: Mapping[str, str] | None = None,
    ) -> TaxRates:
        """New current tax rates (percent by label), taking effect now: ``groupId`` and the
        ``taxGroupRevision`` of later invoices go up by one."""
        with self.lock:
            group = rates_of(rates, self.rates.group_id + 1, self.clock(), categories)
            self.state.add_rates(group)
            return group

    # -- what was signed ------------------------------------------------------------------------

    @property
    def signed(self) -> list[Signed]:
        """Every invoice signed, in order (earlier runs' too when the state is on file)."""
        return self.state.signed

    def find(self, request_id: str, taxpayer: str | None = None) -> list[Signed]:
        """What was signed under ``request_id`` (for ``taxpayer``'s UID, or anyone's)."""
        with self.lock:
            return [
                s
                for s in self.signed
                if s.request_id == request_id and taxpayer in (None, s.taxpayer)
            ]

    def count(self, taxpayer: str | None = None) -> int:
        with self.lock:
            return sum(1 for s in self.signed if taxpayer in (None, s.taxpayer))

    def verify(self, response: dict[str, Any]) -> bool:
        """Whether ``response`` carries this SDC's signature over exactly its content."""
        return self.signer.verify(response)

    # -- helpers --------------------------------------------------------------------------------

    def _caller(self, request: Request) -> Taxpayer | None:
        client = request.scope.get("client")
        der = self.peers.get((client[0], client[1])) if client else None
        return self.find_taxpayer(der) if der else None

    def _authorise(self, request: Request, *, pac_required: bool) -> Taxpayer | RequestError:
        taxpayer = self._caller(request)
        if taxpayer is None:
            return RequestError(
                401,
                "Authorization has been denied for this request.",
                [detail("2110", "Certificate", "the client certificate is not a taxpayer's")],
            )
        pac = request.headers.get("PAC")
        if (pac is None and pac_required) or (pac is not None and pac != taxpayer.pac):
            said = "no PAC header" if pac is None else "the PAC is not this certificate's"
            return RequestError(
                401,
                "Authorization has been denied for this request.",
                [detail("2100", "PAC", said)],
            )
        return taxpayer

    @staticmethod
    def _error(error: RequestError) -> Response:
        return JSONResponse(error.body(), error.status)

    def _lookup(self, taxpayer: Taxpayer) -> Callable[[str], tuple[int, datetime] | None]:
        def lookup(number: str) -> tuple[int, datetime] | None:
            with self.lock:
                found = self.state.by_number.get(number)
            if found is None or found.taxpayer != taxpayer.uid:
                return None
            return found.transaction_type, found.moment

        return lookup

    # -- the API --------------------------------------------------------------------------------

    async def _invoice(self, request: Request) -> Response:
        self.api_calls += 1
        if self.faults.down:
            return JSONResponse(
                {"Message": "The service is unavailable.", "MessageDetails": []}, 503
            )
        who = self._authorise(request, pac_required=True)
        if isinstance(who, RequestError):
            return self._error(who)
        body = await request.body()  # before any wait: the wait listens for a disconnect
        if not await self.faults.before_signing(request.is_disconnected):
            return Response(status_code=499)
        if (rejection := self.faults.take_rejection()) is not None:
            return JSONResponse(rejection.body(), rejection.status)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return self._error(
                RequestError(
                    415,
                    f"The request entity's media type '{media}' is not supported.",
                    [detail("2806", "Content-Type", "send application/json")],
                )
            )
        request_id = request.headers.get("RequestId")
        if request_id is not None and not 0 < len(request_id) <= 32:
            return self._error(
                RequestError(
                    400,
                    "The request is invalid.",
                    [detail("2801", "RequestId", "RequestId is 1 to 32 characters")],
                )
            )
        digest = hashlib.sha256(body).hexdigest()
        rates = self.rates
        try:
            invoice = parse_request(body, rates, self._lookup(who))
        except RequestError as exc:
            return self._error(exc)
        base = self.verification_base or str(request.base_url)
        try:
            signed, first = self._sign(who, invoice, rates, request_id, digest, base)
        except VsdcStateError as exc:
            return JSONResponse(
                {"Message": f"An error has occurred: {exc}", "MessageDetails": []}, 500
            )
        if signed.digest != digest:
            return self._error(
                RequestError(
                    409,
                    "The request conflicts with an earlier one.",
                    [
                        detail(
                            "2805",
                            "RequestId",
                            f"RequestId {request_id} was used for another invoice",
                        )
                    ],
                )
            )
        if first and not await self.faults.after_signing(request.is_disconnected):
            return Response(status_code=499)  # nobody is listening any more
        return JSONResponse(signed.response)

    def _sign(
        self,
        taxpayer: Taxpayer,
        invoice: InvoiceRequest,
        rates: TaxRates,
        request_id: str | None,
        digest: str,
        base: str,
    ) -> tuple[Signed, bool]:
        """The invoice signed now, or what was signed before under the same RequestId."""
        with self.lock:
            if request_id is not None and (taxpayer.uid, request_id) in self.state.by_request:
                return self.state.by_request[(taxpayer.uid, request_id)], False
            moment = self.clock()
            extension = EXTENSIONS[invoice.invoice_type] + "SR"[invoice.transaction_type]
            total, kind = self.state.next_counters(taxpayer.uid, extension)
            token = secrets.token_urlsafe(24)
            url = f"{base.rstrip('/')}/v/?vl={token}"
            response: dict[str, Any] = {
                "requestedBy": taxpayer.uid,
                "signedBy": self.uid,
                "sdcDateTime": stamp(moment),
                "invoiceCounter": f"{kind}/{total}{extension}",
                "invoiceCounterExtension": extension,
                "invoiceNumber": f"{taxpayer.uid}-{self.uid}-{total}",
                "totalCounter": total,
                "transactionTypeCounter": kind,
                "totalAmount": float(invoice.total),
                "taxGroupRevision": rates.group_id,
                "taxItems": tax_items(invoice.items, rates),
                "verificationUrl": url,
                "verificationQRCode": None if invoice.omit_qr else qr_png(url),
                "journal": None,
                "encryptedInternalData": secrets.token_urlsafe(48),
                "messages": "Success",
                "businessName": taxpayer.name,
                "tin": taxpayer.tin,
                "locationName": taxpayer.name,
                "address": "1 Victoria Parade",
                "district": "Suva",
                "mrc": f"00-0000-{self.uid}",
            }
            if not invoice.omit_journal:
                response["journal"] = journal(
                    response,
                    items=invoice.items,
                    payments=invoice.payments,
                    invoice_type=invoice.invoice_type,
                    transaction_type=invoice.transaction_type,
                    cashier=invoice.cashier,
                    buyer_id=invoice.buyer_id,
                    referent=invoice.referent_number,
                )
            response["signature"] = self.signer.sign(response)
            signed = Signed(
                taxpayer.uid,
                request_id,
                digest,
                invoice.invoice_type,
                invoice.transaction_type,
                moment,
                token,
                response,
            )
            self.state.record(signed)  # on file first, when there is one
            return signed, True

    async def _by_request_id(self, request: Request) -> Response:
        who = self._authorise(request, pac_required=True)
        if isinstance(who, RequestError):
            return self._error(who)
        request_id = request.path_params["request_id"]
        with self.lock:
            found = self.state.by_request.get((who.uid, request_id))
        if found is None:
            return self._error(
                RequestError(
                    404,
                    "No invoice was signed for that RequestId.",
                    [detail("2805", "RequestId", f"nothing signed under {request_id}")],
                )
            )
        return JSONResponse(found.response)

    async def _status(self, request: Request) -> Response:
        if self.faults.down:
            return JSONResponse(
                {"Message": "The service is unavailable.", "MessageDetails": []}, 503
            )
        who = self._authorise(request, pac_required=False)
        if isinstance(who, RequestError):
            return self._error(who)
        with self.lock:
            last = next((s.number for s in reversed(self.signed) if s.taxpayer == who.uid), None)
            history = [group.json() for group in self.rates_history]
            current = self.rates.json()
        return JSONResponse(
            {
                "sdcDateTime": stamp(self.clock()),
                "uid": self.uid,
                "gsc": ["0000"],
                "mssc": [],
                "lastInvoiceNumber": last,
                "protocolVersion": "3.0",
                "supportedLanguages": ["en-US"],
                "allTaxRates": history,
                "currentTaxRates": current,
            }
        )

    async def _attention(self, request: Request) -> Response:
        if self.faults.down:
            return JSONResponse(
                {"Message": "The service is unavailable.", "MessageDetails": []}, 503
            )
        who = self._authorise(request, pac_required=False)
        return self._error(who) if isinstance(who, RequestError) else Response(status_code=200)

    async def _environment(self, request: Request) -> Response:
        who = self._authorise(request, pac_required=False)
        if isinstance(who, RequestError):
            return self._error(who)
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "organizationName": "Fiji Revenue and Customs Service (sandbox emulator)",
                "serverTimeZone": "Pacific/Fiji",
                "street": "Revenue House, Victoria Parade",
                "city": "Suva",
                "country": "FJ",
                "endpoints": {"taxCoreApi": base, "vsdc": base, "root": base},
                "environmentName": "Sandbox",
                "ntpServer": "pool.ntp.org",
                "supportedLanguages": ["en-US"],
            }
        )
