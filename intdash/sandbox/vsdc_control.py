"""The V-SDC emulator's control routes, over the same HTTPS as its API (any certificate of its
CA): ``GET /_sandbox/vsdc`` (state), ``POST /_sandbox/vsdc/faults``, ``POST
/_sandbox/vsdc/rates``, ``GET /_sandbox/vsdc/invoices`` and ``GET /_sandbox/vsdc/key`` (see
:mod:`intdash.sandbox.vsdc`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from intdash.sandbox.vsdc_invoice import REFUND

if TYPE_CHECKING:
    from intdash.sandbox.vsdc import VsdcEmulator


def control_routes(emulator: VsdcEmulator) -> list[Route]:
    """The routes that drive ``emulator``."""

    async def _state(_request: Request) -> Response:
        with emulator.lock:
            signed = len(emulator.signed)
        return JSONResponse(
            {
                "uid": emulator.uid,
                "signed": signed,
                "verification": emulator.verification_base,
                "api_calls": emulator.api_calls,
                "groupId": emulator.rates.group_id,
                "faults": emulator.faults.status(),
            }
        )

    async def _faults(request: Request) -> Response:
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        known = {"down", "hold", "sign_then_hold", "release", "reject", "clear"}
        if not isinstance(body, dict) or set(body) - known:
            return JSONResponse({"error": f"give a JSON object of {sorted(known)}"}, 400)
        try:
            if body.get("clear"):
                emulator.faults.clear()
            if "down" in body:
                emulator.faults.down = bool(body["down"])
            if "hold" in body:
                emulator.faults.hold(int(body["hold"]))
            if "sign_then_hold" in body:
                emulator.faults.sign_then_hold(int(body["sign_then_hold"]))
            if body.get("release"):
                emulator.faults.release()
            if "reject" in body:
                reject = dict(body["reject"])
                emulator.faults.reject(
                    int(reject.get("status", 400)),
                    code=str(reject.get("code", "2805")),
                    property=str(reject.get("property", "Items")),
                    message=str(reject.get("message", "refused by the sandbox's fault")),
                    count=int(reject.get("count", 1)),
                )
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": f"cannot set that fault: {exc}"}, 400)
        return JSONResponse(emulator.faults.status())

    async def _rates(request: Request) -> Response:
        try:
            body: Any = await request.json()
            group = emulator.set_rates(body["rates"], body.get("categories"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return JSONResponse({"error": f'give {{"rates": {{"A": 15, ...}}}}: {exc}'}, 400)
        return JSONResponse(group.json())

    async def _invoices(request: Request) -> Response:
        request_id = request.query_params.get("requestId")
        taxpayer = request.query_params.get("taxpayer")
        with emulator.lock:
            rows = [
                {
                    "invoiceNumber": s.number,
                    "requestId": s.request_id,
                    "requestedBy": s.taxpayer,
                    "sdcDateTime": s.response["sdcDateTime"],
                    "totalAmount": s.response["totalAmount"],
                    "invoiceCounter": s.response["invoiceCounter"],
                    "transactionType": "Refund" if s.transaction_type == REFUND else "Sale",
                }
                for s in emulator.signed
                if request_id in (None, s.request_id) and taxpayer in (None, s.taxpayer)
            ]
        return JSONResponse({"invoices": rows})

    async def _key(_request: Request) -> Response:
        return JSONResponse({"algorithm": "Ed25519", "publicKey": emulator.signer.public_key})

    return [
        Route("/_sandbox/vsdc", _state),
        Route("/_sandbox/vsdc/faults", _faults, methods=["POST"]),
        Route("/_sandbox/vsdc/rates", _rates, methods=["POST"]),
        Route("/_sandbox/vsdc/invoices", _invoices),
        Route("/_sandbox/vsdc/key", _key),
    ]
