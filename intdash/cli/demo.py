"""``intdash demo``: the emulators, a throwaway workspace seeded with one integration of each
type, and the dashboard with syncs running live. The Xero emulator posts signed events of its
invoice changes to the dashboard's own server, so that on the demo's Scale plan an edit in Xero
shows within seconds."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import click

from intdash.core.config import DEFAULT_SERVER_PORT
from intdash.core.invoices import InvoiceData, InvoiceKind
from intdash.core.services.credentials import OAUTH_TOKEN
from intdash.core.workspace import Workspace
from intdash.providers.base import TokenSet
from intdash.providers.connect import ConnectService
from intdash.providers.http import httpx
from intdash.sandbox.myob import MyobEmulator
from intdash.sandbox.server import Sandbox
from intdash.sandbox.xero import XeroEmulator
from intdash.sandbox.zoho import ZohoEmulator
from intdash.sync.deliveries import DeliveryWorker
from intdash.sync.engine import SyncEngine

DEMO_LIMIT = 2000  # invoices a month per integration: the MYOB company issues more


def demo_sandbox() -> Sandbox:
    """Companies of different sizes, so that one integration runs over its monthly limit: the
    MYOB company (every invoice it lists is issued). Zoho Books reads each invoice's tax within
    its rate limit, so its invoices are fiscalized over several syncs."""
    return Sandbox(
        xero=XeroEmulator(size=1200), myob=MyobEmulator(size=2500), zoho=ZohoEmulator(size=800)
    )


async def _connect(ws: Workspace, service: ConnectService, uid: str) -> None:
    flow = await service.begin(uid)
    async with httpx.AsyncClient() as client:  # the sandbox consents at once
        location = (await client.get(flow.url)).headers["location"]
    await service.complete(flow, location)


async def seed(ws: Workspace) -> dict[str, str]:
    """One integration of each type, through the same services and flows an operator uses.
    The webhook delivers to the sandbox's receiver."""
    receiver = str(ws.settings.xero.api_url).removesuffix("/").removesuffix("/xero/api")
    ws.plans.set("scale", monthly_limit=DEMO_LIMIT)
    service = ConnectService(ws)
    engine = SyncEngine(ws, service)
    made: dict[str, str] = {}
    for key, kind, name in (
        ("acme", "xero", "Acme Ltd"),
        ("harbour", "xero", "Harbour Cafe"),
        ("bay", "myob", "Bay Traders"),
        ("zylker", "zoho", "Zylker Traders"),
    ):
        uid = ws.integrations.create(kind, name=name).integration.uid
        await _connect(ws, service, uid)
        await engine.run(uid)
        made[key] = uid
    # Harbour Cafe's owner disconnected the app: its refresh is refused, so it needs a reconnect
    harbour = made["harbour"]
    with ws.db.write() as session:
        row = ws.integrations.find(session, harbour)
        assert row.id is not None
        stored = ws.credentials.get(session, row.id, OAUTH_TOKEN)
        assert stored is not None
        dead = replace(
            TokenSet.from_json(stored.value),
            refresh_token="revoked",  # noqa: S106 - a dead token, on purpose
            expires_at=0.0,
        )
        ws.credentials.put(session, row.id, OAUTH_TOKEN, dead.to_json())
    await engine.run(harbour)
    made["hook"] = ws.integrations.create(
        "webhook", name="Fiscal archive", values={"url": f"{receiver}/_sandbox/receiver"}
    ).integration.uid
    made["erp"] = ws.integrations.create("custom", name="ERP push").integration.uid
    ws.keys.create(made["erp"], "ERP production")
    # the ERP has pushed a few invoices (as through the ingest API); the webhook delivered them
    ws.ingest.accept(made["erp"], [_erp_invoice(n) for n in range(1, 6)])
    await DeliveryWorker(ws).drain()
    return made


def _erp_invoice(n: int) -> InvoiceData:
    day = date(2026, 1, 5) + timedelta(days=n)
    return InvoiceData(
        f"ERP-{1000 + n}", f"E-{1000 + n}", InvoiceKind.SALES, "Southern Cross Legal", day,
        day + timedelta(days=30), "NZD", Decimal(100 * n), Decimal(15 * n), Decimal(115 * n),
        "issued", None,
    )  # fmt: skip


def _free_port(wanted: int = 0) -> int:
    """``wanted`` when it is free on 127.0.0.1, else any free port."""
    for port in dict.fromkeys((wanted, 0)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            found: int = sock.getsockname()[1]
            return found
    raise OSError("no free port on 127.0.0.1")


def xero_webhook(box: Sandbox, port: int) -> dict[str, str]:
    """Point the Xero emulator's webhook at the server intdash will run on ``port`` of
    127.0.0.1, with a key it makes (as Xero does); returns the settings for that server."""
    key = box.xero.webhook.configure(f"http://127.0.0.1:{port}/v1/webhooks/xero")
    return {"INTDASH_SERVER__PORT": str(port), "INTDASH_XERO__WEBHOOK_KEY": key}


def _bookkeeping(box: Sandbox, stop: threading.Event) -> None:
    """Edits invoices now and then, so that every sync finds something new."""
    while not stop.wait(20):
        for emulator in box.emulators.values():
            emulator.dataset.touch_spread(3)


@click.command()
@click.option("--home", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the demo workspace here (default: a throwaway folder).")  # fmt: skip
def demo(home: Path | None) -> None:
    """Try intdash: emulated Xero, MYOB and Zoho Books, seeded integrations, live syncs."""
    from intdash.cli.common import CliState
    from intdash.cli.dashboard import run_dashboard

    throwaway = home is None
    folder = Path(tempfile.mkdtemp(prefix="intdash-demo-")) if home is None else home
    box = demo_sandbox().start()
    stop = threading.Event()
    try:
        for name in [n for n in os.environ if n.startswith("INTDASH_")]:
            del os.environ[name]
        os.environ.update(box.settings(f"http://localhost:{_free_port()}/callback"))
        os.environ["INTDASH_HOME"] = str(folder)
        # the dashboard serves on this port; Xero's events of the demo company come to it
        os.environ.update(xero_webhook(box, _free_port(DEFAULT_SERVER_PORT)))
        state = CliState()
        click.echo(f"Seeding a demo workspace in {folder} against the emulators on {box.url}…")
        made = asyncio.run(seed(state.workspace))
        click.echo(f"Seeded: {', '.join(made.values())}")
        click.echo(f"Xero posts its events to {box.xero.webhook.url}")
        threading.Thread(target=_bookkeeping, args=(box, stop), daemon=True).start()
        run_dashboard(state, read_only=False, no_mouse=False, theme=None)
        state.close()
    finally:
        stop.set()
        box.stop()
        if throwaway:
            shutil.rmtree(folder, ignore_errors=True)
