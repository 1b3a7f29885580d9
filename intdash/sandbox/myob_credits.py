"""MYOB's credit notes and credit settlements, and the OData filters that reach them.

In AccountRight a credit note is not a document of its own: it is a sale whose amounts are
negative (``Sale/Invoice`` and its layouts list it among the invoices: ``Subtotal``,
``TotalTax``, ``TotalAmount`` and its lines' ``Total`` below zero, an Item line's
``ShipQuantity`` negative, a Service line's ``UnitPrice``). Its ``Status`` is ``Credit`` while
some of its credit is unapplied, ``Closed`` once all of it is; its ``BalanceDueAmount`` is minus
what is unapplied. A positive sale is ``Open`` or ``Closed``, never ``Credit``.

Applying a credit note to an invoice of the same customer and currency is a credit settlement,
``Sale/CreditSettlement``: ``UID``, ``Number``, ``Date``, ``CreditFromInvoice {UID, Number,
URI}`` (the credit note), ``Customer``, ``CreditAmount``, ``Memo``, ``Lines [{Type, Sale {UID,
Number, URI}, AmountApplied}]`` (``Type`` ``Invoice``, ``Order`` or ``Purged``, as MYOB's .NET
SDK has ``CreditSettlement`` and ``CreditSettlementLine``), ``ForeignCurrency``,
``LastModified`` and ``RowVersion``. Its list pages as the sales do (``$top`` up to 1,000,
``$skip``, ``NextPageLink``, oldest change first).

Whether a settlement changes the ``LastModified`` of the sales it settles is not published. The
emulator takes the answer that is hardest for a sync: settling changes the credit note's and the
invoice's ``Status``, ``BalanceDueAmount`` and ``RowVersion``, never their ``LastModified``;
only the settlement's own ``LastModified`` tells when it was made.

``$filter`` takes what MYOB's OData (version 3) takes, as far as intdash uses it: comparisons of
``LastModified`` (``gt``, ``ge``, ``lt``, ``le``, ``eq``) with a ``datetime'yyyy-mm-ddThh:mm[:ss
[.f]]'`` literal (no offset, no ``Z``), and ``eq`` of a GUID field (a sale's ``UID``; a
settlement's ``UID`` or ``CreditFromInvoice/UID``) with a ``guid'…'`` literal, several of one
field joined by ``or`` (in parentheses when more follows), the rest joined by ``and``. Anything
else is a ``ValueError``, which the emulator answers with 400.
"""

from __future__ import annotations

import bisect
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from intdash.sandbox.dataset import Dataset, SourceInvoice

_DATETIME = r"datetime'(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.(\d{1,7}))?)?)'"
_TIME_CLAUSE = re.compile(rf"LastModified (gt|ge|lt|le|eq) {_DATETIME}")
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_GUID_CLAUSE = re.compile(rf"([A-Za-z]+(?:/[A-Za-z]+)?) eq guid'({_GUID})'")
_TICK = timedelta(microseconds=1)
SALE_GUIDS = frozenset({"UID"})
SETTLEMENT_GUIDS = frozenset({"UID", "CreditFromInvoice/UID"})


def layout_of(inv: SourceInvoice) -> str:
    """The invoice's layout, fixed for its life: Item for one in three, else Service."""
    return "Item" if int(inv.id[-2:], 16) % 3 == 0 else "Service"


# -- $filter ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """What a ``$filter`` on ``LastModified`` lets through: later than ``after`` (None: from
    the beginning) and at or before ``upto`` (None: to the end)."""

    after: datetime | None = None
    upto: datetime | None = None

    def holds(self, moment: datetime) -> bool:
        return (self.after is None or moment > self.after) and (
            self.upto is None or moment <= self.upto
        )


@dataclass(frozen=True)
class Query:
    """A ``$filter``: its window on ``LastModified``, and for each GUID field it names, the
    GUIDs (lower case) that field must be one of."""

    window: Window = Window()
    guids: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def takes(self, moment: datetime, guids: Mapping[str, str]) -> bool:
        return self.window.holds(moment) and all(
            guids.get(name, "").lower() in wanted for name, wanted in self.guids.items()
        )


def _moment(literal: str, fraction: str | None) -> datetime:
    if fraction:  # up to seven digits (ticks); Python reads six
        literal = literal[: len(literal) - len(fraction)] + fraction[:6].ljust(6, "0")
    return datetime.fromisoformat(literal).replace(tzinfo=UTC)


def _guids(part: str, fields: frozenset[str], alone: bool) -> tuple[str, frozenset[str]]:
    """``F eq guid'…'``, or several of one field joined by ``or`` (in parentheses unless the
    filter is nothing else)."""
    inner = part[1:-1] if part.startswith("(") and part.endswith(")") else part
    if inner is part and " or " in part and not alone:
        raise ValueError(part)  # "a or b and c" is "a or (b and c)": not what is meant here
    names: set[str] = set()
    values: set[str] = set()
    for clause in inner.split(" or "):
        found = _GUID_CLAUSE.fullmatch(clause)
        if found is None or found.group(1) not in fields:
            raise ValueError(clause)
        names.add(found.group(1))
        values.add(found.group(2).lower())
    if len(names) != 1:
        raise ValueError(part)
    return names.pop(), frozenset(values)


def parse_filter(text: str, guid_fields: frozenset[str] = frozenset()) -> Query:
    """A ``$filter`` as MYOB's OData takes it (see the module's words; ValueError for anything
    else)."""
    after: datetime | None = None
    upto: datetime | None = None
    guids: dict[str, frozenset[str]] = {}
    parts = text.split(" and ")
    for part in parts:
        found = _TIME_CLAUSE.fullmatch(part)
        if found is None:
            name, values = _guids(part, guid_fields, alone=len(parts) == 1)
            guids[name] = guids[name] & values if name in guids else values
            continue
        op, literal, fraction = found.groups()
        moment = _moment(literal, fraction)
        low = {"gt": moment, "ge": moment - _TICK, "eq": moment - _TICK}.get(op)
        high = {"lt": moment - _TICK, "le": moment, "eq": moment}.get(op)
        if low is not None:
            after = low if after is None else max(after, low)
        if high is not None:
            upto = high if upto is None else min(upto, high)
    return Query(Window(after, upto), guids)


# -- the books' credit notes and settlements -------------------------------------------------


def utc_text(moment: datetime) -> str:
    """A time as MYOB writes it: UTC, without an offset."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat()


