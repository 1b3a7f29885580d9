"""All three emulators on one loopback port, with control endpoints for tests and the demo.

``/xero``, ``/myob`` and ``/zoho`` hold the platforms; ``/_sandbox/...`` changes their state:
``POST /_sandbox/{platform}/touch?count=N`` edits N invoices, ``POST /_sandbox/{platform}/faults``
(a JSON object of :class:`~intdash.sandbox.common.Faults` fields) switches faults on,
``POST /_sandbox/{platform}/revoke`` revokes every token, ``POST /_sandbox/{platform}/consent``
with ``?deny=1`` makes consent fail (for Xero, ``?tenants=id,id`` picks the organisations the next
consents tick), ``POST /_sandbox/{platform}/limits`` replaces a rate window,
``POST /_sandbox/{platform}/redirect_uris`` (``{"uris": [...]}``) registers redirect URIs for the
platform's client, ``POST /_sandbox/xero/tenants`` (``{"name": ...}``) adds an organisation,
``POST /_sandbox/receiver`` takes webhook deliveries (204 when signed), and
``GET /_sandbox/stats`` reports call counts.

Xero's webhook: ``POST /_sandbox/xero/webhook`` with ``{"url": ..., "key"?: ...}`` makes the Xero
emulator post signed events of every invoice change to that URL (with the key given, or one it
makes, as Xero makes one; the answer shows it), ``DELETE`` stops it, ``GET`` reports its posts,
and ``POST /_sandbox/xero/webhook/intent`` runs Xero's "intent to receive" check against the URL
(an empty delivery signed right and one signed wrong, which should be answered 200 and 401).

The emulators match redirect URIs exactly, as the platforms do, against the URIs registered for
their clients: intdash's default (``http://localhost:8471/callback``), any given at construction,
any registered since, and the one :meth:`Sandbox.settings` hands out.

With ``vsdc=True`` the sandbox also starts TaxCore's V-SDC emulator
(:class:`~intdash.sandbox.vsdc_server.VsdcServer`) beside them, on a port of its own over mutual
TLS (``vsdc_port``, 0 for any free one; ``vsdc_directory`` keeps its CA and taxpayer between
runs); :meth:`Sandbox.settings` then names it too.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from intdash.sandbox.common import RateWindow
from intdash.sandbox.myob import MyobEmulator
from intdash.sandbox.vsdc_server import VsdcServer
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
        redirect_uris: Iterable[str] = (),
        vsdc: bool = False,
        vsdc_port: int = 0,
        vsdc_directory: Path | None = None,
    ) -> None:
        self.xero = xero or XeroEmulator(size=size)
        self.myob = myob or MyobEmulator(size=size)
        self.zoho = zoho or ZohoEmulator(size=size)
        for uri in redirect_uris:
            self.register_redirect_uri(uri)
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.vsdc = (
            VsdcServer(host=host, port=vsdc_port, directory=vsdc_directory) if vsdc else None
        )
        self.app = Starlette(
            routes=[
                Mount("/xero", app=self.xero.app),
                Mount("/myob", app=self.myob.app),
                Mount("/zoho", app=self.zoho.app),
                Route("/_sandbox/stats", self._stats),
                Route("/_sandbox/{platform}/touch", self._touch, methods=["POST"]),
                Route("/_sandbox/{platform}/faults", self._faults, methods=["POST"]),
                Route("/_sandbox/{platform}/hold", self._hold, methods=["POST"]),
                Route("/_sandbox/{platform}/release", self._release, methods=["POST"]),
                Route("/_sandbox/{platform}/revoke", self._revoke, methods=["POST"]),
                Route("/_sandbox/{platform}/consent", self._consent, methods=["POST"]),
                Route("/_sandbox/{platform}/limits", self._limits, methods=["POST"]),
                Route("/_sandbox/{platform}/redirect_uris", self._redirect_uris, methods=["POST"]),
                Route("/_sandbox/xero/tenants", self._xero_tenants, methods=["POST"]),
                Route(
                    "/_sandbox/xero/webhook",
                    self._xero_webhook,
                    methods=["GET", "POST", "DELETE"],
                ),
                Route("/_sandbox/xero/webhook/intent", self._xero_intent, methods=["POST"]),
                Route("/_sandbox/receiver", self._receive, methods=["POST"]),
                Route("/_sandbox/{platform}/{change:str}", self._change, methods=["POST"]),
            ]
        )
        self.received = 0  # webhook deliveries taken by /_sandbox/receiver

    @property
    def emulators(self) -> dict[str, Emulator]:
        return {"xero": self.xero, "myob": self.myob, "zoho": self.zoho}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def register_redirect_uri(self, uri: str) -> None:
        """Register a redirect URI with every platform's client."""
        for emulator in self.emulators.values():
            emulator.oauth.register_redirect_uri(uri)

    def settings(self, redirect_uri: str | None = None) -> dict[str, str]:
        """The ``INTDASH_`` settings that point intdash at this sandbox; the redirect URI they
        name is registered with every platform's client, as an operator registers it in each
        platform's developer portal."""
        if redirect_uri:
            self.register_redirect_uri(redirect_uri)
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
        if self.vsdc is not None:
            values |= self.vsdc.settings()
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
        self.xero.api_base = f"{self.url}/xero/api"  # where its webhook's events point
        if self.vsdc is not None:
            self.vsdc.start()
        return self

    def stop(self) -> None:
        if self.vsdc is not None:
            self.vsdc.stop()
        self.xero.webhook.close()
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
        platforms["xero"]["webhook"] = {
            k: v for k, v in self.xero.webhook.status().items() if k != "posts"
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

    async def _hold(self, request: Request) -> Response:
        """``?after=N``: N more API calls go through, then every call waits for ``release``."""
        emulator = self._emulator(request)
        if emulator is None:
            return JSONResponse({"error": "no such platform"}, 404)
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            return JSONResponse({"error": "after must be a number"}, 400)
        emulator.faults.hold(after)
        return JSONResponse({"hold_after": after})

    async def _release(self, request: Request) -> Response:
        emulator = self._emulator(request)
        if emulator is None:
            return JSONResponse({"error": "no such platform"}, 404)
        emulator.faults.release()
        return JSONResponse({"released": True})

    async def _change(self, request: Request) -> Response:
        """``create``, ``delete`` or ``void`` ``?count=N`` invoices (spread over the data, as
        ``touch`` edits); Xero deletes nothing outright, so there ``delete`` voids."""
        emulator = self._emulator(request)
        change = request.path_params["change"]
        if emulator is None or change not in ("create", "delete", "void"):
            return JSONResponse({"error": "no such platform or change"}, 404)
        try:
            count = int(request.query_params.get("count", "1"))
        except ValueError:
            return JSONResponse({"error": "count must be a number"}, 400)
        if not 0 <= count <= 100_000:
            return JSONResponse({"error": "count must be between 0 and 100000"}, 400)
        data = emulator.dataset
        if change == "create":
            return JSONResponse({"created": len(data.create(count))})
        live = [i for i in range(data.size) if data.exists(i)]
        stride = max(1, len(live) // max(count, 1))
        picked = live[stride // 2 :: stride][:count]
        if change == "void" or emulator is self.xero:
            return JSONResponse({"voided": len(data.void(picked))})
        return JSONResponse({"deleted": len(data.delete(picked))})

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
        tenants = request.query_params.get("tenants")
        if tenants is not None:
            if not isinstance(emulator, XeroEmulator):
                return JSONResponse({"error": "only Xero has organisations to pick"}, 400)
            picks = [t.strip().lower() for t in tenants.split(",") if t.strip()]
            unknown = [t for t in picks if t not in emulator.organisations]
            if unknown:
                return JSONResponse({"error": f"no organisations {unknown}"}, 400)
            emulator.consent_picks = picks or None
        emulator.oauth.deny_consent = request.query_params.get("deny") == "1"
        return JSONResponse(
            {"deny": emulator.oauth.deny_consent}
            | ({"tenants": emulator.consent_picks} if isinstance(emulator, XeroEmulator) else {})
        )

    async def _redirect_uris(self, request: Request) -> Response:
        emulator = self._emulator(request)
        if emulator is None:
            return JSONResponse({"error": "no such platform"}, 404)
        body: dict[str, Any] = await request.json()
        uris = body.get("uris")
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            return JSONResponse({"error": 'give {"uris": ["https://...", ...]}'}, 400)
        try:
            for uri in uris:
                emulator.oauth.register_redirect_uri(uri)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse({"redirect_uris": sorted(emulator.oauth.redirect_uris)})

    async def _xero_tenants(self, request: Request) -> Response:
        """Another organisation the Xero user can pick at consent: {"name": "...", "id"?: guid,
        "size"?: invoices}."""
        body: dict[str, Any] = await request.json()
        try:
            added = self.xero.add_organisation(
                str(body["name"]),
                str(body["id"]) if body.get("id") else None,
                int(body["size"]) if body.get("size") is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"cannot add that organisation: {exc}"}, 400)
        return JSONResponse(
            {"tenantId": added.tenant_id, "tenantName": added.name, "id": added.connection_id}
        )

    async def _xero_webhook(self, request: Request) -> Response:
        """GET: the webhook and its latest posts; POST ``{"url": ..., "key"?: ...}``: post
        events there (the answer shows the key); DELETE: post nothing."""
        webhook = self.xero.webhook
        if request.method == "DELETE":
            webhook.clear()
        elif request.method == "POST":
            try:
                body: Any = await request.json()
            except ValueError:
                body = None
            url = body.get("url") if isinstance(body, dict) else None
            key = body.get("key") if isinstance(body, dict) else None
            if not isinstance(url, str) or not (key is None or (isinstance(key, str) and key)):
                return JSONResponse({"error": 'give {"url": "https://...", "key"?: "..."}'}, 400)
            try:
                key = webhook.configure(url, key)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, 400)
            return JSONResponse({"url": url, "key": key})
        return JSONResponse(webhook.status())

    async def _xero_intent(self, _request: Request) -> Response:
        """Xero's intent to receive: the statuses an empty delivery signed right and one signed
        wrong were answered with (200 and 401 for a webhook Xero accepts)."""
        result = await asyncio.to_thread(self.xero.webhook.intent)
        return JSONResponse(result, 200 if "right" in result else 409)
