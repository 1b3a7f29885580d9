"""Xero's ``where`` and ``order`` query parameters, as far as the emulator honours them.

``where`` is a C#-like expression over a record's fields (an invoice's, :data:`INVOICE`, or a
credit note's, :data:`CREDIT_NOTE`); the emulator takes comparisons of one field with one
literal, joined by ``&&`` / ``AND`` and ``||`` / ``OR`` (``AND`` binding tighter), and nothing
else (no parentheses, no method calls such as ``Name.StartsWith``).
Literals are typed as Xero's are: ``"text"``, numbers, ``DateTime(2026, 1, 31)`` or
``DateTime(2026, 1, 31, 13, 5, 0)`` (UTC), ``Guid("…")``, ``true``/``false``; a literal of the
wrong type for its field is refused as Xero refuses it ("Operator '==' incompatible with operand
types 'Guid' and 'String'"). Field names are matched without regard to case, values with it.

``order`` is ``Field [ASC|DESC]``, several separated by commas.

Anything else is a :class:`QueryError`, which the emulator answers with HTTP 400.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

Value = str | Decimal | datetime | bool
Row = Mapping[str, Value]
Predicate = Callable[[Row], bool]


class QueryError(ValueError):
    """A ``where`` or ``order`` Xero would refuse."""


@dataclass(frozen=True)
class Schema:
    """What ``where`` and ``order`` may name of one kind of record: each field as Xero spells
    it, with the kind of its values (String, Guid, DateTime, Decimal, Boolean)."""

    name: str  # the type Xero names in its messages
    fields: Mapping[str, str]
    _by_lower: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_lower", {name.lower(): name for name in self.fields})

    def field_name(self, text: str) -> str:
        """The field as Xero spells it, or a :class:`QueryError` naming the unknown one."""
        found = self._by_lower.get(text.lower())
        if found is None:
            raise QueryError(f"No property or field '{text}' exists in type '{self.name}'")
        return found


INVOICE = Schema(
    "Invoice",
    {
        "Type": "String",
        "Status": "String",
        "InvoiceNumber": "String",
        "Reference": "String",
        "CurrencyCode": "String",
        "Contact.Name": "String",
        "InvoiceID": "Guid",
        "Contact.ContactID": "Guid",
        "Date": "DateTime",
        "DueDate": "DateTime",
        "UpdatedDateUTC": "DateTime",
        "SubTotal": "Decimal",
        "TotalTax": "Decimal",
        "Total": "Decimal",
        "AmountDue": "Decimal",
        "AmountPaid": "Decimal",
        "HasAttachments": "Boolean",
        "IsDiscounted": "Boolean",
    },
)
CREDIT_NOTE = Schema(
    "CreditNote",
    {
        "Type": "String",
        "Status": "String",
        "CreditNoteNumber": "String",
        "Reference": "String",
        "CurrencyCode": "String",
        "Contact.Name": "String",
        "CreditNoteID": "Guid",
        "Contact.ContactID": "Guid",
        "Date": "DateTime",
        "UpdatedDateUTC": "DateTime",
        "SubTotal": "Decimal",
        "TotalTax": "Decimal",
        "Total": "Decimal",
        "RemainingCredit": "Decimal",
        "HasAttachments": "Boolean",
    },
)

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>==|!=|>=|<=|>|<|&&|\|\||\(|\)|,)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
}


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise QueryError(f"Syntax error at position {position} of the where filter")
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group(kind)))
        position = match.end()
    return found


class _Parser:
    def __init__(self, text: str, schema: Schema) -> None:
        self.schema = schema
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        token = self.peek()
        if token is None:
            raise QueryError("The where filter ends too early")
        if (kind is not None and token[0] != kind) or (value is not None and token[1] != value):
            raise QueryError(f"Unexpected '{token[1]}' in the where filter")
        self.at += 1
        return token[1]

    def joiner(self, symbol: str, word: str) -> bool:
        token = self.peek()
        if token is not None and (
            token == ("op", symbol) or (token[0] == "name" and token[1].upper() == word)
        ):
            self.at += 1
            return True
        return False

    def expression(self) -> Predicate:
        parts = [self.conjunction()]
        while self.joiner("||", "OR"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def conjunction(self) -> Predicate:
        parts = [self.comparison()]
        while self.joiner("&&", "AND"):
            parts.append(self.comparison())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def comparison(self) -> Predicate:
        name = self.schema.field_name(self.take("name"))
        token = self.peek()
        if token is None or token[0] != "op" or token[1] not in _COMPARE:
            raise QueryError(f"Expected a comparison after '{name}'")
        op = self.take("op")
        kind, value = self.literal()
        field_kind = self.schema.fields[name]
        if kind != field_kind:
            raise QueryError(
                f"Operator '{op}' incompatible with operand types '{field_kind}' and '{kind}'"
            )
        if field_kind in ("String", "Guid", "Boolean") and op not in ("==", "!="):
            raise QueryError(
                f"Operator '{op}' incompatible with operand types '{field_kind}' and '{kind}'"
            )
        compare = _COMPARE[op]
        return lambda row: compare(row[name], value)

    def literal(self) -> tuple[str, Value]:
        kind, text = self.peek() or ("", "")
        if kind == "string":
            self.at += 1
            return "String", re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "number":
            self.at += 1
            try:
                return "Decimal", Decimal(text)
            except InvalidOperation:
                raise QueryError(f"'{text}' is not a number") from None
        if kind == "name" and text.lower() in ("true", "false"):
            self.at += 1
            return "Boolean", text.lower() == "true"
        if kind == "name" and text.lower() == "datetime":
            self.at += 1
            return "DateTime", self.date_time()
        if kind == "name" and text.lower() == "guid":
            self.at += 1
            self.take("op", "(")
            raw = self.take("string")[1:-1]
            self.take("op", ")")
            try:
                return "Guid", str(uuid.UUID(raw))
            except ValueError:
                raise QueryError(f"'{raw}' is not a valid Guid") from None
        raise QueryError(f"Expected a value, found '{text}'" if text else "Expected a value")

    def date_time(self) -> datetime:
        self.take("op", "(")
        numbers = [int(self.take("number"))]
        while self.peek() == ("op", ","):
            self.at += 1
            numbers.append(int(self.take("number")))
        self.take("op", ")")
        if len(numbers) not in (3, 6):
            raise QueryError("DateTime takes (year, month, day) or (year, month, day, h, m, s)")
        year, month, day, hour, minute, second = [*numbers, 0, 0, 0][:6]
        try:
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError as exc:
            raise QueryError(f"DateTime{tuple(numbers)}: {exc}") from None


def compile_where(text: str, schema: Schema = INVOICE) -> Predicate:
    """A predicate over a record's field values, or a :class:`QueryError`."""
    parser = _Parser(text, schema)
    if parser.peek() is None:
        raise QueryError("The where filter is empty")
    predicate = parser.expression()
    if parser.peek() is not None:
        raise QueryError(f"Unexpected '{parser.take()}' in the where filter")
    return predicate


def compile_order(text: str, schema: Schema = INVOICE) -> list[tuple[str, bool]]:
    """``[(field, descending), ...]`` from an ``order`` parameter, or a :class:`QueryError`."""
    keys: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise QueryError(f"Cannot order by '{part.strip()}'")
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise QueryError(f"Cannot order by '{part.strip()}': ASC or DESC expected")
        keys.append((schema.field_name(words[0]), direction == "DESC"))
    return keys
