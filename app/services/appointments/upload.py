"""An appointment list uploaded as CSV or Excel: read, reviewed before anything is written, then applied.

``review`` reads the file (nothing is written) and says what it would do: appointments to create,
change and cancel, those unchanged, and every refused row with its row number and reason.
``commit`` applies the reviewed rows through ``records.apply`` (the one upsert, the API's too),
which works everything out again from the clinic's data as it is then.

The file: UTF-8 CSV (with or without a byte-order mark; comma or semicolon separated) or an Excel
workbook (.xlsx, its first sheet), a header row, then one appointment per row. Headers are read
without regard to case, spaces, dashes or underscores; see ``COLUMNS`` (and docs/appointments.md).
Times are the clinic's local time (``date`` + ``time``), or ``start`` in ISO form (with an offset
it is that moment; without one, clinic time too). Rows are numbered as a spreadsheet shows them:
the header is row 1. Cells are data only: a cell such as ``=HYPERLINK(...)`` is kept as its text.

Bounded: at most ``MAX_UPLOAD_BYTES`` and ``MAX_ROWS`` rows; a workbook that unpacks to more than
``MAX_XLSX_UNPACKED_BYTES`` is refused. Parsing is vectorised (pandas), and the clinic's existing
appointments are read once in chunks, so 100,000 rows review in seconds.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from app.errors import ValidationError
from app.services import tenants
from app.services.appointments import records
from app.services.appointments.records import AppointmentInput, Kind, PatientDetails
from app.services.permissions import Actor, Permission, authorize
from app.spreadsheets import LANGUAGE_WORDS, check_workbook
from db.enums import AppointmentStatus, Language
from db.tenancy import TenantSession

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_ROWS = 200_000
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
SAMPLES = 20  # rows of each kind shown on the review screen
# Each column the file may have (the name used here) and the headers that name it.
COLUMNS: dict[str, tuple[str, ...]] = {
    "source_id": ("source_id", "appointment_id", "appointment"),
    "patient_mrn": ("patient_mrn", "mrn"),
    "date": ("date", "appointment_date"),
    "time": ("time", "appointment_time"),
    "start": ("start", "starts_at", "start_time"),
    "duration_minutes": ("duration_minutes", "duration"),
    "appointment_type": ("appointment_type", "type"),
    "department": ("department",),
    "doctor": ("doctor", "doctor_name", "doctor_en"),
    "doctor_ar": ("doctor_ar", "doctor_name_ar"),
    "location": ("location", "room"),
    "status": ("status",),
    "patient_name": ("patient_name", "patient_name_en", "name"),
    "patient_name_ar": ("patient_name_ar", "name_ar"),
    "phone": ("phone", "mobile", "patient_phone"),
    "email": ("email", "patient_email"),
    "language": ("language", "patient_language"),
}
# What each column holds, for the upload screen and docs/appointments.md.
COLUMN_HELP: dict[str, str] = {
    "source_id": "Required. The appointment's id in the clinic's own system; the same id updates it.",
    "patient_mrn": "Required. The patient's MRN in this clinic.",
    "date": "The day, clinic time: YYYY-MM-DD or DD/MM/YYYY (day first). With time, or use start.",
    "time": "The time, clinic time: HH:MM (24-hour) or with AM/PM.",
    "start": "Instead of date and time: ISO form, e.g. 2026-12-08T09:30+03:00 (no offset: clinic time).",
    "duration_minutes": "Whole minutes (empty: 20).",
    "appointment_type": "E.g. Check-up, Follow-up; reminder rules can cover some types only.",
    "department": "E.g. Dental; reminder rules can cover some departments only.",
    "doctor": "The doctor's name in English.",
    "doctor_ar": "The doctor's name in Arabic.",
    "location": "Room or branch.",
    "status": "booked (empty), confirmed, cancelled, no-show, completed (FHIR's noshow and fulfilled too).",
    "patient_name": "Only for a patient the clinic does not have yet: the English name (or the Arabic one).",
    "patient_name_ar": "A new patient's Arabic name.",
    "phone": "A new patient's mobile number (any usual form; the clinic's country is assumed).",
    "email": "A new patient's e-mail address.",
    "language": "A new patient's language: en or ar (empty: the clinic's).",
}
_HEADER_TO_COLUMN = {header: column for column, headers in COLUMNS.items() for header in headers}
# The statuses a file may give (after lower-casing; spaces and dashes read as underscores), FHIR's too.
STATUS_WORDS: dict[str, AppointmentStatus] = {
    "": AppointmentStatus.BOOKED, "booked": AppointmentStatus.BOOKED, "scheduled": AppointmentStatus.BOOKED,
    "confirmed": AppointmentStatus.CONFIRMED,
    "cancelled": AppointmentStatus.CANCELLED, "canceled": AppointmentStatus.CANCELLED,
    "no_show": AppointmentStatus.NO_SHOW, "noshow": AppointmentStatus.NO_SHOW,
    "completed": AppointmentStatus.COMPLETED, "fulfilled": AppointmentStatus.COMPLETED,
}
_LANGUAGE_WORDS: dict[str, Language | None] = {"": None, **LANGUAGE_WORDS}
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%Y/%m/%d", "%d-%m-%Y", "%d.%m.%Y")
_TIME_FORMATS = ("%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M:%S %p", "%I:%M%p")
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"
DEFAULT_DURATION = 20


@dataclass(frozen=True)
class ReviewRow:
    """One row as the review screen shows it."""

    row: int
    kind: Kind
    source_id: str
    patient_mrn: str
    starts_at: dt.datetime | None  # UTC
    status: AppointmentStatus | None
    changed: tuple[str, ...] = ()  # in words: "start", "doctor" ...
    before_starts_at: dt.datetime | None = None  # the start it had, when the start changes
    reason: str = ""


@dataclass(frozen=True)
class UploadReview:
    """What an upload would do; ``inputs`` and ``rows`` are what ``commit`` applies."""

    filename: str
    timezone: str
    to_create: int
    to_change: int
    to_cancel: int
    unchanged: int
    new_patients: int
    refused: list[ReviewRow]
    samples: dict[Kind, list[ReviewRow]]
    ignored_columns: list[str]
    inputs: list[AppointmentInput] = field(repr=False)
    rows: list[int] = field(repr=False)
    problems: dict[int, str] = field(repr=False)  # index -> the file's own reason for refusing that row

    @property
    def total(self) -> int:
        return len(self.inputs)

    @property
    def writes(self) -> int:
        return self.to_create + self.to_change + self.to_cancel


# In words, for the review (records.COMPARED's names).
FIELD_WORDS = {"patient_id": "patient", "starts_at": "start", "duration_minutes": "duration",
               "appointment_type": "type", "department": "department", "doctor_name_en": "doctor",
               "doctor_name_ar": "doctor (Arabic)", "location": "location", "status": "status"}


# --- reading the file ------------------------------------------------------------------------------


def _check_size(data: bytes) -> None:
    if not data:
        raise ValidationError("The file is empty.", field="file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValidationError(f"The file is {len(data) / 1024 / 1024:.1f} MB; the limit is "
                              f"{MAX_UPLOAD_BYTES // 1024 // 1024} MB. Split it into smaller files.", field="file")


def _too_many_rows() -> ValidationError:
    return ValidationError(f"The file has more than {MAX_ROWS:,} rows; at most {MAX_ROWS:,} per upload. Split it "
                           "into smaller files.", field="file")


def _read_csv(data: bytes) -> pd.DataFrame:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValidationError("The file is saved as UTF-16 (\"Unicode text\"). Save it as \"CSV UTF-8\" and upload "
                              "it again.", field="file")
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0", b"%PDF")):
        raise ValidationError("The file is not a CSV file. Save it as \"CSV UTF-8\" or as an Excel workbook named "
                              ".xlsx and upload it again.", field="file")
    head = data[:64 * 1024]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not (exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"):
            raise ValidationError("The file is not UTF-8 text. Save it as \"CSV UTF-8\" and upload it again.",
                                  field="file") from None
    first = head.decode("utf-8", errors="ignore").lstrip("\ufeff").split("\n", 1)[0]
    separator = ";" if first.count(";") > first.count(",") else ","
    try:
        return pd.read_csv(io.BytesIO(data), sep=separator, dtype=str, keep_default_na=False, na_filter=False,
                           encoding="utf-8-sig", encoding_errors="replace", skip_blank_lines=False,
                           nrows=MAX_ROWS + 1, quoting=csv.QUOTE_MINIMAL)
    except pd.errors.EmptyDataError:
        raise ValidationError("The file is empty.", field="file") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise ValidationError(f"The file could not be read as CSV: {str(exc).splitlines()[0][:200]}",
                              field="file") from None


def _read_excel(data: bytes) -> pd.DataFrame:
    check_workbook(data)
    try:
        return pd.read_excel(io.BytesIO(data), sheet_name=0, dtype=str, keep_default_na=False, na_filter=False,
                             engine="openpyxl", nrows=MAX_ROWS + 1)
    except Exception:  # noqa: BLE001 - any unreadable workbook gets the same plain message
        raise ValidationError("The file could not be read as an Excel workbook (.xlsx).", field="file") from None


def _header_key(name: object) -> str:
    return re.sub(r"[\s_\-]+", "_", str(name).replace("\ufeff", "").strip().lower()).strip("_")


def _columns(frame: pd.DataFrame) -> tuple[dict[str, str], list[str]]:
    """The file's header for each known column, and the headers ignored; refuses a file without the essentials."""
    found: dict[str, str] = {}
    ignored: list[str] = []
    for header in frame.columns:
        column = _HEADER_TO_COLUMN.get(_header_key(header))
        if column is None:
            ignored.append(str(header))
        elif column in found:
            raise ValidationError(f"The file has two columns for {column} ('{found[column]}' and '{header}'); keep "
                                  "one.", field="file")
        else:
            found[column] = str(header)
    missing = [what for name, what in (("source_id", "the appointment id (source_id)"),
                                       ("patient_mrn", "the patient's MRN (patient_mrn or mrn)")) if name not in found]
    if "start" not in found and not ("date" in found and "time" in found):
        missing.append("the start (date and time, or start)")
    if missing:
        headers = ", ".join(str(h) for h in frame.columns) or "none"
        raise ValidationError(f"The file has no column for {' or '.join(missing)}. Its columns: {headers[:300]}. "
                              "See the column list on this page.", field="file")
    return found, ignored


