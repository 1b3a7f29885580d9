"""Column types that keep times in UTC and money exact on every database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine

MONEY_PLACES = 4
_SCALE = Decimal(10) ** MONEY_PLACES


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime; SQLite stores it naive, PostgreSQL as timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC one is needed")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """An exact amount with up to four decimal places.

    PostgreSQL keeps it as NUMERIC(20, 4); SQLite, which has no exact decimal type, as an
    integer count of ten-thousandths, so that it sorts and sums exactly.
    """

    impl = BigInteger
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(20, MONEY_PLACES))
        return dialect.type_descriptor(BigInteger())

    @staticmethod
    def _exact(value: Decimal | int | str) -> Decimal:
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"not an amount: {value!r}") from None
        if not amount.is_finite():
            raise ValueError(f"not an amount: {value!r}")
        if amount != amount.quantize(Decimal(1).scaleb(-MONEY_PLACES)):
            raise ValueError(f"amount {value} has more than {MONEY_PLACES} decimal places")
        return amount

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = self._exact(value)
        if dialect.name == "postgresql":
            return amount
        return int(amount * _SCALE)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        amount = Decimal(value) if dialect.name == "postgresql" else Decimal(int(value)) / _SCALE
        return canonical_amount(amount)


_CENTS = Decimal("0.01")


def canonical_text(amount: Decimal) -> str:
    """:func:`canonical_amount` as text, at the cost of one ``str`` in the common case."""
    text = str(amount)
    point = text.find(".")
    if point >= 0 and len(text) - point == 3 and "E" not in text:  # two places: canonical
        return text
    return str(canonical_amount(amount))


def canonical_amount(amount: Decimal) -> Decimal:
    """One spelling per amount on every database: at least two places, at most four."""
    if amount.as_tuple().exponent == -2:  # the common case, already canonical
        return amount
    exact = amount.quantize(Decimal(1).scaleb(-MONEY_PLACES))
    cents = exact.quantize(_CENTS)
    return cents if cents == exact else exact.normalize()
