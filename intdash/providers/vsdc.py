"""TaxCore's V-SDC: the client that asks it to sign invoices.

Mutual TLS with the taxpayer's certificate (its ``.pfx`` and password, from the vault), the
``PAC`` header, ``RequestId`` (kept with the outbox row, the same on every retry of one
request) and ``Accept-Language: en-US``. Its errors say what the operator needs: a 4xx is the
SDC refusing the request (:class:`SdcRefused`: TaxCore's ``Message`` and each
``MessageDetails`` entry's property and message); anything else is the SDC being unavailable
(:class:`SdcUnavailable`), told apart by whether the request may have reached it
(``after_sending``: a time-out waiting for the answer may hide a signature, which is reconciled
before anything else is sent).

One client per process and certificate (like the platforms' shared clients): its TLS context,
with the key, is built once and its connections are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import ssl
import tempfile
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from intdash.core.errors import IntdashError
from intdash.providers.http import httpx

STATUS_PATH = "/api/v3/status"
INVOICES_PATH = "/api/v3/invoices"


class SdcError(IntdashError):
    """The SDC did not sign."""


class SdcRefused(SdcError):
    """The SDC answered 4xx: the request (or the credentials) must be fixed by the operator."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class CredentialsRefused(SdcRefused):
    """The SDC refused the taxpayer's credentials (401/403: the PAC, the certificate): nothing
    can be signed until the operator sets them right."""


class SdcUnavailable(SdcError):
    """No usable answer: down, 5xx, unreachable or too slow. ``after_sending``: the request may
    have reached the SDC (a time-out or a broken connection while waiting for the answer)."""

    def __init__(self, message: str, *, after_sending: bool = False) -> None:
        super().__init__(message)
        self.after_sending = after_sending


class CertificateError(IntdashError):
    """The taxpayer's .pfx cannot be used."""


@dataclass(frozen=True)
class Certificate:
    """What the operator is shown of the taxpayer's certificate (never its key)."""

    subject: str
    not_after: datetime
    fingerprint: str  # SHA-256 of the certificate (DER), hex

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "expires": self.not_after.isoformat(),
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class Credentials:
    """The taxpayer's: the .pfx bytes, its password and the PAC."""

    pfx: bytes
    password: str
    pac: str

    def __repr__(self) -> str:  # never the secrets, in a log or a traceback
        return "Credentials(…)"


def open_pfx(pfx: bytes, password: str) -> tuple[Any, x509.Certificate, list[x509.Certificate]]:
    """The key, certificate and chain of a ``.pfx``; :class:`CertificateError` in words when it
    is not one or the password does not open it."""
    try:
        key, cert, chain = pkcs12.load_key_and_certificates(pfx, password.encode() or None)
    except ValueError as exc:
        if "password" in str(exc).lower() or "mac" in str(exc).lower():
            raise CertificateError(
                "the password does not open the .pfx (or the file is damaged)"
            ) from None
        raise CertificateError("the file is not a PKCS#12 (.pfx) certificate") from None
    except Exception:  # the parser's own errors on bytes that are no PKCS#12 at all
        raise CertificateError("the file is not a PKCS#12 (.pfx) certificate") from None
    if key is None or cert is None:
        raise CertificateError("the .pfx holds no private key and certificate")
    return key, cert, list(chain)


def certificate_of(pfx: bytes, password: str) -> Certificate:
    _, cert, _ = open_pfx(pfx, password)
    return Certificate(
        subject=cert.subject.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
        fingerprint=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )


@contextlib.contextmanager
def _private_file(data: bytes) -> Iterator[str]:
    """A path to ``data`` that never touches a disk where possible: an anonymous in-memory file
    (Linux's memfd, reached as /proc/self/fd/N) else a temporary file of mode 0600, removed as
    soon as it has been read."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None and Path("/proc/self/fd").is_dir():
        fd = memfd("intdash-vsdc", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    handle, name = tempfile.mkstemp(prefix="intdash-vsdc-")  # mode 0600
    try:
        os.write(handle, data)
        os.close(handle)
        yield name
    finally:
        Path(name).unlink(missing_ok=True)


def tls_context(credentials: Credentials, ca_file: Path | None = None) -> ssl.SSLContext:
    """A TLS context presenting the taxpayer's certificate.

    :meth:`ssl.SSLContext.load_cert_chain` reads only files. The key is handed to it as PEM
    encrypted under a one-time random passphrase, through an in-memory file where the system has
    them (memfd), else a 0600 temporary file deleted at once: no key in clear on any disk, and
    what passes through the file is useless without the passphrase, which exists only here.
    """
    key, cert, chain = open_pfx(credentials.pfx, credentials.password)
    passphrase = os.urandom(32).hex().encode()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    pem += b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [cert, *chain])
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    with _private_file(pem) as path:
        context.load_cert_chain(path, password=passphrase)
    return context


def _refusal(response: httpx.Response) -> str:
    """TaxCore's error body in one line: its Message, then each detail's property and message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        text = response.text.strip().replace("\n", " ")[:300]
        return f"HTTP {response.status_code}" + (f": {text}" if text else "")
    message = str(body.get("Message") or body.get("message") or f"HTTP {response.status_code}")
    details = body.get("MessageDetails") or body.get("messageDetails") or []
    said = []
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, Mapping):
            prop = detail.get("Property") or detail.get("property")
            told = detail.get("Message") or detail.get("message") or detail.get("Code")
            said.append(f"{prop}: {told}" if prop else str(told))
    return message.rstrip(".") + (": " + "; ".join(said) if said else "")


