"""The V-SDC emulator, called as a taxpayer's system calls TaxCore: HTTPS with a client
certificate from a .pfx, the PAC header, JSON invoices."""

from __future__ import annotations

import base64
import os
import re
import ssl
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import segno

from intdash.providers.http import httpx
from intdash.sandbox.vsdc_pki import VsdcPki, client_context, foreign_taxpayer, load_taxpayer
from intdash.sandbox.vsdc_server import VsdcServer
from tests.vsdc import refund_of, sale, vsdc_client, vsdc_emulator, vsdc_pki
from tests.waiting import wait_for

__all__ = ["vsdc_emulator", "vsdc_pki"]


def sign(
    server: VsdcServer,
    body: dict[str, Any],
    *,
    request_id: str | None = None,
    pac: str | None = None,
) -> httpx.Response:
    headers = {"PAC": pac or server.pac} | ({"RequestId": request_id} if request_id else {})
    with vsdc_client(server) as client:
        return client.post("/api/v3/invoices", json=body, headers=headers)


def signed(server: VsdcServer, body: dict[str, Any], **options: Any) -> dict[str, Any]:
    response = sign(server, body, **options)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def problems(response: httpx.Response) -> dict[str, str]:
    """The answer's MessageDetails, property -> message (TaxCore's error shape checked)."""
    body = response.json()
    assert set(body) == {"Message", "MessageDetails"} and body["Message"], body
    for entry in body["MessageDetails"]:
        assert set(entry) == {"Code", "Property", "Message"}, entry
    return {entry["Property"]: entry["Message"] for entry in body["MessageDetails"]}


# -- signing -------------------------------------------------------------------------------------


def test_a_sale_is_signed_with_everything_taxcore_answers(vsdc_emulator: VsdcServer) -> None:
    server = vsdc_emulator
    answer = signed(server, sale(("Consulting", "115.00", "A"), ("Books", "20.00", "B")))
    taxpayer, sdc = server.taxpayer.uid, server.emulator.uid
    assert re.fullmatch(r"[A-Z0-9]{8}-[A-Z0-9]{8}-1", answer["invoiceNumber"])
    assert answer["invoiceNumber"] == f"{taxpayer}-{sdc}-1"
    assert (answer["requestedBy"], answer["signedBy"]) == (taxpayer, sdc)
    assert answer["invoiceCounter"] == "1/1NS" and answer["invoiceCounterExtension"] == "NS"
    assert answer["totalAmount"] == 135.0 and answer["taxGroupRevision"] == 1
    assert answer["taxItems"] == [
        {"label": "A", "categoryName": "VAT", "categoryType": 0, "rate": 15.0, "amount": 15.0},
        {"label": "B", "categoryName": "VAT", "categoryType": 0, "rate": 0.0, "amount": 0.0},
    ]
    assert answer["invoiceNumber"] in answer["journal"] and "Consulting (A)" in answer["journal"]
    assert answer["tin"] == server.taxpayer.tin and answer["businessName"] == server.taxpayer.name
    assert answer["sdcDateTime"].endswith("+12:00")
    assert server.emulator.verify(answer)
    assert not server.emulator.verify({**answer, "totalAmount": 1.0})
    assert answer["verificationUrl"].startswith(f"{server.verify_url}/v/?vl=")
    with vsdc_client(server) as client:
        shown = client.get(answer["verificationUrl"]).json()
    assert shown["status"] == "Valid" and shown["invoiceNumber"] == answer["invoiceNumber"]


