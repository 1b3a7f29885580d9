"""``intdash fiscal ...``: the taxpayer's certificate and PAC for TaxCore's V-SDC, its status,
tax codes mapped to its labels, and what it refused sent again."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from intdash.cli.common import CliState, emit_json, fail, json_option, pass_state, print_table
from intdash.core.errors import IntdashError


@click.group()
def fiscal() -> None:
    """Fiscalization by TaxCore's V-SDC (INTDASH_FISCAL__REGISTER=vsdc): the taxpayer's
    certificate and PAC, the SDC's status, tax codes mapped to its labels, retries."""


def _line(what: str) -> str:
    line = sys.stdin.readline()
    if not line:
        fail(
            f"standard input ended before the {what} (give the PAC, then the password, a line each)"
        )
    return line.rstrip("\r\n")


@fiscal.command()
@click.option(
    "--pfx",
    "pfx_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The taxpayer's PKCS#12 certificate file (.pfx), as the tax authority issued it.",
)
@click.option(
    "--pac",
    type=click.Choice(["-"]),
    required=True,
    help="'-': read from standard input, the PAC on the first line and the .pfx's password on "
    "the second (never on the command line, where other users can see it).",
)
@json_option
@pass_state
def configure(state: CliState, pfx_path: Path, pac: str, as_json: bool) -> None:
    """Keep the taxpayer's .pfx, its password and the PAC in the vault (encrypted).

    Reads the PAC, then the password, from standard input, one a line. The password must open
    the .pfx and its certificate must not have expired; with INTDASH_FISCAL__VSDC_URL set, the
    SDC is asked whether it takes them. Prints the certificate's subject and expiry.
    """
    from intdash.sync.fiscalize import configure as keep

    try:
        pfx = pfx_path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {pfx_path}: {exc.strerror or exc}")
    code = _line("PAC")
    password = _line("password")
    try:
        done = asyncio.run(keep(state.workspace, pfx, password, code))
    except IntdashError as exc:
        fail(f"{pfx_path}: {exc}; nothing was kept")
    certificate = done.certificate
    if as_json:
        emit_json({**certificate.to_json(), "warning": done.warning})
    else:
        click.echo(f"Kept the certificate of {certificate.subject}")
        click.echo(f"  expires {certificate.not_after:%Y-%m-%d %H:%M} UTC")
    if done.warning:
        click.echo(f"intdash: warning: {done.warning}", err=True)


@fiscal.command()
@json_option
@pass_state
def status(state: CliState, as_json: bool) -> None:
    """The SDC's status: its tax labels, the certificate's expiry, the outbox's counts.

    Asks the SDC when the V-SDC is the register and the secrets are kept; shows what was last
    known otherwise.
    """
    ws = state.workspace
    settings = ws.settings.fiscal
    asked: str | None = None
    if settings.register == "vsdc" and ws.fiscal.setup.secrets() is not None:
        from intdash.providers.vsdc import SdcError
        from intdash.sync.fiscalize import FiscalSender

        async def ask() -> None:
            await FiscalSender(ws).refresh_labels()

        try:
            asyncio.run(ask())
        except (SdcError, IntdashError) as exc:
            asked = str(exc)
    now = ws.clock()
    setup = ws.fiscal.setup
    certificate = setup.certificate()
    warning = certificate.warning(now) if certificate else None
    down = setup.unavailable()
    sdc = setup.status() or {}
    labels = setup.labels()
    counts = ws.fiscal.counts()
    found: dict[str, Any] = {
        "register": settings.register,
        "url": settings.vsdc_url or None,
        "certificate": certificate.to_json() if certificate else None,
        "certificate_warning": warning,
        "sdc_time": sdc.get("sdcDateTime"),
        "sdc_uid": sdc.get("uid"),
        "tax_group": setup.group(),
        "labels": [{"label": x.label, "rate": str(x.rate), "category": x.category} for x in labels],
        "unavailable_since": down[0].isoformat() if down else None,
        "unavailable": down[1] if down else asked,
        "outbox": counts.to_json(),
        "mappings": [{"integration": u, "code": c, "label": x} for u, c, x in setup.mappings()],
    }
    if as_json:
        emit_json(found)
        return
    local = " (the local hash chain: INTDASH_FISCAL__REGISTER=vsdc for TaxCore's V-SDC)"
    click.echo(f"register      {settings.register}{'' if settings.register == 'vsdc' else local}")
    click.echo(f"SDC           {settings.vsdc_url or '(INTDASH_FISCAL__VSDC_URL not set)'}")
    if down or asked:
        since = f" since {down[0].astimezone():%Y-%m-%d %H:%M}" if down else ""
        click.echo(f"  unavailable{since}: {down[1] if down else asked}")
    elif sdc:
        click.echo(f"  answers     its time {sdc.get('sdcDateTime')}, UID {sdc.get('uid')}")
    if certificate is None:
        click.echo("certificate   none kept: intdash fiscal configure --pfx FILE --pac -")
    else:
        click.echo(f"certificate   {certificate.subject}")
        click.echo(f"  expires     {certificate.not_after:%Y-%m-%d}")
        if warning:
            click.echo(f"  warning     {warning}")
    group = setup.group()
    shown = ", ".join(x.describe() for x in labels) or "not read yet"
    click.echo(f"labels        {shown}" + (f" (group {group})" if group is not None else ""))
    click.echo(
        f"outbox        {counts.pending} pending, {counts.sent} sent, {counts.signed} signed, "
        f"{counts.failed} failed" + (" (intdash fiscal retry)" if counts.failed else "")
    )
    if warning:
        click.echo(f"intdash: warning: {warning}", err=True)


