"""The request bodies of the ingest API: an invoice as a Custom Integration pushes it (with its
lines and payments), and a batch of them. Their JSON Schema is the OpenAPI document's."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from intdash.core.invoices import InvoiceData, InvoiceKind, LineItem, Payment, SourceState
from intdash.server.formats import (
    AMOUNT_SCHEMA,
    CURRENCY,
    DATE_SCHEMA,
    EXTERNAL_ID_SCHEMA,
    SPACES,
    TIME_SCHEMA,
    external_id_problem,
    parse_amount,
    parse_date,
    parse_time,
    text_problem,
    text_schema,
)

BATCH_MAX = 1000


def _text(max_length: int) -> PlainValidator:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters")
        problem = text_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value.strip(SPACES)

    return PlainValidator(check)


def _external_id(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    problem = external_id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _currency(value: Any) -> str:
    if not isinstance(value, str) or not CURRENCY.matches(value):
        raise ValueError("must be an ISO 4217 code: three capital letters, such as NZD")
    return value


ExternalId = Annotated[str, PlainValidator(_external_id), WithJsonSchema(EXTERNAL_ID_SCHEMA)]
Number = Annotated[str, _text(200), WithJsonSchema(text_schema(200))]
Contact = Annotated[str, _text(400), WithJsonSchema(text_schema(400))]
Status = Annotated[str, _text(32), WithJsonSchema(text_schema(32))]
Currency = Annotated[
    str, PlainValidator(_currency), WithJsonSchema({"type": "string", "pattern": CURRENCY.pattern})
]
Day = Annotated[date, PlainValidator(parse_date), WithJsonSchema(DATE_SCHEMA)]
Moment = Annotated[datetime, PlainValidator(parse_time), WithJsonSchema(TIME_SCHEMA)]
Amount = Annotated[Decimal, PlainValidator(parse_amount), WithJsonSchema(AMOUNT_SCHEMA)]


ItemText = Annotated[str, _text(400), WithJsonSchema(text_schema(400))]
Code = Annotated[str, _text(64), WithJsonSchema(text_schema(64))]
TaxId = Annotated[str, _text(100), WithJsonSchema(text_schema(100))]
ITEMS_MAX = 500


class LineItemIn(BaseModel):
    """One line of an invoice: what was sold, how many, at what price, and its tax."""

    model_config = ConfigDict(extra="forbid", title="LineItem")

    name: ItemText
    quantity: Amount
    unit_price: Amount = Field(description="The price of one, on the line's tax basis.")
    total: Amount = Field(description="The line's amount after its discount.")
    discount: Amount = Field(Decimal(0), description="The whole line's discount, an amount.")
    tax_code: Code | None = Field(
        None, description="Your system's tax code: mapped to the fiscal service's tax label."
    )
    tax_rate: Amount | None = Field(None, description="Percent, such as 15.")
    tax_amount: Amount | None = None
    item_code: Code | None = None
    tax_inclusive: StrictBool | None = Field(
        None, description="Whether unit_price and total include tax (default: they do not)."
    )

    def to_item(self) -> LineItem:
        return LineItem(
            self.name, self.quantity, self.unit_price, self.total, self.discount,
            self.tax_code, self.tax_rate, self.tax_amount, self.item_code, self.tax_inclusive,
        )  # fmt: skip


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Payment")

    amount: Amount
    method: Code | None = Field(None, description="Such as Cash, Card or Wire transfer.")


class InvoiceIn(BaseModel):
    """One invoice as a Custom Integration pushes it."""

    model_config = ConfigDict(
        extra="forbid",
        title="Invoice",
        # only a credit note names the invoice it credits
        json_schema_extra={
            "if": {"properties": {"kind": {"const": "credit note"}}, "required": ["kind"]},
            "else": {"properties": {"credits": {"type": "null"}}},
        },
    )

    external_id: ExternalId
    number: Number | None = Field(
        None,
        description="The invoice number people see. Texts (number, contact, status) have no "
        "control characters; white space at either end is dropped.",
    )
    kind: Literal["sales", "purchase", "credit note"] = Field(
        "sales",
        description="Sales invoices are fiscalized; purchase invoices are kept; a credit note "
        "(its amounts positive, as it reads) is fiscalized as a refund of its own amounts "
        "naming the sale of the invoice it credits.",
    )
    credits: ExternalId | None = Field(
        None,
        description="A credit note's: the external_id of the invoice it credits (pushed "
        "before, or in the same request). Without it, or while that invoice is not "
        "fiscalized, the credit note is kept, awaiting invoice.",
    )
    contact: Contact | None = None
    issue_date: Day | None = Field(None, description="YYYY-MM-DD, in the years 1000 to 9998.")
    due_date: Day | None = Field(
        None, description="YYYY-MM-DD, in the years 1000 to 9998; not before issue_date."
    )
    currency: Currency = Field(description="ISO 4217 code, such as NZD.")
    subtotal: Amount | None = Field(None, description="Defaults to total minus tax.")
    tax: Amount = Field(Decimal(0))
    total: Amount
    status: Status | None = Field(
        None,
        description="The invoice's status in your system. 'void' (in any case) means it was "
        "voided: if it was fiscalized, it is refunded (once), else it is not fiscalized. "
        "'draft' (in any case) means it is not issued yet: it is kept, awaiting approval, and "
        "fiscalized when a later push gives another status. Any other status, or none, means "
        "issued: a sales invoice is fiscalized (and a change of its total, tax or currency "
        "refunds that and fiscalizes it again).",
    )
    updated_at: Moment | None = Field(
        None,
        description="When it last changed in your system: an RFC 3339 time with its offset "
        "(such as 2026-11-02T09:00:00+13:00), in the years 1000 to 9998; kept in UTC, to the "
        "microsecond.",
    )

    items: list[LineItemIn] | None = Field(
        None,
        max_length=ITEMS_MAX,
        description="Its lines. Their totals add up to the subtotal (to the total when they "
        "include tax). Without them, the invoice is fiscalized as one item of its total.",
    )
    buyer_tax_id: TaxId | None = Field(None, description="The buyer's tax identification number.")
    payments: list[PaymentIn] | None = Field(
        None, max_length=ITEMS_MAX, description="How it was paid, as far as it was."
    )

    @model_validator(mode="after")
    def _lines_add_up(self) -> InvoiceIn:
        if self.items:
            inclusive = {bool(item.tax_inclusive) for item in self.items}
            if len(inclusive) > 1:
                raise ValueError("items: either every line's amounts include tax or none do")
            lines = sum((item.total for item in self.items), Decimal(0))
            if inclusive == {True}:
                whole, what = self.total, "total"
            else:
                whole = self.subtotal if self.subtotal is not None else self.total - self.tax
                what = "subtotal" if self.subtotal is not None else "total minus tax"
            if lines != whole:
                raise ValueError(
                    f"items: the lines' totals add up to {lines}, not the invoice's {what} "
                    f"({whole})"
                )
        paid = sum((payment.amount for payment in self.payments or ()), Decimal(0))
        if self.payments and paid > self.total:
            raise ValueError(f"payments: {paid} paid is more than the total ({self.total})")
        return self

    @field_validator("credits")
    @classmethod
    def _only_a_credit_note(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("kind") != "credit note":
            raise ValueError("only a credit note (kind 'credit note') credits an invoice")
        return value

    @field_validator("due_date")
    @classmethod
    def _not_before_issue(cls, value: date | None, info: ValidationInfo) -> date | None:
        issued = info.data.get("issue_date")
        if value is not None and isinstance(issued, date) and value < issued:
            raise ValueError(f"must not be before issue_date ({issued.isoformat()})")
        return value

    def to_data(self) -> InvoiceData:
        subtotal = self.subtotal if self.subtotal is not None else self.total - self.tax
        return InvoiceData(
            self.external_id,
            self.number,
            InvoiceKind(self.kind),
            self.contact,
            self.issue_date,
            self.due_date,
            self.currency,
            subtotal,
            self.tax,
            self.total,
            self.status,
            self.updated_at,
            source_state(self.status),
            items=tuple(item.to_item() for item in self.items or ()),
            buyer_tax_id=self.buyer_tax_id,
            payments=tuple(Payment(p.amount, p.method) for p in self.payments or ()),
            credits=self.credits,
        )


def source_state(status: str | None) -> SourceState:
    """A pushed status as fiscalization reads it: "void" and "draft" (in any case) are voided
    and not yet issued; any other status, or none, is issued."""
    word = (status or "").strip().casefold()
    if word == "void":
        return SourceState.VOID
    return SourceState.PENDING if word == "draft" else SourceState.APPROVED


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Batch")

    invoices: list[InvoiceIn] = Field(
        min_length=1,
        max_length=BATCH_MAX,
        description="Each invoice once: two with the same external_id are refused (422).",
    )


# -- answers ---------------------------------------------------------------------------------