def read_frame(filename: str, data: bytes) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """The data rows (as text, blank rows dropped, index = spreadsheet row number), the known columns
    found and the headers ignored; ``ValidationError`` with a plain reason when the file cannot be used."""
    _check_size(data)
    frame = _read_excel(data) if filename.lower().endswith(EXCEL_SUFFIXES) else _read_csv(data)
    if len(frame) > MAX_ROWS:
        raise _too_many_rows()
    found, ignored = _columns(frame)
    frame = frame[list(found.values())].rename(columns={header: column for column, header in found.items()})
    frame = frame.astype(str).apply(lambda column: column.str.strip())
    frame.index = pd.RangeIndex(2, len(frame) + 2)  # the header is row 1
    frame = frame[(frame != "").any(axis=1)]
    if frame.empty:
        raise ValidationError("The file has a header row but no appointments.", field="file")
    return frame, found, ignored


# --- rows to inputs (vectorised) ---------------------------------------------------------------------


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series("", index=frame.index, dtype=object)


def _parse(values: pd.Series, formats: Sequence[str]) -> pd.Series:
    """Each value read with the first of ``formats`` that fits it (NaT where none does)."""
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
    for fmt in formats:
        todo = parsed.isna() & (values != "")
        if not todo.any():
            break
        parsed[todo] = pd.to_datetime(values[todo], format=fmt, errors="coerce")
    return parsed


