"""Alembic environment: migrate the connection that `ivr.migrate` hands over."""

from alembic import context

from ivr.db import Model
from ivr.messaging import caps  # noqa: F401  (register every table on the metadata)
from ivr.requests import models  # noqa: F401

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Model.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
