"""CSV files staff download: UTF-8 with a byte-order mark (Excel reads Arabic correctly) and
every text cell neutralised against spreadsheet formula injection.

A text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading apostrophe, so a spreadsheet shows it as text instead of running it as a formula
(OWASP "CSV injection"). One documented exception, the phone policy: a cell that is exactly an
E.164 phone number (``+`` and 7 to 15 digits, nothing else) is kept as it is, because it cannot
carry a formula and clinics paste these numbers back into other systems. Numbers, dates and
booleans are written as values.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
E164_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")


def neutralise(value: Any) -> str:
    """The text of one cell, safe to open in a spreadsheet."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not E164_PHONE.match(text):
        return "'" + text
    return text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A whole CSV file (header first) as UTF-8 bytes with a BOM."""
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([neutralise(h) for h in header])
    for row in rows:
        writer.writerow([neutralise(cell) for cell in row])
    return buffer.getvalue().encode("utf-8")


def read_csv(data: bytes) -> list[list[str]]:
    """Read back a file written by ``to_csv`` (header included), for tests and re-imports."""
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