def customer_link(inv: SourceInvoice, base: str) -> dict[str, Any]:
    return {
        "UID": inv.contact_id,
        "Name": inv.contact,
        "DisplayID": f"CUS{inv.index % 500:05d}",
        "URI": f"{base}/Contact/Customer/{inv.contact_id}",
    }


@dataclass(frozen=True)
class Settlement:
    """Credit of one credit note applied to one invoice (MYOB's settlement may apply it to
    several; the emulator makes one line each)."""

    uid: str
    number: str
    credit_note: int  # indices in the dataset
    invoice: int
    amount: Decimal
    day: date
    modified: datetime
    order: int  # which was made first, among those of one time


@dataclass(frozen=True)
class Standing:
    """How a sale stands, as MYOB shows it: its sign (-1 for a credit note), ``Status``,
    ``BalanceDueAmount`` and how many settlements have changed it (each changes its
    ``RowVersion``, not its ``LastModified``)."""

    sign: int
    status: str
    balance: Decimal
    settled: int


class CreditBook:
    """Which sales of one company's :class:`Dataset` are credit notes, and the settlements that
    apply them. With ``every`` (0: none), one in ``every`` of the original sales is a credit
    note raised for the sale before it (its customer and currency), and every other one of
    those is settled against that sale when it is made, where that sale was open."""

    def __init__(
        self, dataset: Dataset, every: int, status_of: Callable[[SourceInvoice], str]
    ) -> None:
        if every == 1 or every < 0:
            raise ValueError("credit_every must be 0 (no credit notes) or at least 2")
        self.dataset = dataset
        self.every = every
        self.status_of = status_of
        self._made: dict[int, int | None] = {}  # credit notes made since: index -> raised for
        self._settlements: list[Settlement] = []  # in (modified, order) order
        self._of_credit: dict[int, list[Settlement]] = {}
        self._of_invoice: dict[int, list[Settlement]] = {}
        self._last = datetime.min.replace(tzinfo=UTC)
        if every:
            for index in range(2 * every - 1, dataset.base_size, 2 * every):
                invoice = dataset.invoice(index - 1)
                if status_of(invoice) == "Open":
                    credit = dataset.invoice(index)
                    amount = min(credit.total, invoice.total)
                    self._add(index, index - 1, amount, credit.issue_date, credit.updated)

    # -- what is what ------------------------------------------------------------------------

    def is_credit_note(self, index: int) -> bool:
        seeded = self.every and index < self.dataset.base_size and (index + 1) % self.every == 0
        return bool(seeded) or index in self._made

    def raised_for(self, index: int) -> int | None:
        """The sale a credit note was raised for (whose customer and currency it has)."""
        if index in self._made:
            return self._made[index]
        return index - 1 if self.is_credit_note(index) else None

    def shown(self, inv: SourceInvoice) -> SourceInvoice:
        """The sale as MYOB has it: a credit note with its customer's and currency."""
        origin = self.raised_for(inv.index)
        if origin is None:
            return inv
        other = self.dataset.invoice(origin)
        return replace(
            inv, contact=other.contact, contact_id=other.contact_id, currency=other.currency
        )

    def standing(self, inv: SourceInvoice) -> Standing:
        if self.is_credit_note(inv.index):
            settled = self._of_credit.get(inv.index, [])
            unapplied = max(Decimal(0), inv.total - sum((s.amount for s in settled), Decimal(0)))
            return Standing(-1, "Credit" if unapplied else "Closed", -unapplied, len(settled))
        status = self.status_of(inv)
        received = self._of_invoice.get(inv.index, [])
        if status != "Open" or not received:
            return Standing(1, status, Decimal(0) if status == "Closed" else inv.total, 0)
        due = max(Decimal(0), inv.total - sum((s.amount for s in received), Decimal(0)))
        return Standing(1, "Open" if due else "Closed", due, len(received))

    # -- changes -----------------------------------------------------------------------------

    def create(self, raised_for: int | None) -> int:
        """A credit note made now (of the dataset's making: its amounts are the dataset's,
        shown negative), raised for that sale; returns its index."""
        if raised_for is not None:
            self._sale(raised_for, "raise a credit note for")
        (index,) = self.dataset.create(1)
        self._made[index] = raised_for
        return index

    def settle(self, credit_note: int, invoice: int, amount: Decimal | None = None) -> Settlement:
        """Apply ``amount`` of a credit note (all that is unapplied, when None) to an invoice,
        as MYOB allows it: a live credit note and a live open invoice of the same customer
        and currency, no more than either has left (ValueError naming what is wrong)."""
        if not (self.dataset.exists(credit_note) and self.is_credit_note(credit_note)):
            raise ValueError(f"sale {credit_note} is not a credit note")
        sale = self._sale(invoice, "apply credit to")
        credit = self.shown(self.dataset.invoice(credit_note))
        if (credit.contact_id, credit.currency) != (sale.contact_id, sale.currency):
            raise ValueError(
                f"credit note {credit.number} is {credit.contact}'s in {credit.currency}, "
                f"invoice {sale.number} {sale.contact}'s in {sale.currency}"
            )
        unapplied = -self.standing(credit).balance
        due = self.standing(sale)
        if due.status != "Open":
            raise ValueError(f"invoice {sale.number} is {due.status}: nothing is owed on it")
        amount = min(unapplied, due.balance) if amount is None else amount
        if not 0 < amount <= min(unapplied, due.balance):
            raise ValueError(
                f"{amount} is not between 0 and what is left: {unapplied} of credit note "
                f"{credit.number}, {due.balance} owed on invoice {sale.number}"
            )
        now = self.dataset.clock().astimezone(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        return self._add(credit_note, invoice, amount, now.date(), max(now, self._last))

    def _sale(self, index: int, what: str) -> SourceInvoice:
        if not self.dataset.exists(index) or self.is_credit_note(index):
            raise ValueError(f"cannot {what} sale {index}: it is not a live invoice")
        return self.dataset.invoice(index)

    def _add(
        self, credit_note: int, invoice: int, amount: Decimal, day: date, modified: datetime
    ) -> Settlement:
        order = len(self._settlements)
        uid = uuid.uuid5(uuid.NAMESPACE_OID, f"{self.dataset.seed}:settlement:{order}")
        made = Settlement(
            str(uid), f"CR{order + 1:06d}", credit_note, invoice, amount, day, modified, order
        )
        bisect.insort(self._settlements, made, key=lambda s: (s.modified, s.order))
        self._of_credit.setdefault(credit_note, []).append(made)
        self._of_invoice.setdefault(invoice, []).append(made)
        self._last = max(self._last, modified)
        return made

    # -- reading -----------------------------------------------------------------------------

    def settlements(self, query: Query) -> list[Settlement]:
        """The settlements the filter takes, oldest change first."""
        return [
            s
            for s in self._settlements
            if query.takes(s.modified, self._guids_of(s))
        ]  # fmt: skip

    def _guids_of(self, settlement: Settlement) -> dict[str, str]:
        credit = self.dataset.invoice(settlement.credit_note)
        return {"UID": settlement.uid, "CreditFromInvoice/UID": credit.id}

    def render(self, settlement: Settlement, base: str, sale_uri: Callable[[int], str]) -> Any:
        """A settlement as ``Sale/CreditSettlement`` lists it."""
        credit = self.shown(self.dataset.invoice(settlement.credit_note))
        sale = self.dataset.invoice(settlement.invoice)
        amount = float(settlement.amount)
        return {
            "UID": settlement.uid,
            "CreditFromInvoice": {
                "UID": credit.id,
                "Number": credit.number,
                "URI": sale_uri(credit.index),
            },
            "Customer": customer_link(credit, base),
            "Number": settlement.number,
            "Date": f"{settlement.day.isoformat()}T00:00:00",
            "CreditAmount": amount,
            "Memo": f"Credit applied to {sale.number}",
            "Lines": [
                {
                    "Type": "Invoice",
                    "Sale": {"UID": sale.id, "Number": sale.number, "URI": sale_uri(sale.index)},
                    "AmountApplied": amount,
                }
            ],
            "ForeignCurrency": None if credit.currency == "NZD" else {"Code": credit.currency},
            "LastModified": utc_text(settlement.modified),
            "URI": f"{base}/Sale/CreditSettlement/{settlement.uid}",
            "RowVersion": str(7000 + settlement.order),
        }


def sales_of(dataset: Dataset, uids: Iterable[str]) -> list[SourceInvoice]:
    """The live sales of these UIDs, oldest change first."""
    found = [dataset.index_of(uid.lower()) for uid in uids]
    invoices = [dataset.invoice(index) for index in found if index is not None]
    return sorted(invoices, key=lambda inv: (inv.updated, inv.index))
