"""The one CSV writer of every download, and the one rule against spreadsheet formula injection.

Every CSV staff download (message exports, the audit log, chart data, rejected rows) is written
here: UTF-8 with a byte-order mark (Excel reads Arabic correctly), fields quoted only when needed,
and a field holding a carriage return, a line feed, a comma or a quote always quoted (Python's
``csv`` module alone leaves a lone ``\\r`` bare when rows end in ``\\n``, and a spreadsheet then
splits the row there).

The rule (OWASP "CSV injection"): a text cell that starts with a character a spreadsheet treats as
the start of a formula (``=``, ``+``, ``-``, ``@``, a tab, a carriage return, or their full-width
forms ``＝ ＋ － ＠``, which some spreadsheets read as the ASCII ones) gets a leading apostrophe,
so it is shown as text instead of run: ``=HYPERLINK(...)``, ``@SUM(...)``, ``-2+3`` and
``+99999*99999`` all become text.

**Phone policy**, the one exception: a cell that is exactly a phone number in E.164 form (``+``,
a digit 1-9, then 6 to 14 more ASCII digits, nothing else) is kept as it is. Digits alone cannot
form a function call, a cell reference or a DDE link, and clinics paste these numbers into other
systems. Anything else after the ``+`` (a star of a masked number, a space, a second operator,
Arabic-Indic digits) makes it an ordinary text cell, neutralised.

Values that are not text are written as values: numbers (including negative ones and ``Decimal``)
as numbers, ``None`` and NaN as empty, booleans as ``true``/``false``, times in ISO form.

``neutralise_sql`` is the same rule as a PostgreSQL expression, for exports formatted by the
database (``COPY``); a test holds the two equal.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import numbers
import re
from collections.abc import Iterable, Sequence
from typing import IO, Any

from sqlalchemy import ColumnElement, LargeBinary, and_, case, func, literal, literal_column

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
E164_PHONE = re.compile(r"\+[1-9][0-9]{6,14}\Z")  # use with ``match``: anchored at both ends

_STARTS = frozenset(FORMULA_STARTS)
_PHONE = E164_PHONE.match


def neutralise_text(text: str) -> str:
    """One text cell, safe to open in a spreadsheet (see the module docstring)."""
    if text and text[0] in _STARTS and not (text[0] == "+" and _PHONE(text)):
        return "'" + text
    return text


def neutralise(value: Any) -> str:
    """The text of one cell as written: text neutralised, other values written as values."""
    if isinstance(value, str):
        return neutralise_text(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Number):
        if isinstance(value, float) and math.isnan(value):
            return ""
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return neutralise_text(str(value))


class _RowEnds:
    """A text file for ``csv.writer``: the writer ends rows in ``\\r\\n`` (so it quotes any field with
    a ``\\r`` or a ``\\n`` in it) and this writes each row with the ending asked for instead."""

    def __init__(self, out: IO[str], line_end: str) -> None:
        self._write = out.write
        self._line_end = line_end

    def write(self, row: str) -> Any:  # csv.writer writes one whole row per call
        return self._write(row[:-2] + self._line_end)


class CsvWriter:
    """Rows into a text file, every cell through ``neutralise``. ``line_end`` is ``\\r\\n`` (RFC 4180)
    unless the file must match another writer's bytes (the message export: PostgreSQL's ``\\n``)."""

    def __init__(self, out: IO[str], *, line_end: str = "\r\n") -> None:
        target: Any = out if line_end == "\r\n" else _RowEnds(out, line_end)
        self._writer = csv.writer(target, lineterminator="\r\n")

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([neutralise(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        self._writer.writerows([neutralise(cell) for cell in row] for row in rows)


def to_csv(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> bytes:
    """A whole CSV file (header first) as UTF-8 bytes with a BOM."""
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = CsvWriter(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def read_csv(data: bytes) -> list[list[str]]:
    """Read back a file written by ``to_csv`` (header included), for tests and re-imports."""
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


# --- the same rule in PostgreSQL ---------------------------------------------------------------

TRIGGER_CODES = [literal_column(str(ord(c))) for c in FORMULA_STARTS]
_PLUS = literal_column(str(ord("+")))
_DIGITS = literal(b"0123456789", LargeBinary)


def starts_risky_sql(value: ColumnElement[Any]) -> ColumnElement[bool]:
    """The first character is one of ``FORMULA_STARTS`` (``ascii`` gives the code point in a UTF-8
    database: an integer test, not a comparison through the collation)."""
    return func.ascii(value).in_(TRIGGER_CODES)


def phone_cell_sql(value: ColumnElement[Any]) -> ColumnElement[bool]:
    """``value`` matches ``E164_PHONE``, without a regex per row.

    The digits are trimmed on the UTF-8 bytes (``convert_to``; any other character has bytes >= 0x80,
    so it is never trimmed): a text trim builds per-character arrays on every call in a UTF-8
    database, and this test was the largest formatting cost of an export.
    """
    second = func.ascii(func.substr(value, 2, 1))
    return and_(func.ascii(value) == _PLUS, func.length(value).between(8, 16),
                second.between(ord("1"), ord("9")),
                func.rtrim(func.convert_to(value, "UTF8"), _DIGITS) == literal(b"+", LargeBinary))


def neutralise_sql(value: ColumnElement[Any], *, empty_as_null: bool = False) -> ColumnElement[Any]:
    """``neutralise_text(value)`` as a PostgreSQL expression (the phone test only runs for cells
    that start with a risky character). ``empty_as_null``: an empty cell becomes NULL, which COPY
    writes as an unquoted empty field, as ``csv.writer`` writes an empty string."""
    return case((and_(starts_risky_sql(value), ~phone_cell_sql(value)), literal("'").concat(value)),
                else_=func.nullif(value, "") if empty_as_null else value)
