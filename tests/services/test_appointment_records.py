"""The one upsert of appointments from the clinic's system (``records.apply``) and one appointment's
status (``records.set_status``): keyed by the clinic system's id, per clinic, every bad input refused
with its reason and nothing half-done."""

from __future__ import annotations

import datetime as dt
import importlib
import sys
import types
import uuid
from dataclasses import dataclass, replace

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, func, select

from app.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from app.services import passwords
from app.services.appointments import records
from app.services.appointments.records import AppointmentInput, Kind, PatientDetails
from app.services.permissions import Actor
from db.enums import AppointmentStatus, Language, Role
from db.models import Appointment, AuditEvent, Patient
from db.session import system_session, tenant_session
from tests.factories import call, make_tenant, make_user
from tests.neighbours import neighbour_id

SOON = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=3)


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@dataclass
class Clinic:
    tenant_id: uuid.UUID
    admin: Actor
    front_desk: Actor
    analyst: Actor
    sara: uuid.UUID  # MRN-0
    omar: uuid.UUID  # MRN-1


@dataclass
class World:
    engine: Engine
    a: Clinic
    b: Clinic


def _clinic(engine: Engine, slug: str) -> Clinic:
    tenant_id = make_tenant(engine, slug)
    ids = []
    with tenant_session(engine, tenant_id) as session:  # the same MRNs, names and numbers as the neighbour's
        for mrn, name, phone in (("MRN-0", "Sara Ali", "+966501234567"), ("MRN-1", "Omar Said", "+966507654321")):
            patient = Patient(mrn=mrn, name_en=name, phone_e164=phone, email=f"{slug}@example.com")
            session.add(patient)
            session.flush()
            ids.append(patient.id)
    return Clinic(tenant_id, make_user(engine, tenant_id, f"{slug}-admin"),
                  make_user(engine, tenant_id, f"{slug}-desk", Role.FRONT_DESK),
                  make_user(engine, tenant_id, f"{slug}-analyst", Role.ANALYST), *ids)


@pytest.fixture
def world(engine: Engine) -> World:
    return World(engine, _clinic(engine, "clinic-a"), _clinic(engine, "clinic-b"))


def booking(source_id: str = "A-1", mrn: str = "MRN-0", **fields: object) -> AppointmentInput:
    return AppointmentInput(source_id=source_id, patient_mrn=mrn, starts_at=fields.pop("starts_at", SOON),
                            department=str(fields.pop("department", "Dental")), **fields)  # type: ignore[arg-type]


def apply(w: World, inputs: list[AppointmentInput], *, clinic: Clinic | None = None, source: str = "api",
          **kwargs: object) -> records.ApplyResult:
    clinic = clinic or w.a
    return call(w.engine, clinic.admin, records.apply, inputs, source=source, **kwargs)


def stored(w: World, clinic: Clinic, source_id: str = "A-1") -> Appointment | None:
    with tenant_session(w.engine, clinic.tenant_id) as session:
        row = session.scalar(select(Appointment).where(Appointment.source_id == source_id))
        if row is not None:
            session.expunge(row)
        return row


def count_appointments(w: World, clinic: Clinic) -> int:
    with tenant_session(w.engine, clinic.tenant_id) as session:
        return session.scalar(select(func.count()).select_from(Appointment)) or 0


def audit_events(w: World, clinic: Clinic, action: str) -> list[AuditEvent]:
    with tenant_session(w.engine, clinic.tenant_id) as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                      .order_by(AuditEvent.created_at)))
        for event in events:
            session.expunge(event)
        return events


# --- creating, changing, cancelling -----------------------------------------------------------------


def test_new_appointments_are_created_for_the_clinics_own_patients(world: World) -> None:
    result = apply(world, [booking("A-1", "MRN-0"), booking("A-2", "MRN-1", appointment_type="Check-up",
                                                           doctor_name_en="Dr. Huda", doctor_name_ar="د. هدى")])

    assert (result.created, result.changed, result.unchanged, result.cancelled, result.refused) == (2, 0, 0, 0, [])
    first, second = stored(world, world.a, "A-1"), stored(world, world.a, "A-2")
    assert first is not None and second is not None
    assert (first.patient_id, first.starts_at, first.status) == (world.a.sara, SOON, AppointmentStatus.BOOKED)
    assert (second.patient_id, second.appointment_type, second.doctor_name_ar) == (world.a.omar, "Check-up", "د. هدى")
    assert first.status_source == "api" and first.status_changed_at is not None
    assert set(result.appointment_ids) == {first.id, second.id}
    assert count_appointments(world, world.b) == 0


