"""What the ingest API accepts, value by value.

Each kind of value has one regular expression, written once: the server checks what a client
sends against it and the OpenAPI document publishes it as the field's ``pattern``, so the two
cannot disagree. The expressions use only what ECMA-262, Python and Rust regular expressions read
alike (explicit character classes, no ``.``, ``\\d``, ``\\s`` or look-arounds).

JSON numbers are kept as the text the body wrote (:class:`JsonNumber`), so that an amount is read
exactly (never through a binary float) and an exponent can be refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

YEARS = (1000, 9998)  # 9998: a time in the last year still has a UTC reading in any time zone
AMOUNT_MAX = Decimal(10) ** 12
AMOUNT_PLACES = 4


@dataclass(frozen=True)
class JsonNumber:
    """A number as the body wrote it."""

    text: str


@dataclass(frozen=True)
class Syntax:
    """A regular expression matched against a whole value."""

    core: str
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", re.compile(self.core))

    @property
    def pattern(self) -> str:
        """As JSON Schema's ``pattern`` (which searches) must say it: anchored."""
        return f"^(?:{self.core})$"

    def matches(self, value: str) -> bool:
        return self._compiled.fullmatch(value) is not None


# -- text --------------------------------------------------------------------------------------

CONTROL = r"\x00-\x1f\x7f-\x9f"
# every character Python's str.strip() or ECMA-262's \s takes for white space, but the controls
SPACE = r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
SPACES = (
    " \u00a0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
TEXT = Syntax(f"[^{CONTROL}]*")  # dropped: white space at either end
TRIMMED = Syntax(f"(?:[^{CONTROL}{SPACE}](?:[^{CONTROL}]*[^{CONTROL}{SPACE}])?)?")
# a part of an external id between slashes that URLs cannot carry (clients resolve it away)
DOT_SEGMENT = r"(?:^|/)\.{1,2}(?:/|$)"
_DOT_SEGMENT = re.compile(DOT_SEGMENT)
_CONTROL_CHAR = re.compile(f"[{CONTROL}]")


def text_problem(value: str, syntax: Syntax = TEXT) -> str | None:
    """Why ``value`` is not acceptable text, or None."""
    if syntax.matches(value):
        return None
    control = _CONTROL_CHAR.search(value)
    if control is not None:
        return f"must not contain control characters (U+{ord(control[0]):04X} at {control.start()})"
    return "must not start or end with white space"


def external_id_problem(value: str) -> str | None:
    """Why ``value`` cannot be an external id, or None."""
    if not value:
        return "must not be empty"
    if len(value) > 200:
        return "must be at most 200 characters"
    problem = text_problem(value, TRIMMED)
    if problem is None and _DOT_SEGMENT.search(value):
        problem = "must not have '.' or '..' between slashes (a URL cannot carry it)"
    return problem


def text_schema(max_length: int) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, "pattern": TEXT.pattern}


EXTERNAL_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "pattern": TRIMMED.pattern,
    "not": {"pattern": DOT_SEGMENT},
    "description": "The invoice's id in your system: pushing it again updates it. 1 to 200 "
    "characters, no control characters, no white space at either end (refused, not trimmed), "
    "and no '.' or '..' between slashes (so that it can be read back at "
    "/v1/invoices/{external_id}).",
}

# -- dates and times ---------------------------------------------------------------------------

_YEAR = r"(?:1[0-9]{3}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
_LEAP = (  # the leap years among them
    r"(?:(?:1[0-9]|[2-9][0-9])(?:0[48]|[2468][048]|[13579][26])"
    r"|(?:1[26]|[2468][048]|[3579][26])00)"
)
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_DATE = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP}-02-29)"
_OFFSET = r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
DATE = Syntax(_DATE)
TIME = Syntax(f"{_DATE}[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{{1,9}})?{_OFFSET}")
_DATE_SHAPE = re.compile(r"([0-9]{4})-[0-9]{2}-[0-9]{2}")
_TIME_SHAPE = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
_RANGE = f"must be in the years {YEARS[0]} to {YEARS[1]}"


def _date_problem(value: str) -> str:
    shape = _DATE_SHAPE.fullmatch(value)
    if shape is None:
        return "must be a date written YYYY-MM-DD, such as 2026-11-02"
    if not YEARS[0] <= int(shape[1]) <= YEARS[1]:
        return _RANGE
    return f"{value} is not a day of the calendar"


