"""Migration 0013 (the clinic profile) keeps what clinics had: the Arabic name moves out of
``settings`` into its column, and every clinic gets the window the server was configured with."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from db.migrate import alembic_config, upgrade
from db.session import make_engine
from tests.conftest import _pg_admin_url


@pytest.fixture(params=["sqlite", "postgresql"])
def blank(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """An empty database of its own (migrated step by step by the test)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
        yield engine
        engine.dispose()
        return
    request.getfixturevalue("pg_owner_url")  # skips (or fails) as the other tests do without PostgreSQL
    admin_url = make_url(_pg_admin_url()).set(drivername="postgresql+psycopg")
    name = f"clinic_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(admin_url.set(database=name).render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


TENANTS = sa.table("tenants", *(sa.column(name, kind) for name, kind in (
    ("id", sa.Uuid()), ("name", sa.String()), ("slug", sa.String()), ("settings", sa.JSON()),
    ("timezone", sa.String()), ("default_language", sa.String()), ("default_region", sa.String()),
    ("is_active", sa.Boolean()), ("sending_paused", sa.Boolean()), ("created_at", sa.DateTime(timezone=True)),
    ("updated_at", sa.DateTime(timezone=True)))))


def _json(value: object) -> dict:
    return value if isinstance(value, dict) else json.loads(str(value))


def _tenants(engine: Engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {row.slug: dict(row._mapping) for row in conn.execute(text("SELECT * FROM tenants"))}


def test_the_arabic_name_moves_and_the_configured_window_is_kept(blank: Engine, monkeypatch) -> None:
    upgrade(blank, "0012")
    with blank.begin() as conn:
        for slug, extra in (("al-noor", {"name_ar": "عيادة النور", "phone": "+966112345678"}), ("plain", {})):
            conn.execute(sa.insert(TENANTS).values(
                id=uuid.uuid4(), name=slug.title(), slug=slug, settings=extra, timezone="Asia/Riyadh",
                default_language="en", default_region="SA", is_active=True, sending_paused=False,
                created_at=dt.datetime.now(dt.UTC), updated_at=dt.datetime.now(dt.UTC)))
    monkeypatch.setenv("PROMOTIONAL_WINDOW_START", "8:30")

    upgrade(blank)

    rows = _tenants(blank)
    assert rows["al-noor"]["name_ar"] == "عيادة النور" and rows["plain"]["name_ar"] == ""
    assert _json(rows["al-noor"]["settings"]) == {"phone": "+966112345678"}
    for row in rows.values():
        start, end = row["promotional_window_start"], row["promotional_window_end"]
        assert str(start).startswith("08:30") and str(end).startswith("19:00")
        assert row["email_sender_name"] == ""

    config = alembic_config()
    with blank.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0012")
    assert _json(_tenants(blank)["al-noor"]["settings"])["name_ar"] == "عيادة النور"
