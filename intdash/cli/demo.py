"""``intdash demo``: the emulators, a throwaway workspace seeded with one integration of each
type, and the dashboard with syncs running live. The Xero emulator posts signed events of its
invoice changes to the dashboard's own server, so that on the demo's Scale plan an edit in Xero
shows within seconds.

A workspace kept with ``--home`` is reused by the next run rather than seeded again: what
pointed at the previous run's emulators (their authorisations, the webhook's receiver) is
pointed at this run's. The settings of the environment are honoured, but for those that name
a workspace (the demo keeps to its folder), the platforms' and the fiscal register's (the
emulators are the demo's).

The demo fiscalizes through the emulated TaxCore V-SDC, as production does through the tax
authority's: the emulator runs beside the platforms' (its CA, taxpayer and state kept in the
demo's folder, so that a run on a kept folder resumes its counters and can refund what an earlier
run had signed), the taxpayer's certificate, password and PAC are kept in the workspace's vault as
``intdash fiscal configure`` keeps them, the emulated companies' tax codes are mapped to its
labels, and the dashboard sends the outbox as it syncs."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import click

from intdash.core.config import DEFAULT_SERVER_PORT, Settings, load_settings
from intdash.core.invoices import InvoiceData, InvoiceKind
from intdash.core.services.credentials import OAUTH_TOKEN
from intdash.core.status import Reason
from intdash.core.workspace import Workspace
from intdash.providers.base import TokenSet
from intdash.providers.connect import ConnectService
from intdash.providers.http import httpx
from intdash.providers.vsdc import certificate_of
from intdash.sandbox.myob import MyobEmulator
from intdash.sandbox.server import Sandbox
from intdash.sandbox.vsdc_server import VsdcServer
from intdash.sandbox.xero import XeroEmulator
from intdash.sandbox.zoho import ZohoEmulator
from intdash.sync.deliveries import DeliveryWorker
from intdash.sync.engine import SyncEngine
from intdash.sync.fiscalize import configure

DEMO_LIMIT = 2000  # invoices a month per integration: the MYOB company issues more
MARKER = "demo.json"  # in a kept demo workspace: what its last run pointed it at
SEEDED_NAMES = {"Acme Ltd", "Harbour Cafe", "Bay Traders", "Zylker Traders", "Fiscal archive",
                "ERP push"}  # fmt: skip
# settings that name a workspace: the demo's is its folder, never the operator's own
SET_ASIDE = ("INTDASH_HOME", "INTDASH_DATABASE_URL", "INTDASH_CONFIG", "INTDASH_SECRET_KEY")
RECEIVER = "/_sandbox/receiver"
VSDC_FOLDER = "vsdc"  # in the demo's folder: the V-SDC emulator's CA, taxpayer and state
# the emulated companies' tax codes and the emulated SDC's labels they are fiscalized with (MYOB's
# GST is Australia's 10 %, which Fiji's rates do not have: the demo takes it for the standard rate)
DEMO_TAX_CODES = {"xero": {"OUTPUT2": "A"}, "myob": {"GST": "A"},
                  "zoho": {"460000000057001": "A"}}  # fmt: skip


def demo_sandbox(vsdc_directory: Path | None = None) -> Sandbox:
    """Companies of different sizes, so that one integration runs over its monthly limit: the
    MYOB company (every invoice it lists is issued). Zoho Books reads each invoice's tax within
    its rate limit, so its invoices are fiscalized over several syncs. With ``vsdc_directory``,
    TaxCore's V-SDC emulator beside them, its CA and taxpayer kept there. Each company has
    credit notes too (some naming an invoice, some none yet), fiscalized as refunds."""
    return Sandbox(
        xero=XeroEmulator(size=1200, credit_notes=True),
        myob=MyobEmulator(size=2500, credit_every=50),
        zoho=ZohoEmulator(size=800, credit_notes=6),
        vsdc=vsdc_directory is not None,
        vsdc_directory=vsdc_directory,
    )


async def fiscal_setup(ws: Workspace, vsdc: VsdcServer) -> bool:
    """Keep the emulated taxpayer's .pfx, password and PAC in the workspace's vault, through
    the same checks as ``intdash fiscal configure`` (the SDC asked whether it takes them);
    kept already (a reused demo workspace, the same taxpayer): nothing. Returns whether they
    were kept now."""
    stored = await asyncio.to_thread(ws.fiscal.setup.certificate)
    given = certificate_of(vsdc.pfx, vsdc.password)
    same = stored is not None and stored.fingerprint == given.fingerprint
    if same and await asyncio.to_thread(ws.fiscal.setup.secrets) is not None:
        return False
    await configure(ws, vsdc.pfx, vsdc.password, vsdc.pac)
    return True


def map_tax_codes(ws: Workspace, made: dict[str, str]) -> None:
    """The emulated companies' tax codes mapped to the emulated SDC's labels."""
    for uid in made.values():
        kind = uid.split("-", 1)[0]
        for code, label in DEMO_TAX_CODES.get(kind, {}).items():
            ws.fiscal.setup.map_code(uid, code, label)


async def _connect(ws: Workspace, service: ConnectService, uid: str) -> None:
    flow = await service.begin(uid)
    async with httpx.AsyncClient() as client:  # the sandbox consents at once
        location = (await client.get(flow.url)).headers["location"]
    await service.complete(flow, location)


def _receiver(ws: Workspace) -> str:
    """The sandbox's webhook receiver (the sandbox the workspace's settings point at)."""
    return str(ws.settings.xero.api_url).removesuffix("/").removesuffix("/xero/api") + RECEIVER


async def seed(ws: Workspace) -> dict[str, str]:
    """One integration of each type, through the same services and flows an operator uses.
    The webhook delivers to the sandbox's receiver."""
    ws.plans.set("scale", monthly_limit=DEMO_LIMIT)
    service = ConnectService(ws)
    engine = SyncEngine(ws, service)
    vsdc = ws.settings.fiscal.register == "vsdc"
    made: dict[str, str] = {}
    for key, kind, name in (
        ("acme", "xero", "Acme Ltd"),
        ("harbour", "xero", "Harbour Cafe"),
        ("bay", "myob", "Bay Traders"),
        ("zylker", "zoho", "Zylker Traders"),
    ):
        uid = ws.integrations.create(kind, name=name).integration.uid
        if vsdc:  # before its first sync, so that nothing it records waits for a mapping
            map_tax_codes(ws, {key: uid})
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
        "webhook", name="Fiscal archive", values={"url": _receiver(ws)}
    ).integration.uid
    made["erp"] = ws.integrations.create("custom", name="ERP push").integration.uid
    ws.keys.create(made["erp"], "ERP production")
    # the ERP has pushed a few invoices (as through the ingest API); the webhook delivered them
    # (with the V-SDC as the register, once it has signed them: the dashboard sends the
    # outbox, the seeded companies' invoices first, as it syncs)
    ws.ingest.accept(made["erp"], [_erp_invoice(n) for n in range(1, 6)])
    await DeliveryWorker(ws).drain()
    return made