def _starts(frame: pd.DataFrame, zone: str) -> tuple[pd.Series, pd.Series]:
    """Each row's start (UTC, NaT when missing or unreadable) and the reason a given one could not be read."""
    problems = pd.Series("", index=frame.index, dtype=object)
    start = _column(frame, "start").str.translate(_DIGITS)
    date = _column(frame, "date").str.translate(_DIGITS).str.replace(r"[ T]00:00(:00)?$", "", regex=True)
    time = _column(frame, "time").str.translate(_DIGITS).str.upper()
    result = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")

    with_offset = (start != "") & start.str.contains(_OFFSET, regex=True)
    if with_offset.any():
        result[with_offset] = pd.to_datetime(start[with_offset], format="ISO8601", utc=True, errors="coerce")
    local = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us]")
    naive = (start != "") & ~with_offset
    if naive.any():
        local[naive] = pd.to_datetime(start[naive], format="ISO8601", errors="coerce")
    bad_start = (start != "") & result.isna() & local.isna()
    problems[bad_start] = "the start '" + start[bad_start].str.slice(0, 40) + \
        "' could not be read (use ISO form, e.g. 2026-12-08T09:30+03:00)"

    by_day = start == ""
    days = _parse(date.where(by_day, ""), _DATE_FORMATS)
    hours = _parse(time.where(by_day, ""), _TIME_FORMATS)
    bad_date = by_day & (date != "") & days.isna()
    bad_time = by_day & (time != "") & hours.isna()
    problems[bad_date] = "the date '" + date[bad_date].str.slice(0, 40) + \
        "' could not be read (use YYYY-MM-DD or DD/MM/YYYY)"
    problems[bad_time & ~bad_date] = "the time '" + time[bad_time & ~bad_date].str.slice(0, 40) + \
        "' could not be read (use HH:MM, 24-hour, or with AM/PM)"
    problems[by_day & (date != "") & (time == "") & ~bad_date] = "the time is missing"
    problems[by_day & (date == "") & (time != "")] = "the date is missing"
    both = by_day & days.notna() & hours.notna()
    local[both] = days[both] + (hours[both] - hours[both].dt.normalize())
    wall = local.notna()
    if wall.any():
        moments = local[wall].dt.tz_localize(ZoneInfo(zone), nonexistent="NaT", ambiguous="NaT").dt.tz_convert("UTC")
        result[wall] = moments
        problems[wall & result.isna()] = "the time does not exist in the clinic's time zone (a clock change)"
    earliest, latest = pd.Timestamp(records.EARLIEST_START), pd.Timestamp(records.LATEST_START)
    beyond = result.notna() & ((result < earliest) | (result >= latest))
    if beyond.any():  # refused here: a start such as 0001-01-01 cannot even become a Python datetime
        problems[beyond] = f"the start is not a date this system takes ({earliest.year} to {latest.year - 1})"
        result[beyond] = pd.NaT
    return result, problems


