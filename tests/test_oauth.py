"""OAuth over SSH: ``intdash connect`` by callback and by paste, refusals, Zoho's self client."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from intdash.core.status import Reason
from intdash.core.workspace import Workspace
from intdash.providers.connect import ConnectService
from intdash.providers.errors import AuthorisationFailed
from intdash.providers.http import httpx
from intdash.sandbox.server import Sandbox
from tests.conftest import run_intdash
from tests.providers import consent, pws, redirect_uri, sandbox, sandbox_env, start_intdash
from tests.waiting import wait_for_async

__all__ = ["pws", "redirect_uri", "sandbox", "sandbox_env"]  # fixtures


def _add(kind: str, env: dict[str, str]) -> str:
    result = run_intdash("integrations", "add", kind, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["uid"])


def _status(uid: str, env: dict[str, str]) -> dict[str, object]:
    result = run_intdash("integrations", "show", uid, "--json", env=env)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


async def _browser_to_callback(location: str) -> httpx.Response:
    """The browser following the redirect to intdash's listener (it may still be starting)."""
    async with httpx.AsyncClient() as client:

        async def answered() -> httpx.Response | None:
            try:
                return await client.get(location)
            except httpx.ConnectError:
                return None

        return await wait_for_async(answered, 15, "intdash's listener never answered")


async def test_connect_by_callback(sandbox_env: dict[str, str], sandbox: Sandbox) -> None:
    uid = _add("xero", sandbox_env)
    assert _status(uid, sandbox_env)["reason"] == "needs authorisation"
    proc = start_intdash("connect", uid, "--no-sync", env=sandbox_env)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(sandbox.url + "/xero/identity/connect/authorize?")
    assert query["code_challenge_method"] == ["S256"] and query["state"][0]
    assert "offline_access" in query["scope"][0]
    page = await _browser_to_callback(await consent(url))
    assert page.status_code == 200 and "close this tab" in page.text
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Connected" in out and "Demo Company (NZ)" in out
    shown = _status(uid, sandbox_env)
    assert shown["status"] == "active"
    assert shown["settings"] == {"tenant_name": "Demo Company (NZ)"}
    tested = run_intdash("test", uid, env=sandbox_env)
    assert tested.returncode == 0, tested.stderr
    assert tested.stdout.strip() == "OK: Xero organisation Demo Company (NZ) answered"


async def test_connect_by_paste(sandbox_env: dict[str, str]) -> None:
    uid = _add("myob", sandbox_env)
    proc = start_intdash("connect", uid, "--no-listen", "--no-sync", "--json", env=sandbox_env)
    assert proc.stdout is not None and proc.stdin is not None
    url = proc.stdout.readline().strip()
    location = await consent(url)
    out, err = proc.communicate(location + "\n", timeout=30)
    assert proc.returncode == 0, err
    assert json.loads(out[out.index("{") :]) == {
        "uid": uid,
        "tenant_id": "0f5e4d8c-1234-4abc-9def-0123456789ab",
        "tenant": "Bay Traders Ltd",
        "sync": None,  # the first sync is left to whichever process schedules
        "sync_skipped": "--no-sync: it is due now, for whichever process schedules syncs",
    }
    shown = _status(uid, sandbox_env)
    assert shown["status"] == "active"
    assert shown["settings"]["company_file_id"] == "0f5e4d8c-1234-4abc-9def-0123456789ab"  # type: ignore[index]


async def test_wrong_state_is_refused(sandbox_env: dict[str, str]) -> None:
    uid = _add("xero", sandbox_env)
    proc = start_intdash("connect", uid, "--no-listen", env=sandbox_env)
    assert proc.stdout is not None
    location = await consent(proc.stdout.readline().strip())
    base, query = location.split("?", 1)
    params = {k: v[0] for k, v in parse_qs(query).items()}
    params["state"] = "forged-" + params["state"]
    _, err = proc.communicate(f"{base}?{urlencode(params)}\n", timeout=30)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].startswith("intdash: the redirected URL's state")
    assert _status(uid, sandbox_env)["reason"] == "needs authorisation"


async def test_denied_consent(sandbox_env: dict[str, str], sandbox: Sandbox) -> None:
    sandbox.xero.oauth.deny_consent = True
    uid = _add("xero", sandbox_env)
    proc = start_intdash("connect", uid, env=sandbox_env)
    assert proc.stdout is not None
    page = await _browser_to_callback(await consent(proc.stdout.readline().strip()))
    assert "access_denied" in page.text
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "consent was not given: access_denied" in err
    assert "Traceback" not in err


async def test_zoho_self_client_code(sandbox_env: dict[str, str], sandbox: Sandbox) -> None:
    uid = _add("zoho", sandbox_env)
    async with httpx.AsyncClient() as client:
        minted = await client.post(f"{sandbox.url}/zoho/accounts/self-client/code")
    code = minted.json()["code"]
    result = run_intdash("connect", uid, "--code", code, env=sandbox_env)
    assert result.returncode == 0, result.stderr
    assert "Zylker Traders" in result.stdout
    shown = _status(uid, sandbox_env)
    assert shown["status"] == "active"
    assert shown["settings"]["organization_id"] == "10234695"  # type: ignore[index]
    again = run_intdash("connect", uid, "--code", code, env=sandbox_env)  # single use
    assert again.returncode == 1 and "refused the authorisation code" in again.stderr


async def test_exchange_refused_and_code_single_use(pws: Workspace) -> None:
    uid = pws.integrations.create("xero").integration.uid
    service = ConnectService(pws)
    flow = await service.begin(uid)
    location = await consent(flow.url)
    await service.complete(flow, location)
    with pytest.raises(AuthorisationFailed, match="refused the authorisation code: invalid_grant"):
        await service.complete(flow, location)


async def test_pasted_text_that_is_not_a_redirect(pws: Workspace) -> None:
    uid = pws.integrations.create("xero").integration.uid
    service = ConnectService(pws)
    flow = await service.begin(uid)
    with pytest.raises(AuthorisationFailed, match="not the redirected URL"):
        await service.complete(flow, "hello")


async def test_zoho_refuses_a_foreign_accounts_server(pws: Workspace) -> None:
    uid = pws.integrations.create("zoho").integration.uid
    service = ConnectService(pws)
    flow = await service.begin(uid)
    location = await consent(flow.url)
    base, query = location.split("?", 1)
    params = {k: v[0] for k, v in parse_qs(query).items()}
    params["accounts-server"] = "https://accounts.evil.example"
    with pytest.raises(AuthorisationFailed, match="unknown Zoho accounts server"):
        await service.complete(flow, f"{base}?{urlencode(params)}")
    assert pws.integrations.get(uid).status.reason is Reason.NEEDS_AUTHORISATION


def test_connect_refuses_types_without_oauth(sandbox_env: dict[str, str]) -> None:
    uid = _add("custom", sandbox_env)
    result = run_intdash("connect", uid, env=sandbox_env)
    assert result.returncode == 1
    assert "does not connect" in result.stderr


def test_test_command(sandbox_env: dict[str, str]) -> None:
    uid = _add("xero", sandbox_env)
    result = run_intdash("test", uid, env=sandbox_env)
    assert result.returncode == 1
    assert "has not been connected yet" in result.stderr
