"""The Xero emulator answers as Xero's official OpenAPI descriptions say."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.response.exceptions import InvalidData

from intdash.providers.http import httpx
from intdash.sandbox.server import Sandbox
from intdash.sandbox.xero import TENANT_ID

SPECS = Path(__file__).resolve().parents[2] / "shared" / "specs" / "xero"
pytestmark = pytest.mark.skipif(
    not SPECS.exists(), reason="../shared/specs/xero is not beside the project"
)


@pytest.fixture(scope="module")
def accounting() -> OpenAPI:
    # Xero's own document has a few string defaults on booleans, which a strict check of the
    # document rejects; responses are still validated against its schemas.
    return OpenAPI.from_dict(
        yaml.safe_load((SPECS / "xero_accounting.yaml").read_text()),
        config=Config(spec_validator_cls=None),
    )


@pytest.fixture(scope="module")
def identity() -> OpenAPI:
    return OpenAPI.from_dict(
        yaml.safe_load((SPECS / "xero-identity.yaml").read_text()),
        config=Config(spec_validator_cls=None),
    )


@pytest.fixture
def xero() -> Iterator[tuple[Sandbox, str]]:
    box = Sandbox(size=250).start()
    client = box.xero.oauth
    code = client.mint_code("offline_access accounting.invoices.read accounting.settings.read")
    status, token = client.token(
        {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": client.policy.client_id,
            "client_secret": client.policy.client_secret,
        },
        None,
    )
    assert status == 200
    yield box, token["access_token"]
    box.stop()


def _validate(
    spec: OpenAPI,
    server: str,
    path: str,
    response: httpx.Response,
    args: dict[str, Any] | None = None,
) -> None:
    request = MockRequest(server, "GET", path, args=args or {})
    spec.validate_response(
        request, MockResponse(response.content, status_code=response.status_code)
    )


def test_invoices_pages_validate(xero: tuple[Sandbox, str], accounting: OpenAPI) -> None:
    box, token = xero
    box.xero.dataset.touch([3, 7])
    headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": TENANT_ID,
               "Accept": "application/json"}  # fmt: skip
    with httpx.Client() as client:
        for page in (1, 3):
            response = client.get(
                f"{box.url}/xero/api/api.xro/2.0/Invoices", params={"page": page}, headers=headers
            )
            assert response.status_code == 200
            assert len(response.json()["Invoices"]) == (100 if page == 1 else 50)
            _validate(accounting, "https://api.xero.com", "/api.xro/2.0/Invoices", response,
                      {"page": str(page)})  # fmt: skip
        incremental = client.get(
            f"{box.url}/xero/api/api.xro/2.0/Invoices",
            headers={**headers, "If-Modified-Since": "2026-01-01T00:00:00"},
        )
        assert [i["InvoiceNumber"] for i in incremental.json()["Invoices"]] == [
            "INV-0000004", "INV-0000008",
        ]  # fmt: skip
        _validate(accounting, "https://api.xero.com", "/api.xro/2.0/Invoices", incremental)
        organisation = client.get(f"{box.url}/xero/api/api.xro/2.0/Organisation", headers=headers)
        _validate(accounting, "https://api.xero.com", "/api.xro/2.0/Organisation", organisation)


def test_connections_validate(xero: tuple[Sandbox, str], identity: OpenAPI) -> None:
    box, token = xero
    with httpx.Client() as client:
        response = client.get(
            f"{box.url}/xero/api/connections", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.json()[0]["tenantId"] == TENANT_ID
    _validate(identity, "https://api.xero.com", "/Connections", response)


def test_a_wrong_answer_would_fail(accounting: OpenAPI) -> None:
    """The validation has teeth: a malformed invoice is caught."""
    bad = httpx.Response(200, json={"Invoices": [{"InvoiceID": "not-a-uuid", "Total": "lots"}]})
    with pytest.raises(InvalidData, match="is not a 'uuid'"):
        _validate(accounting, "https://api.xero.com", "/api.xro/2.0/Invoices", bad)
