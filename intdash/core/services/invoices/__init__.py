"""Invoices: the service that upserts, fiscalizes and releases them (``service``), the bulk
path that inserts new ones (``bulk``), each integration's monthly count (``usage``) and the
history listed page by page (``listing``)."""

from intdash.core.services.invoices.listing import InvoiceRow
from intdash.core.services.invoices.service import BatchResult, InvoiceService

__all__ = ["BatchResult", "InvoiceRow", "InvoiceService"]
