"""Shared by the benchmarks: a throw-away PostgreSQL database and an isolated Redis database."""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def temporary_database(admin_url: str = DEFAULT_ADMIN_URL, prefix: str = "bench") -> Iterator[str]:
    """Create ``<prefix>_<random>``, migrate it, yield its URL, drop it afterwards."""
    from db.migrate import upgrade
    from db.session import make_engine

    admin = make_url(admin_url).set(drivername="postgresql+psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        migrated = make_engine(url)
        upgrade(migrated)
        migrated.dispose()
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@contextlib.contextmanager
def isolated_redis(base_url: str = "redis://127.0.0.1:6379", db: int = 14) -> Iterator[str]:
    import redis

    url = f"{base_url}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