def test_the_same_feed_again_changes_nothing(world: World) -> None:
    apply(world, [booking("A-1"), booking("A-2", "MRN-1")])
    before = stored(world, world.a)

    again = apply(world, [booking("A-1"), booking("A-2", "MRN-1")])

    assert (again.created, again.changed, again.unchanged, again.appointment_ids) == (0, 0, 2, [])
    after = stored(world, world.a)
    assert after is not None and before is not None and after.updated_at == before.updated_at


def test_a_reschedule_is_a_change_of_the_start(world: World) -> None:
    apply(world, [booking()])
    later = SOON + dt.timedelta(days=1, hours=2)

    result = apply(world, [booking(starts_at=later, location="Room 4")])

    row = stored(world, world.a)
    assert (result.changed, result.cancelled) == (1, 0) and row is not None
    assert (row.starts_at, row.location) == (later, "Room 4")
    assert result.appointment_ids == [row.id]


def test_a_cancellation_from_the_source_is_counted_and_stamped(world: World) -> None:
    apply(world, [booking()], source="upload")

    result = apply(world, [booking(status=AppointmentStatus.CANCELLED)])

    row = stored(world, world.a)
    assert (result.cancelled, result.changed) == (1, 0) and row is not None
    assert (row.status, row.status_source) == (AppointmentStatus.CANCELLED, "api")


def test_a_confirmed_appointment_sent_again_as_booked_stays_confirmed(world: World) -> None:
    apply(world, [booking()])
    row = stored(world, world.a)
    assert row is not None
    assert call(world.engine, world.a.front_desk, records.set_status, row.id, AppointmentStatus.CONFIRMED,
                source="reply")

    again = apply(world, [booking()])

    assert again.unchanged == 1
    assert (stored(world, world.a) or row).status == AppointmentStatus.CONFIRMED


def test_a_reschedule_asks_for_confirmation_again(world: World) -> None:
    apply(world, [booking()])
    row = stored(world, world.a)
    assert row is not None
    call(world.engine, world.a.front_desk, records.set_status, row.id, AppointmentStatus.CONFIRMED, source="reply")

    moved = apply(world, [booking(starts_at=SOON + dt.timedelta(hours=5))])

    assert moved.changed == 1
    assert (stored(world, world.a) or row).status == AppointmentStatus.BOOKED


def test_a_cancellation_by_reply_is_not_undone_by_a_stale_feed(world: World) -> None:
    apply(world, [booking()])
    row = stored(world, world.a)
    assert row is not None
    call(world.engine, world.a.front_desk, records.set_status, row.id, AppointmentStatus.CANCELLED, source="reply")

    assert apply(world, [booking()]).unchanged == 1
    assert (stored(world, world.a) or row).status == AppointmentStatus.CANCELLED
    rebooked = apply(world, [booking(starts_at=SOON + dt.timedelta(days=7))])  # the clinic booked another time
    assert rebooked.changed == 1 and (stored(world, world.a) or row).status == AppointmentStatus.BOOKED


# --- two clinics ----------------------------------------------------------------------------------


def test_each_clinic_keeps_its_own_appointments_under_the_same_ids_and_mrns(world: World) -> None:
    apply(world, [booking("X-1", "MRN-0")], clinic=world.a)
    apply(world, [booking("X-1", "MRN-0", department="Eyes")], clinic=world.b)

    changed = apply(world, [booking("X-1", "MRN-0", status=AppointmentStatus.CANCELLED)], clinic=world.a)

    a, b = stored(world, world.a, "X-1"), stored(world, world.b, "X-1")
    assert changed.cancelled == 1 and a is not None and b is not None
    assert (a.patient_id, a.status) == (world.a.sara, AppointmentStatus.CANCELLED)
    assert (b.patient_id, b.status, b.department) == (world.b.sara, AppointmentStatus.BOOKED, "Eyes")


def test_a_patient_of_another_clinic_is_unknown_here(world: World) -> None:
    # The neighbouring clinic has MRN-5; neither clinic A nor B has.
    with system_session(world.engine) as session:
        assert session.scalar(select(Patient.id).where(Patient.mrn == "MRN-5",
                                                       Patient.tenant_id == neighbour_id(world.engine)))

    result = apply(world, [booking("A-1", "MRN-5"), booking("A-2", "MRN-0")])

    assert result.created == 1
    assert [(r.index, r.source_id, r.reason) for r in result.refused] == [
        (0, "A-1", "no patient with MRN MRN-5 in this clinic")]
    assert stored(world, world.a, "A-1") is None


