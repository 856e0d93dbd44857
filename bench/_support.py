"""Shared by the benchmarks: a throw-away PostgreSQL database and an isolated Redis database."""

from __future__ import annotations

import contextlib
import io
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def copy_patients(engine: Any, tenant_id: uuid.UUID, count: int) -> None:
    """``count`` patients for ``tenant_id`` by COPY (MRN-<i>, numbers +9665<i:08d>, every third Arabic)."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur, cur.copy(
                "COPY patients (id, tenant_id, mrn, name_en, name_ar, phone_e164, language, is_active, "
                "created_at, updated_at) FROM STDIN") as copy:
            for start in range(0, count, 50_000):
                block = io.StringIO()
                for i in range(start, min(count, start + 50_000)):
                    block.write(f"{uuid.uuid4()}\t{tenant_id}\tMRN-{i}\tPatient {i}\tمريض {i}\t+9665{i:08d}\t"
                                f"{'ar' if i % 3 == 0 else 'en'}\tt\t2026-01-01 00:00:00+00\t"
                                "2026-01-01 00:00:00+00\n")
                copy.write(block.getvalue())
        raw.commit()
    finally:
        raw.close()
