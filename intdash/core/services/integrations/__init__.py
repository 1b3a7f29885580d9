"""Integrations: the service every face calls (``service``), the views it returns
(``views``), the rules settings follow (``validation``) and the prepared reads behind every
listing (``queries``)."""

from intdash.core.services.integrations.service import IntegrationService
from intdash.core.services.integrations.validation import parse_bool
from intdash.core.services.integrations.views import (
    CreatedIntegration,
    IntegrationView,
    Overview,
    RunningSync,
)

__all__ = [
    "CreatedIntegration",
    "IntegrationService",
    "IntegrationView",
    "Overview",
    "RunningSync",
    "parse_bool",
]