def _durations(frame: pd.DataFrame) -> tuple[list[int], pd.Series]:
    text = _column(frame, "duration_minutes").str.translate(_DIGITS).str.replace(r"\.0+$", "", regex=True)
    good = text.str.fullmatch(r"\d{1,5}")
    problems = pd.Series("", index=frame.index, dtype=object)
    bad = (text != "") & ~good
    problems[bad] = "the duration '" + text[bad].str.slice(0, 20) + "' is not a whole number of minutes"
    minutes = text.where(good, str(DEFAULT_DURATION)).astype(int).tolist()
    return minutes, problems


def _words(frame: pd.DataFrame, name: str, words: dict[str, Any], what: str) -> tuple[list[Any], pd.Series]:
    """Each row's value of a column of known words (``words``), and the reason for a word not known."""
    given = _column(frame, name)
    keys = given.str.lower().str.replace(r"[\s\-]+", "_", regex=True).tolist()
    known = pd.Series([key in words for key in keys], index=frame.index)
    problems = pd.Series("", index=frame.index, dtype=object)
    choices = ", ".join(sorted({str(v) for k, v in words.items() if k and v is not None}))
    problems[~known] = f"the {what} '" + given[~known].str.slice(0, 30) + f"' is not one of: {choices}"
    return [words.get(key) for key in keys], problems


def _unreadable(frame: pd.DataFrame) -> pd.Series:
    """Rows with bytes that were not UTF-8 text (read as U+FFFD)."""
    broken = pd.Series(False, index=frame.index)
    for name in frame.columns:
        broken |= frame[name].str.contains("\ufffd", regex=False)
    return broken


