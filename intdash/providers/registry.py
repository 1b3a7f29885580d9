"""Which connector serves which integration type."""

from __future__ import annotations

from collections.abc import Callable

from intdash.core.catalog import IntegrationType
from intdash.core.config import Settings
from intdash.core.errors import ConflictError
from intdash.providers.connector import Connector
from intdash.providers.http import httpx
from intdash.providers.myob import MyobConnector
from intdash.providers.ratelimit import RateLimits
from intdash.providers.xero import XeroConnector
from intdash.providers.zoho import ZohoConnector

CONNECTORS: dict[IntegrationType, Callable[..., Connector]] = {
    IntegrationType.XERO: lambda s, **kw: XeroConnector(s.xero, **kw),
    IntegrationType.MYOB: lambda s, **kw: MyobConnector(s.myob, **kw),
    IntegrationType.ZOHO: lambda s, **kw: ZohoConnector(s.zoho, **kw),
}


def connector_for(
    type: IntegrationType | str,
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    limits: RateLimits | None = None,
) -> Connector:
    """The connector of a platform type; Custom/Webhook and Custom Integrations have none."""
    factory = CONNECTORS.get(IntegrationType(type))
    if factory is None:
        raise ConflictError(f"{type} integrations do not connect to an accounting platform")
    return factory(settings, transport=transport, limits=limits)
