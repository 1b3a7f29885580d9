"""The V-SDC emulator's certificates: a throwaway CA, the server's certificate, taxpayers' .pfx.

TaxCore's V-SDC authenticates a taxpayer by mutual TLS: the tax authority's CA issues each
taxpayer a certificate (handed over as a PKCS#12 ``.pfx`` file with a password) and an
authorisation code, the PAC, that the client sends in the ``PAC`` header. This module plays the
tax authority's side: :class:`VsdcPki` makes (or, given a directory that already holds one,
loads) a CA, a certificate for ``127.0.0.1``/``localhost`` signed by it, and taxpayers.

The certificate's subject names the taxpayer: ``O`` the business, ``serialNumber`` the UID the
V-SDC writes as ``requestedBy`` (8 uppercase alphanumerics) and ``organizationIdentifier`` the
TIN. The emulator knows a taxpayer by the SHA-256 of its certificate, so only certificates it
issued (and registered) are taken, and each PAC belongs to one certificate.

Keys are EC P-256 (fast to make; the TLS and PKCS#12 handling is the same as for RSA). For tests
:meth:`VsdcPki.taxpayer` can make an already-expired certificate (``expired=True``), and
:func:`foreign_taxpayer` one signed by another CA.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
import shutil
import ssl
import string
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ALPHANUMERIC = string.ascii_uppercase + string.digits
PEM = serialization.Encoding.PEM


def code(length: int = 8) -> str:
    """Uppercase alphanumerics, as TaxCore's UIDs (8) and PACs (6) are."""
    return "".join(secrets.choice(ALPHANUMERIC) for _ in range(length))


