"""The planner: every upcoming appointment gets one reminder per rule covering it, placed by the clinic's
calendar; a reschedule moves it, a cancellation cancels it, a sent one is never touched, a time that
has passed is skipped (never sent late); two clinics with the same patients never mix."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import replace

import pytest
from sqlalchemy import Engine, func, select

from app.services.reminders import planner, rules
from app.services.reminders.planner import PASSED, PlanResult
from db.enums import AppointmentStatus, Channel, MessageStatus, ReminderShift, ReminderStatus
from db.models import AppointmentReminder, Message
from db.session import system_session, tenant_session
from tests.services.reminder_support import (
    NOW,
    SMS_3H_LATER,
    SUNDAY_10,
    WHATSAPP_48H,
    Clinic,
    make_clinic,
    riyadh,
)

Pending, Sent, Cancelled, Skipped = (ReminderStatus.PENDING, ReminderStatus.SENT, ReminderStatus.CANCELLED,
                                     ReminderStatus.SKIPPED)


@pytest.fixture
def clinics(engine: Engine) -> tuple[Clinic, Clinic]:
    return make_clinic(engine, "clinic-a"), make_clinic(engine, "clinic-b")


@pytest.fixture
def a(clinics: tuple[Clinic, Clinic]) -> Clinic:
    a, _ = clinics
    a.rule(**WHATSAPP_48H)
    a.rule(**SMS_3H_LATER)
    return a


def test_an_appointment_gets_its_two_reminders_placed_around_the_weekend(a: Clinic) -> None:
    booked = a.book(SUNDAY_10)

    reminders = a.reminders(booked)
    whatsapp, sms = reminders["WhatsApp 48 h before"], reminders["SMS 3 h before"]
    # 48 h before is Friday 10:00 (weekend): earlier, to Thursday's last sending minute
    assert (whatsapp.status, whatsapp.due_at, whatsapp.moved_reason) == (
        Pending, riyadh(2026, 12, 10, 20, 59), "Friday (weekend)")
    # 3 h before is Sunday 07:00, before the sending hours: later, to 09:00 (still before the appointment)
    assert (sms.status, sms.due_at, sms.moved_reason) == (
        Pending, riyadh(2026, 12, 13, 9), "outside sending hours 09:00–21:00")


def test_planning_twice_changes_nothing(a: Clinic) -> None:
    booked = a.book(SUNDAY_10)
    before = a.reminders(booked)
    assert a.plan([booked]) == PlanResult()
    assert a.plan() == PlanResult()
    assert {k: (r.id, r.due_at, r.planned_at) for k, r in a.reminders(booked).items()} == {
        k: (r.id, r.due_at, r.planned_at) for k, r in before.items()}


def test_a_reschedule_moves_the_reminders_not_sent_yet(a: Clinic) -> None:
    booked = a.book(SUNDAY_10)
    result = a.change(booked, starts_at=riyadh(2026, 12, 15, 16))  # Tuesday 16:00
    assert result == PlanResult(moved=2)
    reminders = a.reminders(booked)
    assert (reminders["WhatsApp 48 h before"].due_at, reminders["WhatsApp 48 h before"].moved_reason) == (
        riyadh(2026, 12, 13, 16), "")
    assert reminders["SMS 3 h before"].due_at == riyadh(2026, 12, 15, 13)


def test_a_cancellation_cancels_pending_reminders_and_a_queued_reminder_message(a: Clinic) -> None:
    booked = a.book(SUNDAY_10)
    sent = a.reminders(booked)["WhatsApp 48 h before"]
    message_id = _pretend_sent(a, sent.id)

    result = a.change(booked, status=AppointmentStatus.CANCELLED)

    assert result.cancelled == 2
    reminders = a.reminders(booked)
    assert (reminders["SMS 3 h before"].status, reminders["SMS 3 h before"].status_reason) == (
        Cancelled, "the appointment was cancelled")
    assert reminders["WhatsApp 48 h before"].status == Cancelled
    assert "its message was cancelled before it left" in reminders["WhatsApp 48 h before"].status_reason
    with tenant_session(a.engine, a.tenant_id) as session:
        assert session.get(Message, message_id).status == MessageStatus.CANCELLED
    # booked again: the reminder that never left is planned again; the one whose message was cancelled is not
    result = a.change(booked, status=AppointmentStatus.BOOKED)
    assert result == PlanResult(planned=1)
    assert {k: r.status for k, r in a.reminders(booked).items()} == {
        "WhatsApp 48 h before": Cancelled, "SMS 3 h before": Pending}


def test_a_delivered_reminder_is_left_alone_when_the_appointment_is_cancelled(a: Clinic) -> None:
    booked = a.book(SUNDAY_10)
    sent = a.reminders(booked)["WhatsApp 48 h before"]
    message_id = _pretend_sent(a, sent.id, status=MessageStatus.DELIVERED)
    a.change(booked, status=AppointmentStatus.CANCELLED)
    assert a.reminders(booked)["WhatsApp 48 h before"].status == Sent
    with tenant_session(a.engine, a.tenant_id) as session:
        assert session.get(Message, message_id).status == MessageStatus.DELIVERED


def test_a_past_appointment_is_never_reminded(a: Clinic) -> None:
    past = a.book(NOW - dt.timedelta(hours=1))
    assert a.reminders(past) == {}
    # an appointment whose time passed with a reminder still pending: cancelled by the next full pass
    later = a.book(SUNDAY_10)
    assert a.plan(now=SUNDAY_10 + dt.timedelta(minutes=1)).cancelled == 2
    assert {r.status_reason for r in a.reminders(later).values()} == {"the appointment has started"}


def test_booked_too_late_is_skipped_with_the_reason_never_sent_late(a: Clinic) -> None:
    soon = a.book(NOW + dt.timedelta(hours=2))  # Monday 10:00, booked at 08:00
    reminders = a.reminders(soon)
    # 48 h before is Saturday 10:00, moved earlier to Thursday 20:59: passed, so skipped (never sent late)
    whatsapp = reminders["WhatsApp 48 h before"]
    assert (whatsapp.status, whatsapp.status_reason, whatsapp.moved_reason) == (Skipped, PASSED, "Saturday (weekend)")
    # 3 h before is 07:00, moved later to 09:00: still to come and before the appointment
    assert (reminders["SMS 3 h before"].status, reminders["SMS 3 h before"].due_at) == (Pending, riyadh(2026, 12, 7, 9))
    # a minute after 09:00 nothing passed is revived, and the reminder that is due waits for the dispatch
    assert a.plan([soon], now=riyadh(2026, 12, 7, 9, 1)) == PlanResult()


def test_no_sending_time_before_the_appointment_is_skipped_with_the_reason(a: Clinic) -> None:
    # Saturday 09:30: 3 h before is 06:30 Saturday; later stays on the weekend past the appointment
    saturday = a.book(riyadh(2026, 12, 12, 9, 30))
    sms = a.reminders(saturday)["SMS 3 h before"]
    assert (sms.status, sms.status_reason) == (Skipped, "no sending time before the appointment (Saturday (weekend))")


def test_a_rule_change_applies_only_to_reminders_not_sent(a: Clinic) -> None:
    first, second = a.book(SUNDAY_10), a.book(riyadh(2026, 12, 16, 12))
    sent = a.reminders(first)["SMS 3 h before"]
    _pretend_sent(a, sent.id)
    rule_id = sent.rule_id
    with tenant_session(a.engine, a.tenant_id) as session:
        view = next(r for r in rules.list_rules(session, a.admin) if r.id == rule_id)
        rules.update_rule(session, a.admin, rule_id, replace(view.as_input(), offset_minutes=120), now=NOW)
    assert (a.reminders(first)["SMS 3 h before"].status, a.reminders(first)["SMS 3 h before"].due_at) == (
        Sent, sent.due_at)
    moved = a.reminders(second)["SMS 3 h before"]
    assert (moved.status, moved.due_at, moved.rule_revision) == (Pending, riyadh(2026, 12, 16, 10), 2)


def test_turning_a_rule_off_cancels_its_pending_reminders_and_on_again_plans_them(a: Clinic) -> None:
    booked = a.book(SUNDAY_10)
    rule_id = a.reminders(booked)["SMS 3 h before"].rule_id
    with tenant_session(a.engine, a.tenant_id) as session:
        rules.set_rule_active(session, a.admin, rule_id, False, now=NOW)
    assert (a.reminders(booked)["SMS 3 h before"].status, a.reminders(booked)["SMS 3 h before"].status_reason) == (
        Cancelled, "the rule was turned off")
    with tenant_session(a.engine, a.tenant_id) as session:
        rules.set_rule_active(session, a.admin, rule_id, True, now=NOW)
    assert a.reminders(booked)["SMS 3 h before"].status == Pending


def test_a_rule_covers_its_types_and_departments_only(clinics: tuple[Clinic, Clinic]) -> None:
    a, _ = clinics
    a.rule("Dental only", offset_minutes=24 * 60, appointment_types=("Dental",), departments=())
    a.rule("Pediatrics follow-ups", offset_minutes=24 * 60 + 60, appointment_types=("follow-up",),
           departments=("Pediatrics",))
    dental = a.book(riyadh(2026, 12, 15, 12), appointment_type=" dental ")
    follow_up = a.book(riyadh(2026, 12, 15, 12), appointment_type="Follow-up", department="PEDIATRICS")
    other = a.book(riyadh(2026, 12, 15, 12), appointment_type="Follow-up", department="Cardiology")
    assert set(a.reminders(dental)) == {"Dental only"}
    assert set(a.reminders(follow_up)) == {"Pediatrics follow-ups"}
    assert a.reminders(other) == {}
    # the appointment changes type: the rule that no longer covers it cancels its reminder
    a.change(dental, appointment_type="Checkup")
    assert (a.reminders(dental)["Dental only"].status, a.reminders(dental)["Dental only"].status_reason) == (
        Cancelled, planner.NOT_COVERED)


def test_an_urgent_rule_goes_at_its_exact_time_whatever_the_calendar(clinics: tuple[Clinic, Clinic]) -> None:
    a, _ = clinics
    a.rule("Urgent 48 h", offset_minutes=48 * 60, urgent=True)
    booked = a.book(SUNDAY_10)
    urgent = a.reminders(booked)["Urgent 48 h"]
    assert (urgent.due_at, urgent.moved_reason) == (riyadh(2026, 12, 11, 10), "")


def test_a_later_rule_moves_a_weekend_reminder_to_sunday(clinics: tuple[Clinic, Clinic]) -> None:
    a, _ = clinics
    a.rule("WhatsApp 48 h later", channel=Channel.WHATSAPP, offset_minutes=48 * 60, shift=ReminderShift.LATER)
    booked = a.book(riyadh(2026, 12, 13, 18))  # Sunday 18:00: 48 h before is Friday 18:00
    reminder = a.reminders(booked)["WhatsApp 48 h later"]
    assert (reminder.due_at, reminder.moved_reason) == (riyadh(2026, 12, 13, 9), "Friday (weekend)")


def test_two_clinics_with_the_same_patients_plan_only_their_own(clinics: tuple[Clinic, Clinic]) -> None:
    a, b = clinics
    a.rule(**WHATSAPP_48H)
    b.rule("B's SMS 24 h", offset_minutes=24 * 60)
    a_booked = a.book(SUNDAY_10)
    b_booked = b.book(SUNDAY_10)  # the same time, the same patient's name and number, in clinic B
    assert set(a.reminders(a_booked)) == {"WhatsApp 48 h before"}
    assert set(b.reminders(b_booked)) == {"B's SMS 24 h"}
    # a full pass in one clinic reads and writes nothing of the other's
    assert a.plan() == PlanResult()
    b.change(b_booked, status=AppointmentStatus.CANCELLED)
    assert a.reminders(a_booked)["WhatsApp 48 h before"].status == Pending
    # ids of the other clinic's appointments are not found, so nothing is planned for them
    assert a.plan([b_booked]) == PlanResult()
    with system_session(a.engine) as session:
        rows = session.execute(select(AppointmentReminder.appointment_id, AppointmentReminder.tenant_id))
        tenants = {appointment: tenant for appointment, tenant in rows}
    assert tenants == {a_booked: a.tenant_id, b_booked: b.tenant_id}


def test_the_maintenance_safety_net_plans_appointments_written_without_planning(a: Clinic) -> None:
    planner.plan_changed(a.engine, NOW)  # the first pass plans everything and sets the watermark
    quiet = a.book(SUNDAY_10, plan=False)  # written by a path that did not plan
    assert a.reminders(quiet) == {}
    changed = planner.plan_changed(a.engine, NOW + dt.timedelta(minutes=1))
    assert changed == 2
    assert {r.status for r in a.reminders(quiet).values()} == {Pending}
    assert planner.plan_changed(a.engine, NOW + dt.timedelta(minutes=10)) == 0


def test_two_planners_at_once_insert_each_reminder_once(pg_engine: Engine) -> None:
    a = make_clinic(pg_engine, "clinic-a")
    a.rule(**WHATSAPP_48H)
    ids = [a.book(SUNDAY_10 + dt.timedelta(minutes=i), plan=False) for i in range(50)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with tenant_session(pg_engine, a.tenant_id) as session:
                barrier.wait()
                planner.plan(session, appointment_ids=ids, now=NOW)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with tenant_session(pg_engine, a.tenant_id) as session:
        assert session.scalar(select(func.count()).select_from(AppointmentReminder)) == 50


def _pretend_sent(clinic: Clinic, reminder_id, status: MessageStatus = MessageStatus.QUEUED):  # type: ignore[no-untyped-def]
    """What the dispatch leaves: the reminder sent, with its message (queued, not yet handed over)."""
    with tenant_session(clinic.engine, clinic.tenant_id) as session:
        reminder = session.get(AppointmentReminder, reminder_id)
        message = Message(patient_id=clinic.sara, channel=Channel.WHATSAPP, recipient="+966501234567",
                          body="Reminder", status=status, idempotency_key=f"reminder:{reminder_id}")
        session.add(message)
        session.flush()
        reminder.status, reminder.message_id, reminder.sent_at = ReminderStatus.SENT, message.id, NOW
        return message.id
