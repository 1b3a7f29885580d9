"""The V-SDC emulator served over mutual TLS on loopback, as a handle tests and the sandbox start.

``VsdcServer(directory=None, port=0).start()`` makes a CA and a taxpayer (or loads them from
``directory``), and serves :class:`~intdash.sandbox.vsdc.VsdcEmulator` with uvicorn over HTTPS
on ``127.0.0.1``, client certificates required (``ssl.CERT_REQUIRED``, the CA as
``ssl_ca_certs``). :meth:`VsdcServer.refuse` stops listening (connections are refused, state
is kept) until :meth:`VsdcServer.accept`; ``faults`` switches the rest (see
:mod:`~intdash.sandbox.vsdc_faults`).

The verification pages (the URL in each signed invoice and its QR code) are served on a second
listener, ``verify_url``: HTTPS with the same server certificate, but no client certificate
asked, as TaxCore's public verification site is. HTTPS rather than plain HTTP because the real
URLs are HTTPS: a client that keeps or shows them sees the same scheme, and one that opens them
trusts the emulator's CA (``ca_path``) as it would the tax authority's. ``refuse()`` leaves it
up (the SDC down is not the verification site down).

With ``directory`` the emulator's state is kept there (``state.sqlite3``, see
:mod:`~intdash.sandbox.vsdc_state`): a new server on the same folder resumes its counters,
refunds sales signed before, and listens for verification on the port the last run did (when
it is free; else on another, ``verify_moved_from`` saying which it was), so that earlier
verification URLs keep answering. A state that cannot be read raises
:class:`~intdash.sandbox.vsdc_state.VsdcStateError` (one line naming the file) when the server
is made.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from intdash.sandbox.vsdc import VsdcEmulator
from intdash.sandbox.vsdc_faults import VsdcFaults
from intdash.sandbox.vsdc_pki import Taxpayer, VsdcPki, client_context
from intdash.sandbox.vsdc_state import STATE_FILE


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


def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (0: any free port), for uvicorn to listen on."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's own
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _serve(
    config: uvicorn.Config, name: str, what: str, sockets: list[socket.socket] | None = None
) -> tuple[uvicorn.Server, threading.Thread]:
    """``config`` served in a background thread; returns once it accepts connections."""
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": sockets}, name=name, daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the V-SDC emulator could not listen on {what}")
        time.sleep(0.01)
    return server, thread


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
        verify_port: int | None = None,
    ) -> None:
        """``verify_port``: the verification pages' port (default: the one the state in
        ``directory`` remembers when free, else any free one)."""
        self.pki = pki or VsdcPki(directory)
        self._own_pki = pki is None
        self.taxpayer: Taxpayer = (
            self.pki.default_taxpayer() if directory is not None else self.pki.taxpayer()
        )
        try:
            self.emulator = VsdcEmulator(
                self.pki.find,
                clock=clock or (lambda: datetime.now(UTC)),
                state=directory / STATE_FILE if directory is not None else None,
            )
        except BaseException:
            if self._own_pki:
                self.pki.close()
            raise
        self.host = host
        self.port = port
        self.verify_port = verify_port if verify_port is not None else 0
        self._verify_wanted = verify_port is not None
        self.verify_moved_from: int | None = None  # the remembered port, when it was taken
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._verifier: uvicorn.Server | None = None
        self._verifier_thread: threading.Thread | None = None

    # -- what a client needs ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def verify_url(self) -> str:
        """Where the verification pages are (``/v/?vl=...``): HTTPS, no client certificate."""
        reach = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host  # noqa: S104
        reach = f"[{reach}]" if ":" in reach else reach
        return f"https://{reach}:{self.verify_port}"

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
        """Serve in background threads (the verification pages first, so that every signed
        invoice points at them); returns once both accept connections."""
        if self._verifier is None:
            self._start_verification()
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
        self._server, self._thread = _serve(config, "vsdc", f"{self.host}:{self.port}")
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def _start_verification(self) -> None:
        remembered = self.emulator.state.verify_port
        wanted = self.verify_port if self._verify_wanted else remembered or 0
        try:
            sock = _bind(self.host, wanted)
        except OSError as exc:
            if self._verify_wanted or not wanted:
                raise RuntimeError(
                    f"the V-SDC emulator's verification pages could not listen on "
                    f"{self.host}:{wanted}: {exc}"
                ) from exc
            sock = _bind(self.host, 0)  # the remembered port is taken: any free one
            self.verify_moved_from = wanted
        self.verify_port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.emulator.verification_app,
            log_level="warning",
            lifespan="off",
            ssl_certfile=self.pki.server_cert_path,
            ssl_keyfile=self.pki.server_key_path,
            ssl_cert_reqs=ssl.CERT_NONE,  # a phone reading the QR code has no certificate
            timeout_graceful_shutdown=1,
        )
        try:
            self._verifier, self._verifier_thread = _serve(
                config, "vsdc-verify", f"{self.host}:{self.verify_port}", [sock]
            )
        except BaseException:
            sock.close()
            raise
        self.emulator.verification_base = self.verify_url
        with self.emulator.lock:
            self.emulator.state.remember_port(self.verify_port)

    def refuse(self) -> None:
        """Stop listening: connections to the port are refused until :meth:`accept`."""
        self._halt()

    def accept(self) -> None:
        """Listen again on the same port, with the same state."""
        if self._server is None:
            self.start()

    def _halt(self, *, verification: bool = False) -> None:
        """Stop the API's listener (and the verification pages', with ``verification``): both
        asked at once, then waited for."""
        self.emulator.faults.release()  # held calls end, so the server can
        running = [(self._server, self._thread)]
        if verification:
            running.append((self._verifier, self._verifier_thread))
        for server, _thread in running:
            if server is not None:
                server.should_exit = True
        for _server, thread in running:
            if thread is not None:
                thread.join(timeout=10)
        self._server = self._thread = None
        if verification:
            self._verifier = self._verifier_thread = None

    def stop(self) -> None:
        self._halt(verification=True)
        self.emulator.close()
        if self._own_pki:
            self.pki.close()

    def __enter__(self) -> VsdcServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
