"""Reading a recipient list that staff paste or upload (CSV or Excel) into clean recipients.

``read_table`` turns the file into rows of text: UTF-8 (with or without BOM) or Windows-1256
(what Arabic Excel saves as "CSV"), comma, semicolon or tab separated, blank lines skipped,
row numbers as the user sees them in the file (the header is row 1). ``to_recipients`` applies
the user's column mapping: contacts normalised (E.164 with the clinic's region for phones),
invalid ones and duplicates refused with their row number and reason, valid rows kept.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.errors import ValidationError
from app.services.messaging import normalise_recipient
from db.enums import Channel, Language

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # the default of BULK_UPLOAD_MAX_MB
MAX_ROWS = 100_000
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
_SEPARATORS = (",", ";", "\t")
_PHONE_HINTS = ("phone", "mobile", "number", "tel", "جوال", "هاتف", "رقم")
_EMAIL_HINTS = ("email", "e-mail", "mail", "بريد")
_NAME_HINTS = ("name", "اسم")
_LANGUAGE_HINTS = ("language", "lang", "لغة")
_ARABIC_LANGUAGE = {"ar", "arabic", "عربي", "العربية"}
_ENGLISH_LANGUAGE = {"en", "english", "انجليزي", "الإنجليزية", "إنجليزي"}


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[tuple[int, list[str]]]  # (row number in the file, cells)
    encoding: str = "utf-8"
    separator: str = ","


@dataclass(frozen=True)
class ColumnMapping:
    contact: str
    name: str | None = None
    language: str | None = None
    variables: tuple[str, ...] = ()  # extra columns that become template variables (by column name)


@dataclass(frozen=True)
class Rejected:
    row: int
    recipient: str
    reason: str


@dataclass
class ImportResult:
    recipients: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def _decode(data: bytes) -> tuple[str, str]:
    """The text and the encoding it was read with (UTF-8 BOM, UTF-8, else Windows-1256)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1256", errors="replace"), "windows-1256"


def _separator(lines: Sequence[str]) -> str:
    header = next((line for line in lines if line.strip()), "")
    counts = {sep: header.count(sep) for sep in _SEPARATORS}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _check_size(size: int, limit: int) -> None:
    if size == 0:
        raise ValidationError("The file is empty.", field="file")
    if size > limit:
        raise ValidationError(
            f"The file is {size / 1024 / 1024:.1f} MB; the limit is {limit / 1024 / 1024:.0f} MB. "
            "Split it into smaller files.", field="file")


def _clean_header(cells: Sequence[Any]) -> list[str]:
    names, seen = [], set()
    for position, cell in enumerate(cells, start=1):
        name = str(cell or "").strip().lstrip("\ufeff") or f"column {position}"
        while name in seen:
            name += "_"
        seen.add(name)
        names.append(name)
    return names


def _from_rows(raw_rows: Sequence[tuple[int, list[str]]], encoding: str, separator: str) -> Table:
    rows = [(n, [c.strip() for c in cells]) for n, cells in raw_rows if any(c.strip() for c in cells)]
    if not rows:
        raise ValidationError("The file is empty.", field="file")
    (_, header), body = rows[0], rows[1:]
    if not body:
        raise ValidationError("The file has a header row but no recipients.", field="file")
    if len(body) > MAX_ROWS:
        raise ValidationError(f"The file has {len(body):,} rows; at most {MAX_ROWS:,} per send. Split it into "
                              f"files of {MAX_ROWS:,} rows, or choose a larger audience by tag or appointment "
                              "instead of a list.", field="file")
    return Table(columns=_clean_header(header), rows=body, encoding=encoding, separator=separator)


def read_csv(data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES) -> Table:
    _check_size(len(data), max_bytes)
    text, encoding = _decode(data)
    lines = text.splitlines()
    separator = _separator(lines[:5])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator)
    return _from_rows([(reader.line_num, row) for row in reader], encoding, separator)


def read_excel(data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES) -> Table:
    from openpyxl import load_workbook

    _check_size(len(data), max_bytes)
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - any unreadable workbook gets the same plain message
        raise ValidationError("The file could not be read as an Excel workbook (.xlsx).", field="file") from None
    sheet = book.worksheets[0]
    rows = [(number, ["" if v is None else _cell_text(v) for v in values])
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1)]
    book.close()
    return _from_rows(rows, "xlsx", "")