# --- patients -------------------------------------------------------------------------------------


def test_an_unknown_mrn_with_the_patients_details_creates_the_patient(world: World) -> None:
    details = PatientDetails(name_en="Huda Nasser", name_ar="هدى ناصر", phone="050 111 2233",
                             email="Huda@Example.com", language=Language.AR)

    result = apply(world, [booking("A-1", "MRN-9", patient=details), booking("A-2", "MRN-9")])

    assert (result.created, result.patients_created, result.refused) == (2, 1, [])
    with tenant_session(world.engine, world.a.tenant_id) as session:
        patient = session.scalars(select(Patient).where(Patient.mrn == "MRN-9")).one()
        assert (patient.name_ar, patient.phone_e164, patient.email, patient.language) == (
            "هدى ناصر", "+966501112233", "huda@example.com", Language.AR)
    assert (stored(world, world.a, "A-2") or patient).patient_id == patient.id
    with tenant_session(world.engine, world.b.tenant_id) as session:
        assert session.scalar(select(Patient.id).where(Patient.mrn == "MRN-9")) is None


def test_an_existing_patients_contacts_are_not_overwritten_by_the_feed(world: World) -> None:
    details = PatientDetails(name_en="Someone Else", phone="+966509999999")

    assert apply(world, [booking(patient=details)]).patients_created == 0

    with tenant_session(world.engine, world.a.tenant_id) as session:
        sara = session.get(Patient, world.a.sara)
        assert sara is not None and (sara.name_en, sara.phone_e164) == ("Sara Ali", "+966501234567")


@pytest.mark.parametrize(("details", "reason"), [
    (PatientDetails(name_en="Huda", phone="050-ABC-DEFG"),
     "the patient's mobile number '050-ABC-DEFG' cannot be used: the number contains letters"),
    (PatientDetails(phone="0501112233"), "to add the patient, give the patient's name"),
    (PatientDetails(name_en="Huda", email="not-an-address"),
     "the patient's e-mail address 'not-an-address' cannot be used: not a valid e-mail address"),
])
def test_a_new_patient_with_unusable_details_is_refused(world: World, details: PatientDetails, reason: str) -> None:
    result = apply(world, [booking("A-1", "MRN-9", patient=details), booking("A-2")])

    assert result.created == 1 and result.patients_created == 0
    assert [r.reason for r in result.refused] == [f"no patient with MRN MRN-9 in this clinic, and {reason}"]


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "reason"), [
    (booking(source_id="  "), "the appointment id is missing"),
    (booking(mrn=""), "the patient's MRN is missing"),
    (booking(starts_at=None), "the start (date and time) is missing"),
    (booking(starts_at=SOON.replace(tzinfo=None)), "the start has no time zone"),
    (booking(duration_minutes=0), "the duration must be a whole number of minutes from 1 to 1,440"),
    (booking(duration_minutes=True), "the duration must be a whole number of minutes from 1 to 1,440"),
    (booking(location="x" * 201), "the location is 201 characters long; at most 200"),
    (booking(department="Dental\x00"), "the department contains a NUL character (\\0), which is not text"),
    (booking(source_id="S" * 129), "the appointment id is 129 characters long; at most 128"),
    (booking(status="maybe"), "the status is not one this system knows"),
])
def test_a_bad_input_is_refused_with_its_reason_and_the_others_are_kept(world: World, bad: AppointmentInput,
                                                                       reason: str) -> None:
    result = apply(world, [replace(bad, source_id=bad.source_id if bad.source_id != "A-1" else "BAD"),
                           booking("GOOD")])

    assert [r.reason for r in result.refused] == [reason]
    assert result.created == 1 and count_appointments(world, world.a) == 1


def test_an_id_twice_in_one_batch_refuses_the_later_ones(world: World) -> None:
    result = apply(world, [booking("A-1"), booking("A-2"), booking("A-1", department="Eyes"), booking("A-1")],
                   source="upload", rows=[2, 3, 4, 5])

    assert result.created == 2
    assert [(r.index, r.reason) for r in result.refused] == [
        (2, "appears twice in this upload, first at row 2"), (3, "appears twice in this upload, first at row 2")]
    assert (stored(world, world.a) or Appointment()).department == "Dental"
    api = apply(world, [booking("B-1"), booking("B-1")])
    assert [r.reason for r in api.refused] == ["appears twice in this batch, first at item 1"]


def test_patients_sharing_an_mrn_are_not_guessed_between(world: World) -> None:
    with tenant_session(world.engine, world.a.tenant_id) as session:
        session.add(Patient(mrn="MRN-0", name_en="Sara Ali (duplicate record)"))

    result = apply(world, [booking()])

    assert [r.reason for r in result.refused] == ["2 patients in this clinic have MRN MRN-0; merge them first"]


