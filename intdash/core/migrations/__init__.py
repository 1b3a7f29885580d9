"""Alembic migrations, applied by intdash at start."""

HEAD = "0017"
"""The newest revision; kept equal to Alembic's head by the tests, so that start-up can see the
schema is current without loading Alembic."""
