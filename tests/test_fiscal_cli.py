"""``intdash fiscal ...`` as an operator runs it: the PAC and password from standard input, bad
files and passwords said in one line, the status with the certificate and the outbox, maps and
retries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intdash.sandbox.vsdc_server import VsdcServer
from tests.conftest import run_intdash
from tests.vsdc import vsdc_emulator, vsdc_pki

__all__ = ["vsdc_emulator", "vsdc_pki"]  # fixtures


@pytest.fixture
def venv_(env: dict[str, str], vsdc_emulator: VsdcServer) -> dict[str, str]:
    return {**env, "INTDASH_FISCAL__REGISTER": "vsdc", **vsdc_emulator.settings()}


def test_configure_reads_pac_and_password_from_stdin(
    venv_: dict[str, str], vsdc_emulator: VsdcServer, tmp_path: Path
) -> None:
    pfx = vsdc_emulator.pfx_path
    secrets = f"{vsdc_emulator.pac}\n{vsdc_emulator.password}\n"
    done = run_intdash("fiscal", "configure", "--pfx", str(pfx), "--pac", "-", env=venv_,
                       stdin=secrets)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Kept the certificate of" in done.stdout and "expires" in done.stdout
    assert vsdc_emulator.pac not in done.stdout + done.stderr
    assert vsdc_emulator.password not in done.stdout + done.stderr
    shown = run_intdash("fiscal", "status", "--json", env=venv_)
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert status["register"] == "vsdc" and status["certificate"]["subject"]
    assert [x["label"] for x in status["labels"]] == ["A", "B", "C"]
    assert status["outbox"] == {"pending": 0, "sent": 0, "signed": 0, "failed": 0}
    assert vsdc_emulator.pac not in shown.stdout
    text = run_intdash("fiscal", "status", env=venv_)
    assert "A 15% (VAT)" in text.stdout and "0 pending" in text.stdout
    # nothing of the secrets in clear in the database file or the home
    home = Path(venv_["INTDASH_HOME"])
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert vsdc_emulator.pac.encode() not in data, path
            assert vsdc_emulator.password.encode() not in data, path


def test_configure_refuses_bad_files_and_passwords_in_one_line(
    venv_: dict[str, str], vsdc_emulator: VsdcServer, tmp_path: Path
) -> None:
    pfx = str(vsdc_emulator.pfx_path)
    wrong = run_intdash("fiscal", "configure", "--pfx", pfx, "--pac", "-", env=venv_,
                        stdin=f"{vsdc_emulator.pac}\nnot the password\n")  # fmt: skip
    assert wrong.returncode == 1
    assert wrong.stderr.strip().count("\n") == 0
    assert "the password does not open the .pfx" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    junk = tmp_path / "junk.pfx"
    junk.write_bytes(b"no certificate here")
    bad = run_intdash("fiscal", "configure", "--pfx", str(junk), "--pac", "-", env=venv_,
                      stdin=f"{vsdc_emulator.pac}\n{vsdc_emulator.password}\n")  # fmt: skip
    assert bad.returncode == 1 and "not a PKCS#12 (.pfx) certificate" in bad.stderr
    missing = run_intdash("fiscal", "configure", "--pfx", str(tmp_path / "nope.pfx"), "--pac",
                          "-", env=venv_, stdin="X\nY\n")  # fmt: skip
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    short = run_intdash("fiscal", "configure", "--pfx", pfx, "--pac", "-", env=venv_,
                        stdin=f"{vsdc_emulator.pac}\n")  # fmt: skip
    assert short.returncode == 1 and "standard input ended before the password" in short.stderr
    pac = run_intdash("fiscal", "configure", "--pfx", pfx, "--pac", "-", env=venv_,
                      stdin=f"WRONG1\n{vsdc_emulator.password}\n")  # fmt: skip
    assert pac.returncode == 1 and "refused the taxpayer's credentials" in pac.stderr
    assert "PAC" in pac.stderr and "nothing was kept" in pac.stderr
    helped = run_intdash("fiscal", "configure", "--help", env=venv_)
    assert "standard input" in helped.stdout and "password" in helped.stdout


def test_map_and_retry(venv_: dict[str, str], vsdc_emulator: VsdcServer) -> None:
    made = run_intdash("integrations", "add", "custom", "--json", env=venv_)
    if made.returncode != 0:
        pytest.skip(f"integrations add: {made.stderr}")
    uid = json.loads(made.stdout)["uid"]
    unknown = run_intdash("fiscal", "map", uid, "OUTPUT2", "Q", env=venv_)
    assert unknown.returncode == 0 or "no label Q" in unknown.stderr
    mapped = run_intdash("fiscal", "map", uid, "OUTPUT2", "a", env=venv_)
    assert mapped.returncode == 0, mapped.stderr
    listed = run_intdash("fiscal", "mappings", "--json", env=venv_)
    assert json.loads(listed.stdout) == [{"integration": uid, "code": "OUTPUT2", "label": "A"}]
    none = run_intdash("fiscal", "retry", env=venv_)
    assert none.returncode == 0 and "0 invoices" in none.stdout
    gone = run_intdash("fiscal", "map", "nosuch-uid", "X", "A", env=venv_)
    assert gone.returncode == 1 and "no integration" in gone.stderr
