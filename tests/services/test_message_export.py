"""CSV export: BOM, neutralised cells with the phone policy, masking, audit, background gzip files."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import uuid
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, Text, literal, select

from app.csv_safe import neutralise, neutralise_sql
from app.errors import NotFoundError, PermissionDenied, ValidationError
from app.services import message_export, passwords
from app.services.contacts import mask_contact
from app.services.explorer import MessageFilter
from app.services.permissions import Actor
from db.enums import Role
from db.models import AuditEvent, DataExport
from db.session import tenant_session
from tests.delivery.conftest import RecordingQueue
from tests.factories import call, make_message, make_patient, make_tenant, make_user, system_connection

ALL = MessageFilter(period="all")


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@dataclass
class World:
    engine: Engine
    tenant: uuid.UUID
    admin: Actor
    front: Actor
    analyst: Actor


@pytest.fixture
def world(engine: Engine) -> World:
    tenant = make_tenant(engine)
    return World(engine, tenant, make_user(engine, tenant, "amira", Role.ADMIN),
                 make_user(engine, tenant, "fatima", Role.FRONT_DESK), make_user(engine, tenant, "omar", Role.ANALYST))


def exported(w: World, actor: Actor, columns: tuple[str, ...] = message_export.DEFAULT_COLUMNS,
             flt: MessageFilter = ALL) -> tuple[bytes, list[list[str]]]:
    out = io.BytesIO()
    with tenant_session(w.engine, w.tenant) as session:
        count = message_export.export_csv(session, actor, flt, columns, out)
    data = out.getvalue()
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert count == len(rows) - 1
    return data, rows


# Every cell a spreadsheet would evaluate, and the phone numbers the phone policy keeps (cell, as written).
RULE = [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1+1", "'+1+1"), ("-2", "'-2"), ("-2+3", "'-2+3"),
    ("+99999*99999", "'+99999*99999"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("\uff1d1+1", "'\uff1d1+1"), ("\uff0b1", "'\uff0b1"), ("\uff0d2", "'\uff0d2"), ("\uff20SUM(A1)", "'\uff20SUM(A1)"),
    ("plain", "plain"), ("", ""), ("a=1", "a=1"), ("x\ry", "x\ry"),
    ("+966501234567", "+966501234567"), ("+1234567", "+1234567"), ("+123456789012345", "+123456789012345"),
    ("+9665******67", "'+9665******67"),  # a masked number is not a phone number
    ("+1234*67", "'+1234*67"),  # (it could be a product)
    ("+1234567890123456", "'+1234567890123456"), ("+123456", "'+123456"), ("+0123456789", "'+0123456789"),
    ("+966 50", "'+966 50"), ("+٩٦٦٥٠١٢٣٤٥٦٧", "'+٩٦٦٥٠١٢٣٤٥٦٧"), ("++1234567", "'++1234567"),
    ("+966501234567\n", "'+966501234567\n"), ("+966501234567=1", "'+966501234567=1"),
]


@pytest.mark.parametrize("cell, written", RULE)
def test_neutralise_rule_and_phone_policy(cell: str, written: str) -> None:
    assert neutralise(cell) == written


def test_the_database_applies_the_same_rule(pg_engine: Engine) -> None:
    cells = [c for c, _ in RULE] + ["+12345678é", "+1234٥678", "1+2345678", "+1234567a", "'=1", " =1"]
    with system_connection(pg_engine) as conn:
        in_sql = conn.execute(select(*[neutralise_sql(literal(c, Text)) for c in cells])).one()
        empty_as_null = conn.execute(select(*[neutralise_sql(literal(c, Text), empty_as_null=True)
                                              for c in cells])).one()
    assert list(in_sql) == [neutralise(c) for c in cells]
    assert [v or "" for v in empty_as_null] == [neutralise(c) for c in cells]


def test_the_database_masks_contacts_by_the_same_rule(pg_engine: Engine) -> None:
    contacts = ["+966501234567", "+12025550123", "+1234567", "+123456", "+12345678901234567", "=1+2+3+4+5",
                "-cmd|' /C calc'!A0", "+1234ab567", "+12ab5678", "+9665012345678901", "sara@example.com",
                "=evil@example.com", "@x@y", "a@b", "", "short", "+٩٦٦٥٠١٢٣٤٥٦٧", "\t+966501234567",
                "\uff1devil@example.com", "\uff0b966501234567", "+99999*99999"]
    with system_connection(pg_engine) as conn:
        in_sql = conn.execute(select(*[message_export._masked_contact_sql(literal(c, Text)) for c in contacts])).one()
    assert [v or "" for v in in_sql] == [neutralise(mask_contact(c) or "") for c in contacts]


def test_export_has_a_bom_a_header_and_neutralised_cells(world: World) -> None:
    patient = make_patient(world.engine, world.tenant, name_en="=cmd|' /C calc'!A0", name_ar="سارة")
    make_message(world.engine, world.tenant, patient_id=patient, body="-10% off\nsecond line",
                 created_at=dt.datetime(2026, 3, 1, 21, 30, tzinfo=dt.UTC), price=Decimal("-0.0079"),
                 price_unit="USD", segments=2, status="failed", error_code="21211")

    data, rows = exported(world, world.admin, (*message_export.DEFAULT_COLUMNS, "body", "is_test"))

    assert data.startswith(b"\xef\xbb\xbf")
    assert rows[0][:3] == ["Created (clinic time)", "Status", "Channel"]
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["Created (clinic time)"] == "2026-03-02 00:30:00"  # Asia/Riyadh
    assert row["Recipient"] == "+966501234567"  # the phone policy: kept as it is
    assert row["Patient"] == "'=cmd|' /C calc'!A0"
    assert row["Text"] == "'-10% off\nsecond line"
    assert row["Price"] == "-0.00790" and row["Segments"] == "2"  # numbers are not text cells
    assert row["Error code"] == "21211" and row["Test message"] == "no"


def test_arabic_survives_the_round_trip(world: World) -> None:
    patient = make_patient(world.engine, world.tenant, name_en="", name_ar="سارة علي")
    make_message(world.engine, world.tenant, patient_id=patient, body="موعدك غدا")

    _, rows = exported(world, world.admin, ("patient", "body"))

    assert rows[1] == ["سارة علي", "موعدك غدا"]


def test_analysts_export_masked_contacts_unless_granted(world: World) -> None:
    make_message(world.engine, world.tenant, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    make_message(world.engine, world.tenant, channel="email", recipient="sara@example.com")

    _, masked = exported(world, world.analyst, ("recipient",))
    _, whole = exported(world, replace(world.analyst, can_view_full_contacts=True), ("recipient",))

    assert masked[1:] == [["s***@example.com"], ["'+9665******67"]]  # a mask is not a phone number
    assert whole[1:] == [["sara@example.com"], ["+966501234567"]]


def test_export_is_audited_with_filter_columns_and_count(world: World) -> None:
    make_message(world.engine, world.tenant, status="failed")
    flt = replace(ALL, statuses=("failed",))  # type: ignore[arg-type]

    exported(world, world.analyst, ("status",), flt)

    with tenant_session(world.engine, world.tenant) as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "messages.export"))
    assert event is not None and event.actor_name == "omar"
    assert event.details == {"filter": {"period": "all", "status": "failed"}, "columns": ["status"], "rows": 1,
                             "masked": True}


def test_front_desk_cannot_export_and_bad_columns_are_refused(world: World) -> None:
    with tenant_session(world.engine, world.tenant) as session, pytest.raises(PermissionDenied):
        message_export.export_csv(session, world.front, ALL, ["status"], io.BytesIO())
    with tenant_session(world.engine, world.tenant) as session, pytest.raises(ValidationError, match="password"):
        message_export.export_csv(session, world.admin, ALL, ["status", "password"], io.BytesIO())
    with tenant_session(world.engine, world.tenant) as session, pytest.raises(ValidationError):
        message_export.export_csv(session, world.admin, ALL, [], io.BytesIO())


def test_another_clinics_messages_are_never_exported(world: World) -> None:
    make_message(world.engine, world.tenant)
    other = make_tenant(world.engine, "clinic-b")
    make_message(world.engine, other, recipient="+966507654321")

    _, rows = exported(world, world.admin, ("recipient",))

    assert rows[1:] == [["+966501234567"]]


def test_copy_and_python_paths_write_the_same_bytes(pg_engine: Engine) -> None:
    tenant = make_tenant(pg_engine)
    patient = make_patient(pg_engine, tenant, name_en="@evil", name_ar="سارة")
    for i, (recipient, body) in enumerate([("+966501234567", "=1+1"), ("sara@example.com", 'He said "hi", ok'),
                                           ("+966507654321", ""), ("+12025550123", "line\r\nbreak")]):
        make_message(pg_engine, tenant, recipient=recipient, body=body, patient_id=patient if i % 2 else None,
                     price=Decimal("0.0395") if i else None, is_test=bool(i % 2), error_code="-1" if i == 3 else None,
                     created_at=dt.datetime(2026, 1, 1, 12, i, 59, 999_999, tzinfo=dt.UTC))  # cut, not rounded
    columns = list(message_export.EXPORT_COLUMNS)
    for masked in (False, True):
        outputs = []
        for use_copy in (True, False):
            out = io.BytesIO()
            with tenant_session(pg_engine, tenant) as session:
                rows = message_export.write_csv(session, replace(ALL, include_test=True), columns, out, masked=masked,
                                        use_copy=use_copy)
            assert rows == 4
            outputs.append(out.getvalue())
        assert outputs[0] == outputs[1]


def test_a_large_export_runs_in_the_background_to_a_gzip_file(world: World, tmp_path: Path) -> None:
    make_message(world.engine, world.tenant, status="failed")
    queue = RecordingQueue()
    info = call(world.engine, world.analyst, message_export.request_export, ALL, ["status", "recipient"], queue=queue)

    assert info.status == "queued"
    assert queue.calls == [(message_export.EXPORT_JOB, (str(world.tenant), str(info.id)), 0.0)]
    assert message_export.run_export(world.engine, world.tenant, info.id, directory=tmp_path) == 1
    # a repeat does nothing
    assert message_export.run_export(world.engine, world.tenant, info.id, directory=tmp_path) == 0

    with tenant_session(world.engine, world.tenant) as session:
        [done] = message_export.list_exports(session, world.analyst)
        path = message_export.export_file(session, world.analyst, info.id, directory=tmp_path)
        assert message_export.list_exports(session, world.admin)[0].id == info.id  # admins see the clinic's exports
        completed = session.scalar(select(AuditEvent).where(AuditEvent.action == "messages.export"))
    assert done.ready and done.row_count == 1
    text = gzip.decompress(path.read_bytes()).decode("utf-8-sig")
    assert text == "Status,Recipient\nfailed,'+9665******67\n"  # masked for the analyst who asked
    assert completed is not None and completed.details["rows"] == 1


def test_an_unfinished_or_foreign_export_cannot_be_downloaded(world: World, tmp_path: Path) -> None:
    info = call(world.engine, world.analyst, message_export.request_export, ALL, ["status"], queue=RecordingQueue())
    with tenant_session(world.engine, world.tenant) as session, pytest.raises(NotFoundError):
        message_export.export_file(session, world.analyst, info.id, directory=tmp_path)
    with tenant_session(world.engine, world.tenant) as session:
        assert session.scalar(select(DataExport.status)) == "queued"


@pytest.mark.parametrize("sql, message", [
    ("COPY (SELECT no_such_column FROM messages) TO STDOUT", "no_such_column"),  # refused before any row
    ("COPY (SELECT 1 / (3 - n) FROM generate_series(1, 5) AS n) TO STDOUT", "division by zero"),  # mid-stream
])
def test_a_failing_copy_raises_and_leaves_the_connection_usable(pg_engine: Engine, sql: str, message: str) -> None:
    import psycopg

    written: list[bytes] = []
    with pg_engine.connect() as conn:  # no table rows read: no clinic needed
        dbapi = conn.connection.dbapi_connection
        with pytest.raises(psycopg.DatabaseError, match=message):
            message_export._copy_out(dbapi, sql, {}, written.append)
        conn.rollback()
        assert conn.execute(select(literal(1))).scalar() == 1
        assert message_export._copy_out(dbapi, "COPY (SELECT n FROM generate_series(1, 3) AS n) TO STDOUT", {},
                                written.append) == 3
    assert written[-3:] == [b"1\n", b"2\n", b"3\n"]


@pytest.mark.parametrize("oldest_first", [False, True])
def test_the_two_halves_of_a_copy_export_keep_the_order_across_the_middle(pg_engine: Engine,
                                                                           oldest_first: bool) -> None:
    tenant = make_tenant(pg_engine)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    stamps = [start + dt.timedelta(hours=h) for h in (0, 1, 5, 5, 5, 9, 10, 10)]  # the middle (5 h) holds 3
    for i, at in enumerate(stamps):
        make_message(pg_engine, tenant, recipient=f"+96650123450{i}", body=f"message {i}", created_at=at)
    flt = replace(ALL, oldest_first=oldest_first)
    outputs = []
    for use_copy in (True, False):
        out = io.BytesIO()
        with tenant_session(pg_engine, tenant) as session:
            assert message_export.write_csv(session, flt, ["created_at", "recipient", "body", "message_id"], out,
                                    masked=False, use_copy=use_copy) == len(stamps)
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]
    times = [row[0] for row in csv.reader(io.StringIO(outputs[0].decode("utf-8-sig")))][1:]
    assert times == sorted(times, reverse=not oldest_first) and len(times) == len(stamps)


def test_a_failing_half_raises_and_leaves_no_connection_behind(pg_engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    tenant = make_tenant(pg_engine)
    for minute in range(4):
        make_message(pg_engine, tenant, created_at=dt.datetime(2026, 1, 1, 12, minute, tzinfo=dt.UTC))
    real = message_export._copy_side_by_side

    def second_half_fails(pgconns, queries, writes):  # type: ignore[no-untyped-def]
        failing = "COPY (SELECT 1 / (3 - n) FROM generate_series(1, 5) AS n) TO STDOUT"
        return real(pgconns, [queries[0], failing], writes)

    monkeypatch.setattr(message_export, "_copy_side_by_side", second_half_fails)
    with tenant_session(pg_engine, tenant) as session, pytest.raises(psycopg.DatabaseError, match="division by zero"):
        message_export.write_csv(session, ALL, ["status"], io.BytesIO(), masked=False)
    monkeypatch.undo()
    assert pg_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    with tenant_session(pg_engine, tenant) as session:
        assert message_export.write_csv(session, ALL, ["status"], io.BytesIO(), masked=False) == 4