def _cell_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone typed as a number (966501234567.0)
    return str(value)


def read_table(filename: str, data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES) -> Table:
    """The rows of an uploaded CSV or Excel file; ``ValidationError`` with a plain reason when unreadable."""
    if filename.lower().endswith(EXCEL_SUFFIXES):
        return read_excel(data, max_bytes=max_bytes)
    return read_csv(data, max_bytes=max_bytes)


def read_pasted(text: str) -> Table:
    """Pasted numbers or addresses, one per line (or a pasted CSV with a header)."""
    lines = [line for line in (text or "").splitlines()]
    if not any(line.strip() for line in lines):
        raise ValidationError("Paste at least one number or address.", field="pasted")
    first = next(line for line in lines if line.strip())
    if any(ch.isalpha() for ch in first) and "@" not in first and _separator([first]) in first:
        return read_csv(text.encode("utf-8"))
    return Table(columns=["recipient"], rows=[(n, [line.strip()]) for n, line in enumerate(lines, start=1)
                                               if line.strip()])


def guess_mapping(table: Table, channel: Channel) -> ColumnMapping:
    """A starting point for the mapping form: the columns whose names look right."""
    def find(hints: Sequence[str]) -> str | None:
        return next((c for c in table.columns if any(h in c.lower() for h in hints)), None)

    contact = find(_EMAIL_HINTS if channel == Channel.EMAIL else _PHONE_HINTS)
    if contact is None and len(table.columns) == 1:
        contact = table.columns[0]
    name, language = find(_NAME_HINTS), find(_LANGUAGE_HINTS)
    used = {contact, name, language}
    return ColumnMapping(contact=contact or "", name=name, language=language,
                         variables=tuple(c for c in table.columns if c not in used))


def _language(value: str) -> str:
    text = value.strip().lower()
    if text in _ARABIC_LANGUAGE:
        return Language.AR.value
    if text in _ENGLISH_LANGUAGE:
        return Language.EN.value
    return ""


def to_recipients(table: Table, mapping: ColumnMapping, channel: Channel, region: str) -> ImportResult:
    """Apply ``mapping``: normalised, de-duplicated recipients, and every refused row with its reason."""
    index = {name: position for position, name in enumerate(table.columns)}
    if not mapping.contact or mapping.contact not in index:
        what = "e-mail" if channel == Channel.EMAIL else "phone"
        raise ValidationError(f"Choose the column that holds the {what} (the file has: "
                              f"{', '.join(table.columns)}).", field="contact")
    for column in (mapping.name, mapping.language, *mapping.variables):
        if column and column not in index:
            raise ValidationError(f"The file has no column '{column}'.", field="mapping")

    def cell(cells: list[str], column: str | None) -> str:
        if not column:
            return ""
        position = index[column]
        return cells[position] if position < len(cells) else ""

    result = ImportResult()
    first_row: dict[str, int] = {}
    for number, cells in table.rows:
        raw = cell(cells, mapping.contact)
        try:
            contact = normalise_recipient(raw, channel, region)
        except ValidationError as exc:
            result.rejected.append(Rejected(number, raw, f"invalid: {exc}"))
            continue
        if contact in first_row:
            result.rejected.append(Rejected(number, raw, f"duplicate of row {first_row[contact]}"))
            continue
        first_row[contact] = number
        result.recipients.append({
            "row": number, "recipient": contact, "name": cell(cells, mapping.name),
            "language": _language(cell(cells, mapping.language)),
            "variables": {_variable_name(c): cell(cells, c) for c in mapping.variables},
        })
    return result


def _variable_name(column: str) -> str:
    """A column name as a template variable: lower case, spaces to underscores."""
    name = "".join(ch if ch.isalnum() else "_" for ch in column.strip().lower()).strip("_")
    return name or "column"


def variable_names(mapping: ColumnMapping) -> list[str]:
    return [_variable_name(c) for c in mapping.variables]


def mapping_from(values: Mapping[str, Any]) -> ColumnMapping:
    return ColumnMapping(contact=values.get("contact") or "", name=values.get("name") or None,
                         language=values.get("language") or None, variables=tuple(values.get("variables") or ()))
