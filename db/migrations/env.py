"""Alembic environment: runs against the connection handed in by db.migrate, or DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context

from db.models import Base
from db.session import make_engine

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = config.attributes.get("url") or os.environ.get("DATABASE_URL") or "sqlite:///data/clinic.db"
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
