"""The vault: AES-256-GCM encryption of every secret intdash keeps.

A ciphertext is ``enc:v<N>:<base64url(nonce || ciphertext+tag)>``; ``N`` is the version of the
key that made it, so a rotation can proceed row by row and a process can still read what an
older key wrote. The associated data binds each ciphertext to its place (the row and field it
belongs to), so a ciphertext copied into another row does not decrypt.

Keys come from ``INTDASH_SECRET_KEY`` (``KEY`` alone is version 1, or ``N:KEY,M:KEY`` with the
current key first) or from the key file ``$INTDASH_HOME/vault.key`` (one ``N:KEY`` a line, the
highest version current), made with mode 0600 only when asked (the workspace asks only while
the database holds no secret and records no key). The file is re-read when it changes, so a
rotation made by one process reaches the others.

A key is recognised by its check value (:func:`check_value`), which the database keeps beside
the secrets; a vault told the check values (:meth:`Vault.expect`) refuses a key that differs,
also when the key file changes under a running process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from intdash.core.errors import VaultError
from intdash.core.redact import register_secret

PREFIX = "enc:v"
KEY_BYTES = 32
NONCE_BYTES = 12
CHECK_LABEL = b"intdash vault key check"


def generate_key() -> str:
    """A new random key, as the text the key file and ``INTDASH_SECRET_KEY`` hold."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def check_value(key: bytes, version: int) -> str:
    """What the database keeps to recognise key ``version``: an HMAC of a fixed label under the
    key (hex). The key cannot be had back from it."""
    return hmac.new(key, CHECK_LABEL + b":v%d" % version, hashlib.sha256).hexdigest()


