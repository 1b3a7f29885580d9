"""The integration types: one registry entry per type, so that nothing else branches on type.

Each entry says how the type is shown, what it does with invoices (syncs, pushes or delivers
them), how its connection is tested, which actions it offers, and which settings it takes (with
their validation). A new type is one new entry here plus its provider module; the rest of intdash
reads these flags (``tests/test_registry.py`` holds it to that).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from intdash.core.errors import FieldErrors


class IntegrationType(StrEnum):
    XERO = "xero"
    MYOB = "myob"
    ZOHO = "zoho"
    WEBHOOK = "webhook"
    CUSTOM = "custom"


class Action(StrEnum):
    """The type-specific actions; every type also has details, test, sync and so on. CONNECT is
    no type's own: an OAuth integration offers it while it is not authorised (see
    ``IntegrationView.actions``)."""

    CONNECT = "connect"
    RECONNECT = "reconnect"
    CONFIGURE = "configure"
    API_KEYS = "api_keys"
    REMOVE = "remove"


class Flow(StrEnum):
    """What an integration of the type does with invoices."""

    SYNCS = "syncs"  # reads them from an accounting platform
    PUSHES = "pushes"  # takes them from the customer's system over the ingest API
    DELIVERS = "delivers"  # sends everyone's fiscalized invoices on as signed webhooks


class Probe(StrEnum):
    """What Test Connection does for the type."""

    PLATFORM = "platform"  # the platform's cheapest API call
    SIGNED_EVENT = "signed_event"  # a signed test event to the target URL, nothing recorded
    NONE = "none"  # nothing to test: the customer's system calls intdash


class FieldKind(StrEnum):
    TEXT = "text"
    URL = "url"
    CHOICE = "choice"
    SECRET = "secret"  # noqa: S105 - a field kind, not a password
    HEADERS = "headers"
    UID_LIST = "uid_list"


Parser = Callable[[str], Any]


@dataclass(frozen=True)
class FieldSpec:
    """One connection setting of a type, as the configure form and ``--set`` take it."""

    name: str
    label: str
    kind: FieldKind = FieldKind.TEXT
    required: bool = False
    choices: tuple[str, ...] = ()
    default: str | None = None
    help: str = ""
    pattern: str | None = None
    pattern_hint: str = ""

    @property
    def secret(self) -> bool:
        """Stored in the vault and never shown: secrets, and headers (they carry tokens)."""
        return self.kind in (FieldKind.SECRET, FieldKind.HEADERS)

    def parse(self, raw: str) -> Any:
        """The stored value for ``raw``; raises ``ValueError`` with a message for the operator."""
        text = raw.strip()
        if not text:
            if self.required:
                raise ValueError("is required")
            return None
        if self.kind is FieldKind.CHOICE and text not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}, not {text!r}")
        if self.kind is FieldKind.URL:
            return parse_delivery_url(text)
        if self.kind is FieldKind.HEADERS:
            return parse_headers(text)
        if self.kind is FieldKind.UID_LIST:
            return parse_uid_list(text)
        if self.pattern and not re.fullmatch(self.pattern, text):
            raise ValueError(f"must be {self.pattern_hint}, not {text!r}")
        if self.kind is FieldKind.SECRET:
            return raw  # secrets are kept exactly as typed
        return text


@dataclass(frozen=True)
class TypeSpec:
    type: IntegrationType
    label: str
    icon: str
    uid_prefix: str
    oauth: bool
    actions: tuple[Action, ...]
    flow: Flow
    probe: Probe
    activity: str  # what one run of its work is called: its "last sync", "last push", ...
    fields: tuple[FieldSpec, ...] = ()
    # settings read when connecting (to choose the tenant): a change needs a new consent
    consent_fields: tuple[str, ...] = ()
    generated_secrets: tuple[str, ...] = field(default_factory=tuple)
    short_label: str = ""  # where width is scarce (the dashboard's table); else the label
    # polling no more often than this keeps within the platform's daily call allowance
    min_poll_minutes: int = 1
    # the platform posts signed events of changes that intdash receives (see core.schedule)
    events: bool = False

    @property
    def short(self) -> str:
        return self.short_label or self.label

    @property
    def syncs(self) -> bool:
        return self.flow is Flow.SYNCS

    @property
    def pushes(self) -> bool:
        return self.flow is Flow.PUSHES

    @property
    def delivers(self) -> bool:
        return self.flow is Flow.DELIVERS

    @property
    def needs_api_key(self) -> bool:
        """Whoever pushes invoices authenticates with one of the integration's API keys."""
        return self.pushes

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def is_loopback_host(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_delivery_url(text: str) -> str:
    """A webhook target: https anywhere, or http on the loopback interface."""
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL such as https://example.com/hook, not {text!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError("must use https (plain http is allowed only on loopback)")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"has an invalid port: {text!r}") from None
    return text


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_RESERVED_HEADERS = {
    "content-type", "content-length", "host", "webhook-id", "webhook-timestamp",
    "webhook-signature", "transfer-encoding", "connection",
}  # fmt: skip


def parse_headers(text: str) -> dict[str, str]:
    """``Name: value`` pairs separated by ``;`` or new lines."""
    headers: dict[str, str] = {}
    for item in re.split(r"[;\n]", text):
        if not item.strip():
            continue
        name, sep, value = item.partition(":")
        name = name.strip()
        if not sep or not _HEADER_NAME.match(name):
            raise ValueError(f"must be 'Name: value' pairs separated by ';', not {item.strip()!r}")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"header {name} is set by intdash and cannot be replaced")
        if any(ch in value for ch in "\r\n\0"):
            raise ValueError(f"header {name} has a control character in its value")
        headers[name] = value.strip()
    return headers


