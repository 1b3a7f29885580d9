"""intdash's HTTP face: health, the OpenAPI document, and the ingest API through which Custom
Integrations push and read their invoices; served by ``intdash serve`` and beside the dashboard."""
