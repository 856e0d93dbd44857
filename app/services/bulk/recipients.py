"""Reading a recipient list that staff paste or upload (CSV or Excel) into clean recipients.

``read_table`` turns the file into rows of text: UTF-8 (with or without BOM) or Windows-1256
(what Arabic Excel saves as "CSV"), comma, semicolon or tab separated, blank lines skipped,
row numbers as the user sees them in the file (the header is row 1). ``to_recipients`` applies
the user's column mapping: contacts normalised (E.164 with the clinic's region for phones),
invalid ones and duplicates refused with their row number and reason, valid rows kept.

Hostile files get a plain answer, and nothing valid in them is lost: a row with a NUL character,
an overlong cell or bytes that are not text is refused by itself (listed with its row number and
reason); a file that is not text or not a workbook is refused as a whole. Rows are read as the
file is parsed (CSV streamed, Excel in openpyxl's read-only mode) and reading stops as soon as a
file passes ``MAX_ROWS``, so a file of millions of rows is refused from its first rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.errors import ValidationError
from app.services.messaging import normalise_recipient
from app.spreadsheets import LANGUAGE_WORDS, check_workbook, not_a_workbook
from db.enums import Channel

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # the default of BULK_UPLOAD_MAX_MB
MAX_ROWS = 100_000
MAX_CELL_CHARS = 10_000  # a name, a number or a template variable; longer is not a recipient list
_HEAD_BYTES = 1024 * 1024  # what the encoding and the separator are decided from
_BINARY_SIGNATURES = ((b"PK\x03\x04", "a zip archive or an Excel workbook"),
                      (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) or Word document"), (b"%PDF", "a PDF document"))
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
_SEPARATORS = (",", ";", "\t")
_PHONE_HINTS = ("phone", "mobile", "number", "tel", "جوال", "هاتف", "رقم")
_EMAIL_HINTS = ("email", "e-mail", "mail", "بريد")
_NAME_HINTS = ("name", "اسم")
_LANGUAGE_HINTS = ("language", "lang", "لغة")


@dataclass(frozen=True)
class Rejected:
    row: int
    recipient: str
    reason: str


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[tuple[int, list[str]]]  # (row number in the file, cells)
    encoding: str = "utf-8"
    separator: str = ","
    refused: list[Rejected] = field(default_factory=list)  # rows that could not be read, with the reason


@dataclass(frozen=True)
class ColumnMapping:
    contact: str
    name: str | None = None
    language: str | None = None
    variables: tuple[str, ...] = ()  # extra columns that become template variables (by column name)


@dataclass
class ImportResult:
    recipients: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


# --- reading: every reader streams its rows into ``_collect``, which stops past MAX_ROWS -------------


def _encoding(data: bytes) -> str:
    """UTF-8 (with a BOM, or when the first megabyte is UTF-8), else Windows-1256 when it looks like text.

    Only the head is looked at, so reading can stop at the row limit; a later byte that is not
    UTF-8 becomes U+FFFD and its row is refused by ``_problem`` (named, the other rows kept).
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValidationError("The file is saved as UTF-16 (\"Unicode text\"). Save it as \"CSV UTF-8\" and "
                              "upload it again.", field="file")
    for signature, kind in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise ValidationError(f"The file is {kind}, not a CSV file. Save it as \"CSV UTF-8\" (or an Excel "
                                  ".xlsx named .xlsx) and upload it again.", field="file")
    head = data[:_HEAD_BYTES]
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3 and exc.reason == "unexpected end of data":
            return "utf-8"  # a character cut at the end of the head
        if not head[:exc.start].isascii():
            return "utf-8"  # UTF-8 text with a few broken bytes (their rows are refused), not Windows-1256
    controls = sum(head.count(bytes([c])) for c in range(32) if c not in (9, 10, 13))
    if controls > len(head) // 100:
        raise ValidationError("The file is not text: it is neither UTF-8 nor Windows-1256 (Arabic Excel's "
                              "\"CSV\"). Save it as \"CSV UTF-8\" and upload it again.", field="file")
    return "windows-1256"


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


def _problem(cells: Sequence[str]) -> str | None:
    """Why a row cannot be read (a NUL, bytes that are not text, an overlong cell), or None."""
    for position, cell in enumerate(cells, start=1):
        if "\x00" in cell:
            return f"column {position} contains a NUL character (\\0), which is not text"
        if "\ufffd" in cell:
            return f"column {position} contains bytes that are not UTF-8 text; save the file as \"CSV UTF-8\""
        if len(cell) > MAX_CELL_CHARS:
            return f"column {position} is {len(cell):,} characters long; at most {MAX_CELL_CHARS:,} in a cell"
    return None


