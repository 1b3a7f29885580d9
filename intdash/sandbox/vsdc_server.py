"""The V-SDC emulator served over mutual TLS on loopback, as a handle tests and the sandbox start.

``VsdcServer(directory=None, port=0).start()`` makes a CA and a taxpayer (or loads them from
``directory``), and serves :class:`~intdash.sandbox.vsdc.VsdcEmulator` with uvicorn over HTTPS
on ``127.0.0.1``, client certificates required (``ssl.CERT_REQUIRED``, the CA as
``ssl_ca_certs``). :meth:`VsdcServer.refuse` stops listening (connections are refused, state
is kept) until :meth:`VsdcServer.accept`; ``faults`` switches the rest (see
:mod:`~intdash.sandbox.vsdc_faults`).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from intdash.sandbox.vsdc import VsdcEmulator
from intdash.sandbox.vsdc_faults import VsdcFaults
from intdash.sandbox.vsdc_pki import Taxpayer, VsdcPki, client_context


def _peer_protocol(peers: dict[tuple[str, int], bytes]) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol, noting each connection's client certificate by address
    (ASGI's scope has no place for it; the emulator looks it up by ``scope["client"]``)."""

    class PeerProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            if der and self.client:
                peers[self.client] = der

        def connection_lost(self, exc: Exception | None) -> None:
            if self.client:
                peers.pop(self.client, None)
            super().connection_lost(exc)

    return PeerProtocol


class VsdcServer:
    """A V-SDC on ``https://127.0.0.1:PORT`` and the taxpayer credentials to call it with."""

    def __init__(
        self,
        *,
        directory: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        pki: VsdcPki | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.pki = pki or VsdcPki(directory)
        self._own_pki = pki is None
        self.taxpayer: Taxpayer = (
            self.pki.default_taxpayer() if directory is not None else self.pki.taxpayer()
        )
        self.emulator = (
            VsdcEmulator(self.pki.find)
            if clock is None
            else VsdcEmulator(self.pki.find, clock=clock)
        )
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- what a client needs ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca_path(self) -> Path:
        return self.pki.ca_path

    @property
    def pfx_path(self) -> Path:
        return self.pki.pfx_path(self.taxpayer)

    @property
    def pfx(self) -> bytes:
        return self.taxpayer.pfx

    @property
    def password(self) -> str:
        return self.taxpayer.password

    @property
    def pac(self) -> str:
        return self.taxpayer.pac

    @property
    def faults(self) -> VsdcFaults:
        return self.emulator.faults

    def settings(self) -> dict[str, str]:
        """The ``INTDASH_`` settings that point intdash's V-SDC register here."""
        return {"INTDASH_FISCAL__VSDC_URL": self.url, "INTDASH_FISCAL__VSDC_CA": str(self.ca_path)}

    def ssl_context(self, taxpayer: Taxpayer | None = None) -> ssl.SSLContext:
        """A client TLS context with ``taxpayer``'s certificate (the handed-out one by default),
        trusting this CA."""
        who = taxpayer or self.taxpayer
        return client_context(who.pfx, who.password, self.ca_path)

    def issue(self, name: str = "Second Taxpayer Ltd", *, expired: bool = False) -> Taxpayer:
        """Another taxpayer this V-SDC knows (``expired``: a certificate that ended yesterday)."""
        return self.pki.taxpayer(name, expired=expired)

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> VsdcServer:
        """Serve in a background thread; returns once it accepts connections."""
        config = uvicorn.Config(
            self.emulator.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="off",
            http=_peer_protocol(self.emulator.peers),
            ssl_certfile=self.pki.server_cert_path,
            ssl_keyfile=self.pki.server_key_path,
            ssl_ca_certs=self.pki.ca_path,
            ssl_cert_reqs=ssl.CERT_REQUIRED,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="vsdc", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the V-SDC emulator could not listen on {self.host}:{self.port}"
                )
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def refuse(self) -> None:
        """Stop listening: connections to the port are refused until :meth:`accept`."""
        self._halt()

    def accept(self) -> None:
        """Listen again on the same port, with the same state."""
        if self._server is None:
            self.start()

    def _halt(self) -> None:
        self.emulator.faults.release()  # held calls end, so the server can
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def stop(self) -> None:
        self._halt()
        if self._own_pki:
            self.pki.close()

    def __enter__(self) -> VsdcServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
