"""Alembic's environment: the service hands it an open connection (``service.store.migrate``),
so migrations run in the service's own transaction, on SQLite and Postgres alike."""

from __future__ import annotations

from alembic import context

from service.store import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
)
with context.begin_transaction():
    context.run_migrations()
