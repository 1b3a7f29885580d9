"""The V-SDC emulator's tax rates: groups of labelled rates, as ``GET /api/v3/status`` gives
them, and the SDC's way of writing times (Fiji time, with milliseconds and the offset)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

FIJI = timezone(timedelta(hours=12), "FJT")


@dataclass(frozen=True)
class TaxCategory:
    name: str
    category_type: int
    order_id: int
    rates: tuple[tuple[str, Decimal], ...]  # (label, rate in percent)

    def json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "categoryType": self.category_type,
            "orderId": self.order_id,
            "taxRates": [{"rate": float(rate), "label": label} for label, rate in self.rates],
        }


@dataclass(frozen=True)
class TaxRates:
    """One group of tax rates (``groupId``) and when it took effect."""

    group_id: int
    valid_from: datetime
    categories: tuple[TaxCategory, ...]

    @property
    def labels(self) -> dict[str, tuple[TaxCategory, Decimal]]:
        return {label: (c, rate) for c in self.categories for label, rate in c.rates}

    def json(self) -> dict[str, Any]:
        return {
            "validFrom": stamp(self.valid_from),
            "groupId": self.group_id,
            "taxCategories": [c.json() for c in self.categories],
        }


def fiji_rates(group_id: int, valid_from: datetime) -> TaxRates:
    """Fiji's VAT: standard 15 % as ``A``, zero-rated ``B``, exempt ``C``."""
    return rates_of({"A": 15, "B": 0, "C": 0}, group_id, valid_from)


def rates_of(
    rates: Mapping[str, float | int | Decimal],
    group_id: int,
    valid_from: datetime,
    categories: Mapping[str, str] | None = None,
) -> TaxRates:
    """Rates by label (percent); each label's category is ``categories[label]``, else ``Exempt``
    for ``C`` and ``VAT`` for the rest."""
    names = {
        label: (categories or {}).get(label) or ("Exempt" if label == "C" else "VAT")
        for label in rates
    }
    grouped: dict[str, list[tuple[str, Decimal]]] = {}
    for label, rate in rates.items():
        if len(label) != 1 or not label.isalpha():
            raise ValueError(f"a tax label is one letter, not {label!r}")
        value = Decimal(str(rate))
        if not Decimal(0) <= value <= Decimal(100):
            raise ValueError(f"rate of {label} must be 0 to 100 percent")
        grouped.setdefault(names[label], []).append((label, value))
    return TaxRates(
        group_id,
        valid_from,
        tuple(
            TaxCategory(name, 0, order, tuple(sorted(pairs)))
            for order, (name, pairs) in enumerate(grouped.items(), start=1)
        ),
    )


def stamp(moment: datetime) -> str:
    """The SDC's time as it writes it: Fiji time, milliseconds, the offset."""
    return moment.astimezone(FIJI).isoformat(timespec="milliseconds")


def parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=FIJI) if moment.tzinfo is None else moment


def rates_record(rates: TaxRates) -> dict[str, Any]:
    """``rates`` as the emulator keeps them on file (rates as exact decimal strings)."""
    return {
        "groupId": rates.group_id,
        "validFrom": rates.valid_from.isoformat(),
        "categories": [
            {
                "name": c.name,
                "categoryType": c.category_type,
                "orderId": c.order_id,
                "rates": [[label, str(rate)] for label, rate in c.rates],
            }
            for c in rates.categories
        ],
    }


def rates_from_record(record: dict[str, Any]) -> TaxRates:
    """What :func:`rates_record` wrote (KeyError, TypeError or ValueError when it is not)."""
    return TaxRates(
        int(record["groupId"]),
        datetime.fromisoformat(str(record["validFrom"])),
        tuple(
            TaxCategory(
                str(c["name"]),
                int(c["categoryType"]),
                int(c["orderId"]),
                tuple((str(label), Decimal(str(rate))) for label, rate in c["rates"]),
            )
            for c in record["categories"]
        ),
    )