def test_an_import_that_clashes_with_another_saves_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    apply(world, [booking("A-1")])
    monkeypatch.setattr(records, "_existing", lambda *args, **kwargs: {})  # as if A-1 arrived after our read

    with pytest.raises(ConflictError, match="Nothing was saved"):
        apply(world, [booking("A-0", "MRN-9", patient=PatientDetails(name_en="New")), booking("A-1")])

    assert count_appointments(world, world.a) == 1
    assert len(audit_events(world, world.a, "appointments.apply")) == 1
    with tenant_session(world.engine, world.a.tenant_id) as session:
        assert session.scalar(select(Patient.id).where(Patient.mrn == "MRN-9")) is None


# --- who may, and what is recorded -----------------------------------------------------------------


def test_one_audit_event_per_batch_with_the_counts(world: World) -> None:
    apply(world, [booking("A-1"), booking("A-2")], source="upload")
    apply(world, [booking("A-1", status=AppointmentStatus.CANCELLED), booking("A-2"), booking("A-3", "MRN-7")])

    events = audit_events(world, world.a, "appointments.apply")
    assert [e.details for e in events] == [
        {"source": "upload", "created": 2, "changed": 0, "cancelled": 0, "unchanged": 0, "refused": 0,
         "patients_created": 0},
        {"source": "api", "created": 0, "changed": 0, "cancelled": 1, "unchanged": 1, "refused": 1,
         "patients_created": 0}]
    assert events[0].actor_id == world.a.admin.user_id
    assert audit_events(world, world.b, "appointments.apply") == []


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ANALYST])
def test_only_admins_import(world: World, role: Role) -> None:
    actor = world.a.front_desk if role == Role.FRONT_DESK else world.a.analyst
    with pytest.raises(PermissionDenied):
        call(world.engine, actor, records.apply, [booking()], source="upload")
    with pytest.raises(PermissionDenied):
        call(world.engine, actor, records.preview, [booking()], source="upload")
    assert count_appointments(world, world.a) == 0


def test_an_api_client_acts_as_a_named_system_actor(world: World) -> None:
    client = Actor.system(world.a.tenant_id, name="API key ak_12345678")

    assert call(world.engine, client, records.apply, [booking()], source="api").created == 1

    (event,) = audit_events(world, world.a, "appointments.apply")
    assert (event.actor_id, event.actor_name) == (None, "API key ak_12345678")


def test_preview_says_what_apply_would_do_and_writes_nothing(world: World) -> None:
    apply(world, [booking("A-1"), booking("A-2")])
    inputs = [booking("A-1", status=AppointmentStatus.CANCELLED), booking("A-2", starts_at=SOON + dt.timedelta(1)),
              booking("A-3"), booking("A-4", "MRN-8", patient=PatientDetails(name_en="New")), booking("A-5", "X")]

    seen = call(world.engine, world.a.admin, records.preview, inputs, source="upload")

    assert [i.kind for i in seen.items] == [Kind.CANCEL, Kind.CHANGE, Kind.CREATE, Kind.CREATE, Kind.REFUSED]
    assert seen.items[1].changed == ("starts_at",) and seen.items[1].before == {"starts_at": SOON}
    assert seen.new_patients == 1 and [r.source_id for r in seen.refused] == ["A-5"]
    assert count_appointments(world, world.a) == 2
    assert len(audit_events(world, world.a, "appointments.apply")) == 1


def test_an_unknown_source_is_a_programming_error(world: World) -> None:
    with pytest.raises(ValueError, match="source"):
        apply(world, [booking()], source="fax")


def test_the_reminders_of_what_changed_are_planned(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    planned: list[set[uuid.UUID]] = []

    def plan(session: object, *, appointment_ids: list[uuid.UUID]) -> None:
        planned.append(set(appointment_ids))

    try:
        planner = importlib.import_module("app.services.reminders.planner")
        monkeypatch.setattr(planner, "plan", plan)
    except ModuleNotFoundError:  # helper C's planner is not in the tree yet: stand in for it
        package, module = types.ModuleType("app.services.reminders"), types.ModuleType("planner")
        module.plan = plan  # type: ignore[attr-defined]
        package.planner = module  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "app.services.reminders", package)
        monkeypatch.setitem(sys.modules, "app.services.reminders.planner", module)

    first = apply(world, [booking("A-1"), booking("A-2")])
    apply(world, [booking("A-1"), booking("A-2", status=AppointmentStatus.CANCELLED)])
    row = stored(world, world.a, "A-1")
    assert row is not None
    call(world.engine, world.a.front_desk, records.set_status, row.id, AppointmentStatus.CONFIRMED, source="reply")

    assert planned == [set(first.appointment_ids), {(stored(world, world.a, "A-2") or row).id}, {row.id}]


