"""Alembic environment: run by intdash itself at start, on the connection it passes in."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy import String, engine_from_config, pool
from sqlmodel.sql.sqltypes import AutoString

from intdash.core import (
    fiscal_models,  # noqa: F401 - its tables, on the same metadata
    models,
)

target_metadata = models.metadata
config = context.config


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Write sqlmodel's AutoString as a plain String and our types by their module."""
    if type_ == "type" and isinstance(obj, AutoString):
        return repr(String(length=obj.length)).replace("String", "sa.String")
    if type_ == "type" and type(obj).__module__ == "intdash.core.dbtypes":
        autogen_context.imports.add("from intdash.core import dbtypes")
        return f"dbtypes.{type(obj).__name__}()"
    return False


def _configure(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=_render_item,
        compare_type=True,
    )


connection = config.attributes.get("connection")
if connection is not None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()
else:  # the alembic command line, for making new revisions
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
