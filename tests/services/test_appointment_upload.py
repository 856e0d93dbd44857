"""An appointment list uploaded as CSV or Excel: reviewed before anything is written (what will be
created, changed, cancelled, every refused row with its reason), then applied in one go, in the
uploading clinic only."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, func, select

from app.errors import PermissionDenied, ValidationError
from app.services import passwords
from app.services.appointments import records, upload
from app.services.appointments.records import AppointmentInput, Kind
from app.services.permissions import Actor
from db.enums import AppointmentStatus, Role
from db.models import Appointment, AuditEvent, Patient
from db.session import tenant_session
from tests.factories import call, make_tenant, make_user

RIYADH = ZoneInfo("Asia/Riyadh")
DAY = (dt.datetime.now(RIYADH) + dt.timedelta(days=5)).date()  # a clinic day to come
ISO = DAY.isoformat()
DMY = DAY.strftime("%d/%m/%Y")


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@dataclass
class Clinic:
    tenant_id: uuid.UUID
    admin: Actor
    front_desk: Actor


@dataclass
class World:
    engine: Engine
    a: Clinic
    b: Clinic


def _clinic(engine: Engine, slug: str) -> Clinic:
    tenant_id = make_tenant(engine, slug)
    with tenant_session(engine, tenant_id) as session:  # the same MRNs, names and numbers in both clinics
        session.add_all([Patient(mrn="MRN-0", name_en="Sara Ali", phone_e164="+966501234567"),
                         Patient(mrn="MRN-1", name_en="Omar Said", phone_e164="+966507654321")])
    return Clinic(tenant_id, make_user(engine, tenant_id, f"{slug}-admin"),
                  make_user(engine, tenant_id, f"{slug}-desk", Role.FRONT_DESK))


@pytest.fixture
def world(engine: Engine) -> World:
    return World(engine, _clinic(engine, "clinic-a"), _clinic(engine, "clinic-b"))


def csv_file(*rows: str, header: str = "Appointment ID,MRN,Date,Time,Department,Status") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode("utf-8")


def review(w: World, data: bytes, filename: str = "list.csv", clinic: Clinic | None = None) -> upload.UploadReview:
    return call(w.engine, (clinic or w.a).admin, upload.review, data, filename)


def commit(w: World, reviewed: upload.UploadReview, clinic: Clinic | None = None) -> records.ApplyResult:
    return call(w.engine, (clinic or w.a).admin, upload.commit, reviewed)


def appointments(w: World, clinic: Clinic) -> dict[str, Appointment]:
    with tenant_session(w.engine, clinic.tenant_id) as session:
        rows = list(session.scalars(select(Appointment)))
        for row in rows:
            session.expunge(row)
        return {row.source_id or "": row for row in rows}


def audit_count(w: World, clinic: Clinic) -> int:
    with tenant_session(w.engine, clinic.tenant_id) as session:
        return session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "appointments.apply")) or 0


def local(moment: dt.datetime | None) -> dt.datetime | None:
    return None if moment is None else moment.astimezone(RIYADH).replace(tzinfo=None)


# --- review, then commit --------------------------------------------------------------------------


def test_review_says_what_the_file_would_do_and_writes_nothing(world: World) -> None:
    data = csv_file(f"A-1,MRN-0,{ISO},09:30,Dental,booked", f"A-2,MRN-1,{DMY},2:15 PM,Eyes,")

    seen = review(world, data)

    assert (seen.to_create, seen.to_change, seen.to_cancel, seen.unchanged, seen.refused) == (2, 0, 0, 0, [])
    assert [(r.row, r.source_id, local(r.starts_at)) for r in seen.samples[Kind.CREATE]] == [
        (2, "A-1", dt.datetime.combine(DAY, dt.time(9, 30))), (3, "A-2", dt.datetime.combine(DAY, dt.time(14, 15)))]
    assert appointments(world, world.a) == {} and audit_count(world, world.a) == 0


def test_commit_applies_the_reviewed_rows_in_this_clinic_only(world: World) -> None:
    call(world.engine, world.b.admin, records.apply, [AppointmentInput(
        "A-1", "MRN-0", dt.datetime.now(dt.UTC) + dt.timedelta(days=9), department="Clinic B's own")],
         source="api")

    result = commit(world, review(world, csv_file(f"A-1,MRN-0,{ISO},09:30,Dental,booked")))

    assert (result.created, result.refused) == (1, [])
    mine, theirs = appointments(world, world.a)["A-1"], appointments(world, world.b)["A-1"]
    assert (mine.department, local(mine.starts_at)) == ("Dental", dt.datetime.combine(DAY, dt.time(9, 30)))
    assert mine.status_source == "upload" and theirs.department == "Clinic B's own"
    assert audit_count(world, world.a) == 1


def test_changes_and_cancellations_are_shown_with_what_they_were(world: World) -> None:
    commit(world, review(world, csv_file(f"A-1,MRN-0,{ISO},09:30,Dental,", f"A-2,MRN-1,{ISO},10:00,Dental,",
                                         f"A-3,MRN-1,{ISO},11:00,Dental,")))

    seen = review(world, csv_file(f"A-1,MRN-0,{ISO},10:30,Dental,booked", f"A-2,MRN-1,{ISO},10:00,Dental,Cancelled",
                                  f"A-3,MRN-1,{ISO},11:00,Dental,booked"))

    (moved,) = seen.samples[Kind.CHANGE]
    assert (moved.source_id, moved.changed) == ("A-1", ("start",))
    assert local(moved.before_starts_at) == dt.datetime.combine(DAY, dt.time(9, 30))
    assert [(r.source_id, r.changed, r.status) for r in seen.samples[Kind.CANCEL]] == [
        ("A-2", ("status",), AppointmentStatus.CANCELLED)]
    assert (seen.to_change, seen.to_cancel, seen.unchanged) == (1, 1, 1)
    result = commit(world, seen)
    assert (result.changed, result.cancelled, result.unchanged) == (1, 1, 1)
    assert appointments(world, world.a)["A-2"].status == AppointmentStatus.CANCELLED


def test_commit_works_from_the_data_as_it_is_then(world: World) -> None:
    seen = review(world, csv_file(f"A-1,MRN-0,{ISO},09:30,Dental,"))
    commit(world, seen)  # e.g. another admin applied the same file meanwhile

    again = commit(world, seen)

    assert (again.created, again.unchanged) == (0, 1)
    assert len(appointments(world, world.a)) == 1


def test_an_excel_workbook_with_date_and_time_cells(world: World) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["source_id", "patient_mrn", "date", "time", "duration_minutes", "doctor", "doctor_ar", "notes"])
    sheet.append(["X-1", "MRN-0", DAY, dt.time(9, 30), 30, "Dr. Huda", "د. هدى", "ignored"])
    sheet.append(["X-2", "MRN-1", dt.datetime.combine(DAY, dt.time()), "16:45", 20.0, "", "", ""])
    data = io.BytesIO()
    book.save(data)

    seen = review(world, data.getvalue(), "list.xlsx")

    assert seen.to_create == 2 and seen.refused == [] and seen.ignored_columns == ["notes"]
    commit(world, seen)
    stored = appointments(world, world.a)
    assert (stored["X-1"].duration_minutes, stored["X-1"].doctor_name_ar) == (30, "د. هدى")
    assert local(stored["X-2"].starts_at) == dt.datetime.combine(DAY, dt.time(16, 45))


def test_semicolons_a_bom_any_header_case_and_a_start_with_an_offset(world: World) -> None:
    data = ("\ufeffSOURCE ID;Patient_MRN;Start;Appointment Type\n"
            f"A-1;MRN-0;{ISO}T09:30:00+03:00;Check-up\nA-2;MRN-1;{ISO}T09:30:00Z;\nA-3;MRN-1;{ISO} 08:00;\n"
            ).encode()

    seen = review(world, data)

    starts = {r.source_id: r.starts_at for r in seen.samples[Kind.CREATE]}
    assert seen.refused == []
    assert starts["A-1"] == dt.datetime.combine(DAY, dt.time(6, 30), dt.UTC)
    assert starts["A-2"] == dt.datetime.combine(DAY, dt.time(9, 30), dt.UTC)
    assert local(starts["A-3"]) == dt.datetime.combine(DAY, dt.time(8, 0))  # no offset: clinic time


def test_a_new_patient_comes_with_the_row(world: World) -> None:
    data = csv_file(f"A-1,MRN-7,{ISO},09:30,Huda Nasser,هدى ناصر,0501112233,ar",
                    header="source_id,mrn,date,time,patient_name,patient_name_ar,phone,language")

    seen = review(world, data)
    assert (seen.to_create, seen.new_patients) == (1, 1)
    assert commit(world, seen).patients_created == 1

    with tenant_session(world.engine, world.a.tenant_id) as session:
        patient = session.scalars(select(Patient).where(Patient.mrn == "MRN-7")).one()
        assert (patient.name_ar, patient.phone_e164) == ("هدى ناصر", "+966501112233")


# --- bad rows and bad files ---------------------------------------------------------------------


def test_every_bad_row_is_refused_with_its_row_number_and_reason(world: World) -> None:
    data = csv_file(
        f"A-1,MRN-0,{ISO},09:30,Dental,booked",  # row 2: good
        "",  # row 3: blank, skipped
        "A-2,MRN-0,31/02/2026,09:30,Dental,",  # row 4
        f"A-3,MRN-0,{ISO},25:99,Dental,",  # row 5
        f"A-4,MRN-0,{ISO},,Dental,",  # row 6
        f"A-5,MRN-0,{ISO},09:30,Dental,maybe",  # row 7
        f"A-6,MRN-5,{ISO},09:30,Dental,",  # row 8: the neighbouring clinic has MRN-5; this one does not
        f",MRN-0,{ISO},09:30,Dental,",  # row 9
        f"A-1,MRN-1,{ISO},10:30,Eyes,",  # row 10
        "A-7,MRN-1,٢٠٢٦-٠١-٠١,١٠:٣٠,Eyes,",  # row 11: Arabic-Indic digits read, but in the past is fine
    )

    seen = review(world, data)

    assert [(r.row, r.reason) for r in seen.refused] == [
        (4, "the date '31/02/2026' could not be read (use YYYY-MM-DD or DD/MM/YYYY)"),
        (5, "the time '25:99' could not be read (use HH:MM, 24-hour, or with AM/PM)"),
        (6, "the time is missing"),
        (7, "the status 'maybe' is not one of: booked, cancelled, completed, confirmed, no_show"),
        (8, "no patient with MRN MRN-5 in this clinic"),
        (9, "the appointment id is missing"),
        (10, "appears twice in this upload, first at row 2"),
    ]
    assert seen.to_create == 2
    result = commit(world, seen)
    assert result.created == 2 and [upload.row_of(seen, r.index) for r in result.refused] == [4, 5, 6, 7, 8, 9, 10]
    assert result.refused[0].reason == seen.refused[0].reason
    assert set(appointments(world, world.a)) == {"A-1", "A-7"}


def test_a_duplicate_of_a_refused_row_is_still_a_duplicate(world: World) -> None:
    seen = review(world, csv_file("A-1,MRN-0,not a date,09:30,Dental,", f"A-1,MRN-0,{ISO},09:30,Dental,"))

    assert [r.reason for r in seen.refused][1] == "appears twice in this upload, first at row 2"


def test_hostile_cells_are_kept_as_text(world: World) -> None:
    hostile = '=HYPERLINK("http://evil.example","x")'
    data = csv_file(f'A-1,MRN-0,{ISO},09:30,"{hostile.replace(chr(34), chr(34) * 2)}",',
                    f"A-2,MRN-0,{ISO},09:30,<script>alert(1)</script>,")

    commit(world, review(world, data))

    stored = appointments(world, world.a)
    assert stored["A-1"].department == hostile and stored["A-2"].department == "<script>alert(1)</script>"


def test_a_nul_or_an_overlong_cell_refuses_its_row_only(world: World) -> None:
    data = csv_file(f"A-1,MRN-0,{ISO},09:30,Den\x00tal,", f"A-2,MRN-0,{ISO},09:30,{'x' * 121},",
                    f"A-3,MRN-0,{ISO},09:30,Dental,")

    seen = review(world, data)

    assert [(r.row, r.reason) for r in seen.refused] == [
        (2, "the department contains a NUL character (\\0), which is not text"),
        (3, "the department is 121 characters long; at most 120")]
    assert seen.to_create == 1


@pytest.mark.parametrize(("data", "filename", "message"), [
    (b"", "list.csv", "The file is empty."),
    (b"Appointment ID,MRN,Date,Time\n", "list.csv", "a header row but no appointments"),
    (b"%PDF-1.7 ...", "list.csv", "not a CSV file"),
    ("Appointment ID,MRN\n".encode("utf-16"), "list.csv", "UTF-16"),
    (b"Appointment ID,MRN,Date,Time\nA-1,M\xe9RN,2026-01-01,09:00\n", "list.csv", "not UTF-8 text"),
    (b"Appointment ID,Patient,Date,Time\nA-1,MRN-0,2026-01-01,09:00\n", "list.csv", "no column for the patient's MRN"),
    (b"id,MRN,Date\nA-1,MRN-0,2026-01-01\n", "list.csv", r"appointment id \(source_id\) or the start"),
    (b"Appointment ID,MRN,Start,Start time\nA,M,x,y\n", "list.csv", "two columns for start"),
    (b"PK\x03\x04 not really", "list.xlsx", "could not be read as an Excel workbook"),
])
def test_a_file_that_cannot_be_used_gets_a_plain_answer(world: World, data: bytes, filename: str,
                                                       message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        review(world, data, filename)
    assert appointments(world, world.a) == {}


def test_a_too_big_file_or_too_many_rows_is_refused_clearly(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload, "MAX_ROWS", 4)
    with pytest.raises(ValidationError, match="more than 4 rows; at most 4 per upload"):
        review(world, csv_file(*(f"A-{i},MRN-0,{ISO},09:30,Dental," for i in range(5))))
    monkeypatch.setattr(upload, "MAX_UPLOAD_BYTES", 1024 * 1024)
    with pytest.raises(ValidationError, match=r"The file is 1\.\d MB; the limit is 1 MB"):
        review(world, csv_file(*(f"A-{i},MRN-0,{ISO},09:30,Dental," for i in range(30_000))))
    assert appointments(world, world.a) == {}


def test_only_admins_upload(world: World) -> None:
    data = csv_file(f"A-1,MRN-0,{ISO},09:30,Dental,")
    seen = review(world, data)

    with pytest.raises(PermissionDenied):
        call(world.engine, world.a.front_desk, upload.review, data, "list.csv")
    with pytest.raises(PermissionDenied):
        call(world.engine, world.a.front_desk, upload.commit, seen)
    assert appointments(world, world.a) == {}


def test_a_start_at_the_end_of_the_calendar_refuses_its_row_only(world: World) -> None:
    data = csv_file("A-1,MRN-0,9999-12-31,23:59,Dental,", "A-2,MRN-0,0001-01-01,00:10,Dental,",
                    f"A-3,MRN-0,{ISO},09:30,Dental,")

    seen = review(world, data)

    assert [(r.row, r.reason) for r in seen.refused] == [
        (2, "the start is not a date this system takes (2000 to 2099)"),
        (3, "the start is not a date this system takes (2000 to 2099)")]
    assert commit(world, seen).created == 1 and set(appointments(world, world.a)) == {"A-3"}
