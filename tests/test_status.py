from __future__ import annotations

import pytest

from intdash.core.status import Reason, StatusFacts, derive_status

HEALTHY = StatusFacts(oauth=True, authorised=True, monthly_limit=500)


def test_healthy_is_active() -> None:
    status = derive_status(HEALTHY)
    assert status.active
    assert (status.word, status.glyph, status.explanation) == ("Active", "●", "")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"removed": True}, Reason.REMOVED),
        ({"licence_lapsed": True}, Reason.LICENCE_LAPSED),
        ({"authorised": False}, Reason.NEEDS_AUTHORISATION),
        ({"auth_error": "invalid_grant"}, Reason.RECONNECT_NEEDED),
        ({"missing_fields": ("url",)}, Reason.NOT_CONFIGURED),
        ({"sync_enabled": False}, Reason.SYNC_DISABLED),
        ({"invoices_this_month": 500}, Reason.LIMIT_REACHED),
        ({"last_sync_error": "timed out"}, Reason.LAST_SYNC_FAILED),
        ({"oauth": False, "authorised": False, "needs_api_key": True}, Reason.NO_API_KEY),
    ],
)
def test_each_reason(change: dict[str, object], reason: Reason) -> None:
    facts = StatusFacts(**{**HEALTHY.__dict__, **change})
    status = derive_status(facts)
    assert not status.active
    assert status.reason is reason
    assert status.word == "Inactive" and status.glyph == "○"


def test_most_fundamental_reason_wins() -> None:
    facts = StatusFacts(
        oauth=True,
        authorised=False,
        licence_lapsed=True,
        sync_enabled=False,
        last_sync_error="boom",
    )
    assert derive_status(facts).reason is Reason.LICENCE_LAPSED
    assert (
        derive_status(
            StatusFacts(oauth=True, authorised=True, auth_error="x", sync_enabled=False)
        ).reason
        is Reason.RECONNECT_NEEDED
    )


def test_explanations_carry_detail() -> None:
    status = derive_status(StatusFacts(invoices_this_month=1200, monthly_limit=1000))
    assert status.explanation == "monthly limit reached: 1,200 of 1,000 this month"
    status = derive_status(StatusFacts(last_sync_error="HTTP 500 from Xero"))
    assert status.explanation == "last sync failed: HTTP 500 from Xero"


def test_no_limit_when_none() -> None:
    assert derive_status(StatusFacts(invoices_this_month=10**9, monthly_limit=None)).active