def png_modules(data: bytes) -> list[list[bool]]:
    """The dark pixels of a 1-bit greyscale PNG, row by row (what segno writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks, header = 8, b"", b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        payload = data[offset + 8 : offset + 8 + length]
        header = payload if kind == b"IHDR" else header
        chunks += payload if kind == b"IDAT" else b""
        offset += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert (depth, colour) == (1, 0)
    raw = zlib.decompress(chunks)
    stride = (width + 7) // 8
    rows: list[list[bool]] = []
    previous = bytes(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        method, row = line[0], bytearray(line[1:])
        for i in range(stride):
            left, up = (row[i - 1] if i else 0), previous[i]
            corner = previous[i - 1] if i else 0
            if method == 1:
                row[i] = (row[i] + left) & 0xFF
            elif method == 2:
                row[i] = (row[i] + up) & 0xFF
            elif method == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif method == 4:  # Paeth
                guess = left + up - corner
                a, b, c = abs(guess - left), abs(guess - up), abs(guess - corner)
                near = left if a <= b and a <= c else up if b <= c else corner
                row[i] = (row[i] + near) & 0xFF
        previous = bytes(row)
        rows.append([not (row[x // 8] >> (7 - x % 8)) & 1 for x in range(width)])
    return rows


def test_the_qr_code_is_a_png_of_the_verification_url(vsdc_emulator: VsdcServer) -> None:
    answer = signed(vsdc_emulator, sale())
    pixels = png_modules(base64.b64decode(answer["verificationQRCode"]))
    expected = [
        [bool(m) for m in row] for row in segno.make(answer["verificationUrl"], error="m").matrix
    ]
    size = len(expected) + 8  # the quiet zone: 4 modules each side
    scale = len(pixels) // size
    assert scale >= 1 and len(pixels) == size * scale
    seen = [
        [pixels[(y + 4) * scale][(x + 4) * scale] for x in range(len(expected))]
        for y in range(len(expected))
    ]
    assert seen == expected


def test_counters_only_go_up_per_kind_and_in_total(vsdc_emulator: VsdcServer) -> None:
    first = signed(vsdc_emulator, sale())
    second = signed(vsdc_emulator, sale(("Tea", "5.75", "A")))
    refund = signed(vsdc_emulator, refund_of(first, sale()))
    third = signed(vsdc_emulator, sale())
    assert [a["totalCounter"] for a in (first, second, refund, third)] == [1, 2, 3, 4]
    assert [a["invoiceCounter"] for a in (first, second, refund, third)] == [
        "1/1NS", "2/2NS", "1/3NR", "3/4NS",
    ]  # fmt: skip
    assert refund["invoiceCounterExtension"] == "NR" and refund["transactionTypeCounter"] == 1
    assert first["invoiceNumber"] in refund["journal"]


def test_a_refund_must_name_an_invoice_this_sdc_signed(
    vsdc_emulator: VsdcServer, vsdc_pki: VsdcPki
) -> None:
    server = vsdc_emulator
    original = signed(server, sale())
    unknown = {**original, "invoiceNumber": f"{server.taxpayer.uid}-{server.emulator.uid}-99"}
    assert (
        "is not an invoice this SDC signed"
        in problems(sign(server, refund_of(unknown, sale())))["ReferentDocumentNumber"]
    )
    late = {**original, "sdcDateTime": "2020-01-01T00:00:00.000+12:00"}
    assert "was signed at" in problems(sign(server, refund_of(late, sale())))["ReferentDocumentDT"]
    bare = {**sale(), "TransactionType": 1}
    assert "ReferentDocumentNumber" in problems(sign(server, bare))
    refund = signed(server, refund_of(original, sale()))
    assert (
        "is a refund" in problems(sign(server, refund_of(refund, sale())))["ReferentDocumentNumber"]
    )
    # another taxpayer of the same SDC cannot refund it
    other = vsdc_pki.taxpayer("Other Ltd")
    with vsdc_client(server, other) as client:
        response = client.post(
            "/api/v3/invoices", json=refund_of(original, sale()), headers={"PAC": other.pac}
        )
    assert response.status_code == 400 and "ReferentDocumentNumber" in problems(response)


# -- who may call ----------------------------------------------------------------------------------


def test_a_wrong_or_missing_pac_is_unauthorised(vsdc_emulator: VsdcServer) -> None:
    wrong = "ZZZZZ9" if vsdc_emulator.pac != "ZZZZZ9" else "ZZZZZ8"
    response = sign(vsdc_emulator, sale(), pac=wrong)
    assert response.status_code == 401 and "PAC" in problems(response)
    with vsdc_client(vsdc_emulator) as client:
        response = client.post("/api/v3/invoices", json=sale())
        assert response.status_code == 401 and problems(response)["PAC"] == "no PAC header"
        assert client.get("/api/v3/status", headers={"PAC": wrong}).status_code == 401
    assert vsdc_emulator.emulator.count() == 0


def test_another_taxpayers_pac_is_not_this_certificates(
    vsdc_emulator: VsdcServer, vsdc_pki: VsdcPki
) -> None:
    other = vsdc_pki.taxpayer("Other Ltd")
    assert sign(vsdc_emulator, sale(), pac=other.pac).status_code == 401


def tls_refused(server: VsdcServer, verify: Any) -> None:
    calls = server.emulator.api_calls
    with (
        pytest.raises(httpx.TransportError),
        httpx.Client(base_url=server.url, verify=verify, timeout=10) as client,
    ):
        client.post("/api/v3/invoices", json=sale(), headers={"PAC": server.pac})
    assert server.emulator.api_calls == calls and server.emulator.count() == 0


def test_no_client_certificate_is_refused_in_the_handshake(vsdc_emulator: VsdcServer) -> None:
    tls_refused(vsdc_emulator, ssl.create_default_context(cafile=vsdc_emulator.ca_path))


def test_an_expired_certificate_is_refused(vsdc_emulator: VsdcServer, vsdc_pki: VsdcPki) -> None:
    old = vsdc_pki.taxpayer("Lapsed Ltd", expired=True)
    tls_refused(vsdc_emulator, client_context(old.pfx, old.password, vsdc_emulator.ca_path))


def test_another_cas_certificate_is_refused(vsdc_emulator: VsdcServer) -> None:
    stranger = foreign_taxpayer()
    tls_refused(
        vsdc_emulator, client_context(stranger.pfx, stranger.password, vsdc_emulator.ca_path)
    )


def test_the_pfx_needs_its_password(vsdc_emulator: VsdcServer) -> None:
    with pytest.raises(ValueError):
        load_taxpayer(vsdc_emulator.pfx, "not the password", vsdc_emulator.pac)
    loaded = load_taxpayer(vsdc_emulator.pfx, vsdc_emulator.password, vsdc_emulator.pac)
    assert loaded.uid == vsdc_emulator.taxpayer.uid and loaded.tin == vsdc_emulator.taxpayer.tin
    assert re.fullmatch(r"[A-Z0-9]{6}", vsdc_emulator.pac)
    assert vsdc_emulator.pfx_path.read_bytes() == vsdc_emulator.pfx


def test_a_kept_directory_keeps_its_ca_and_taxpayer(tmp_path: Path) -> None:
    with VsdcServer(directory=tmp_path) as first:
        answer = signed(first, sale())
        ca, pfx, pac = first.ca_path.read_bytes(), first.pfx, first.pac
    assert answer["totalCounter"] == 1
    with VsdcServer(directory=tmp_path) as second:
        assert (second.ca_path.read_bytes(), second.pfx, second.pac) == (ca, pfx, pac)
        assert signed(second, sale())["requestedBy"] == answer["requestedBy"]


# -- what is checked -------------------------------------------------------------------------------


def test_an_unknown_label_is_refused_by_name(vsdc_emulator: VsdcServer) -> None:
    found = problems(sign(vsdc_emulator, sale(("Fuel", "10.00", "Z"))))
    assert "'Z'" in found["Items[0].Labels"] and "A, B, C" in found["Items[0].Labels"]


def item(**changes: Any) -> dict[str, Any]:
    body = sale()
    body["Items"][0] |= changes
    return body


@pytest.mark.parametrize(
    ("body", "prop", "words"),
    [
        ({**sale(), "InvoiceType": 7}, "InvoiceType", "must be one of"),
        ({**sale(), "TransactionType": "Sale"}, "TransactionType", "must be one of"),
        ({k: v for k, v in sale().items() if k != "Items"}, "Items", "required"),
        ({**sale(), "Items": []}, "Items", "at least one"),
        ({**sale(), "Payment": []}, "Payment", "at least one"),
        (
            {**sale(), "Payment": [{"Amount": 115.0, "PaymentType": 9}]},
            "Payment[0].PaymentType",
            "one of",
        ),
        ({**sale(), "Payment": [{"Amount": 100.0, "PaymentType": 1}]}, "Payment", "add up to"),
        (item(Name=""), "Items[0].Name", "required"),
        (item(Quantity=0), "Items[0].Quantity", "above zero"),
        (item(UnitPrice="115.00"), "Items[0].UnitPrice", "a number"),
        (item(UnitPrice=115.00001), "Items[0].UnitPrice", "4 decimal places"),
        (item(TotalAmount=114.0), "Items[0].TotalAmount", "Quantity * UnitPrice"),
        (item(Labels=[]), "Items[0].Labels", "at least one"),
        (item(Labels=["A", "A"]), "Items[0].Labels", "twice"),
        (item(GTIN="12ab"), "Items[0].GTIN", "8 to 14 digits"),
        (item(Colour="red"), "Items[0].Colour", "not a property"),
        ({**sale(), "DateAndTimeOfIssue": "yesterday"}, "DateAndTimeOfIssue", "ISO 8601"),
        ({**sale(), "Cashier": "x" * 51}, "Cashier", "longer than 50"),
    ],
)
def test_a_request_taxcore_would_refuse_is_refused_naming_the_property(
    vsdc_emulator: VsdcServer, body: dict[str, Any], prop: str, words: str
) -> None:
    response = sign(vsdc_emulator, body)
    assert response.status_code == 400
    found = problems(response)
    assert words in found[prop], found
    assert vsdc_emulator.emulator.count() == 0


def test_property_names_are_read_in_any_case_and_json_is_required(
    vsdc_emulator: VsdcServer,
) -> None:
    lower = {key[0].lower() + key[1:]: value for key, value in sale().items()}
    assert signed(vsdc_emulator, lower)["totalAmount"] == 115.0
    with vsdc_client(vsdc_emulator) as client:
        response = client.post(
            "/api/v3/invoices", content=b"InvoiceType=0", headers={"PAC": vsdc_emulator.pac}
        )
        assert response.status_code == 415 and "Content-Type" in problems(response)
        response = client.post(
            "/api/v3/invoices",
            content=b"{not json",
            headers={"PAC": vsdc_emulator.pac, "Content-Type": "application/json"},
        )
        assert response.status_code == 400 and "request" in problems(response)


# -- RequestId and reconciling ---------------------------------------------------------------------


def test_the_same_request_id_answers_the_same_signed_invoice(
    vsdc_emulator: VsdcServer, vsdc_pki: VsdcPki
) -> None:
    server = vsdc_emulator
    first = signed(server, sale(), request_id="outbox-1")
    assert signed(server, sale(), request_id="outbox-1") == first
    assert server.emulator.count() == 1 and [
        s.number for s in server.emulator.find("outbox-1")
    ] == [first["invoiceNumber"]]
    response = sign(server, sale(("Other", "1.00", "A")), request_id="outbox-1")
    assert response.status_code == 409 and "RequestId" in problems(response)
    assert signed(server, sale(), request_id="outbox-2")["totalCounter"] == 2
    other = vsdc_pki.taxpayer("Other Ltd")  # RequestIds are each taxpayer's own
    with vsdc_client(server, other) as client:
        theirs = client.post(
            "/api/v3/invoices", json=sale(), headers={"PAC": other.pac, "RequestId": "outbox-1"}
        ).json()
    assert theirs["requestedBy"] == other.uid and theirs["totalCounter"] == 1
    assert sign(server, sale(), request_id="x" * 33).status_code == 400


def test_what_was_signed_can_be_looked_up_to_reconcile(vsdc_emulator: VsdcServer) -> None:
    server = vsdc_emulator
    headers = {"PAC": server.pac}
    with vsdc_client(server) as client:
        assert client.get("/api/v3/status").json()["lastInvoiceNumber"] is None
        missing = client.get("/api/v3/invoices/requests/outbox-7", headers=headers)
        assert missing.status_code == 404 and "RequestId" in problems(missing)
        answer = signed(server, sale(), request_id="outbox-7")
        looked_up = client.get("/api/v3/invoices/requests/outbox-7", headers=headers)
        assert looked_up.json() == answer
        assert client.get("/api/v3/status").json()["lastInvoiceNumber"] == answer["invoiceNumber"]
        listed = client.get("/_sandbox/vsdc/invoices", params={"requestId": "outbox-7"}).json()
    assert [row["invoiceNumber"] for row in listed["invoices"]] == [answer["invoiceNumber"]]


# -- status and tax rates --------------------------------------------------------------------------


def labels(status: dict[str, Any]) -> dict[str, float]:
    return {
        rate["label"]: rate["rate"]
        for category in status["currentTaxRates"]["taxCategories"]
        for rate in category["taxRates"]
    }


def test_status_gives_fijis_rates_and_a_change_bumps_the_group(vsdc_emulator: VsdcServer) -> None:
    server = vsdc_emulator
    with vsdc_client(server) as client:
        status = client.get("/api/v3/status", headers={"PAC": server.pac}).json()
        assert labels(status) == {"A": 15.0, "B": 0.0, "C": 0.0}
        assert status["currentTaxRates"]["groupId"] == 1 and status["uid"] == server.emulator.uid
        assert status["gsc"] == ["0000"] and len(status["allTaxRates"]) == 1
        assert {c["name"] for c in status["currentTaxRates"]["taxCategories"]} == {"VAT", "Exempt"}
        server.emulator.set_rates({"A": 12.5, "C": 0})
        status = client.get("/api/v3/status").json()
        assert labels(status) == {"A": 12.5, "C": 0.0} and status["currentTaxRates"]["groupId"] == 2
        assert [g["groupId"] for g in status["allTaxRates"]] == [1, 2]
        answer = signed(server, sale(("Tea", "112.50", "A")))
        assert answer["taxGroupRevision"] == 2 and answer["taxItems"][0]["amount"] == 12.5
        assert "Items[0].Labels" in problems(sign(server, sale(("Juice", "1.00", "B"))))
        changed = client.post("/_sandbox/vsdc/rates", json={"rates": {"A": 15, "B": 0, "D": 9}})
        assert changed.json()["groupId"] == 3
        assert labels(client.get("/api/v3/status").json()) == {"A": 15.0, "B": 0.0, "D": 9.0}
        assert client.post("/_sandbox/vsdc/rates", json={"rates": {"AB": 1}}).status_code == 400


def test_attention_and_environment_answer(vsdc_emulator: VsdcServer) -> None:
    with vsdc_client(vsdc_emulator) as client:
        assert client.get("/api/v3/attention").status_code == 200
        environment = client.get("/api/v3/environment-parameters").json()
    assert environment["country"] == "FJ" and environment["endpoints"]["vsdc"] == vsdc_emulator.url


# -- faults ----------------------------------------------------------------------------------------


def test_down_answers_503_then_signs_again(vsdc_emulator: VsdcServer) -> None:
    vsdc_emulator.faults.down = True
    response = sign(vsdc_emulator, sale())
    assert response.status_code == 503 and "Message" in response.json()
    vsdc_emulator.faults.down = False
    assert signed(vsdc_emulator, sale())["totalCounter"] == 1


def test_refused_connections_then_listening_again_with_the_same_state(
    vsdc_emulator: VsdcServer,
) -> None:
    assert signed(vsdc_emulator, sale())["totalCounter"] == 1
    vsdc_emulator.refuse()
    with pytest.raises(httpx.ConnectError):
        sign(vsdc_emulator, sale())
    vsdc_emulator.accept()
    assert signed(vsdc_emulator, sale())["totalCounter"] == 2


def test_a_held_call_signs_nothing_until_released(vsdc_emulator: VsdcServer) -> None:
    server = vsdc_emulator
    server.faults.hold(after=1)
    assert signed(server, sale())["totalCounter"] == 1  # the one let through
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(sign, server, sale())
        wait_for(lambda: server.faults.waiting == 1, message="the call never reached the gate")
        assert server.emulator.count() == 1 and not pending.done()
        server.faults.release()
        assert pending.result(timeout=30).json()["totalCounter"] == 2


def test_signed_then_timed_out_is_recorded_and_a_retry_gets_the_same_invoice(
    vsdc_emulator: VsdcServer,
) -> None:
    server = vsdc_emulator
    server.faults.sign_then_hold()
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=0.5) as client,
    ):
        client.post(
            "/api/v3/invoices", json=sale(), headers={"PAC": server.pac, "RequestId": "o-9"}
        )
    wait_for(lambda: server.faults.abandoned == 1, message="the server kept holding")
    [kept] = server.emulator.find("o-9")
    assert server.emulator.count() == 1
    retried = signed(server, sale(), request_id="o-9")
    assert retried == kept.response and server.emulator.count() == 1
    server.faults.release()


def test_a_held_signed_answer_comes_when_released(vsdc_emulator: VsdcServer) -> None:
    server = vsdc_emulator
    server.faults.sign_then_hold()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(sign, server, sale(), request_id="o-1")
        wait_for(lambda: server.faults.waiting == 1 and server.emulator.count() == 1)
        assert signed(server, sale(), request_id="o-1")["totalCounter"] == 1  # while held
        server.faults.release()
        assert pending.result(timeout=30).json()["totalCounter"] == 1
    assert server.emulator.count() == 1


def test_a_rejection_answers_taxcores_error_shape(vsdc_emulator: VsdcServer) -> None:
    server = vsdc_emulator
    server.faults.reject(400, code="2805", property="BuyerId", message="unknown buyer", count=2)
    for _ in range(2):
        response = sign(server, sale())
        assert response.status_code == 400 and problems(response) == {"BuyerId": "unknown buyer"}
    assert response.json()["MessageDetails"][0]["Code"] == "2805"
    assert signed(server, sale())["totalCounter"] == 1


def test_faults_over_the_control_routes(vsdc_emulator: VsdcServer) -> None:
    with vsdc_client(vsdc_emulator) as client:
        state = client.post("/_sandbox/vsdc/faults", json={"down": True}).json()
        assert state["down"] is True
        assert sign(vsdc_emulator, sale()).status_code == 503
        client.post(
            "/_sandbox/vsdc/faults",
            json={"clear": True, "reject": {"status": 500, "property": "", "message": "boom"}},
        )
        assert sign(vsdc_emulator, sale()).status_code == 500
        assert client.post("/_sandbox/vsdc/faults", json={"explode": 1}).status_code == 400
        assert client.get("/_sandbox/vsdc").json()["faults"]["down"] is False
        key = client.get("/_sandbox/vsdc/key").json()
    assert (
        key["algorithm"] == "Ed25519"
        and key["publicKey"] == vsdc_emulator.emulator.signer.public_key
    )


# -- intdash sandbox -------------------------------------------------------------------------------


def test_the_sandbox_command_prints_a_vsdc_a_taxpayer_can_sign_with() -> None:
    script = Path(sys.executable).with_name("intdash")
    proc = subprocess.Popen(
        [str(script), "sandbox", "--port", "0", "--size", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("INTDASH_")},
    )
    try:
        assert proc.stdout is not None
        said: dict[str, str] = {}
        while "V-SDC PAC" not in said:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            name, _, value = line.removeprefix("export ").removeprefix("# ").strip().partition("=")
            said[name] = value
            name, _, value = line.removeprefix("# ").strip().partition(": ")
            said.setdefault(name, value)
        url, ca = said["INTDASH_FISCAL__VSDC_URL"], Path(said["INTDASH_FISCAL__VSDC_CA"])
        pfx = Path(said["V-SDC certificate (.pfx)"]).read_bytes()
        context = client_context(pfx, said["V-SDC certificate password"], ca)
        with httpx.Client(base_url=url, verify=context) as client:
            answer = client.post(
                "/api/v3/invoices", json=sale(), headers={"PAC": said["V-SDC PAC"]}
            )
        assert answer.status_code == 200 and answer.json()["totalCounter"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not ca.exists()  # its temporary certificates went with it