# --- one appointment's status ---------------------------------------------------------------------


def _one(w: World, clinic: Clinic | None = None, **fields: object) -> uuid.UUID:
    clinic = clinic or w.a
    apply(w, [booking(**fields)], clinic=clinic)
    row = stored(w, clinic)
    assert row is not None
    return row.id


def test_a_reply_confirms_once_and_is_audited(world: World) -> None:
    appointment_id = _one(world)

    assert call(world.engine, world.a.front_desk, records.set_status, appointment_id, AppointmentStatus.CONFIRMED,
                source="reply") is True
    assert call(world.engine, world.a.front_desk, records.set_status, appointment_id, AppointmentStatus.CONFIRMED,
                source="reply") is False

    row = stored(world, world.a)
    assert row is not None and (row.status, row.status_source) == (AppointmentStatus.CONFIRMED, "reply")
    (event,) = audit_events(world, world.a, "appointment.status")
    assert (event.object_id, event.details) == (str(appointment_id),
                                                {"from": "booked", "to": "confirmed", "source": "reply"})


@pytest.mark.parametrize(("status", "starts_at", "wanted", "message"), [
    (AppointmentStatus.BOOKED, SOON - dt.timedelta(days=4), AppointmentStatus.CONFIRMED, "already started"),
    (AppointmentStatus.CANCELLED, SOON, AppointmentStatus.CONFIRMED, "cancelled; a reply cannot change it"),
    (AppointmentStatus.BOOKED, SOON, AppointmentStatus.NO_SHOW, "cannot mark an appointment no-show"),
])
def test_a_reply_cannot_change_a_past_closed_or_final_appointment(
        world: World, status: AppointmentStatus, starts_at: dt.datetime, wanted: AppointmentStatus,
        message: str) -> None:
    appointment_id = _one(world, status=status, starts_at=starts_at)

    with pytest.raises(ValidationError, match=message):
        call(world.engine, world.a.front_desk, records.set_status, appointment_id, wanted, source="reply")

    assert (stored(world, world.a) or Appointment()).status == status
    assert audit_events(world, world.a, "appointment.status") == []


def test_staff_may_mark_a_past_appointment_a_no_show(world: World) -> None:
    appointment_id = _one(world, starts_at=SOON - dt.timedelta(days=4))

    assert call(world.engine, world.a.front_desk, records.set_status, appointment_id, AppointmentStatus.NO_SHOW,
                source="staff")
    assert (stored(world, world.a) or Appointment()).status == AppointmentStatus.NO_SHOW


def test_another_clinics_appointment_is_not_found_and_analysts_may_not(world: World) -> None:
    theirs = _one(world, clinic=world.b)

    with pytest.raises(NotFoundError):
        call(world.engine, world.a.front_desk, records.set_status, theirs, AppointmentStatus.CANCELLED,
             source="reply")
    with pytest.raises(PermissionDenied):
        call(world.engine, world.b.analyst, records.set_status, theirs, AppointmentStatus.CANCELLED, source="staff")
    assert (stored(world, world.b) or Appointment()).status == AppointmentStatus.BOOKED


def test_a_confirmation_made_while_a_batch_is_worked_out_is_not_lost(pg_engine: Engine,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    w = World(pg_engine, _clinic(pg_engine, "clinic-a"), _clinic(pg_engine, "clinic-b"))
    apply(w, [booking()])
    row = stored(w, w.a)
    assert row is not None
    work_out = records._work_out
    calls: list[bool] = []

    def meanwhile(*args: object, lock: bool, **kwargs: object) -> object:
        work = work_out(*args, lock=lock, **kwargs)  # type: ignore[arg-type]
        if not calls:  # the patient confirms after the batch read the row, before it writes
            call(w.engine, w.a.front_desk, records.set_status, row.id, AppointmentStatus.CONFIRMED, source="reply")
        calls.append(lock)
        return work

    monkeypatch.setattr(records, "_work_out", meanwhile)

    result = apply(w, [booking(department="Eyes")])

    after = stored(w, w.a)
    assert calls == [False, True] and result.changed == 1 and after is not None
    assert (after.status, after.department) == (AppointmentStatus.CONFIRMED, "Eyes")
