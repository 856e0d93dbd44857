"""Bulk writes on PostgreSQL: rows of Python values as ``COPY ... FROM STDIN`` text.

COPY skips an INSERT's per-statement work (parse, plan, an executor start per VALUES batch) and
writes the heap in batches. Measured on a 96,878-recipient custom-list send: the expansion took
18.7 s with SQLAlchemy's executemany of the rows and 13.1 s with COPY. Callers give plain column
values (UUIDs, aware datetimes, enum members, JSON-able dicts); ``column_defaults`` adds the
Python-side defaults an ORM insert would have used.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table

NULL = "\\N"


def pg_escape(value: str) -> str:
    """COPY text format escaping."""
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\n" in value or "\r" in value or "\t" in value:
        value = value.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return value


def pg_text(value: Any) -> str:
    """One value in COPY text format."""
    if value is None:
        return NULL
    kind = type(value)
    if kind is str:
        return pg_escape(value)
    if kind is bool:
        return "t" if value else "f"
    if kind is dict or kind is list:
        return pg_escape(json.dumps(value, ensure_ascii=False))
    if kind is dt.datetime:
        if value.tzinfo is None:  # as UTCDateTime: a naive time is a bug, not "server local time"
            raise ValueError("naive datetime given to COPY; attach a time zone")
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return pg_escape(str(value.value))
    return pg_escape(str(value))


def column_defaults(table: Table, given: set[str]) -> dict[str, Any]:
    """Python-side defaults of the columns a bulk write does not set (what an ORM insert would use)."""
    values: dict[str, Any] = {}
    for col in table.columns:
        if col.key in given or col.default is None or col.primary_key:
            continue
        default = col.default
        if default.is_scalar:  # type: ignore[attr-defined]
            values[col.key] = default.arg  # type: ignore[attr-defined]
        elif default.is_callable:  # type: ignore[attr-defined]
            values[col.key] = default.arg(None)  # type: ignore[attr-defined]
    for col in table.columns:
        if col.key not in given and col.key not in values and not col.nullable and col.server_default is None:
            raise RuntimeError(f"a bulk write does not know how to fill {table.name}.{col.key}")
    return values


def copy_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` (all with the keys of the first) into ``table`` with one COPY, in the
    connection's transaction."""
    if not rows:
        return
    keys = list(rows[0])
    defaults = column_defaults(table, set(keys))
    tail = "".join("\t" + pg_text(v) for v in defaults.values()) + "\n"
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    with dbapi.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join([*keys, *defaults])}) FROM STDIN") as copy:
        copy.write("".join("\t".join([pg_text(row[k]) for k in keys]) + tail for row in rows))