async def reuse(ws: Workspace, previous: str | None) -> list[str]:
    """Take up a demo workspace made by an earlier run: every integration stays as it is, but
    what pointed at that run's emulators points at this run's. Each platform's authorisation
    is given again through the same consent (the earlier emulators' tokens went with them),
    but for one never authorised or needing a reconnect (the demo's Harbour Cafe still does);
    a webhook that delivered to the earlier sandbox's receiver delivers to this one's.
    ``previous``: the earlier sandbox's address, when known. Returns what was changed."""
    receiver = _receiver(ws)
    service = ConnectService(ws)
    changed = []
    for view in ws.integrations.listing():
        reason = view.status.reason
        if view.spec.oauth and reason not in (Reason.NEEDS_AUTHORISATION,
                                              Reason.RECONNECT_NEEDED):  # fmt: skip
            await _connect(ws, service, view.uid)  # its sync is due now: the dashboard runs it
            changed.append(f"{view.uid} authorised again")
        url = str(view.settings.get("url") or "")
        if view.spec.delivers and url != receiver and _sandbox_receiver(url, previous):
            ws.integrations.configure(view.uid, {"url": receiver})
            changed.append(f"{view.uid} delivers to {receiver}")
    return changed


def _sandbox_receiver(url: str, previous: str | None) -> bool:
    """Whether ``url`` is an earlier demo sandbox's receiver (on loopback, by its path)."""
    if previous is not None and url == previous.rstrip("/") + RECEIVER:
        return True
    parts = urlsplit(url)
    return parts.hostname in ("127.0.0.1", "localhost", "::1") and parts.path == RECEIVER


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


def xero_webhook(
    box: Sandbox, port: int, host: str = "127.0.0.1", key: str | None = None
) -> dict[str, str]:
    """Point the Xero emulator's webhook at the server intdash will run on ``host``:``port``,
    with ``key`` or one it makes (as Xero does); returns the settings for that server."""
    reach = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - any address
    reach = f"[{reach}]" if ":" in reach else reach
    key = box.xero.webhook.configure(f"http://{reach}:{port}/v1/webhooks/xero", key)
    return {"INTDASH_SERVER__PORT": str(port), "INTDASH_XERO__WEBHOOK_KEY": key}


