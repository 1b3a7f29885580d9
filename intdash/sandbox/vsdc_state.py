"""What the V-SDC emulator remembers: who it is (its UID, ``signedBy``, and its signing key), its
groups of tax rates, its counters, the port of its verification pages, and every invoice it
signed (the whole response, so that a retry under the same ``RequestId`` answers it again, a
refund can name it and its verification URL keeps answering).

Without a file it is all in memory and goes with the process. Given a file (``state.sqlite3``
in the emulator's folder) it is kept there too, in SQLite: a signature's row and the counters it
took are written in one transaction before the answer is sent, so a restart on the same folder
resumes where the last run stopped (counters only go up). The file is made whole under a
temporary name and then linked into place, so it either holds a complete state or does not
exist. ``synchronous=NORMAL`` in WAL mode: a process killed at any moment loses nothing it
answered (a power cut could lose the last few, which an emulator can afford).

One emulator a file: the connection holds SQLite's exclusive lock while it is open, so a second
emulator on the same folder is refused rather than reusing counters. A file that cannot be read
(not SQLite, truncated, another program's database, a row that does not parse) is refused with
one line naming it (:class:`VsdcStateError`): never a fresh start over it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from intdash.sandbox.vsdc_rates import TaxRates, rates_from_record, rates_record

STATE_FILE = "state.sqlite3"
FORMAT = "intdash-vsdc-emulator/1"
SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE rates (group_id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE counters (taxpayer TEXT NOT NULL, extension TEXT NOT NULL,"
    " last INTEGER NOT NULL, PRIMARY KEY (taxpayer, extension))",
    "CREATE TABLE signed (seq INTEGER PRIMARY KEY, number TEXT NOT NULL UNIQUE,"
    " taxpayer TEXT NOT NULL, request_id TEXT, digest TEXT NOT NULL,"
    " invoice_type INTEGER NOT NULL, transaction_type INTEGER NOT NULL, moment TEXT NOT NULL,"
    " token TEXT NOT NULL UNIQUE, response TEXT NOT NULL)",
)
RAW = serialization.Encoding.Raw


class VsdcStateError(RuntimeError):
    """The emulator's state file cannot be used (one line, naming the file)."""


