"""intdash's HTTP face: health now; the ingest API for Custom Integrations joins it."""
