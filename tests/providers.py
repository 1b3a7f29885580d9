"""Helpers for the connector tests: a sandbox on loopback and a workspace pointed at it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, update
from sqlmodel import col, select

from intdash.core.config import load_settings
from intdash.core.invoices import InvoiceData
from intdash.core.models import Credential, Integration
from intdash.core.services.credentials import OAUTH_TOKEN, TENANT_ID
from intdash.core.workspace import Workspace
from intdash.providers.base import Tenant
from intdash.providers.connect import ConnectService
from intdash.providers.http import httpx
from intdash.sandbox.server import Sandbox


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(size=2500).start()
    yield box
    box.stop()


@pytest.fixture
def redirect_uri() -> str:
    return f"http://127.0.0.1:{free_port()}/callback"


@pytest.fixture
def sandbox_env(
    env: dict[str, str], sandbox: Sandbox, redirect_uri: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    values = sandbox.settings(redirect_uri)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return {**env, **values}


@pytest.fixture
def pws(sandbox_env: dict[str, str]) -> Iterator[Workspace]:
    """A workspace whose platforms are the sandbox's, on the real clock."""
    ws = Workspace.open(load_settings(), actor="tester")
    yield ws
    ws.close()


async def consent(url: str) -> str:
    """What a browser does with the authorisation URL: returns where it is sent next."""
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def connect(ws: Workspace, uid: str, service: ConnectService | None = None) -> ConnectService:
    service = service or ConnectService(ws)
    flow = await service.begin(uid)
    await service.complete(flow, await consent(flow.url))
    return service


async def fetch(
    service: ConnectService, uid: str, cursor: str | None = None, *, page_size: int | None = None
) -> tuple[list[InvoiceData], str | None]:
    """Every page since ``cursor`` (pages of ``page_size`` when given, else the setting's)."""
    invoices: list[InvoiceData] = []
    async with await service.api(uid) as api:
        if page_size is not None:
            api.connector.settings = api.connector.settings.model_copy(
                update={"page_size": page_size}
            )
        async for page in api.connector.pages(api, cursor, None):
            invoices.extend(page.invoices)
            cursor = page.cursor
    return invoices, cursor


def start_intdash(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("INTDASH_")}
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("intdash")), *args],
        env={**base, **env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def clone(ws: Workspace, uid: str, tenants: list[str], *, prefix: str = "xero-w") -> list[str]:
    """More integrations connected as ``uid`` is (one consent covers every organisation), each
    to one of ``tenants``, due now (written in bulk)."""
    now = ws.clock()
    with ws.db.read() as session:
        row = ws.integrations.find(session, uid)
        assert row.id is not None
        token = ws.credentials.get(session, row.id, OAUTH_TOKEN)
        assert token is not None
    uids = [f"{prefix}{n:05d}" for n in range(len(tenants))]
    with ws.db.write() as session:
        conn = session.connection()
        conn.execute(
            insert(Integration.__table__),  # type: ignore[attr-defined]
            [
                {
                    "uid": clone_uid,
                    "type": "xero",
                    "name": f"Clone {n}",
                    "created_at": now,
                    "settings": dict(row.settings),
                    "sync_enabled": True,
                    "remote_id": tenant,
                    "next_sync_at": now,
                }
                for n, (clone_uid, tenant) in enumerate(zip(uids, tenants, strict=True))
            ],
        )
        ids = session.exec(
            select(Integration.id).where(col(Integration.uid).in_(uids)).order_by(Integration.uid)
        ).all()
        secrets = [
            {OAUTH_TOKEN: token.value, TENANT_ID: Tenant(tenant, f"Org {tenant[:8]}").to_json()}
            for tenant in tenants
        ]
        conn.execute(
            insert(Credential.__table__),  # type: ignore[attr-defined]
            [
                {
                    "integration_id": i,
                    "name": name,
                    "version": 1,
                    "updated_at": now,
                    "ciphertext": ws.vault.encrypt(value, f"credential:{i}:{name}"),
                }
                for i, own in zip(ids, secrets, strict=True)
                for name, value in own.items()
            ],
        )
        conn.execute(
            update(Integration).where(col(Integration.uid) == uid).values(next_sync_at=now)
        )
    return [uid, *uids]