def demo_environment(box: Sandbox, folder: Path) -> list[str]:
    """Point this process's settings at the demo: its folder and the emulators (with the
    V-SDC's, the register is the V-SDC). Every other ``INTDASH_`` setting of the environment
    is kept; those that would name another workspace are set aside (returned, to be said)."""
    aside = [name for name in SET_ASIDE if name in os.environ and name != "INTDASH_HOME"]
    for name in SET_ASIDE:
        os.environ.pop(name, None)
    os.environ.update(box.settings(f"http://localhost:{_free_port()}/callback"))
    if box.vsdc is not None:
        os.environ["INTDASH_FISCAL__REGISTER"] = "vsdc"
    os.environ["INTDASH_HOME"] = str(folder)
    return aside


def server_port(settings: Settings, previous: int | None) -> int:
    """The dashboard's port: the one set, else the previous run's or 8470 when free, else any
    free one."""
    if "port" in settings.server.model_fields_set:
        return settings.server.port
    if previous is not None and _free_port(previous) == previous:
        return previous
    return _free_port(DEFAULT_SERVER_PORT)


def earlier_run(folder: Path) -> dict[str, object] | None:
    """What the last run in ``folder`` left (see ``MARKER``); None when none did."""
    try:
        found = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _foreign(ws: Workspace) -> bool:
    """Whether the workspace holds integrations that no demo made (an operator's own)."""
    return any(view.name not in SEEDED_NAMES for view in ws.integrations.listing())


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
    before = None if home is None else earlier_run(home)
    vsdc_folder = folder / VSDC_FOLDER
    made_vsdc_folder = not vsdc_folder.exists()
    try:
        box = demo_sandbox(vsdc_folder).start()
    except (OSError, RuntimeError) as exc:  # such as a V-SDC state that cannot be read
        if throwaway:
            shutil.rmtree(folder, ignore_errors=True)
        raise click.ClickException(f"the demo's emulators could not start: {exc}") from exc
    stop = threading.Event()
    try:
        aside = demo_environment(box, folder)
        if aside:
            click.echo(f"The demo keeps to its own folder: {', '.join(aside)} set aside.")
        settings = load_settings()
        previous_port = before.get("server_port") if before else None
        port = server_port(settings, previous_port if isinstance(previous_port, int) else None)
        # the dashboard serves on this port; Xero's events of the demo company come to it
        key = settings.xero.webhook_key.get_secret_value() or None  # the one set, else made
        os.environ.update(xero_webhook(box, port, settings.server.host, key))
        state = CliState()
        ws = state.workspace
        kept = bool(ws.integrations.listing(include_removed=True))
        if kept and before is None and _foreign(ws):
            if made_vsdc_folder:  # nothing of the demo's is left in another's folder
                shutil.rmtree(vsdc_folder, ignore_errors=True)
            raise click.ClickException(
                f"{folder} holds a workspace that intdash demo did not make: give the demo "
                "a folder of its own"
            )
        assert box.vsdc is not None
        if asyncio.run(fiscal_setup(ws, box.vsdc)):  # before anything is recorded
            click.echo(f"The V-SDC emulator on {box.vsdc.url} signs the invoices")
        if kept:
            click.echo(f"Reusing the demo workspace in {folder} (emulators on {box.url})…")
            previous = before.get("sandbox") if before else None
            changed = asyncio.run(reuse(ws, previous if isinstance(previous, str) else None))
            click.echo("Reused: " + ("; ".join(changed) or "nothing needed changing"))
        else:
            click.echo(f"Seeding a demo workspace in {folder} against the emulators on {box.url}…")
            made = asyncio.run(seed(ws))
            click.echo(f"Seeded: {', '.join(made.values())}")
        if not throwaway:
            marker = {"sandbox": box.url, "server_port": port}
            (folder / MARKER).write_text(json.dumps(marker) + "\n")
        click.echo(f"Xero posts its events to {box.xero.webhook.url}")
        click.echo(f"Verification pages (no client certificate) on {box.vsdc.verify_url}")
        if box.vsdc.verify_moved_from is not None:
            click.echo(
                f"(port {box.vsdc.verify_moved_from} of the earlier runs' verification pages is "
                "taken: their verification URLs do not answer)"
            )
        threading.Thread(target=_bookkeeping, args=(box, stop), daemon=True).start()
        run_dashboard(state, read_only=False, no_mouse=False, theme=None)
        state.close()
    finally:
        stop.set()
        box.stop()
        if throwaway:
            shutil.rmtree(folder, ignore_errors=True)
