"""Engines, sessions and connections, each entered in one clinic or through the one cross-clinic entry.

Sessions are short-lived and never cached; see ``db.tenancy`` for the application's wall. On
PostgreSQL every unit of work also tells the database which clinic it serves
(``app.tenant_id``, transaction-local), and row-level security (migration 0009) shows it only
that clinic's rows. Cross-clinic work (``system_session`` / ``scoped_connection(engine, SYSTEM)``)
switches, for its transaction only, to the system role that may bypass the policies.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from db.base import HasTenant
from db.tenancy import TenantScopeError, TenantSession

DEFAULT_SYSTEM_ROLE = "clinic_system"


class _System:
    """The cross-clinic scope: sweeper discovery, status callbacks, sign-in lookup, seeding."""

    def __repr__(self) -> str:
        return "SYSTEM"


SYSTEM = _System()
Scope = uuid.UUID | _System


def make_engine(url: str, *, echo: bool = False, system_role: str = DEFAULT_SYSTEM_ROLE) -> Engine:
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
    engine = create_engine(
        parsed, echo=echo, hide_parameters=True, pool_pre_ping=True, pool_size=10, max_overflow=10
    )
    event.listen(engine, "connect", _note_row_security(system_role))
    return engine


def _note_row_security(system_role: str):  # type: ignore[no-untyped-def]
    """On each new connection: does its role bypass row-level security, and may it enter the system role?"""

    def note(dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute(
            "SELECT r.rolsuper OR r.rolbypassrls, CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s)"
            " THEN pg_has_role(current_user, %s, 'MEMBER') ELSE false END FROM pg_roles r"
            " WHERE r.rolname = current_user", (system_role, system_role))
        bypass, member = cursor.fetchone()
        cursor.close()
        dbapi_connection.commit()
        record.info["rls_bypass"] = bool(bypass)
        record.info["system_role"] = system_role if member else None

    return note


def enter_scope(connection: Connection, scope: Scope) -> None:
    """Tell PostgreSQL which clinic this transaction serves (or take the system role); no-op on SQLite."""
    if connection.dialect.name != "postgresql":
        return
    if isinstance(scope, uuid.UUID):
        connection.execute(text("SELECT set_config('app.tenant_id', :clinic, true)"), {"clinic": str(scope)})
        return
    if connection.info.get("rls_bypass"):
        return
    role = connection.info.get("system_role")
    if not role:
        raise TenantScopeError(
            "cross-clinic work needs a database role that bypasses row-level security, or membership "
            "of the system role (see docs/operations.md, 'Database roles')")
    connection.execute(text(f'SET LOCAL ROLE "{role}"'))


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
def scoped_connection(engine: Engine, scope: Scope, *, durable: bool = True) -> Iterator[Connection]:
    """A plain transaction (no ORM session) in one clinic, or in ``SYSTEM`` scope, for hot paths.

    Core statements get no automatic clinic condition: write it in the statement. On PostgreSQL
    row-level security still holds the transaction to ``scope``.
    ``durable=False`` lets PostgreSQL acknowledge the commit before it reaches disk; use it only
    where losing the last moments of writes in a database crash is recoverable (the sweeper
    settles a message whose outcome was not recorded by asking the provider).
    """
    with engine.begin() as connection:
        enter_scope(connection, scope)
        if not durable and connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        yield connection


@contextmanager
def system_session(engine: Engine) -> Iterator[TenantSession]:
    """The one cross-clinic entry (sign-in lookup, sweeper discovery, status callbacks, rollups,
    seeding). Never read patient data here for a clinic's send: find the clinic, then work in
    ``tenant_session``."""
    with session_factory(engine)() as session:
        session.info["system"] = True
        with session.begin():
            yield session


_AFTER_COMMIT = "after_commit"


def after_commit(session: Session, work: Callable[[], None]) -> None:
    """Run ``work`` once ``session``'s transaction has committed; never if it rolls back.

    For what must follow the commit (enqueueing jobs that carry row ids): a job never refers to
    a row that is not there, and nothing is enqueued for work that was undone. Runs in the order
    registered; if one raises, the others still run and the first error is raised to the caller
    (the rows are committed by then).
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(work)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a SAVEPOINT released; the transaction goes on
        return
    pending = session.info.pop(_AFTER_COMMIT, [])
    first: Exception | None = None
    for work in pending:
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - the rest still runs; the first error is raised below
            first = first or exc
    if first is not None:
        raise first


@event.listens_for(Session, "after_transaction_end")
def _drop_after_rollback(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended without a commit (or after it)
        session.info.pop(_AFTER_COMMIT, None)


def clinic_of(engine: Engine, model: type[HasTenant], row_id: uuid.UUID) -> uuid.UUID | None:
    """The clinic that owns one row: the narrow lookup a job makes before it enters that clinic."""
    return clinics_of(engine, model, [row_id]).get(row_id)


def clinics_of(engine: Engine, model: type[HasTenant], row_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """Each row's clinic (rows that do not exist are left out); reads ids only, never row data."""
    if not row_ids:
        return {}
    id_column = model.__table__.c.id  # type: ignore[attr-defined]
    tenant_column = model.__table__.c.tenant_id  # type: ignore[attr-defined]
    with scoped_connection(engine, SYSTEM) as connection:
        return dict(connection.execute(select(id_column, tenant_column).where(id_column.in_(row_ids))).all())
