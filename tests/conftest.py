"""Shared fixtures: real databases on both backends, factories, the services summary line.

PostgreSQL comes from TEST_DATABASE_URL (default: the local server); each test run creates
its own database and drops it at the end, so two runs never collide. The database is migrated by
its owner and the tests connect as the app role (``clinic_app``), so row-level security holds
them as it holds production. Every database starts each test with a neighbouring clinic whose
patients overlap the tests' own (``tests/neighbours.py``). Where a server cannot be reached its
tests are skipped with one summary line; with REQUIRE_SERVICES=1 that is an error.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from db.migrate import upgrade
from db.roles import create_roles, grant_privileges
from db.session import make_engine
from tests.factories import OWNER_ENGINES, empty_all_tables
from tests.neighbours import seed_neighbour

pytest_plugins = ["tests.peers.fixtures"]

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
APP_ROLE, SYSTEM_ROLE = "clinic_app", "clinic_system"
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"

_unreachable: dict[str, str] = {}


def _pg_admin_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_PG)


def _service_missing(service: str, reason: str) -> None:
    _unreachable[service] = reason
    if REQUIRE_SERVICES:
        pytest.fail(f"{service} is required (REQUIRE_SERVICES=1) but unreachable: {reason}", pytrace=False)
    pytest.skip(f"{service} unreachable: {reason}")


@pytest.fixture(scope="session")
def pg_owner_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run (per xdist worker), dropped at the end; the
    owner's URL (migrations, emptying tables)."""
    if "postgresql" in _unreachable:
        _service_missing("postgresql", _unreachable["postgresql"])
    admin_url = make_url(_pg_admin_url()).set(drivername="postgresql+psycopg")
    name = f"clinic_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "unreachable"
        admin.dispose()
        _service_missing("postgresql", f"{admin_url.render_as_string(hide_password=True)}: {type(exc).__name__}")
    with admin.connect() as conn:  # roles are cluster-wide: one xdist worker at a time (autocommit: a session lock)
        conn.execute(text("SELECT pg_advisory_lock(16016)"))
        try:
            create_roles(conn, APP_ROLE, SYSTEM_ROLE)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(16016)"))
    yield admin_url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def _pg_owner_engine(pg_owner_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_owner_url)
    upgrade(engine)
    with engine.begin() as connection:
        grant_privileges(connection, APP_ROLE, SYSTEM_ROLE)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def pg_url(pg_owner_url: str, _pg_owner_engine: Engine) -> str:
    """The migrated test database as the app role sees it (row-level security applies)."""
    return make_url(pg_owner_url).set(username=APP_ROLE, password=None).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server for tests (TEST_REDIS_URL); skipped or failed when unreachable."""
    import redis

    url = os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS)
    if "redis" in _unreachable:
        _service_missing("redis", _unreachable["redis"])
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        _service_missing("redis", f"{url}: {type(exc).__name__}")
    return url


@pytest.fixture(scope="session")
def _pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url, system_role=SYSTEM_ROLE)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("sqlite") / "clinic.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _fresh(engine: Engine) -> Engine:
    """Empty the database, then add the neighbouring clinic every test shares its data with."""
    empty_all_tables(engine)
    seed_neighbour(engine)
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A migrated database on each supported backend (the test runs once per backend), empty but
    for the neighbouring clinic."""
    if request.param == "sqlite":
        yield from _fresh_for(request.getfixturevalue("_sqlite_engine"))
    else:
        yield from _fresh_for(request.getfixturevalue("pg_engine_unseeded"))


def _fresh_for(engine: Engine) -> Iterator[Engine]:
    yield _fresh(engine)
    empty_all_tables(engine)


@pytest.fixture
def sqlite_engine(_sqlite_engine: Engine) -> Iterator[Engine]:
    """A migrated SQLite database, empty but for the neighbouring clinic."""
    yield from _fresh_for(_sqlite_engine)


@pytest.fixture
def pg_engine_unseeded(_pg_engine: Engine, _pg_owner_engine: Engine) -> Engine:
    OWNER_ENGINES[_pg_engine.url.database or ""] = _pg_owner_engine
    return _pg_engine


@pytest.fixture
def pg_engine(pg_engine_unseeded: Engine) -> Iterator[Engine]:
    """The migrated PostgreSQL database as the app role (row-level security applies), empty but for
    the neighbouring clinic (for PostgreSQL-only behaviour)."""
    yield from _fresh_for(pg_engine_unseeded)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    """One line per unreachable service, counted from the skip reports (works with xdist too)."""
    counts: dict[str, tuple[int, str]] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if " unreachable: " in reason:
            service, _, detail = reason.removeprefix("Skipped: ").partition(" unreachable: ")
            count, _ = counts.get(service, (0, detail))
            counts[service] = (count + 1, detail)
    for service, (count, detail) in sorted(counts.items()):
        terminalreporter.write_line(
            f"SERVICES: {service} unreachable ({detail}); {count} test(s) that need it were skipped. "
            "Set REQUIRE_SERVICES=1 to fail instead.",
            yellow=True,
        )
