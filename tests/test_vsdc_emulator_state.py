"""The V-SDC emulator's public verification pages, and its memory across runs on one folder."""

from __future__ import annotations

import html
import os
import socket
import sqlite3
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from intdash.providers.http import httpx
from intdash.sandbox.vsdc_server import VsdcServer
from tests.conftest import run_intdash
from tests.vsdc import refund_of, sale, vsdc_client, vsdc_emulator, vsdc_pki

__all__ = ["vsdc_emulator", "vsdc_pki"]

STATE = "state.sqlite3"  # in the emulator's folder


def signed(server: VsdcServer, body: dict[str, Any], request_id: str | None = None) -> Any:
    headers = {"PAC": server.pac} | ({"RequestId": request_id} if request_id else {})
    with vsdc_client(server) as client:
        response = client.post("/api/v3/invoices", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def public(ca: Path) -> httpx.Client:
    """A phone's browser, as far as TLS goes: no client certificate, trusting only ``ca``."""
    return httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=10)


def status(server: VsdcServer) -> Any:
    with vsdc_client(server) as client:
        return client.get("/api/v3/status", headers={"PAC": server.pac}).json()


# -- verification --------------------------------------------------------------------------------


def test_the_verification_url_opens_without_a_client_certificate(
    vsdc_emulator: VsdcServer,
) -> None:
    server = vsdc_emulator
    answer = signed(server, sale(("Consulting", "115.00", "A"), ("Books", "20.00", "B")))
    url = answer["verificationUrl"]
    with public(server.ca_path) as phone:
        shown = phone.get(url)
        page = phone.get(url, headers={"Accept": "text/html,application/xhtml+xml"})
    assert shown.status_code == 200, shown.text
    assert urlsplit(url).scheme == "https" and urlsplit(url).port == server.verify_port
    assert server.verify_port != server.port  # not the mutual-TLS API's
    body = shown.json()
    assert body["status"] == "Valid"
    for key in ("invoiceNumber", "sdcDateTime", "totalAmount", "taxItems", "journal"):
        assert body[key] == answer[key], key
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "Invoice is valid" in text
    for fact in (answer["invoiceNumber"], answer["sdcDateTime"], "135.00", "15.00%", "VAT"):
        assert fact in text, fact
    assert html.escape(answer["journal"]) in text
    # what the SDC answers is in memory only: nothing written in the CA's folder
    assert not (server.pki.directory / STATE).exists()


def tampered(url: str) -> str:
    last = url[-1]
    return url[:-1] + ("A" if last != "A" else "B")


def test_an_unknown_or_tampered_verification_url_is_404(vsdc_emulator: VsdcServer) -> None:
    url = signed(vsdc_emulator, sale())["verificationUrl"]
    base = url.split("?", 1)[0]
    with public(vsdc_emulator.ca_path) as phone:
        assert phone.get(url).status_code == 200
        for wrong in (tampered(url), f"{base}?vl=nothing-signed", base, url + "x"):
            answer = phone.get(wrong)
            assert answer.status_code == 404, wrong
            assert answer.json()["Message"] == "No such invoice."
        page = phone.get(tampered(url), headers={"Accept": "text/html"})
    assert page.status_code == 404 and "No such invoice" in page.text


# -- memory across runs --------------------------------------------------------------------------


def test_a_restart_on_the_same_folder_resumes_its_counters_and_refunds(tmp_path: Path) -> None:
    with VsdcServer(directory=tmp_path) as first:
        sold = signed(first, sale())
        signed(first, sale(("Tea", "5.75", "A")), request_id="outbox-1")
        first.emulator.set_rates({"A": 12.5, "B": 0, "C": 0})
        last = signed(first, sale(("Tea", "112.50", "A")))
        sdc = first.emulator.uid
    assert last["totalCounter"] == 3 and last["taxGroupRevision"] == 2
    with VsdcServer(directory=tmp_path) as second:
        refund = signed(second, refund_of(sold, sale()))  # a sale the first run signed
        assert (refund["totalCounter"], refund["invoiceCounter"]) == (4, "1/4NR")
        assert sold["invoiceNumber"] in refund["journal"]
        assert second.emulator.uid == sdc
        assert status(second)["lastInvoiceNumber"] == refund["invoiceNumber"]
        assert status(second)["currentTaxRates"]["groupId"] == 2
        after = signed(second, sale(("Tea", "112.50", "A")))
        assert (after["totalCounter"], after["invoiceCounter"]) == (5, "4/5NS")
        assert after["invoiceNumber"] == f"{second.taxpayer.uid}-{sdc}-5"
        # a retry under an earlier run's RequestId answers what that run signed
        again = signed(second, sale(("Tea", "5.75", "A")), request_id="outbox-1")
        assert again["totalCounter"] == 2 and second.emulator.count() == 5
        assert second.emulator.verify(sold)  # the same signing key
    with VsdcServer(directory=tmp_path) as third:
        assert signed(third, sale(("Tea", "112.50", "A")))["totalCounter"] == 6


