"""The V-SDC emulator's verification site: what the ``verificationUrl`` of a signed invoice (and
its QR code) opens, as TaxCore's public verification site does, asking for no client certificate.

``GET /v/?vl=TOKEN`` answers the invoice as signed: to a browser (``Accept`` naming
``text/html``, as a phone's does) a page with the SDC invoice number and time, the counter, the
business, the total, the tax items and the journal; to anything else JSON (``"status":
"Valid"`` and those fields as the response has them). A token the SDC never gave (an unknown or
tampered URL), or an invoice whose signature no longer holds over what is kept, is 404.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from intdash.sandbox.vsdc_receipt import money

if TYPE_CHECKING:
    from intdash.sandbox.vsdc import VsdcEmulator

PUBLIC = (
    "invoiceNumber", "sdcDateTime", "requestedBy", "signedBy", "totalAmount", "taxItems",
    "invoiceCounter", "invoiceCounterExtension", "businessName", "tin", "journal",
)  # fmt: skip
NOT_FOUND = {
    "Message": "No such invoice.",
    "MessageDetails": [{"Code": "2805", "Property": "vl", "Message": "not a verification code"}],
}


def verification_app(emulator: VsdcEmulator) -> Starlette:
    """The verification site of ``emulator``, for a listener of its own."""

    async def verify(request: Request) -> Response:
        with emulator.lock:
            found = emulator.state.by_token.get(request.query_params.get("vl", ""))
        browser = "text/html" in request.headers.get("accept", "")
        if found is None or not emulator.signer.verify(found.response):
            return HTMLResponse(not_found_page(), 404) if browser else JSONResponse(NOT_FOUND, 404)
        if browser:
            return HTMLResponse(verification_page(found.response))
        return JSONResponse({"status": "Valid", **{k: found.response[k] for k in PUBLIC}})

    return Starlette(routes=[Route("/v/", verify)])


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:sans-serif;max-width:42em;margin:1em auto;padding:0 1em}}
th,td{{padding:.2em .8em .2em 0;text-align:left;vertical-align:top}}
td.n{{text-align:right}} pre{{background:#f4f4f4;padding:.8em;overflow-x:auto}}</style>
</head><body>
{body}
</body></html>
"""


def verification_page(response: dict[str, Any]) -> str:
    """The invoice as signed, as TaxCore's verification site shows it to a phone."""
    e = html.escape
    facts = [
        ("SDC invoice number", response["invoiceNumber"]),
        ("SDC time", response["sdcDateTime"]),
        ("Invoice counter", response["invoiceCounter"]),
        ("Business", f"{response['businessName']} (TIN {response['tin']})"),
        ("Total amount", money(response["totalAmount"])),
        ("Requested by", response["requestedBy"]),
        ("Signed by", response["signedBy"]),
    ]
    rows = "\n".join(
        f"<tr><th>{e(name)}</th><td>{e(str(value))}</td></tr>" for name, value in facts
    )
    taxes = "\n".join(
        f"<tr><td>{e(str(t['label']))}</td><td>{e(str(t['categoryName']))}</td>"
        f"<td class=n>{float(t['rate']):.2f}%</td><td class=n>{money(t['amount'])}</td></tr>"
        for t in response["taxItems"]
    )
    journal_text = response.get("journal")
    body = (
        "<h1>Invoice is valid</h1>\n"
        f"<table>\n{rows}\n</table>\n<h2>Tax items</h2>\n<table>\n"
        "<tr><th>Label</th><th>Category</th><th>Rate</th><th>Tax</th></tr>\n"
        f"{taxes}\n</table>\n"
        + (f"<h2>Journal</h2>\n<pre>{e(str(journal_text))}</pre>" if journal_text else "")
    )
    return PAGE.format(title=e(f"Invoice {response['invoiceNumber']}"), body=body)


def not_found_page() -> str:
    return PAGE.format(
        title="No such invoice",
        body="<h1>No such invoice</h1>\n<p>This verification code is not one of an invoice "
        "this SDC signed.</p>",
    )
