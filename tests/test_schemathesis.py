"""Schemathesis against a real ``intdash serve``: every check, positive and negative data, the
coverage phase and the stateful phase (over the document's links), a fixed seed. It must find
nothing: every answer is what the served OpenAPI document says, and what the document says is
valid is taken, what it says is not is refused.

Two rules the document states in words but JSON Schema cannot say (a batch holds each
external_id once; a due date is not before the issue date) are kept by the ``map_case`` hook
below in the data schemathesis generates as valid. The same hook signs the Xero webhook
deliveries it generates as valid with the webhook key the server is given (the signature covers
the exact bytes sent, which no schema can say), so that they are read, not refused unsigned.
This module is also that hook module (the schemathesis process imports it through
``SCHEMATHESIS_HOOKS``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import schemathesis
from schemathesis import Case, GenerationMode
from schemathesis.generation.meta import TestPhase
from schemathesis.hooks import HookContext

from intdash.core.workspace import Workspace
from tests.test_ingest import Served, custom

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261115
EXAMPLES = 200  # per operation and phase
WEBHOOK_KEY = "schemathesis-xero-webhook-key"
SIGNATURE = "x-xero-signature"


def _amount(value: Any) -> Decimal:
    return Decimal(value if isinstance(value, str) else repr(value))


def _lines_adding_up(invoice: dict[str, Any]) -> None:
    """The document's words on lines: they all include tax or none do, and their totals add
    up to the subtotal (the total when they include tax); payments come to no more than the
    total. The last line takes what balances them (or the lines go, if it would be too big)."""
    items = invoice.get("items")
    total = _amount(invoice["total"])
    if isinstance(items, list) and items:
        inclusive = bool(items[0].get("tax_inclusive"))
        for item in items:
            item["tax_inclusive"] = inclusive
        tax = _amount(invoice.get("tax", "0"))
        subtotal = invoice.get("subtotal")
        whole = total if inclusive else (_amount(subtotal) if subtotal is not None else total - tax)
        last = whole - sum((_amount(i["total"]) for i in items[:-1]), Decimal(0))
        if abs(last) < 10**12:
            items[-1]["total"] = str(last)
        else:
            invoice["items"] = None
    payments = invoice.get("payments")
    if payments and sum((_amount(p["amount"]) for p in payments), Decimal(0)) > total:
        invoice["payments"] = None


def _unrepeated(invoice: Any, taken: set[str]) -> None:
    if not isinstance(invoice, dict):
        return
    _lines_adding_up(invoice)
    issued, due = invoice.get("issue_date"), invoice.get("due_date")
    if isinstance(issued, str) and isinstance(due, str) and due < issued:
        invoice["issue_date"], invoice["due_date"] = due, issued
    external_id = invoice.get("external_id")
    if isinstance(external_id, str):
        n = len(taken)
        while external_id in taken:
            external_id, n = f"again-{n}", n + 1
        invoice["external_id"] = external_id
        taken.add(external_id)


@schemathesis.hook
def map_case(_context: HookContext, case: Case[Any]) -> Case[Any]:
    """Valid data as the document's words (not only its schemas) define it; in the stateful
    phase, single pushes (the link to GET reads a single push's answer)."""
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return case
    if case.operation.path == "/v1/webhooks/xero":
        if case.headers and SIGNATURE in case.headers:  # as requests serialises json=
            raw = json.dumps(case.body, allow_nan=False).encode("utf-8")
            digest = hmac.new(WEBHOOK_KEY.encode(), raw, hashlib.sha256).digest()
            case.headers[SIGNATURE] = base64.b64encode(digest).decode()
        return case
    body: Any = case.body
    batch = body.get("invoices") if isinstance(body, dict) else None
    if isinstance(batch, list) and batch and case.meta.phase.name is TestPhase.STATEFUL:
        body = case.body = batch[0]
        batch = None
    taken: set[str] = set()
    for invoice in batch if isinstance(batch, list) else [body]:
        _unrepeated(invoice, taken)
    return case


def test_schemathesis_finds_nothing(env: dict[str, str], ws: Workspace, tmp_path: Path) -> None:
    _, key = custom(ws, limit=1_000_000)
    limits = {"rate_per_second": "1000000", "rate_burst": "1000000"}
    webhooks = {**env, "INTDASH_XERO__WEBHOOK_KEY": WEBHOOK_KEY}
    with Served(webhooks, tmp_path / "serve.log", **limits) as served:
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("st")),
                "run",
                f"{served.url}/v1/openapi.json",
                "--checks",
                "all",
                "--mode",
                "all",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--seed",
                str(SEED),
                "--max-examples",
                str(EXAMPLES),
                "--workers",
                "1",
                "--header",
                f"Authorization: Bearer {key}",
                "--request-timeout",
                "30",
                "--output-truncate",
                "true",
            ],
            cwd=tmp_path,  # where schemathesis keeps its cache
            env={
                **os.environ,
                "SCHEMATHESIS_HOOKS": __name__,
                "PYTHONPATH": str(ROOT),
                "NO_COLOR": "1",
                "COLUMNS": "120",
            },
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    out = run.stdout + run.stderr
    summary = out[out.rfind("SUMMARY") :] if "SUMMARY" in out else out[-3000:]
    print(out[-4000:])  # the figures, for whoever runs it with -s
    assert run.returncode == 0, out[-20_000:]
    assert re.search(r"No issues found", out), summary
    assert re.search(r"API Links:\s+[12] covered", out), summary  # the stateful phase ran
    assert "Failed to extract" not in out, out[-20_000:]
    generated = re.search(r"(\d+) generated", out)
    assert generated is not None and int(generated[1]) >= 500, summary
    log = (tmp_path / "serve.log").read_text()
    assert "Xero sent events of organisation" in log  # signed deliveries were read
    errors = [line for line in log.splitlines() if "error" in line]
    assert not [line for line in errors if '"level": "error"' in line], errors[:5]
