"""Alembic environment: runs migrations on the connection `store.migrate` hands in."""

from __future__ import annotations

from alembic import context

from instancer.store.tables import Base

config = context.config
connection = config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
