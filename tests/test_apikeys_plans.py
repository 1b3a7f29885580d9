from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlmodel import select

from intdash.core.errors import ConflictError, FieldErrors, NotFoundError
from intdash.core.models import ApiKey
from intdash.core.plans import LicenceState, Tier
from intdash.core.services.apikeys import KeyProblem, KeyState
from intdash.core.status import Reason
from intdash.core.workspace import Workspace
from tests.conftest import FakeClock


@pytest.fixture
def custom(ws: Workspace) -> str:
    return ws.integrations.create("custom", name="ERP push").integration.uid


def test_create_key_shown_once_stored_as_hash(ws: Workspace, custom: str) -> None:
    created = ws.keys.create(custom, "  production  ")
    match = re.fullmatch(r"idk_([a-z0-9]{10})_([A-Za-z0-9]{32})", created.key)
    assert match
    assert created.view.key_id == match.group(1)
    assert created.view.label == "production"
    assert created.view.state is KeyState.ACTIVE
    with ws.db.read() as session:
        row = session.exec(select(ApiKey)).one()
    assert match.group(2) not in row.secret_hash
    assert len(row.secret_hash) == 64
    listed = ws.keys.list(custom)
    assert [k.key_id for k in listed] == [created.view.key_id]
    assert "key" not in listed[0].to_json()


def test_custom_integration_turns_active_with_a_key(ws: Workspace, custom: str) -> None:
    assert ws.integrations.get(custom).status.reason is Reason.NO_API_KEY
    key = ws.keys.create(custom, "k").view.key_id
    assert ws.integrations.get(custom).status.active
    ws.keys.revoke(key)
    assert ws.integrations.get(custom).status.reason is Reason.NO_API_KEY


def test_verify(ws: Workspace, custom: str, clock: FakeClock) -> None:
    created = ws.keys.create(custom, "k")
    check = ws.keys.verify(created.key)
    assert check.ok and check.integration_uid == custom and check.key_id == created.view.key_id
    first_use = ws.keys.list(custom)[0].last_used
    assert first_use == clock()

    wrong_secret = created.key[:-4] + ("AAAA" if not created.key.endswith("AAAA") else "BBBB")
    assert ws.keys.verify(wrong_secret).problem is KeyProblem.UNKNOWN
    assert ws.keys.verify("idk_nosuchkeyid_" + "A" * 32).problem is KeyProblem.UNKNOWN
    assert ws.keys.verify("Bearer nonsense").problem is KeyProblem.MALFORMED
    assert ws.keys.verify("").problem is KeyProblem.MALFORMED

    clock.advance(seconds=30)  # within the throttle: last used is not rewritten
    assert ws.keys.verify(created.key).ok
    assert ws.keys.list(custom)[0].last_used == first_use
    clock.advance(seconds=61)
    assert ws.keys.verify(created.key).ok
    assert ws.keys.list(custom)[0].last_used == clock()

    ws.keys.revoke(created.view.key_id)
    assert ws.keys.verify(created.key).problem is KeyProblem.REVOKED


def test_revoke(ws: Workspace, custom: str) -> None:
    key_id = ws.keys.create(custom, "k").view.key_id
    view = ws.keys.revoke(key_id)
    assert view.state is KeyState.REVOKED
    with pytest.raises(ConflictError, match="already revoked"):
        ws.keys.revoke(key_id)
    with pytest.raises(NotFoundError, match="no API key with id 'nope'"):
        ws.keys.revoke("nope")
    assert [e.action for e in ws.audit.list(custom)][:2] == ["api_key.revoked", "api_key.created"]


def test_keys_only_for_live_custom_integrations(ws: Workspace, custom: str) -> None:
    xero = ws.integrations.create("xero").integration.uid
    with pytest.raises(ConflictError, match="belong to Custom Integrations"):
        ws.keys.create(xero, "k")
    with pytest.raises(FieldErrors, match="label: must not be empty"):
        ws.keys.create(custom, "  ")
    ws.integrations.remove(custom)
    with pytest.raises(ConflictError, match="was removed"):
        ws.keys.create(custom, "k")


def test_default_plan(ws: Workspace) -> None:
    plan = ws.plans.current()
    assert (plan.tier, plan.monthly_limit, plan.limit_is_default) == (Tier.STARTER, 500, True)
    assert plan.spec.interval_minutes == 60
    assert (plan.licence_expires, plan.licence) == (None, LicenceState.VALID)


@pytest.mark.parametrize(
    ("tier", "interval", "limit", "frequency"),
    [
        ("starter", 60, 500, "basic"),
        ("growth", 5, 5_000, "near real-time"),
        ("scale", 1, 50_000, "real-time"),
    ],
)
def test_tiers(ws: Workspace, tier: str, interval: int, limit: int, frequency: str) -> None:
    plan = ws.plans.set(tier)
    assert (plan.spec.interval_minutes, plan.monthly_limit, plan.spec.frequency) == (
        interval,
        limit,
        frequency,
    )


def test_limit_override_and_reset(ws: Workspace) -> None:
    assert ws.plans.set("growth", monthly_limit=123).monthly_limit == 123
    plan = ws.plans.current()
    assert (plan.monthly_limit, plan.limit_is_default) == (123, False)
    assert ws.plans.set("scale").monthly_limit == 50_000  # a new tier, its default
    with pytest.raises(FieldErrors, match="limit: must be zero or more"):
        ws.plans.set("scale", monthly_limit=-1)
    with pytest.raises(FieldErrors, match="tier: must be one of starter, growth, scale"):
        ws.plans.set("platinum")


def test_limits_come_from_settings(ws: Workspace) -> None:
    ws.settings.limits.growth = 42
    assert ws.plans.set("growth").monthly_limit == 42


def test_licence_lapses_the_day_after_expiry(ws: Workspace, clock: FakeClock) -> None:
    uid = ws.integrations.create("custom").integration.uid
    ws.keys.create(uid, "k")
    today = clock().date()
    plan = ws.plans.set("growth", licence_expires=today)
    assert plan.licence is LicenceState.VALID
    assert ws.integrations.get(uid).status.active
    clock.advance(days=1)
    assert ws.plans.current().licence is LicenceState.LAPSED
    assert ws.integrations.get(uid).status.reason is Reason.LICENCE_LAPSED
    # changing the tier keeps the expiry; renewing it brings the integration back
    assert ws.plans.set("scale").licence_expires == today
    ws.plans.set("scale", licence_expires=today + timedelta(days=365))
    assert ws.integrations.get(uid).status.active
    assert ws.plans.set("scale", licence_expires=None).licence_expires is None
    assert ws.audit.list()[0].action == "plan.changed"


def test_plan_json(ws: Workspace) -> None:
    data = ws.plans.set("growth", monthly_limit=1000, licence_expires=date(2027, 6, 30)).to_json()
    assert data == {
        "tier": "growth",
        "label": "Growth",
        "frequency": "near real-time",
        "sync_interval_minutes": 5,
        "monthly_invoice_limit": 1000,
        "limit_is_default": False,
        "licence_expires": "2027-06-30",
        "licence": "valid",
    }
