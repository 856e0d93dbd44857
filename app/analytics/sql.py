"""Two SQL expressions the rollups need, written once per backend (PostgreSQL and SQLite)."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Any

from sqlalchemy import Date, Float, Integer, literal_column
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



# --- clinic-time parts of a timestamp (day, ISO weekday 1-7, hour 0-23) ---------------------------
# PostgreSQL converts with the IANA zone; SQLite (development) knows no zones and adds the zone's
# UTC offset at the end of the period instead (exact for zones without daylight saving time).

_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+\-/]{1,64}$")


class _LocalPart(FunctionElement[Any]):
    inherit_cache = True
    part = ""


class local_day(_LocalPart):  # noqa: N801
    type = Date()
    part = "day"
    inherit_cache = True
    name = "local_day"


class local_weekday(_LocalPart):  # noqa: N801
    type = Integer()
    part = "weekday"
    inherit_cache = True
    name = "local_weekday"


class local_hour(_LocalPart):  # noqa: N801
    type = Integer()
    part = "hour"
    inherit_cache = True
    name = "local_hour"


def in_zone(kind: type[_LocalPart], column: Any, timezone: str, at: dt.datetime) -> _LocalPart:
    """``kind`` (local_day, local_weekday, local_hour) of ``column`` in ``timezone``."""
    if not _ZONE_NAME.match(timezone):
        raise ValueError(f"not a time zone name: {timezone!r}")
    zone = zoneinfo.ZoneInfo(timezone)  # refuses unknown zones
    offset = at.astimezone(zone).utcoffset() or dt.timedelta()
    return kind(column, literal_column(f"'{timezone}'"), literal_column(str(int(offset.total_seconds() // 60))))


@compiles(_LocalPart, "postgresql")
def _local_pg(element: _LocalPart, compiler: Any, **kw: Any) -> str:
    column, zone, _offset = (compiler.process(c, **kw) for c in element.clauses)
    local = f"(({column}) AT TIME ZONE {zone})"
    if element.part == "day":
        return f"CAST({local} AS DATE)"
    field = "ISODOW" if element.part == "weekday" else "HOUR"
    return f"CAST(EXTRACT({field} FROM {local}) AS INTEGER)"


@compiles(_LocalPart, "sqlite")
def _local_sqlite(element: _LocalPart, compiler: Any, **kw: Any) -> str:
    column, _zone, offset = (compiler.process(c, **kw) for c in element.clauses)
    shift = f"'{offset} minutes'"
    if element.part == "day":
        return f"date({column}, {shift})"
    if element.part == "weekday":
        return f"(((CAST(strftime('%w', {column}, {shift}) AS INTEGER) + 6) % 7) + 1)"
    return f"CAST(strftime('%H', {column}, {shift}) AS INTEGER)"