def parse_date(value: Any) -> date:
    if not isinstance(value, str):
        raise ValueError("must be a date written YYYY-MM-DD, as a string")
    if not DATE.matches(value):
        raise ValueError(_date_problem(value))
    return date.fromisoformat(value)


def _time_problem(value: str) -> str:
    shape = _TIME_SHAPE.fullmatch(value)
    if shape is None:
        return (
            "must be an RFC 3339 time with a time zone, such as 2026-11-02T09:00:00+13:00 "
            "or 2026-11-01T20:00:00Z"
        )
    if shape[6] is None:
        return "must carry a time zone (such as Z or +13:00)"
    if not DATE.matches(shape[1]):
        return _date_problem(shape[1])
    if shape[5] is not None and len(shape[5]) > 9:
        return "must have at most 9 digits after the seconds"
    return "has an hour, minute, second or time zone out of range"


def parse_time(value: Any) -> datetime:
    """An RFC 3339 time with its offset, as UTC (digits past microseconds are dropped)."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 time with a time zone, as a string")
    if not TIME.matches(value):
        raise ValueError(_time_problem(value))
    shape = _TIME_SHAPE.fullmatch(value)
    assert shape is not None
    zone = shape[6].upper()
    offset = timedelta(0)
    if zone != "Z":
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        offset = -offset if zone[0] == "-" else offset
    local = datetime.combine(
        date.fromisoformat(shape[1]),
        datetime.min.time().replace(
            hour=int(shape[2]),
            minute=int(shape[3]),
            second=int(shape[4]),
            microsecond=int((shape[5] or "").ljust(6, "0")[:6]),
        ),
        tzinfo=timezone(offset),
    )
    return local.astimezone(UTC)


DATE_SCHEMA: dict[str, Any] = {"type": "string", "format": "date", "pattern": DATE.pattern}
TIME_SCHEMA: dict[str, Any] = {"type": "string", "format": "date-time", "pattern": TIME.pattern}

# -- amounts -----------------------------------------------------------------------------------

AMOUNT = Syntax(r"-?(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,4})?")
_TOO_LARGE = "must be less than 1,000,000,000,000 in size"
_PLACES = f"must have at most {AMOUNT_PLACES} decimal places"
_EXPONENT = "must be written without an exponent (1000.5, not 1.0005e3)"
_DECIMAL = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?")


def _amount_problem(value: str) -> str:
    if not value:
        return 'must not be empty: an amount such as "0.00"'
    if "e" in value or "E" in value:
        return _EXPONENT
    if "_" in value:
        return "must be written without underscores"
    shape = _DECIMAL.fullmatch(value)
    if shape is None:
        return 'must be a decimal such as "115.00" or "-3.5": digits, a point, a minus sign'
    whole, fraction = shape[1], shape[2] or ""
    if len(whole) > 1 and whole.startswith("0"):
        return "must not have leading zeros"
    if len(whole) > 12:
        return _TOO_LARGE
    return _PLACES if len(fraction) > AMOUNT_PLACES else "must be a decimal such as 115.00"


def parse_amount(value: Any) -> Decimal:
    """A decimal string matching :data:`AMOUNT`, or a JSON number of the same bounds."""
    if isinstance(value, str):
        if not AMOUNT.matches(value):
            raise ValueError(_amount_problem(value))
        return Decimal(value)
    if isinstance(value, JsonNumber):
        if "e" in value.text or "E" in value.text:
            raise ValueError(_EXPONENT)
        if len(value.text) > 40:
            raise ValueError(_TOO_LARGE)
        number = Decimal(value.text)
        if abs(number) >= AMOUNT_MAX:
            raise ValueError(_TOO_LARGE)
        if number != number.quantize(Decimal(1).scaleb(-AMOUNT_PLACES)):
            raise ValueError(_PLACES)
        return number
    raise ValueError('must be an amount: a decimal string such as "115.00", or a JSON number')


AMOUNT_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": AMOUNT.pattern},
        {
            "type": "number",
            "exclusiveMinimum": -(10**12),
            "exclusiveMaximum": 10**12,
            "multipleOf": float(Decimal(1).scaleb(-AMOUNT_PLACES)),
        },
    ],
    "description": 'A decimal string (such as "115.00": digits, at most 4 after the point, '
    "an optional minus sign, no exponent, no leading zeros) or a JSON number without an "
    "exponent; less than 10^12 in size.",
}

CURRENCY = Syntax("[A-Z]{3}")
