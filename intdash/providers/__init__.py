"""Connectors to the accounting platforms: OAuth, tenants, and invoices page by page."""