class VsdcClient:
    """Calls one V-SDC as one taxpayer."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        ca_file: Path | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._pac = credentials.pac
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            verify=tls_context(credentials, ca_file),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            headers={"Accept-Language": "en-US", "Accept": "application/json"},
        )

    @property
    def closed(self) -> bool:
        return self._client.is_closed

    async def aclose(self) -> None:
        await self._client.aclose()

    async def status(self) -> dict[str, Any]:
        """``GET /api/v3/status``: the SDC's time, its tax rates, its status codes."""
        return await self._call("GET", STATUS_PATH, None, None)

    async def sign(self, request: Mapping[str, Any], request_id: str) -> dict[str, Any]:
        """``POST /api/v3/invoices``: the SDC's whole response."""
        body = json.dumps(request, separators=(",", ":")).encode()
        return await self._call("POST", INVOICES_PATH, body, request_id)

    async def _call(
        self, method: str, path: str, body: bytes | None, request_id: str | None
    ) -> dict[str, Any]:
        headers = {"PAC": self._pac}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if request_id is not None:
            headers["RequestId"] = request_id
        try:
            response = await self._client.request(method, path, content=body, headers=headers)
        except (httpx.ConnectTimeout, httpx.PoolTimeout):
            raise SdcUnavailable("SDC unavailable: no connection within the time allowed") from None
        except httpx.TimeoutException:
            raise SdcUnavailable(
                "SDC unavailable: timed out waiting for its answer after sending",
                after_sending=True,
            ) from None
        except httpx.ConnectError as exc:
            raise SdcUnavailable(f"SDC unavailable: {_reason(exc)}") from None
        except ssl.SSLError as exc:
            raise SdcUnavailable(f"SDC unavailable: TLS failed: {exc.reason or exc}") from None
        except httpx.RemoteProtocolError as exc:
            if body is None or not _sent(exc):
                raise SdcUnavailable(f"SDC unavailable: {_reason(exc)}") from None
            raise SdcUnavailable(
                f"SDC unavailable: {_reason(exc)} (after sending)", after_sending=True
            ) from None
        except httpx.HTTPError as exc:  # the connection broke with the request on its way
            raise SdcUnavailable(
                f"SDC unavailable: {_reason(exc)} (after sending)", after_sending=True
            ) from None
        if response.status_code in (401, 403):
            raise CredentialsRefused(
                response.status_code,
                f"the SDC refused the taxpayer's credentials: {_refusal(response)}",
            )
        if 400 <= response.status_code < 500:
            raise SdcRefused(response.status_code, _refusal(response))
        if response.status_code >= 500 or not 200 <= response.status_code < 300:
            raise SdcUnavailable(f"SDC unavailable: {_refusal(response)}")
        try:
            data = response.json()
        except ValueError:
            raise SdcUnavailable("SDC unavailable: its answer is not JSON") from None
        if not isinstance(data, dict):
            raise SdcUnavailable("SDC unavailable: its answer is not a JSON object")
        return data


def _sent(exc: Exception) -> bool:
    """Whether a broken connection may have carried the request: a TLS handshake refused (the
    server's alert of a certificate it will not take) carried nothing."""
    text = str(exc).lower()
    return not any(m in text for m in ("handshake", "certificate", "alert", "ssl"))


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    for marker in ("certificate", "handshake", "alert"):
        if marker in text.lower():
            return f"TLS failed: {text[:200]}"
    return text[:200] or type(exc).__name__


# -- one client per process and certificate --------------------------------------------------

_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str, str], VsdcClient]
] = weakref.WeakKeyDictionary()


def shared_vsdc(
    base_url: str,
    credentials: Credentials,
    *,
    ca_file: Path | None = None,
    timeout: float = 30.0,
) -> VsdcClient:
    """The running loop's client of this SDC as this taxpayer (a new certificate or PAC gets a
    new one): its TLS context is built, and the key read, once."""
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    digest = hashlib.sha256(
        credentials.pfx + b"\0" + credentials.pac.encode() + b"\0" + str(ca_file).encode()
    ).hexdigest()
    key = (base_url, digest, str(timeout))
    client = per_loop.get(key)
    if client is None or client.closed:
        for stale in [k for k in per_loop if k[0] == base_url]:
            old = per_loop.pop(stale)  # another certificate or PAC now: its connections go
            asyncio.get_running_loop().create_task(old.aclose())
        client = per_loop[key] = VsdcClient(base_url, credentials, ca_file=ca_file, timeout=timeout)
    return client


async def close_vsdc_clients() -> None:
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.aclose()
