"""Plans and the licence: what each tier syncs how often, and how many invoices a month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class Tier(StrEnum):
    STARTER = "starter"
    GROWTH = "growth"
    SCALE = "scale"


@dataclass(frozen=True)
class TierSpec:
    tier: Tier
    label: str
    frequency: str
    interval_minutes: int


TIERS: dict[Tier, TierSpec] = {
    Tier.STARTER: TierSpec(Tier.STARTER, "Starter", "basic", 60),
    Tier.GROWTH: TierSpec(Tier.GROWTH, "Growth", "near real-time", 5),
    Tier.SCALE: TierSpec(Tier.SCALE, "Scale", "real-time", 1),
}


class LicenceState(StrEnum):
    VALID = "valid"
    LAPSED = "lapsed"


def licence_state(expires: date | None, today: date) -> LicenceState:
    """A licence is valid through its expiry date and lapsed from the day after."""
    if expires is not None and today > expires:
        return LicenceState.LAPSED
    return LicenceState.VALID
