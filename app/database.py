"""The process's database engine, built from the settings (one per process)."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine

from app.config import get_settings
from db.session import make_engine


@lru_cache(maxsize=4)
def engine_for(url: str) -> Engine:
    return make_engine(url, system_role=get_settings().database_system_role)


def get_engine() -> Engine:
    """The configured engine (``DATABASE_URL``; the embedded SQLite file by default)."""
    return engine_for(get_settings().database_url)
