"""All three emulators on one loopback port, with control endpoints for tests and the demo.

``/xero``, ``/myob`` and ``/zoho`` hold the platforms; ``/_sandbox/...`` changes their state:
``POST /_sandbox/{platform}/touch?count=N`` edits N invoices, ``POST /_sandbox/{platform}/faults``
(a JSON object of :class:`~intdash.sandbox.common.Faults` fields) switches faults on,
``POST /_sandbox/{platform}/revoke`` revokes every token, ``POST /_sandbox/{platform}/consent``
with ``?deny=1`` makes consent fail, ``POST /_sandbox/{platform}/limits`` replaces a rate window,
``POST /_sandbox/receiver`` takes webhook deliveries (204 when signed), and
``GET /_sandbox/stats`` reports call counts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import fields
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from intdash.sandbox.common import RateWindow
from intdash.sandbox.myob import MyobEmulator
from intdash.sandbox.xero import XeroEmulator
from intdash.sandbox.zoho import ZohoEmulator

Emulator = XeroEmulator | MyobEmulator | ZohoEmulator


class Sandbox:
    def __init__(
        self,
        *,
        size: int = 2500,
        host: str = "127.0.0.1",
        port: int = 0,
        xero: XeroEmulator | None = None,
        myob: MyobEmulator | None = None,
        zoho: ZohoEmulator | None = None,
    ) -> None:
        self.xero = xero or XeroEmulator(size=size)
        self.myob = myob or MyobEmulator(size=size)
        self.zoho = zoho or ZohoEmulator(size=size)
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[
                Mount("/xero", app=self.xero.app),
                Mount("/myob", app=self.myob.app),
                Mount("/zoho", app=self.zoho.app),
                Route("/_sandbox/stats", self._stats),
                Route("/_sandbox/{platform}/touch", self._touch, methods=["POST"]),
                Route("/_sandbox/{platform}/faults", self._faults, methods=["POST"]),
                Route("/_sandbox/{platform}/revoke", self._revoke, methods=["POST"]),
                Route("/_sandbox/{platform}/consent", self._consent, methods=["POST"]),
                Route("/_sandbox/{platform}/limits", self._limits, methods=["POST"]),
                Route("/_sandbox/receiver", self._receive, methods=["POST"]),
            ]
        )
        self.received = 0  # webhook deliveries taken by /_sandbox/receiver

    @property
    def emulators(self) -> dict[str, Emulator]:
        return {"xero": self.xero, "myob": self.myob, "zoho": self.zoho}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def settings(self, redirect_uri: str | None = None) -> dict[str, str]:
        """The ``INTDASH_`` settings that point intdash at this sandbox."""
        base = self.url
        values = {
            "INTDASH_XERO__CLIENT_ID": self.xero.oauth.policy.client_id,
            "INTDASH_XERO__CLIENT_SECRET": self.xero.oauth.policy.client_secret,
            "INTDASH_XERO__AUTHORIZE_URL": f"{base}/xero/identity/connect/authorize",
            "INTDASH_XERO__TOKEN_URL": f"{base}/xero/identity/connect/token",
            "INTDASH_XERO__API_URL": f"{base}/xero/api",
            "INTDASH_MYOB__CLIENT_ID": self.myob.oauth.policy.client_id,
            "INTDASH_MYOB__CLIENT_SECRET": self.myob.oauth.policy.client_secret,
            "INTDASH_MYOB__AUTHORIZE_URL": f"{base}/myob/oauth2/account/authorize",
            "INTDASH_MYOB__TOKEN_URL": f"{base}/myob/oauth2/v1/authorize",
            "INTDASH_MYOB__API_URL": f"{base}/myob/api",
            "INTDASH_ZOHO__CLIENT_ID": self.zoho.oauth.policy.client_id,
            "INTDASH_ZOHO__CLIENT_SECRET": self.zoho.oauth.policy.client_secret,
            "INTDASH_ZOHO__ACCOUNTS_URL": f"{base}/zoho/accounts",
            "INTDASH_ZOHO__API_URL": f"{base}/zoho/api",
        }
        if redirect_uri:
            for platform in ("XERO", "MYOB", "ZOHO"):
                values[f"INTDASH_{platform}__REDIRECT_URI"] = redirect_uri
        return values

    # -- running -----------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Serve in a background thread; returns once it accepts connections."""
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox could not listen on {self.host}:{self.port}")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- control -----------------------------------------------------------------------------

    def _emulator(self, request: Request) -> Emulator | None:
        return self.emulators.get(request.path_params["platform"])

    async def _receive(self, request: Request) -> Response:
        """A webhook receiver, for a Custom/Webhook integration to deliver to."""
        await request.body()
        if "webhook-signature" not in request.headers:
            return JSONResponse({"error": "unsigned"}, 400)
        self.received += 1
        return Response(status_code=204)

    async def _stats(self, _request: Request) -> Response:
        platforms: dict[str, Any] = {
            name: {
                "invoices": emulator.dataset.size,
                "touched": emulator.dataset.touched_count,
                "api_calls": emulator.api_calls,
                "rate_limited": emulator.rate_limited,
                "token_calls": emulator.oauth.token_calls,
                "refresh_calls": emulator.oauth.refresh_calls,
            }
            for name, emulator in self.emulators.items()
        }
        return JSONResponse({**platforms, "receiver": {"received": self.received}})

    async def _touch(self, request: Request) -> Response:
        emulator = self._emulator(request)
        if emulator is None:
            return JSONResponse({"error": "no such platform"}, 404)
        try:
            count = int(request.query_params.get("count", "1"))
        except ValueError:
            return JSONResponse({"error": "count must be a number"}, 400)
        return JSONResponse({"touched": len(emulator.dataset.touch_spread(count))})

    async def _faults(self, request: Request) -> Response:
        emulator = self._emulator(request)
        if emulator is None:
            return JSONResponse({"error": "no such platform"}, 404)
        body: dict[str, Any] = await request.json()
        known = {f.name for f in fields(emulator.faults)}
        unknown = sorted(set(body) - known)
        if unknown:
            return JSONResponse({"error": f"unknown faults {unknown}; known: {sorted(known)}"}, 400)
        for name, value in body.items():
            setattr(emulator.faults, name, type(getattr(emulator.faults, name))(value))
        return JSONResponse(
            {f.name: getattr(emulator.faults, f.name) for f in fields(emulator.faults)}
        )

    async def _revoke(self, request: Request) -> Response:
        emulator = self._emulator(request)
        if emulator is None:
            return JSONResponse({"error": "no such platform"}, 404)
        emulator.oauth.revoke_all()
        return JSONResponse({"revoked": True})

    async def _limits(self, request: Request) -> Response:
        """Replace one of an emulator's rate windows: {"window": "minute", "limit": 20,
        "seconds": 1.0} (Xero: minute, day; MYOB: second; Zoho: minute)."""
        emulator = self._emulator(request)
        if emulator is None:
            return JSONResponse({"error": "no such platform"}, 404)
        body: dict[str, Any] = await request.json()
        name = str(body.get("window", ""))
        if not isinstance(getattr(emulator, name, None), RateWindow):
            return JSONResponse(
                {"error": f"{request.path_params['platform']} has no window {name!r}"}, 400
            )
        try:
            setattr(emulator, name, RateWindow(int(body["limit"]), float(body["seconds"])))
        except (KeyError, TypeError, ValueError):
            return JSONResponse({"error": "give limit (a number) and seconds (a number)"}, 400)
        return JSONResponse(
            {"window": name, "limit": int(body["limit"]), "seconds": float(body["seconds"])}
        )

    async def _consent(self, request: Request) -> Response:
        emulator = self._emulator(request)
        if emulator is None:
            return JSONResponse({"error": "no such platform"}, 404)
        emulator.oauth.deny_consent = request.query_params.get("deny") == "1"
        return JSONResponse({"deny": emulator.oauth.deny_consent})