@fiscal.command()
@click.argument("uid", required=False)
@json_option
@pass_state
def retry(state: CliState, uid: str | None, as_json: bool) -> None:
    """Send again what the SDC refused (of UID, or every integration's), after the fix: each
    request is built afresh (mappings, labels) under a new RequestId."""
    count = state.workspace.fiscal.retry(uid)
    if as_json:
        emit_json({"retried": count})
    else:
        click.echo(f"{count} invoice{'' if count == 1 else 's'} to be sent to the SDC again.")


@fiscal.command()
@json_option
@pass_state
def run(state: CliState, as_json: bool) -> None:
    """Send the fiscal outbox to the SDC now, in the foreground (serve and the dashboard do it
    every few seconds; a script may after 'intdash sync'). Exits 1 when the SDC could not be
    reached or the secrets are not kept."""
    from intdash.sync.fiscalize import FiscalSender

    sender = FiscalSender(state.workspace)
    if not sender.enabled:
        fail("the register is the local hash chain (INTDASH_FISCAL__REGISTER=vsdc for the V-SDC)")
    answered = asyncio.run(sender.drain())
    counts = state.workspace.fiscal.counts()
    if as_json:
        emit_json({"answered": answered, "problem": sender.last_problem, **counts.to_json()})
    else:
        click.echo(
            f"{answered} answered by the SDC; {counts.pending + counts.sent} waiting, "
            f"{counts.failed} refused."
        )
    if sender.last_problem:
        fail(sender.last_problem)


@fiscal.command("map")
@click.argument("uid")
@click.argument("code")
@click.argument("label", required=False)
@click.option("--remove", is_flag=True, help="Forget CODE's mapping.")
@pass_state
def map_code(state: CliState, uid: str, code: str, label: str | None, remove: bool) -> None:
    """Fiscalize the tax CODE of integration UID with TaxCore's LABEL (e.g. OUTPUT2 A).

    CODE is the platform's own (Xero's TaxType, MYOB's tax code, Zoho's tax id); '-' stands for
    lines without one. A line whose code is not mapped takes the one label of its exact rate,
    and fails naming its code when there is none or several.
    """
    setup = state.workspace.fiscal.setup
    if remove:
        setup.unmap_code(uid, code)
        click.echo(f"Tax code {code} of {uid} is no longer mapped.")
        return
    if label is None:
        fail("give the LABEL to map CODE to, or --remove (see 'intdash fiscal map --help')", 2)
    setup.map_code(uid, code, label)
    click.echo(f"Tax code {code} of {uid} is fiscalized with label {label.strip().upper()}.")


@fiscal.command("mappings")
@click.argument("uid", required=False)
@json_option
@pass_state
def mappings(state: CliState, uid: str | None, as_json: bool) -> None:
    """The tax codes mapped to labels (of UID, or of every integration)."""
    found = state.workspace.fiscal.setup.mappings(uid)
    if as_json:
        emit_json([{"integration": u, "code": c, "label": x} for u, c, x in found])
        return
    print_table(["INTEGRATION", "CODE", "LABEL"], [list(row) for row in found])