def to_inputs(frame: pd.DataFrame, zone: str) -> tuple[list[AppointmentInput], dict[int, str]]:
    """The rows as appointment inputs, and each row's own problem (by position) when it has one.

    A row with a problem still goes to ``records`` (with no start, so it is refused there) so that a
    later row with the same id is still called a duplicate of it."""
    starts, start_problems = _starts(frame, zone)
    minutes, duration_problems = _durations(frame)
    statuses, status_problems = _words(frame, "status", STATUS_WORDS, "status")
    languages, language_problems = _words(frame, "language", _LANGUAGE_WORDS, "language")
    problems = start_problems.where(start_problems != "", duration_problems)
    problems = problems.where(problems != "", status_problems)
    problems = problems.where(problems != "", language_problems)
    problems[_unreadable(frame)] = "the row has bytes that are not UTF-8 text; save the file as \"CSV UTF-8\""
    problem_list = problems.tolist()
    start_list = [None if pd.isna(value) else value.to_pydatetime() for value in starts.tolist()]
    columns = {name: _column(frame, name).tolist() for name in COLUMNS}
    inputs: list[AppointmentInput] = []
    refused: dict[int, str] = {}
    for index in range(len(frame)):
        details = PatientDetails(columns["patient_name"][index], columns["patient_name_ar"][index],
                                 columns["phone"][index], columns["email"][index], languages[index])
        if problem_list[index]:
            refused[index] = problem_list[index]
        inputs.append(AppointmentInput(
            source_id=columns["source_id"][index], patient_mrn=columns["patient_mrn"][index],
            starts_at=None if problem_list[index] else start_list[index], duration_minutes=minutes[index],
            appointment_type=columns["appointment_type"][index], department=columns["department"][index],
            doctor_name_en=columns["doctor"][index], doctor_name_ar=columns["doctor_ar"][index],
            location=columns["location"][index], status=statuses[index] or AppointmentStatus.BOOKED,
            patient=details if details.given else None))
    return inputs, refused


# --- review and commit ---------------------------------------------------------------------------


def review(session: TenantSession, actor: Actor, file_bytes: bytes, filename: str) -> UploadReview:
    """What the uploaded file would do to the clinic's appointments; nothing is written."""
    authorize(session, actor, Permission.IMPORT_APPOINTMENTS)
    zone = tenants.current(session).timezone
    frame, _found, ignored = read_frame(filename, file_bytes)
    rows = [int(n) for n in frame.index]
    inputs, problems = to_inputs(frame, zone)
    planned = records.preview(session, actor, inputs, source="upload", rows=rows)
    samples: dict[Kind, list[ReviewRow]] = {kind: [] for kind in Kind if kind != Kind.REFUSED}
    refused: list[ReviewRow] = []
    for item in planned.items:  # rows for the screen: every refused one, the first few of each other kind
        kept = refused if item.kind == Kind.REFUSED else samples[item.kind]
        if kept is refused or len(kept) < SAMPLES:
            kept.append(_shown(item, inputs[item.index], rows[item.index], problems.get(item.index)))
    return UploadReview(
        filename=filename, timezone=zone, to_create=planned.count(Kind.CREATE), to_change=planned.count(Kind.CHANGE),
        to_cancel=planned.count(Kind.CANCEL), unchanged=planned.count(Kind.UNCHANGED),
        new_patients=planned.new_patients, refused=refused,
        samples=samples, ignored_columns=ignored, inputs=inputs, rows=rows, problems=problems)


def _shown(item: records.Planned, given: AppointmentInput, row: int, problem: str | None) -> ReviewRow:
    return ReviewRow(row=row, kind=item.kind, source_id=item.source_id, patient_mrn=given.patient_mrn,
                     starts_at=given.starts_at, status=item.status,
                     changed=tuple(FIELD_WORDS[name] for name in item.changed),
                     before_starts_at=item.before.get("starts_at"), reason=problem or item.reason)


def commit(session: TenantSession, actor: Actor, reviewed: UploadReview) -> records.ApplyResult:
    """Apply a reviewed upload (``records.apply``, source "upload"), worked out afresh from the data as it is now.

    The refusals carry the file's own reasons (an unreadable date ...) and are indexed like the review."""
    authorize(session, actor, Permission.IMPORT_APPOINTMENTS)
    result = records.apply(session, actor, reviewed.inputs, source="upload", rows=reviewed.rows)
    result.refused = [replace(refusal, reason=reviewed.problems.get(refusal.index, refusal.reason))
                      for refusal in result.refused]
    return result


def row_of(reviewed: UploadReview, index: int) -> int:
    """The spreadsheet row number of the ``index``-th appointment of the file."""
    return reviewed.rows[index]