def _too_many_rows() -> ValidationError:
    return ValidationError(f"The file has more than {MAX_ROWS:,} rows; at most {MAX_ROWS:,} per send. Split it "
                           f"into files of {MAX_ROWS:,} rows, or choose a larger audience by tag or appointment "
                           "instead of a list.", field="file")


def _collect(raw_rows: Iterable[tuple[int, Sequence[str] | None, str | None]], encoding: str,
             separator: str, *, header: list[str] | None = None) -> Table:
    """The header and the rows (blank ones skipped) of a stream of ``(row number, cells, problem)``.

    A row with a problem is listed in ``refused`` and the others kept; the header must be clean.
    Reading stops as soon as the rows pass ``MAX_ROWS`` (refused ones count: a file of a million bad
    rows is not read to its end either).
    """
    rows: list[tuple[int, list[str]]] = []
    refused: list[Rejected] = []
    for number, raw, problem in raw_rows:
        cells = [] if raw is None else [c.strip() for c in raw]
        if raw is not None and not any(cells):
            continue
        problem = problem or _problem(cells)
        if header is None:
            if problem:
                raise ValidationError(f"Row {number} (the header row): {problem}.", field="file")
            header = cells
            continue
        if len(rows) + len(refused) >= MAX_ROWS:
            raise _too_many_rows()
        if problem:
            refused.append(Rejected(number, "", problem))
        else:
            rows.append((number, cells))
    if header is None:
        raise ValidationError("The file is empty.", field="file")
    if not rows and not refused:
        raise ValidationError("The file has a header row but no recipients.", field="file")
    return Table(columns=_clean_header(header), rows=rows, encoding=encoding, separator=separator, refused=refused)


def _csv_rows(data: bytes, encoding: str, separator: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """The rows of a CSV file as they are parsed (numbered by the file's last line of each row)."""
    stream = io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors="replace", newline="")
    reader = csv.reader(stream, delimiter=separator)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error:  # a cell over the csv module's own limit (131,072 characters)
            yield reader.line_num, None, f"a cell is longer than {MAX_CELL_CHARS:,} characters"
            continue
        yield reader.line_num, row, None


def read_csv(data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES) -> Table:
    _check_size(len(data), max_bytes)
    encoding = _encoding(data)
    head = data[:_HEAD_BYTES].decode(encoding, errors="ignore").lstrip("\ufeff")
    separator = _separator(head.splitlines()[:5])
    return _collect(_csv_rows(data, encoding, separator), encoding, separator)




def read_excel(data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES) -> Table:
    from openpyxl import load_workbook

    _check_size(len(data), max_bytes)
    check_workbook(data)
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - any unreadable workbook gets the same plain message
        raise not_a_workbook() from None
    try:
        if not book.worksheets:
            raise not_a_workbook()
        rows = ((number, ["" if v is None else _cell_text(v) for v in values], None)
                for number, values in enumerate(book.worksheets[0].iter_rows(values_only=True), start=1))
        return _collect(rows, "xlsx", "")  # stops reading the sheet past MAX_ROWS (read-only mode streams it)
    except ValidationError:
        raise
    except Exception:  # noqa: BLE001 - a broken sheet inside a valid zip
        raise not_a_workbook() from None
    finally:
        book.close()


def _cell_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone typed as a number (966501234567.0)
    return str(value)


def read_table(filename: str, data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES) -> Table:
    """The rows of an uploaded CSV or Excel file; ``ValidationError`` with a plain reason when unreadable.

    Rows that cannot be read (a NUL character, an overlong cell, bytes that are not text) are listed
    in ``Table.refused`` with their row number and the reason; the other rows are kept.
    """
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
        # (a lone surrogate becomes bytes that are not UTF-8: its row is refused, not the paste)
        return read_csv(text.encode("utf-8", errors="surrogatepass"))
    rows = ((n, [line.encode("utf-8", errors="surrogatepass").decode("utf-8", errors="replace")], None)
            for n, line in enumerate(lines, start=1))
    return _collect(rows, "utf-8", "", header=["recipient"])


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
    language = LANGUAGE_WORDS.get(value.strip().lower())
    return language.value if language else ""


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
    if table.refused:  # rows that could not be read, in the file's order with the others
        result.rejected = sorted([*table.refused, *result.rejected], key=lambda r: r.row)
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
