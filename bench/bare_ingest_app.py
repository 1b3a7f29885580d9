"""The ingest benchmark's baseline: a bare Starlette app that stores each pushed invoice with one
INSERT into intdash's own SQLite file (WAL, the same pragmas), and answers. No key, no checks, no
fiscal record: the least an HTTP server that keeps an invoice can do.

    BARE_DATABASE=path BARE_INTEGRATION=id uvicorn bare_ingest_app:app --app-dir bench
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_db = sqlite3.connect(os.environ["BARE_DATABASE"], isolation_level=None, check_same_thread=False)
for _pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=10000"):
    _db.execute(f"PRAGMA {_pragma}")
_INTEGRATION = int(os.environ["BARE_INTEGRATION"])
_INSERT = (
    "INSERT INTO invoices (integration_id, external_id, received_at, updated_at, fiscal_status,"
    " kind, currency, total) VALUES (?, ?, ?, ?, 'received', 'sales', ?, ?)"
)


async def push(request: Request) -> JSONResponse:
    body = json.loads(await request.body())
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    total = round(float(body["total"]) * 10_000)
    _db.execute(_INSERT, (_INTEGRATION, body["external_id"], now, now, body["currency"], total))
    return JSONResponse({"external_id": body["external_id"], "outcome": "created"}, 201)


app = Starlette(routes=[Route("/v1/invoices", push, methods=["POST"])])
