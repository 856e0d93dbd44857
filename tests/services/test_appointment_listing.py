"""What the Appointments page reads: one clinic's appointments by its own days, filtered, page by page."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from app.errors import PermissionDenied, ValidationError
from app.services.appointments import listing, records
from app.services.appointments.listing import AppointmentFilter
from app.services.appointments.records import AppointmentInput
from app.services.permissions import Actor
from db.enums import AppointmentStatus, Channel, ReminderStatus, Role
from db.models import Appointment, AppointmentReminder, Patient, ReminderRule
from db.session import tenant_session
from tests.factories import call, make_tenant, make_user

RIYADH = ZoneInfo("Asia/Riyadh")
DAY = (dt.datetime.now(RIYADH) + dt.timedelta(days=3)).date()


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), RIYADH)


def clinic(engine: Engine, slug: str) -> tuple[uuid.UUID, Actor]:
    tenant_id = make_tenant(engine, slug)
    with tenant_session(engine, tenant_id) as session:
        session.add_all([Patient(mrn="MRN-0", name_en="Sara Ali", name_ar="سارة علي"),
                         Patient(mrn="MRN-1", name_en="Omar 100%_Said")])
    return tenant_id, make_user(engine, tenant_id, f"{slug}-desk", Role.FRONT_DESK)


def book(engine: Engine, tenant_id: uuid.UUID, *inputs: AppointmentInput) -> None:
    call(engine, tenant_id, records.apply, list(inputs), source="api")


def read(engine: Engine, actor: Actor, flt: AppointmentFilter, **kwargs: object) -> listing.AppointmentPage:
    return call(engine, actor, listing.appointments, flt, **kwargs)


def test_a_clinic_day_is_the_clinics_and_only_its_own_appointments_show(engine: Engine) -> None:
    a, desk = clinic(engine, "clinic-a")
    b, _ = clinic(engine, "clinic-b")
    book(engine, a, AppointmentInput("A-1", "MRN-0", at(DAY, 0, 30)), AppointmentInput("A-2", "MRN-1", at(DAY, 23, 45)),
         AppointmentInput("A-3", "MRN-0", at(DAY + dt.timedelta(days=1), 0, 0)),
         AppointmentInput("A-0", "MRN-0", at(DAY, 0, 0) - dt.timedelta(minutes=1)))
    book(engine, b, AppointmentInput("A-1", "MRN-0", at(DAY, 10)))

    page = read(engine, desk, AppointmentFilter(DAY, DAY))

    assert [(r.source_id, r.patient_name_en, r.starts_at) for r in page.rows] == [
        ("A-1", "Sara Ali", at(DAY, 0, 30)), ("A-2", "Omar 100%_Said", at(DAY, 23, 45))]
    assert page.timezone == "Asia/Riyadh" and page.next_cursor is None


def test_filters_by_status_and_patient_name_or_mrn(engine: Engine) -> None:
    a, desk = clinic(engine, "clinic-a")
    book(engine, a, AppointmentInput("A-1", "MRN-0", at(DAY, 9)),
         AppointmentInput("A-2", "MRN-1", at(DAY, 10), status=AppointmentStatus.CANCELLED))

    def ids(**fields: object) -> list[str]:
        return [r.source_id for r in read(engine, desk, AppointmentFilter(DAY, DAY, **fields)).rows]  # type: ignore[arg-type]

    assert ids(statuses=(AppointmentStatus.CANCELLED,)) == ["A-2"]
    assert ids(text="سارة") == ["A-1"] and ids(text="MRN-1") == ["A-2"] and ids(text="100%_") == ["A-2"]
    assert ids(text="Sa%") == []  # a wildcard is a literal character


def test_pages_follow_each_other_by_keyset(engine: Engine) -> None:
    a, desk = clinic(engine, "clinic-a")
    book(engine, a, *(AppointmentInput(f"A-{i}", "MRN-0", at(DAY, 9 + i // 4)) for i in range(10)))
    flt = AppointmentFilter(DAY, DAY)

    seen, cursor = [], None
    while True:
        page = read(engine, desk, flt, cursor=cursor, limit=3)
        seen += [r.source_id for r in page.rows]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert sorted(seen) == sorted(f"A-{i}" for i in range(10)) and len(seen) == 10


@pytest.mark.parametrize(("flt", "message"), [
    (AppointmentFilter(DAY, DAY - dt.timedelta(days=1)), "first day is after the last day"),
    (AppointmentFilter(DAY, DAY + dt.timedelta(days=400)), "at most 366 days"),
    (AppointmentFilter(DAY, DAY, text="x\x00"), "NUL"),
])
def test_a_bad_filter_is_refused_clearly(engine: Engine, flt: AppointmentFilter, message: str) -> None:
    _, desk = clinic(engine, "clinic-a")
    with pytest.raises(ValidationError, match=message):
        read(engine, desk, flt)


def test_analysts_may_not_read_appointments(engine: Engine) -> None:
    a, _ = clinic(engine, "clinic-a")
    with pytest.raises(PermissionDenied):
        read(engine, make_user(engine, a, "omar", Role.ANALYST), AppointmentFilter(DAY, DAY))


def test_each_row_says_what_its_reminders_are(engine: Engine) -> None:
    pytest.importorskip("app.services.reminders.schedule")
    a, desk = clinic(engine, "clinic-a")
    book(engine, a, AppointmentInput("A-1", "MRN-0", at(DAY, 9)))
    with tenant_session(engine, a) as session:
        appointment_id = session.scalars(select(Appointment.id)).one()
        rule = ReminderRule(name="WhatsApp 48 h", channel=Channel.WHATSAPP, offset_minutes=48 * 60, is_active=False)
        session.add(rule)
        session.flush()
        session.add(AppointmentReminder(appointment_id=appointment_id, rule_id=rule.id, status=ReminderStatus.PENDING,
                                        due_at=at(DAY - dt.timedelta(days=2), 9)))

    (row,) = read(engine, desk, AppointmentFilter(DAY, DAY)).rows

    due = at(DAY - dt.timedelta(days=2), 9)
    assert row.reminders == f"WhatsApp 48 h: pending, {due.day} {due:%b} 09:00"
