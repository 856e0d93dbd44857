"""Engines and sessions. Sessions are short-lived and never cached; see ``db.tenancy``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from db.tenancy import TenantSession


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for PostgreSQL (psycopg 3) or SQLite, configured for this application.

    ``hide_parameters``: statement parameters (patients' numbers, message bodies) never reach a
    log line or an error message, whatever the logging configuration.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed, echo=echo, hide_parameters=True, connect_args={"timeout": 30, "check_same_thread": False}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        parsed, echo=echo, hide_parameters=True, pool_pre_ping=True, pool_size=10, max_overflow=10
    )


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@lru_cache(maxsize=32)
def session_factory(engine: Engine) -> sessionmaker[TenantSession]:
    """One session maker per engine (engines live as long as the process)."""
    return sessionmaker(bind=engine, class_=TenantSession, expire_on_commit=False)


@contextmanager
def tenant_session(engine: Engine, tenant_id: uuid.UUID) -> Iterator[TenantSession]:
    """A unit of work inside one clinic: commits on success, rolls back on error."""
    if not isinstance(tenant_id, uuid.UUID):
        raise TypeError("tenant_id must be a UUID")
    with session_factory(engine)() as session:
        session.info["tenant_id"] = tenant_id
        with session.begin():
            yield session


@contextmanager
def fast_connection(engine: Engine, *, durable: bool = True) -> Iterator[Connection]:
    """A plain transaction for the worker's hot path (no ORM session, no tenant filter: system code).

    ``durable=False`` lets PostgreSQL acknowledge the commit before it reaches disk; use it only
    where losing the last moments of writes in a database crash is recoverable (the sweeper
    settles a message whose outcome was not recorded by asking the provider).
    """
    with engine.begin() as connection:
        if not durable and connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        yield connection


@contextmanager
def system_session(engine: Engine) -> Iterator[TenantSession]:
    """A unit of work across tenants (sign-in lookup, sweeper, seeding). Use sparingly."""
    with session_factory(engine)() as session:
        session.info["system"] = True
        with session.begin():
            yield session
