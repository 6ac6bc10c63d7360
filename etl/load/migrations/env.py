"""Alembic environment: runs on the connection chatsell hands it (see etl.load.store)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from etl.load.schema import metadata

config = context.config


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # the alembic CLI, for writing new migrations: alembic -x url=sqlite:///dev.db revision ...
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///chatsell.db")
    with create_engine(url).begin() as conn:
        _run(conn)