def test_an_earlier_runs_verification_url_still_answers(tmp_path: Path) -> None:
    with VsdcServer(directory=tmp_path) as first:
        answer = signed(first, sale())
    with VsdcServer(directory=tmp_path) as second, public(second.ca_path) as phone:
        shown = phone.get(answer["verificationUrl"])
        assert shown.status_code == 200, shown.text
        assert shown.json()["invoiceNumber"] == answer["invoiceNumber"]
        assert second.verify_url == answer["verificationUrl"].split("/v/")[0]
        assert second.verify_moved_from is None


def test_a_page_vouches_only_for_what_the_sdc_signed(tmp_path: Path) -> None:
    with VsdcServer(directory=tmp_path) as first:
        answer = signed(first, sale())
    with sqlite3.connect(tmp_path / STATE) as db:  # the kept copy altered behind its back
        [(body,)] = db.execute("SELECT response FROM signed").fetchall()
        assert '"totalAmount":115.0' in body
        db.execute(
            "UPDATE signed SET response = ?",
            (body.replace('"totalAmount":115.0', '"totalAmount":1.0'),),
        )
    db.close()
    with VsdcServer(directory=tmp_path) as second, public(second.ca_path) as phone:
        assert phone.get(answer["verificationUrl"]).status_code == 404


def test_a_taken_verification_port_moves_and_says_so(tmp_path: Path) -> None:
    with VsdcServer(directory=tmp_path) as first:
        port = urlsplit(signed(first, sale())["verificationUrl"]).port
    assert port is not None
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with VsdcServer(directory=tmp_path) as second:
            assert second.verify_moved_from == port and second.verify_port != port
            url = signed(second, sale())["verificationUrl"]
            assert url.startswith(f"{second.verify_url}/v/?vl=")
            with public(second.ca_path) as phone:
                assert phone.get(url).status_code == 200


def test_one_folder_serves_one_emulator_at_a_time(tmp_path: Path) -> None:
    with VsdcServer(directory=tmp_path) as first:
        signed(first, sale())
        with pytest.raises(RuntimeError) as refused:
            VsdcServer(directory=tmp_path)
        said = str(refused.value)
        assert str(tmp_path / STATE) in said and "in use" in said and "\n" not in said
        assert signed(first, sale())["totalCounter"] == 2  # the first one unharmed


# -- a state that cannot be read -------------------------------------------------------------------


def garbage(path: Path) -> None:
    path.write_bytes(b"these are not the counters you are looking for\n" * 100)


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def emptied(path: Path) -> None:
    path.write_bytes(b"")


def foreign(path: Path) -> None:
    path.unlink()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    db.close()


def bad_row(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("UPDATE signed SET response = '{not json'")
    db.close()


@pytest.mark.parametrize("spoil", [garbage, truncated, emptied, foreign, bad_row])
def test_a_corrupt_state_is_refused_in_one_line_naming_it(
    tmp_path: Path, spoil: Callable[[Path], None]
) -> None:
    with VsdcServer(directory=tmp_path) as first:
        signed(first, sale())
    state = tmp_path / STATE
    assert state.is_file()
    spoil(state)
    with pytest.raises(RuntimeError) as refused:
        VsdcServer(directory=tmp_path)
    said = str(refused.value)
    assert str(state) in said and "\n" not in said, said
    assert "cannot be read" in said and "move it aside" in said


def test_the_commands_refuse_a_corrupt_state_without_a_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "vsdc"
    with VsdcServer(directory=folder) as first:
        signed(first, sale())
    garbage(folder / STATE)
    sandbox = run_intdash(
        "sandbox", "--port", "0", "--size", "0", "--vsdc-dir", str(folder), env={}
    )
    assert sandbox.returncode == 1 and "Traceback" not in sandbox.stderr, sandbox.stderr
    [line] = sandbox.stderr.strip().splitlines()
    assert str(folder / STATE) in line and "cannot be read" in line
    home = tmp_path / "demo"
    (home / "vsdc").mkdir(parents=True)
    garbage(home / "vsdc" / STATE)
    demo = run_intdash("demo", "--home", str(home), env={})
    assert demo.returncode == 1 and "Traceback" not in demo.stderr, demo.stderr
    [line] = demo.stderr.strip().splitlines()
    assert str(home / "vsdc" / STATE) in line and "cannot be read" in line


def test_the_sandbox_prints_where_the_verification_pages_are(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("intdash")), "sandbox", "--port", "0",
         "--size", "0", "--vsdc-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("INTDASH_")},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("# V-SDC PAC") for line in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            lines.append(line)
        said = {
            name: value.strip()
            for name, _, value in (line.removeprefix("# ").partition(": ") for line in lines)
        }
        where = said["V-SDC verification pages (no client certificate)"]
        assert where.startswith("https://127.0.0.1:")
        server_url = next(
            line.split("=", 1)[1].strip()
            for line in lines
            if line.startswith("export INTDASH_FISCAL__VSDC_URL=")
        )
        assert where != server_url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    with VsdcServer(directory=tmp_path) as again:  # the folder remembers the port
        assert again.verify_url == where