_UID = re.compile(r"^[a-z]+-[a-z0-9]+$")


def parse_uid_list(text: str) -> list[str] | str:
    """``all``, or a comma-separated list of integration UIDs."""
    if text.strip().lower() == "all":
        return "all"
    uids = [part.strip() for part in text.split(",") if part.strip()]
    bad = [uid for uid in uids if not _UID.match(uid)]
    if bad:
        raise ValueError(f"must be 'all' or integration UIDs separated by commas; bad: {bad[0]!r}")
    return sorted(set(uids))


ZOHO_DATA_CENTRES = ("com", "eu", "in", "com.au", "jp", "ca", "sa", "uk", "com.cn")
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

TYPES: dict[IntegrationType, TypeSpec] = {
    spec.type: spec
    for spec in (
        TypeSpec(
            IntegrationType.XERO,
            "Xero",
            "◆",
            "xero",
            oauth=True,
            actions=(Action.RECONNECT, Action.REMOVE),
            flow=Flow.SYNCS,
            probe=Probe.PLATFORM,
            activity="sync",
            min_poll_minutes=5,  # 288 calls a day: within the Starter app tier's 1,000
            events=True,
        ),
        TypeSpec(
            IntegrationType.MYOB,
            "MYOB",
            "■",
            "myob",
            oauth=True,
            actions=(Action.CONFIGURE, Action.REMOVE),
            flow=Flow.SYNCS,
            probe=Probe.PLATFORM,
            activity="sync",
            fields=(
                FieldSpec(
                    "company_file_id",
                    "Company file ID",
                    help="The company file (business) GUID; found when connecting if empty.",
                    pattern=_GUID,
                    pattern_hint="a GUID such as 0f5e4d8c-1234-4abc-9def-0123456789ab",
                ),
                FieldSpec(
                    "company_file_username",
                    "Company file user",
                    help="Only for company files that need their own sign-in.",
                ),
                FieldSpec(
                    "company_file_password",
                    "Company file password",
                    FieldKind.SECRET,
                    help="Only for company files that need their own sign-in.",
                ),
            ),
            consent_fields=("company_file_id",),
        ),
        TypeSpec(
            IntegrationType.ZOHO,
            "Zoho Books",
            "▲",
            "zoho",
            oauth=True,
            actions=(Action.CONFIGURE, Action.REMOVE),
            flow=Flow.SYNCS,
            probe=Probe.PLATFORM,
            activity="sync",
            fields=(
                FieldSpec(
                    "data_centre",
                    "Data centre",
                    FieldKind.CHOICE,
                    required=True,
                    choices=ZOHO_DATA_CENTRES,
                    default="com",
                    help="Where the Zoho account lives: com (US), eu, in, com.au, jp, ...",
                ),
                FieldSpec(
                    "organization_id",
                    "Organization ID",
                    help="The Books organization; found when connecting if empty.",
                    pattern=r"[0-9]{1,20}",
                    pattern_hint="digits only",
                ),
            ),
            # the data centre's accounts server issues the tokens: another needs a new consent
            consent_fields=("data_centre", "organization_id"),
            min_poll_minutes=3,  # 480 calls a day: Zoho Free allows 1,000, half kept for tax
        ),
        TypeSpec(
            IntegrationType.WEBHOOK,
            "Custom/Webhook",
            "⇄",
            "hook",
            oauth=False,
            actions=(Action.CONFIGURE, Action.REMOVE),
            flow=Flow.DELIVERS,
            probe=Probe.SIGNED_EVENT,
            activity="delivery",
            fields=(
                FieldSpec(
                    "url",
                    "Target URL",
                    FieldKind.URL,
                    required=True,
                    help="Where invoices are POSTed: https, or http on loopback.",
                ),
                FieldSpec(
                    "headers",
                    "Custom headers",
                    FieldKind.HEADERS,
                    help="'Name: value' pairs separated by ';', sent with every delivery.",
                ),
                FieldSpec(
                    "deliver",
                    "Deliver invoices of",
                    FieldKind.UID_LIST,
                    default="all",
                    help="'all', or the UIDs of the integrations whose invoices to deliver.",
                ),
            ),
            generated_secrets=("signing_secret",),
            short_label="Webhook",
        ),
        TypeSpec(
            IntegrationType.CUSTOM,
            "Custom Integration",
            "⚙",
            "cust",
            oauth=False,
            actions=(Action.API_KEYS, Action.REMOVE),
            flow=Flow.PUSHES,
            probe=Probe.NONE,
            activity="push",
            short_label="Custom",
        ),
    )
}


def types_that(flow: Flow) -> tuple[IntegrationType, ...]:
    """The types that do ``flow`` with invoices (for a query over every webhook, say)."""
    return tuple(kind for kind, spec in TYPES.items() if spec.flow is flow)


def type_spec(value: str | IntegrationType) -> TypeSpec:
    """The registry entry of a type, or an error that lists the valid ones."""
    try:
        return TYPES[IntegrationType(value)]
    except ValueError:
        valid = ", ".join(t.value for t in IntegrationType)
        raise FieldErrors({"type": f"must be one of {valid}, not {value!r}"}) from None
