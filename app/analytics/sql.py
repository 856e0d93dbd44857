"""Two SQL expressions the rollups need, written once per backend (PostgreSQL and SQLite)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from db.types import UTCDateTime


class hour_floor(FunctionElement[Any]):  # noqa: N801 - reads as a SQL function
    """The UTC hour a timestamp falls in (a timestamp on the hour)."""

    type = UTCDateTime()
    inherit_cache = True
    name = "hour_floor"


@compiles(hour_floor, "postgresql")
def _hour_floor_pg(element: hour_floor, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"(date_trunc('hour', ({column}) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"


@compiles(hour_floor, "sqlite")
def _hour_floor_sqlite(element: hour_floor, compiler: Any, **kw: Any) -> str:
    # The same text SQLAlchemy stores for a UTC timestamp, so comparisons stay textual and exact.
    column = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%d %H:00:00.000000', {column})"


class seconds_between(FunctionElement[Any]):  # noqa: N801
    """``end - start`` in seconds (a float)."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between, "postgresql")
def _seconds_pg(element: seconds_between, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end}) - ({start}))::float8"


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"round((julianday({end}) - julianday({start})) * 86400.0, 3)"  # julianday is coarse: whole ms