@dataclass
class Signed:
    taxpayer: str  # the requestedBy UID
    request_id: str | None
    digest: str  # of the request body, to tell a retry from another invoice
    invoice_type: int
    transaction_type: int
    moment: datetime
    token: str  # the verification URL's
    response: dict[str, Any]

    @property
    def number(self) -> str:
        return str(self.response["invoiceNumber"])


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class VsdcState:
    """The emulator's memory; not thread-safe by itself (the emulator holds its lock)."""

    uid: str
    key: Ed25519PrivateKey
    rates_history: list[TaxRates]

    def __init__(
        self,
        path: Path | None = None,
        *,
        uid: Callable[[], str],
        key: Callable[[], Ed25519PrivateKey],
        rates: Callable[[], TaxRates],
    ) -> None:
        """Open ``path`` (made with ``uid()``, ``key()`` and ``rates()`` when it does not exist
        yet), or keep everything in memory when ``path`` is None."""
        self.path = path
        self.signed: list[Signed] = []
        self.by_number: dict[str, Signed] = {}
        self.by_request: dict[tuple[str, str], Signed] = {}
        self.by_token: dict[str, Signed] = {}
        self.counters: dict[tuple[str, str], int] = {}  # (taxpayer, extension or "") -> last
        self.verify_port: int | None = None
        self._db: sqlite3.Connection | None = None
        if path is None:
            self.uid, self.key, self.rates_history = uid(), key(), [rates()]
            return
        try:
            if not path.exists():
                self._create(path, uid(), key(), rates())
            self._db = self._open(path)
            self._load(self._db)
        except VsdcStateError:
            self.close()
            raise
        except sqlite3.Error as exc:
            self.close()
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:
                raise VsdcStateError(
                    f"the V-SDC emulator's state {path} is in use by another V-SDC emulator "
                    "(one emulator a folder)"
                ) from exc
            raise self._unreadable(exc) from exc
        except (OSError, ValueError, KeyError, TypeError, ArithmeticError) as exc:
            self.close()
            raise self._unreadable(exc) from exc

    def _unreadable(self, exc: BaseException) -> VsdcStateError:
        return VsdcStateError(
            f"the V-SDC emulator's state {self.path} cannot be read ({_one_line(exc)}): move it "
            "aside to start afresh (its counters and signed invoices are then forgotten)"
        )

    # -- the file -------------------------------------------------------------------------------

    @staticmethod
    def _create(path: Path, uid: str, key: Ed25519PrivateKey, rates: TaxRates) -> None:
        """A complete new state under a temporary name, then linked into place (unless another
        emulator has just made one: then that one is used)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, made = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
        os.close(handle)
        name = Path(made)
        try:
            db = sqlite3.connect(name, isolation_level=None)
            try:
                db.execute("BEGIN")
                for statement in SCHEMA:
                    db.execute(statement)
                secret = key.private_bytes(
                    RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
                )
                db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("format", FORMAT),
                        ("uid", uid),
                        ("key", base64.b64encode(secret).decode("ascii")),
                    ],
                )
                db.execute(
                    "INSERT INTO rates (group_id, body) VALUES (?, ?)",
                    (rates.group_id, json.dumps(rates_record(rates))),
                )
                db.execute("COMMIT")
            finally:
                db.close()
            name.chmod(0o600)  # the signing key
            with contextlib.suppress(FileExistsError):
                os.link(name, path)
        finally:
            name.unlink()

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")  # takes the lock, held until closed
            db.execute("COMMIT")
            checked = [row[0] for row in db.execute("PRAGMA quick_check")]
            if checked != ["ok"]:
                raise sqlite3.DatabaseError(f"quick_check: {checked[0]}")
        except BaseException:
            db.close()
            raise
        return db

    def _load(self, db: sqlite3.Connection) -> None:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, not {FORMAT!r}")
        self.uid = str(meta["uid"])
        self.key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(meta["key"]))
        self.verify_port = int(meta["verify_port"]) if "verify_port" in meta else None
        self.rates_history = [
            rates_from_record(json.loads(body))
            for (body,) in db.execute("SELECT body FROM rates ORDER BY group_id")
        ]
        if not self.rates_history:
            raise ValueError("no tax rates")
        for taxpayer, extension, last in db.execute(
            "SELECT taxpayer, extension, last FROM counters"
        ):
            self.counters[(str(taxpayer), str(extension))] = int(last)
        rows = db.execute(
            "SELECT taxpayer, request_id, digest, invoice_type, transaction_type, moment, token,"
            " response FROM signed ORDER BY seq"
        )
        for (
            taxpayer,
            request_id,
            digest,
            invoice_type,
            transaction_type,
            moment,
            token,
            body,
        ) in rows:
            response = json.loads(body)
            if not isinstance(response, dict):
                raise ValueError(f"a signed invoice that is not a JSON object: {body[:40]!r}")
            signed = Signed(
                taxpayer, request_id, digest, int(invoice_type), int(transaction_type),
                datetime.fromisoformat(moment), token, response,
            )  # fmt: skip
            self._remember(signed)
            # whatever the counters' rows say, never below what was signed
            for extension, counter in (
                ("", int(response["totalCounter"])),
                (str(response["invoiceCounterExtension"]), int(response["transactionTypeCounter"])),
            ):
                key = (signed.taxpayer, extension)
                self.counters[key] = max(self.counters.get(key, 0), counter)

    # -- changes --------------------------------------------------------------------------------

    def next_counters(self, taxpayer: str, extension: str) -> tuple[int, int]:
        """The taxpayer's next total counter and next counter of ``extension`` (not taken
        until :meth:`record`)."""
        return (
            self.counters.get((taxpayer, ""), 0) + 1,
            self.counters.get((taxpayer, extension), 0) + 1,
        )

    def record(self, signed: Signed) -> None:
        """Keep ``signed`` and take its counters: on file first (one transaction), then here."""
        response = signed.response
        extension = str(response["invoiceCounterExtension"])
        total, kind = int(response["totalCounter"]), int(response["transactionTypeCounter"])
        row = (
            signed.number, signed.taxpayer, signed.request_id, signed.digest,
            signed.invoice_type, signed.transaction_type, signed.moment.isoformat(),
            signed.token, json.dumps(response, separators=(",", ":")),
        )  # fmt: skip
        counter = (
            "INSERT INTO counters (taxpayer, extension, last) VALUES (?, ?, ?)"
            " ON CONFLICT (taxpayer, extension) DO UPDATE SET last = excluded.last"
        )
        self._write(
            [
                (
                    "INSERT INTO signed (number, taxpayer, request_id, digest, invoice_type,"
                    " transaction_type, moment, token, response)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                ),
                (counter, (signed.taxpayer, "", total)),
                (counter, (signed.taxpayer, extension, kind)),
            ]
        )
        self.counters[(signed.taxpayer, "")] = total
        self.counters[(signed.taxpayer, extension)] = kind
        self._remember(signed)

    def add_rates(self, rates: TaxRates) -> None:
        self._write(
            [
                (
                    "INSERT INTO rates (group_id, body) VALUES (?, ?)",
                    (rates.group_id, json.dumps(rates_record(rates))),
                )
            ]
        )
        self.rates_history.append(rates)

    def remember_port(self, port: int) -> None:
        """The verification pages' port, for the next run to listen on again."""
        if port != self.verify_port:
            self._write(
                [
                    (
                        "INSERT INTO meta (key, value) VALUES ('verify_port', ?)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (str(port),),
                    )
                ]
            )
            self.verify_port = port

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _write(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        if self._db is None:
            if self.path is not None:
                raise VsdcStateError(f"the V-SDC emulator's state {self.path} is closed")
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, parameters in statements:
                    self._db.execute(sql, parameters)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise VsdcStateError(
                f"the V-SDC emulator could not write its state {self.path}: {_one_line(exc)}"
            ) from exc

    def _remember(self, signed: Signed) -> None:
        self.signed.append(signed)
        self.by_number[signed.number] = self.by_token[signed.token] = signed
        if signed.request_id is not None:
            self.by_request[(signed.taxpayer, signed.request_id)] = signed