def _decode_key(text: str, where: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise VaultError(f"{where}: a vault key must be base64 text") from None
    if len(raw) != KEY_BYTES:
        raise VaultError(f"{where}: a vault key must be {KEY_BYTES} bytes, not {len(raw)}")
    return raw


def parse_keyring(text: str, where: str, *, first_is_current: bool) -> tuple[dict[int, bytes], int]:
    """Parse ``N:KEY`` entries (commas or lines); a bare ``KEY`` is version 1."""
    entries = [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
    if not entries:
        raise VaultError(f"{where}: no vault key")
    keys: dict[int, bytes] = {}
    order: list[int] = []
    for entry in entries:
        version_text, sep, key_text = entry.partition(":")
        if not sep:
            version_text, key_text = "1", entry
        if not version_text.isdigit() or int(version_text) < 1:
            raise VaultError(f"{where}: key version {version_text!r} is not a positive number")
        version = int(version_text)
        if version in keys:
            raise VaultError(f"{where}: key version {version} appears twice")
        keys[version] = _decode_key(key_text, where)
        order.append(version)
    current = order[0] if first_is_current else max(order)
    return keys, current


def format_keyring(keys: dict[int, bytes]) -> str:
    return "".join(
        f"{version}:{base64.urlsafe_b64encode(key).decode('ascii')}\n"
        for version, key in sorted(keys.items(), reverse=True)
    )


def write_key_file(path: Path, keys: dict[int, bytes]) -> None:
    """Write the key file atomically with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(format_keyring(keys))
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class _Keyring:
    keys: dict[int, bytes]  # empty when the key file does not exist
    current: int
    stamp: tuple[int, int] | None  # (mtime_ns, inode) of the key file it came from


class Vault:
    """Encrypts and decrypts secrets; never logs or returns a key.

    With a key file that does not exist the vault holds no key: it decrypts and encrypts
    nothing (each attempt says the file is missing) and makes no file unless ``create``.
    """

    def __init__(
        self, *, key_file: Path | None = None, env_keys: str | None = None, create: bool = False
    ) -> None:
        if (key_file is None) == (env_keys is None):
            raise ValueError("give exactly one of key_file and env_keys")
        self._key_file = key_file
        self._env_keys = env_keys
        self._expected: dict[int, str] = {}
        self._lock = threading.Lock()
        if create and key_file is not None:
            self._create_key_file(key_file)
        self._ring = self._load()

    @property
    def from_environment(self) -> bool:
        return self._env_keys is not None

    @property
    def key_file(self) -> Path | None:
        return self._key_file

    @property
    def source(self) -> str:
        """Where the keys come from, as the operator knows it."""
        if self._key_file is None:
            return "INTDASH_SECRET_KEY"
        return f"vault key file {self._key_file}"

    # -- keys -------------------------------------------------------------------------------

    def _load(self) -> _Keyring:
        if self._env_keys is not None:
            keys, current = parse_keyring(
                self._env_keys, "INTDASH_SECRET_KEY", first_is_current=True
            )
            return self._verified(_Keyring(keys, current, None))
        assert self._key_file is not None
        path = self._key_file
        try:
            info = path.stat()
        except FileNotFoundError:
            return _Keyring({}, 0, None)
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise VaultError(
                f"vault key file {path} is open to other users "
                f"(mode {stat.S_IMODE(info.st_mode):o}): run chmod 600 {path}"
            )
        keys, current = parse_keyring(
            path.read_text(encoding="ascii"), str(path), first_is_current=False
        )
        return self._verified(_Keyring(keys, current, (info.st_mtime_ns, info.st_ino)))

    def _verified(self, ring: _Keyring) -> _Keyring:
        """``ring``, if each of its keys with a known check value is that key."""
        wrong = [
            version
            for version, key in sorted(ring.keys.items())
            if version in self._expected and check_value(key, version) != self._expected[version]
        ]
        if wrong:
            raise VaultError(
                f"{self.source} holds a different key of version "
                f"{', '.join(map(str, wrong))} than the one the stored secrets are under: "
                "restore the key that was there ('intdash vault check' lists what it affects)"
            )
        return ring

    @staticmethod
    def _create_key_file(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(f"1:{generate_key()}\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _ring_now(self) -> _Keyring:
        """The keyring, re-read if the key file changed since it was read."""
        ring = self._ring
        if self._key_file is None:
            return ring
        try:
            info = self._key_file.stat()
        except FileNotFoundError:
            if ring.stamp is None:
                return ring  # missing from the start: still no key
            raise VaultError(f"vault key file {self._key_file} has disappeared") from None
        if (info.st_mtime_ns, info.st_ino) != ring.stamp:
            with self._lock:
                self._ring = ring = self._load()
        return ring

    def _missing(self) -> VaultError:
        return VaultError(f"vault key file {self._key_file} does not exist")

    @property
    def present(self) -> bool:
        """Whether the vault holds any key (a key file that does not exist holds none)."""
        return bool(self._ring_now().keys)

    @property
    def current_version(self) -> int:
        ring = self._ring_now()
        if not ring.keys:
            raise self._missing()
        return ring.current

    @property
    def versions(self) -> list[int]:
        return sorted(self._ring_now().keys)

    def checks(self) -> dict[int, str]:
        """The check value of each key at hand, by version."""
        return {
            version: check_value(key, version) for version, key in self._ring_now().keys.items()
        }

    def expect(self, checks: Mapping[int, str]) -> None:
        """Refuse, from now on, any key whose version has a check value here and that does not
        match it (the keys at hand are checked at once, and again whenever the file changes)."""
        with self._lock:
            self._expected = dict(checks)
            self._ring = self._verified(self._ring)

    def add_key(self, *, above: int = 0) -> int:
        """Add a new current key to the key file (older keys stay until :meth:`retire`), of a
        version above every one in the file and above ``above``; returns its version."""
        if self._key_file is None:
            raise VaultError(
                "the vault key comes from INTDASH_SECRET_KEY: put a new key first in it "
                "('intdash vault genkey' makes one), then run 'intdash vault rotate'"
            )
        with self._lock:
            ring = self._load()
            if not ring.keys:
                raise self._missing()
            version = max(*ring.keys, above) + 1
            keys = {**ring.keys, version: os.urandom(KEY_BYTES)}
            write_key_file(self._key_file, keys)
            self._ring = self._load()
        return version

    def retire_all_but_current(self) -> list[int]:
        """Drop every key but the current one from the key file; returns the dropped versions."""
        if self._key_file is None:
            return []
        with self._lock:
            ring = self._load()
            dropped = sorted(v for v in ring.keys if v != ring.current)
            if dropped:
                write_key_file(self._key_file, {ring.current: ring.keys[ring.current]})
                self._ring = self._load()
        return dropped

    # -- data -------------------------------------------------------------------------------

    def encrypt(self, plaintext: str, context: str) -> str:
        """Encrypt ``plaintext`` bound to ``context`` (where it will be stored)."""
        register_secret(plaintext)
        ring = self._ring_now()
        if not ring.keys:
            raise self._missing()
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(ring.keys[ring.current]).encrypt(
            nonce, plaintext.encode("utf-8"), context.encode("utf-8")
        )
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{PREFIX}{ring.current}:{body}"

    @staticmethod
    def version_of(token: str) -> int:
        """The key version a ciphertext was made with."""
        if not token.startswith(PREFIX):
            raise VaultError("not a vault ciphertext")
        version_text, sep, _ = token[len(PREFIX) :].partition(":")
        if not sep or not version_text.isdigit():
            raise VaultError("malformed vault ciphertext")
        return int(version_text)

    def decrypt(self, token: str, context: str) -> str:
        """Decrypt a ciphertext made for ``context``."""
        version = self.version_of(token)
        ring = self._ring_now()
        key = ring.keys.get(version)
        if key is None:
            if not ring.keys:
                raise self._missing()
            source = "INTDASH_SECRET_KEY" if self._key_file is None else str(self._key_file)
            raise VaultError(f"no vault key of version {version} in {source}")
        try:
            raw = base64.urlsafe_b64decode(token[len(PREFIX) :].partition(":")[2])
            plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise VaultError(
                f"a stored secret cannot be decrypted with key version {version}: "
                "wrong key or damaged data"
            ) from None
        text = plain.decode("utf-8")
        register_secret(text)
        return text

    def needs_rotation(self, token: str) -> bool:
        return self.version_of(token) != self.current_version