@dataclass(frozen=True)
class Taxpayer:
    """One taxpayer's credentials: the ``.pfx`` (with its password) and the PAC bound to it."""

    name: str
    tin: str
    uid: str  # the V-SDC's ``requestedBy``
    pac: str
    password: str
    pfx: bytes
    certificate: x509.Certificate

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.certificate.public_bytes(serialization.Encoding.DER))

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    def write(self, path: Path) -> Path:
        path.write_bytes(self.pfx)
        return path


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _name(common: str, **extra: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    oids = {
        "organization": NameOID.ORGANIZATION_NAME,
        "uid": NameOID.SERIAL_NUMBER,
        "tin": NameOID.ORGANIZATION_IDENTIFIER,
        "country": NameOID.COUNTRY_NAME,
    }
    attributes += [x509.NameAttribute(oids[k], v) for k, v in extra.items()]
    return x509.Name(attributes)


class CertificateAuthority:
    """A CA key and its self-signed certificate."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self.key = key
        self.certificate = certificate

    @classmethod
    def create(
        cls, name: str = "intdash sandbox TaxCore CA", *, days: int = 3650
    ) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        subject = _name(name, country="FJ")
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(PEM)

    def issue(
        self,
        subject: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        *,
        not_before: datetime,
        not_after: datetime,
        usage: x509.ObjectIdentifier,
        hosts: tuple[str, ...] = (),
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        if hosts:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def taxpayer(
        self,
        name: str = "Bula Trading Ltd",
        *,
        tin: str | None = None,
        uid: str | None = None,
        pac: str | None = None,
        password: str | None = None,
        days: int = 365,
        expired: bool = False,
    ) -> Taxpayer:
        """A taxpayer's certificate as a password-protected ``.pfx`` (the CA's certificate
        included), valid ``days`` from now, or ended yesterday when ``expired``."""
        uid = uid or code(8)
        pac = pac or code(6)
        if len(pac) != 6 or any(c not in ALPHANUMERIC for c in pac):
            raise ValueError("a PAC is 6 uppercase letters or digits")
        password = password or code(16)
        tin = tin or "".join(secrets.choice(string.digits) for _ in range(9))
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        start, end = (
            (now - timedelta(days=30), now - timedelta(days=1))
            if expired
            else (now - timedelta(hours=1), now + timedelta(days=days))
        )
        certificate = self.issue(
            _name(f"{name} {uid}", organization=name, uid=uid, tin=tin, country="FJ"),
            key,
            not_before=start,
            not_after=end,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        )
        pfx = pkcs12.serialize_key_and_certificates(
            uid.encode(),
            key,
            certificate,
            [self.certificate],
            serialization.BestAvailableEncryption(password.encode()),
        )
        return Taxpayer(name, tin, uid, pac, password, pfx, certificate)


def foreign_taxpayer(name: str = "Elsewhere Ltd") -> Taxpayer:
    """A taxpayer whose certificate another CA signed: the V-SDC must refuse it."""
    return CertificateAuthority.create("Some other CA").taxpayer(name)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class VsdcPki:
    """The CA, the server's certificate and the taxpayers, with the files TLS needs.

    ``directory`` keeps them between runs (an existing CA and taxpayer there are loaded, so a
    ``.pfx`` configured in intdash keeps working); without one they go to a temporary directory
    removed by :meth:`close`.
    """

    DEFAULT = "taxpayer"

    def __init__(
        self, directory: Path | None = None, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    ) -> None:
        self._own = directory is None
        self.directory = (
            Path(tempfile.mkdtemp(prefix="intdash-vsdc-")) if directory is None else directory
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca = self._load_ca() or self._new_ca()
        server_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        server = self.ca.issue(
            _name(hosts[0]),
            server_key,
            not_before=now - timedelta(hours=1),
            not_after=now + timedelta(days=365),
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            hosts=hosts,
        )
        self.server_cert_path.write_bytes(server.public_bytes(PEM))
        self.server_key_path.write_bytes(_key_pem(server_key))
        self.server_key_path.chmod(0o600)
        self.taxpayers: dict[str, Taxpayer] = {}

    # -- files --------------------------------------------------------------------------------

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def server_cert_path(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key_path(self) -> Path:
        return self.directory / "server-key.pem"

    def pfx_path(self, taxpayer: Taxpayer) -> Path:
        return self.directory / f"{taxpayer.uid}.pfx"

    def _new_ca(self) -> CertificateAuthority:
        ca = CertificateAuthority.create()
        key_path = self.directory / "ca-key.pem"
        key_path.write_bytes(_key_pem(ca.key))
        key_path.chmod(0o600)
        self.ca_path.write_bytes(ca.pem)
        return ca

    def _load_ca(self) -> CertificateAuthority | None:
        key_path = self.directory / "ca-key.pem"
        if not (key_path.exists() and self.ca_path.exists()):
            return None
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        certificate = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            return None
        if certificate.not_valid_after_utc < datetime.now(UTC) + timedelta(days=30):
            return None
        return CertificateAuthority(key, certificate)

    # -- taxpayers ----------------------------------------------------------------------------

    def taxpayer(
        self,
        name: str = "Bula Trading Ltd",
        *,
        pac: str | None = None,
        password: str | None = None,
        days: int = 365,
        expired: bool = False,
    ) -> Taxpayer:
        """Issue a taxpayer (see :meth:`CertificateAuthority.taxpayer`), registered here and its
        ``.pfx`` written beside the CA."""
        taxpayer = self.ca.taxpayer(name, pac=pac, password=password, days=days, expired=expired)
        self.taxpayers[taxpayer.fingerprint] = taxpayer
        taxpayer.write(self.pfx_path(taxpayer))
        return taxpayer

    def default_taxpayer(self) -> Taxpayer:
        """The taxpayer ``intdash sandbox`` hands out: the one kept in the directory (while its
        certificate has 30 days left and the CA is the same), else a new one."""
        record = self.directory / f"{self.DEFAULT}.json"
        if record.exists():
            try:
                saved = json.loads(record.read_text())
                pfx = (self.directory / saved["pfx"]).read_bytes()
                loaded = load_taxpayer(pfx, saved["password"], saved["pac"])
            except (OSError, KeyError, ValueError, TypeError):
                loaded = None
            if (
                loaded is not None
                and loaded.certificate.issuer == self.ca.certificate.subject
                and loaded.not_after > datetime.now(UTC) + timedelta(days=30)
            ):
                self.taxpayers[loaded.fingerprint] = loaded
                return loaded
        taxpayer = self.taxpayer()
        record.write_text(
            json.dumps(
                {
                    "pfx": self.pfx_path(taxpayer).name,
                    "password": taxpayer.password,
                    "pac": taxpayer.pac,
                }
            )
        )
        record.chmod(0o600)
        return taxpayer

    def find(self, der: bytes) -> Taxpayer | None:
        return self.taxpayers.get(fingerprint(der))

    def close(self) -> None:
        if self._own:
            shutil.rmtree(self.directory, ignore_errors=True)


def load_taxpayer(pfx: bytes, password: str, pac: str) -> Taxpayer:
    """A taxpayer back from its ``.pfx`` (ValueError when the password or file is wrong)."""
    key, certificate, _chain = pkcs12.load_key_and_certificates(pfx, password.encode())
    if key is None or certificate is None:
        raise ValueError("the .pfx holds no key and certificate")
    subject = certificate.subject

    def attribute(oid: x509.ObjectIdentifier) -> str:
        values = subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    return Taxpayer(
        attribute(NameOID.ORGANIZATION_NAME),
        attribute(NameOID.ORGANIZATION_IDENTIFIER),
        attribute(NameOID.SERIAL_NUMBER),
        pac,
        password,
        pfx,
        certificate,
    )


def client_context(pfx: bytes, password: str, ca: Path | None) -> ssl.SSLContext:
    """A client TLS context presenting the ``.pfx``'s certificate and trusting ``ca`` (what a
    V-SDC client does; Python's ``ssl`` reads keys only from files, so PEM copies live in a
    private temporary directory for the moment it takes to load them)."""
    key, certificate, chain = pkcs12.load_key_and_certificates(pfx, password.encode())
    if key is None or certificate is None:
        raise ValueError("the .pfx holds no key and certificate")
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    with tempfile.TemporaryDirectory(prefix="intdash-pfx-") as folder:
        chain_path, key_path = Path(folder) / "chain.pem", Path(folder) / "key.pem"
        key_path.touch(0o600)
        key_path.write_bytes(
            key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        chain_path.write_bytes(
            certificate.public_bytes(PEM)
            + b"".join(c.public_bytes(PEM) for c in chain if c.subject != c.issuer)
        )
        context.load_cert_chain(chain_path, key_path)
    return context
