"""The emulators are as strict as the platforms: redirect URIs, PKCE and scopes at the identity
service; order, filters, single invoices, connections and limits in Xero's Accounting API; and
the Xero connector picks the tenant of its own consent and waits a second on a concurrency 429."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from intdash.core.workspace import Workspace
from intdash.providers.connect import ConnectService
from intdash.providers.errors import AuthorisationFailed
from intdash.providers.http import httpx
from intdash.providers.ratelimit import Pacer
from intdash.providers.xero import CONCURRENCY_WAIT, XeroConnector, auth_event_id
from intdash.sandbox.oauth import DEFAULT_REDIRECT_URI, s256
from intdash.sandbox.server import Sandbox
from intdash.sandbox.xero import TENANT_ID, TENANT_NAME
from tests.providers import consent, fetch, pws, redirect_uri, sandbox, sandbox_env

__all__ = ["pws", "redirect_uri", "sandbox", "sandbox_env"]  # fixtures

SCOPE = "offline_access accounting.invoices.read accounting.settings.read"
CALLBACK = "http://127.0.0.1:8599/callback"


@pytest.fixture
def box() -> Iterator[Sandbox]:
    with Sandbox(size=300, redirect_uris=[CALLBACK]) as started:
        yield started


def _xero(box: Sandbox) -> str:
    return f"{box.url}/xero"


def _authorise(
    box: Sandbox,
    *,
    redirect: str = CALLBACK,
    scope: str = SCOPE,
    verifier: str | None = None,
    **extra: str,
) -> httpx.Response:
    client_id = box.xero.oauth.policy.client_id
    params = {
        "client_id": client_id,
        "redirect_uri": redirect,
        "response_type": "code",
        "scope": scope,
        "state": "s1",
        **extra,
    }
    if verifier is not None:
        params.update(code_challenge=s256(verifier), code_challenge_method="S256")
    return httpx.get(f"{_xero(box)}/identity/connect/authorize", params=params)


def _code(box: Sandbox, **kwargs: Any) -> str:
    answer = _authorise(box, **kwargs)
    assert answer.status_code == 302, answer.text
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert "code" in query, query
    return query["code"][0]


def _exchange(box: Sandbox, form: dict[str, str], secret: bool = True) -> httpx.Response:
    policy = box.xero.oauth.policy
    auth = (policy.client_id, policy.client_secret) if secret else None
    body = {"grant_type": "authorization_code", **form}
    if not secret:
        body["client_id"] = policy.client_id
    return httpx.post(f"{_xero(box)}/identity/connect/token", data=body, auth=auth)


def _token(box: Sandbox, scope: str = SCOPE) -> dict[str, Any]:
    answer = _exchange(box, {"code": _code(box, scope=scope), "redirect_uri": CALLBACK})
    assert answer.status_code == 200, answer.text
    token: dict[str, Any] = answer.json()
    return token


def _get(
    box: Sandbox, path: str, token: dict[str, Any], tenant: str = TENANT_ID, **params: str
) -> httpx.Response:
    return httpx.get(
        f"{_xero(box)}/api/api.xro/2.0/{path}",
        params=params,
        headers={
            "Authorization": f"Bearer {token['access_token']}",
            "xero-tenant-id": tenant,
            "Accept": "application/json",
        },
    )


def _numbers(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [i["InvoiceNumber"] for i in answer.json()["Invoices"]]


def _listed(box: Sandbox, token: dict[str, Any], **params: str) -> list[str]:
    """Invoice numbers of one page (the first, of 300, unless said otherwise)."""
    return _numbers(_get(box, "Invoices", token, **{"page": "1", "pageSize": "300", **params}))


def _number(index: int) -> str:
    return f"INV-{index + 1:07d}"


# -- identity ---------------------------------------------------------------------------------


def test_an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(box: Sandbox) -> None:
    other = "http://127.0.0.1:8600/callback"
    refused = _authorise(box, redirect=other)
    assert refused.status_code == 400 and "location" not in refused.headers
    assert "not registered" in refused.text
    assert _authorise(box, redirect=CALLBACK + "/").status_code == 400  # exact match only
    assert _authorise(box, redirect=DEFAULT_REDIRECT_URI).status_code == 302  # the default
    registered = httpx.post(f"{box.url}/_sandbox/xero/redirect_uris", json={"uris": [other]})
    assert other in registered.json()["redirect_uris"]
    assert _authorise(box, redirect=other).status_code == 302
    plain = httpx.post(
        f"{box.url}/_sandbox/xero/redirect_uris", json={"uris": ["http://example.com/cb"]}
    )
    assert plain.status_code == 400 and "https" in plain.json()["error"]  # Xero: https only


def test_the_exchange_must_name_the_same_redirect_uri(box: Sandbox) -> None:
    missing = _exchange(box, {"code": _code(box)})
    assert missing.json() == {
        "error": "invalid_grant",
        "error_description": "redirect_uri mismatch",
    }
    other = _exchange(box, {"code": _code(box), "redirect_uri": DEFAULT_REDIRECT_URI})
    assert other.json()["error_description"] == "redirect_uri mismatch"
    same = _exchange(box, {"code": _code(box), "redirect_uri": CALLBACK})
    assert same.status_code == 200 and same.json()["access_token"]


def test_pkce_is_checked(box: Sandbox) -> None:
    verifier = secrets.token_urlsafe(48)
    wrong = _exchange(
        box,
        {
            "code": _code(box, verifier=verifier),
            "redirect_uri": CALLBACK,
            "code_verifier": secrets.token_urlsafe(48),
        },
    )
    assert wrong.json()["error_description"] == "PKCE check failed"
    missing = _exchange(box, {"code": _code(box, verifier=verifier), "redirect_uri": CALLBACK})
    assert missing.json()["error_description"] == "PKCE check failed"
    # a client that sends no secret must have used PKCE
    public = _exchange(box, {"code": _code(box), "redirect_uri": CALLBACK}, secret=False)
    assert public.status_code == 401 and public.json()["error"] == "invalid_client"
    # a verifier for a code issued without a challenge is refused (Xero's IdentityServer)
    unexpected = _exchange(
        box, {"code": _code(box), "redirect_uri": CALLBACK, "code_verifier": verifier}
    )
    assert "unexpected code_verifier" in unexpected.json()["error_description"]
    right = _exchange(
        box,
        {
            "code": _code(box, verifier=verifier),
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        },
        secret=False,
    )
    assert right.status_code == 200


def test_no_offline_access_no_refresh_token(box: Sandbox) -> None:
    online = _token(box, "accounting.invoices.read")
    assert "refresh_token" not in online and online["access_token"]
    assert "refresh_token" in _token(box)


def test_unknown_scope_is_refused_at_consent(box: Sandbox) -> None:
    answer = _authorise(box, scope="offline_access accounting.everything")
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["error"] == ["invalid_scope"] and "code" not in query
    assert query["state"] == ["s1"]


def test_scopes_guard_the_api(box: Sandbox) -> None:
    settings_only = _token(box, "offline_access accounting.settings.read")
    refused = _get(box, "Invoices", settings_only)
    assert refused.status_code == 403
    assert refused.json()["Title"] == "Forbidden"
    assert refused.json()["Detail"] == "AuthorizationUnsuccessful"
    assert _get(box, "Organisation", settings_only).status_code == 200
    invoices_only = _token(box, "offline_access accounting.invoices.read")
    assert _get(box, "Invoices", invoices_only).status_code == 200
    assert _get(box, "Organisation", invoices_only).status_code == 403
    older_app = _token(box, "offline_access accounting.transactions.read")
    assert _get(box, "Invoices", older_app).status_code == 200


def test_access_tokens_are_jwts_naming_their_consent(box: Sandbox) -> None:
    token = _token(box)
    head, body, _signature = token["access_token"].split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert {"xero_userid", "exp", "authentication_event_id"} <= payload.keys()
    assert json.loads(base64.urlsafe_b64decode(head + "==")) == {"alg": "HS256", "typ": "JWT"}
    event = auth_event_id(token["access_token"])
    listed = httpx.get(
        f"{_xero(box)}/api/connections",
        params={"authEventId": event},
        headers={"Authorization": f"Bearer {token['access_token']}"},
    ).json()
    assert [c["authEventId"] for c in listed] == [event]
    assert auth_event_id("opaque-token") is None
    assert auth_event_id("a.!!!.c") is None


# -- the Accounting API -----------------------------------------------------------------------


def test_order_is_honoured_never_assumed(box: Sandbox) -> None:
    token = _token(box)
    box.xero.dataset.touch([7, 3])
    default = _listed(box, token)
    assert default == [_number(i) for i in range(300)]  # created order, not modification order
    ascending = _listed(box, token, order="UpdatedDateUTC ASC")
    assert ascending[-2:] == [_number(7), _number(3)]
    assert ascending != default
    descending = _listed(box, token, pageSize="2", order="UpdatedDateUTC DESC")
    assert descending == [_number(3), _number(7)]
    assert _listed(box, token, page="2", pageSize="100", order="InvoiceNumber DESC")[0] == (
        _number(199)
    )
    # a filtered listing (read by a scan) orders as the direct one does
    scanned = _listed(box, token, pageSize="2", order="UpdatedDateUTC DESC", where='Type!="X"')
    assert scanned == descending
    for bad in ("Colour ASC", "UpdatedDateUTC SIDEWAYS", "UpdatedDateUTC ASC,"):
        refused = _get(box, "Invoices", token, order=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["Type"] == "QueryParseException"


def test_filters_are_honoured(box: Sandbox) -> None:
    token = _token(box)
    data = box.xero.dataset
    rendered = _get(box, "Invoices", token, page="1", pageSize="300").json()["Invoices"]

    def where(test: Any) -> list[str]:
        return [i["InvoiceNumber"] for i in rendered if test(i)]

    by_status = _listed(box, token, Statuses="AUTHORISED,PAID")
    assert by_status == where(lambda i: i["Status"] in ("AUTHORISED", "PAID"))
    assert 0 < len(by_status) < 300
    ids = f"{data.invoice(5).id},{data.invoice(9).id}"
    assert _listed(box, token, IDs=ids) == [_number(5), _number(9)]
    numbers = f"{_number(2)},{_number(0)}"
    assert _listed(box, token, InvoiceNumbers=numbers) == [_number(0), _number(2)]
    contact = data.invoice(4).contact_id
    assert _listed(box, token, ContactIDs=contact) == where(
        lambda i: i["Contact"]["ContactID"] == contact
    )
    paid_sales = _listed(box, token, where='Type=="ACCREC" && Status=="PAID"')
    assert paid_sales == where(lambda i: i["Type"] == "ACCREC" and i["Status"] == "PAID")
    assert paid_sales == _listed(box, token, where='Type == "ACCREC" AND Status == "PAID"')
    day = data.invoice(250).issue_date
    recent = _listed(box, token, where=f"Date >= DateTime({day.year}, {day.month}, {day.day})")
    assert recent == [_number(i) for i in range(300) if data.invoice(i).issue_date >= day]
    data.touch([11])
    edited = _listed(box, token, where="UpdatedDateUTC > DateTime(2026, 1, 1, 0, 0, 0)")
    assert edited == [_number(11)]
    either = f'InvoiceNumber=="{_number(1)}" OR InvoiceNumber=="{_number(2)}"'
    assert _listed(box, token, where=either) == [_number(1), _number(2)]
    guid = f'Contact.ContactID==Guid("{contact}") && InvoiceNumber=="{_number(4)}"'
    assert _listed(box, token, where=guid) == [_number(4)]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ('Colour=="RED"', "No property or field 'Colour'"),
        ('Contact.ContactID=="x"', "incompatible with operand types 'Guid' and 'String'"),
        ('Date >= "2026-01-01"', "incompatible with operand types 'DateTime' and 'String'"),
        ('Status > "PAID"', "Operator '>' incompatible"),
        ('(Status=="PAID")', "Unexpected '('"),
        ('Contact.Name.StartsWith("B")', "No property or field"),
        ('Status=="PAID" &&', "ends too early"),
        ("Date >= DateTime(2026, 13, 1)", "month must be in 1..12"),
    ],
)
def test_a_where_xero_would_refuse_is_refused(box: Sandbox, where: str, message: str) -> None:
    refused = _get(box, "Invoices", _token(box), where=where)
    assert refused.status_code == 400
    assert refused.json()["Type"] == "QueryParseException"
    assert message in refused.json()["Message"]


def test_bad_filter_values_are_refused(box: Sandbox) -> None:
    token = _token(box)
    for params in (
        {"IDs": "not-a-guid"},
        {"Statuses": "AUTHORISED,SHREDDED"},
        {"ContactIDs": "1,2"},
        {"page": "one"},
    ):
        refused = _get(box, "Invoices", token, **params)
        assert refused.status_code == 400, params
        assert refused.json()["Type"] == "ValidationException"


def test_pages_of_up_to_a_thousand(box: Sandbox) -> None:
    token = _token(box)
    answer = _get(box, "Invoices", token, page="2", pageSize="5000", order="UpdatedDateUTC ASC")
    assert answer.json()["pagination"] == {
        "page": 2,
        "pageSize": 1000,
        "pageCount": 1,
        "itemCount": 300,
    }
    page = _get(box, "Invoices", token, page="3", pageSize="128").json()
    assert page["pagination"] == {"page": 3, "pageSize": 128, "pageCount": 3, "itemCount": 300}
    assert len(page["Invoices"]) == 44 and "LineItems" in page["Invoices"][0]
    summary = _get(box, "Invoices", token, page="1", summaryOnly="true").json()["Invoices"]
    assert "LineItems" not in summary[0]


def test_one_invoice_by_id_or_number(box: Sandbox) -> None:
    token = _token(box)
    wanted = box.xero.dataset.invoice(42)
    by_id = _get(box, f"Invoices/{wanted.id}", token)
    assert by_id.status_code == 200
    [invoice] = by_id.json()["Invoices"]
    assert invoice["InvoiceID"] == wanted.id and invoice["LineItems"]
    assert _get(box, f"Invoices/{wanted.number}", token).json()["Invoices"][0]["InvoiceID"] == (
        wanted.id
    )
    unknown = _get(box, "Invoices/00000000-0000-4000-8000-000000000000", token)
    assert unknown.status_code == 404
    assert _get(box, "Invoices/INV-9999999", token).status_code == 404


def test_connections_follow_consents(box: Sandbox) -> None:
    first = _token(box)
    headers = {"Authorization": f"Bearer {first['access_token']}"}
    listed = httpx.get(f"{_xero(box)}/api/connections", headers=headers).json()
    assert [(c["tenantId"], c["authEventId"]) for c in listed] == [
        (TENANT_ID, auth_event_id(first["access_token"]))
    ]
    created = listed[0]["createdDateUtc"]
    unknown = httpx.delete(
        f"{_xero(box)}/api/connections/00000000-0000-4000-8000-000000000000", headers=headers
    )
    assert unknown.status_code == 404
    gone = httpx.delete(f"{_xero(box)}/api/connections/{listed[0]['id']}", headers=headers)
    assert gone.status_code == 204
    assert httpx.get(f"{_xero(box)}/api/connections", headers=headers).json() == []
    assert _get(box, "Invoices", first).status_code == 403  # no longer connected
    again = httpx.delete(f"{_xero(box)}/api/connections/{listed[0]['id']}", headers=headers)
    assert again.status_code == 404
    second = _token(box)  # a new consent ticks the organisation again
    restored = httpx.get(f"{_xero(box)}/api/connections", headers=headers).json()
    assert [c["id"] for c in restored] == [listed[0]["id"]]
    assert restored[0]["authEventId"] == auth_event_id(second["access_token"])
    assert restored[0]["createdDateUtc"] == created
    assert _get(box, "Invoices", first).status_code == 200
    filtered = httpx.get(
        f"{_xero(box)}/api/connections",
        headers=headers,
        params={"authEventId": auth_event_id(first["access_token"])},
    )
    assert filtered.json() == []


def test_two_organisations(box: Sandbox) -> None:
    added = httpx.post(f"{box.url}/_sandbox/xero/tenants", json={"name": "Second Ltd", "size": 20})
    other = added.json()["tenantId"]
    picked = httpx.post(
        f"{box.url}/_sandbox/xero/consent", params={"tenants": f"{TENANT_ID},{other}"}
    )
    assert picked.json() == {"deny": False, "tenants": [TENANT_ID, other]}
    token = _token(box)
    listed = httpx.get(
        f"{_xero(box)}/api/connections",
        headers={"Authorization": f"Bearer {token['access_token']}"},
    ).json()
    assert {c["tenantName"] for c in listed} == {TENANT_NAME, "Second Ltd"}
    assert len({c["authEventId"] for c in listed}) == 1
    assert _get(box, "Invoices", token, tenant=other).json()["pagination"]["itemCount"] == 20
    assert _get(box, "Organisation", token, tenant=other).json()["Organisations"][0]["Name"] == (
        "Second Ltd"
    )


def test_too_many_in_flight_names_no_wait(box: Sandbox) -> None:
    token = _token(box)
    box.xero.busy_429 = 1
    busy = _get(box, "Invoices", token)
    assert busy.status_code == 429
    assert busy.headers["X-Rate-Limit-Problem"] == "concurrent"
    assert "Retry-After" not in busy.headers
    assert _get(box, "Invoices", token).status_code == 200


# -- the connector ----------------------------------------------------------------------------


async def test_the_tenant_of_this_consent_is_chosen(pws: Workspace, sandbox: Sandbox) -> None:
    second = sandbox.xero.add_organisation("Harbour Traders", size=40)
    uid = pws.integrations.create("xero").integration.uid
    service = ConnectService(pws)
    flow = await service.begin(uid)
    location = await consent(flow.url)  # this consent ticks the demo company
    # before intdash asks /connections, another consent (another integration, a colleague)
    # connects a second organisation: it is now the most recently connected
    sandbox.xero.consent_picks = [second.tenant_id]
    query = parse_qs(urlsplit(flow.url).query)
    params = {k: v[0] for k, v in query.items() if k not in ("code_challenge", "state")}
    params.pop("code_challenge_method", None)
    params["redirect_uri"] = DEFAULT_REDIRECT_URI
    other = httpx.get(f"{flow.url.split('?')[0]}?{urlencode(params)}")
    assert "code=" in other.headers["location"]
    result = await service.complete(flow, location)
    assert (result.tenant.id, result.tenant.name) == (TENANT_ID, TENANT_NAME)
    invoices, _ = await fetch(service, uid)
    assert len({i.external_id for i in invoices}) == 2500  # the demo company's, not Harbour's


async def test_several_organisations_in_one_consent(pws: Workspace, sandbox: Sandbox) -> None:
    second = sandbox.xero.add_organisation("Harbour Traders", size=40)
    sandbox.xero.consent_picks = [TENANT_ID, second.tenant_id]
    uid = pws.integrations.create("xero").integration.uid
    service = ConnectService(pws)
    flow = await service.begin(uid)
    with pytest.raises(
        AuthorisationFailed,
        match=r"2 organisations \(Demo Company \(NZ\), "
        r"Harbour Traders\).*tick only",
    ):
        await service.complete(flow, await consent(flow.url))
    sandbox.xero.consent_picks = [second.tenant_id]
    flow = await service.begin(uid)
    assert (await service.complete(flow, await consent(flow.url))).tenant.name == "Harbour Traders"
    # reconnecting with both ticked keeps the organisation the integration had
    sandbox.xero.consent_picks = [TENANT_ID, second.tenant_id]
    flow = await service.begin(uid)
    assert (await service.complete(flow, await consent(flow.url))).tenant.name == "Harbour Traders"


async def test_a_concurrency_429_waits_about_a_second(pws: Workspace, sandbox: Sandbox) -> None:
    uid = pws.integrations.create("xero").integration.uid
    service = ConnectService(pws)
    flow = await service.begin(uid)
    await service.complete(flow, await consent(flow.url))
    now = [1000.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    sandbox.xero.busy_429 = 1
    async with await service.api(uid) as api:
        api.pacer = Pacer(
            api.connector.limits, clock=lambda: now[0], sleep=sleep, jitter=lambda: 0.0
        )
        assert "Demo Company" in await api.connector.test(api)
    assert sandbox.xero.rate_limited == 1
    assert slept == [CONCURRENCY_WAIT] == [1.0]


def test_what_a_429_says_about_waiting(pws: Workspace) -> None:
    connector = XeroConnector(pws.settings.xero, clock=lambda: 86_400.0 * 20_000 + 3600)

    def problem(**headers: str) -> tuple[float, bool]:
        found = connector.rate_problem(httpx.Response(429, headers=headers))
        assert found is not None
        return found.retry_after, found.daily

    assert problem(**{"X-Rate-Limit-Problem": "concurrent"}) == (1.0, False)
    assert problem() == (1.0, False)
    assert problem(**{"Retry-After": "7", "X-Rate-Limit-Problem": "minute"}) == (7.0, False)
    assert problem(**{"X-Rate-Limit-Problem": "minute"}) == (60.0, False)
    assert problem(**{"X-Rate-Limit-Problem": "day"}) == (86_400.0 - 3600, True)
    assert problem(**{"Retry-After": "500", "X-Rate-Limit-Problem": "day"}) == (500.0, True)
    assert connector.rate_problem(httpx.Response(200)) is None
