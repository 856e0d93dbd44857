"""Sending reminders: when due, once (however often or however concurrently the pass runs), with this
appointment's values, never for an appointment that was cancelled or has started; the rule's fallback
channel; the preview is exactly what is sent; two clinics with the same patients never mix."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import replace

import pytest
from sqlalchemy import Engine, func, select

from app.delivery.ratelimit import LocalRateLimiter
from app.delivery.runtime import Runtime
from app.errors import PermissionDenied
from app.providers.registry import build_providers
from app.services import maintenance, templates
from app.services.reminders import dispatch, rules
from db.enums import AppointmentStatus, Channel, Language, MessageStatus, ReminderStatus
from db.models import Appointment, AppointmentReminder, AuditEvent, Message, NotificationPreference, Patient
from db.session import system_session, tenant_session
from tests.delivery.conftest import RecordingQueue, delivery_settings
from tests.peers.fake_twilio import FakeTwilio, Outcome
from tests.services.reminder_support import (
    NOW,
    SMS_3H_LATER,
    SUNDAY_10,
    WHATSAPP_48H,
    Clinic,
    make_clinic,
    riyadh,
)

THURSDAY_2059 = riyadh(2026, 12, 10, 20, 59)  # the WhatsApp reminder of SUNDAY_10, moved off the weekend
SUNDAY_09 = riyadh(2026, 12, 13, 9)  # the SMS reminder of SUNDAY_10, moved later into the sending hours


def _runtime(engine: Engine, twilio: FakeTwilio | None = None) -> tuple[Runtime, RecordingQueue]:
    settings = delivery_settings(engine, twilio)
    queue = RecordingQueue()
    return Runtime(engine, settings, build_providers(settings), LocalRateLimiter(), queue), queue


@pytest.fixture
def clinics(engine: Engine) -> tuple[Clinic, Clinic]:
    a, b = make_clinic(engine, "clinic-a"), make_clinic(engine, "clinic-b")
    for clinic in (a, b):
        clinic.rule(**WHATSAPP_48H)
        clinic.rule(**SMS_3H_LATER)
    return a, b


def _messages(clinic: Clinic) -> list[Message]:
    with tenant_session(clinic.engine, clinic.tenant_id) as session:
        rows = list(session.scalars(select(Message).order_by(Message.created_at)))
        session.expunge_all()
    return rows


def test_a_due_reminder_is_written_once_with_this_appointments_time(engine, clinics) -> None:
    a, _ = clinics
    runtime, queue = _runtime(engine)
    a.book(riyadh(2026, 12, 9, 11))  # an earlier appointment of the same patient: not the one reminded below
    booked = a.book(SUNDAY_10)
    assert dispatch.send_due(runtime, THURSDAY_2059 - dt.timedelta(minutes=1)) == 0  # not due yet

    assert dispatch.send_due(runtime, THURSDAY_2059) == 1
    assert dispatch.send_due(runtime, THURSDAY_2059 + dt.timedelta(minutes=1)) == 0  # never twice

    reminder = a.reminders(booked)["WhatsApp 48 h before"]
    [message] = [m for m in _messages(a) if m.idempotency_key == f"reminder:{reminder.id}"]
    assert (reminder.status, reminder.message_id, reminder.sent_at) == (ReminderStatus.SENT, message.id,
                                                                       THURSDAY_2059)
    assert message.body == "Hi Sara Ali, your appointment is on 2026-12-13 at 10:00."
    assert (message.channel, message.recipient, message.status, message.urgent) == (
        Channel.WHATSAPP, "+966501234567", MessageStatus.QUEUED, False)
    assert message.variables["appointment_time"] == "10:00"  # the WhatsApp Content template's slot 2
    assert queue.enqueued_ids == [str(message.id)]
    with tenant_session(engine, a.tenant_id) as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "message.send"))
        assert (event.actor_name, event.object_id) == ("Reminders", str(message.id))


def test_an_arabic_speaking_patient_gets_the_arabic_text(engine, clinics) -> None:
    a, _ = clinics
    runtime, _queue = _runtime(engine)
    a.book(SUNDAY_10, patient=a.omar)
    dispatch.send_due(runtime, THURSDAY_2059)
    [message] = _messages(a)
    assert message.language == Language.AR
    assert message.body.startswith("مرحبا عمر سعيد")
    assert "2026-12-13" in message.body and "10:00" in message.body


def test_two_passes_at_once_write_one_message(pg_engine: Engine) -> None:
    a = make_clinic(pg_engine, "clinic-a")
    a.rule(**WHATSAPP_48H)
    booked = [a.book(SUNDAY_10 + dt.timedelta(minutes=i)) for i in range(20)]
    runtime, _queue = _runtime(pg_engine)
    barrier = threading.Barrier(2)
    totals: list[int] = []

    def run() -> None:
        barrier.wait()
        totals.append(dispatch.send_due(runtime, THURSDAY_2059))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(totals) == 20
    with tenant_session(pg_engine, a.tenant_id) as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 20
        assert set(session.scalars(select(AppointmentReminder.status).where(
            AppointmentReminder.appointment_id.in_(booked)))) == {ReminderStatus.SENT}


def test_an_appointment_cancelled_behind_the_planners_back_is_never_reminded(engine, clinics) -> None:
    a, _ = clinics
    runtime, _queue = _runtime(engine)
    booked = a.book(SUNDAY_10)
    with tenant_session(engine, a.tenant_id) as session:  # written by a path that did not re-plan
        session.get(Appointment, booked).status = AppointmentStatus.CANCELLED
    assert dispatch.send_due(runtime, THURSDAY_2059) == 0
    reminder = a.reminders(booked)["WhatsApp 48 h before"]
    assert (reminder.status, reminder.status_reason, reminder.message_id) == (
        ReminderStatus.CANCELLED, "the appointment was cancelled", None)
    assert _messages(a) == []


def test_a_reminder_due_after_the_appointment_started_is_cancelled_not_sent_late(engine, clinics) -> None:
    a, _ = clinics
    runtime, _queue = _runtime(engine)
    booked = a.book(SUNDAY_10)
    assert dispatch.send_due(runtime, SUNDAY_10 + dt.timedelta(minutes=5)) == 0  # the worker was down for days
    assert {r.status_reason for r in a.reminders(booked).values()} == {"the appointment has started"}
    assert _messages(a) == []


def test_an_urgent_rule_marks_its_message_urgent(engine, clinics) -> None:
    a, _ = clinics
    a.rule("Urgent 1 h", offset_minutes=60, urgent=True)
    runtime, _queue = _runtime(engine)
    a.book(SUNDAY_10)
    dispatch.send_due(runtime, riyadh(2026, 12, 13, 9))
    urgent = [m for m in _messages(a) if m.urgent]
    assert len(urgent) == 1 and urgent[0].channel == Channel.SMS


def test_no_contact_for_the_rules_channel_goes_by_the_fallback_channel(engine, clinics) -> None:
    a, _ = clinics
    a.rule("E-mail 24 h, else SMS", channel=Channel.EMAIL, offset_minutes=24 * 60, fallback_channel=Channel.SMS)
    with tenant_session(engine, a.tenant_id) as session:
        session.get(Patient, a.sara).email = None
    runtime, _queue = _runtime(engine)
    booked = a.book(riyadh(2026, 12, 15, 12))
    reminder = a.reminders(booked)["E-mail 24 h, else SMS"]
    assert dispatch.send_due(runtime, reminder.due_at) == 1
    [message] = _messages(a)
    assert (message.channel, message.recipient, message.template_id) == (Channel.SMS, "+966501234567", None)
    assert message.body == "Hi Sara Ali, your appointment is on 2026-12-15 at 12:00."
    assert a.reminders(booked)["E-mail 24 h, else SMS"].status_reason == "Sent by SMS: no e-mail address for Email."


def test_opted_out_of_whatsapp_goes_by_sms_when_the_rule_says_so(engine, clinics) -> None:
    a, _ = clinics
    rule_id = a.reminders(a.book(riyadh(2026, 12, 20, 12)))["WhatsApp 48 h before"].rule_id
    with tenant_session(engine, a.tenant_id) as session:
        view = next(r for r in rules.list_rules(session, a.admin) if r.id == rule_id)
        rules.update_rule(session, a.admin, rule_id, replace(view.as_input(), fallback_channel=Channel.SMS), now=NOW)
        session.add(NotificationPreference(patient_id=a.sara, whatsapp_opt_in=False))
    runtime, _queue = _runtime(engine)
    dispatch.send_due(runtime, THURSDAY_2059 + dt.timedelta(days=7))
    [message] = _messages(a)
    assert message.channel == Channel.SMS


def test_no_contact_and_no_fallback_is_skipped_with_the_reason(engine, clinics) -> None:
    a, _ = clinics
    with tenant_session(engine, a.tenant_id) as session:
        session.get(Patient, a.sara).phone_e164 = None
    runtime, _queue = _runtime(engine)
    booked = a.book(SUNDAY_10)
    assert dispatch.send_due(runtime, THURSDAY_2059) == 0
    reminder = a.reminders(booked)["WhatsApp 48 h before"]
    assert (reminder.status, reminder.status_reason, reminder.message_id) == (
        ReminderStatus.SKIPPED, "No mobile number for WhatsApp.", None)


def test_a_deleted_template_skips_the_reminder_with_the_reason(engine, clinics) -> None:
    a, _ = clinics
    runtime, _queue = _runtime(engine)
    booked = a.book(SUNDAY_10)
    with tenant_session(engine, a.tenant_id) as session:
        templates.delete_template(session, a.admin, a.whatsapp_template)
    assert dispatch.send_due(runtime, THURSDAY_2059) == 0
    reminder = a.reminders(booked)["WhatsApp 48 h before"]
    assert (reminder.status, reminder.status_reason) == (ReminderStatus.SKIPPED, "the rule's template was deleted")


def test_a_whatsapp_reminder_that_fails_for_good_falls_back_to_sms_by_its_rule(engine, clinics,
                                                                                fake_twilio) -> None:
    a, _ = clinics
    rule_id = a.reminders(a.book(SUNDAY_10))["WhatsApp 48 h before"].rule_id
    with tenant_session(engine, a.tenant_id) as session:  # the template itself has no fallback: the rule's
        view = next(r for r in rules.list_rules(session, a.admin) if r.id == rule_id)
        rules.update_rule(session, a.admin, rule_id, replace(view.as_input(), fallback_channel=Channel.SMS), now=NOW)
    runtime, queue = _runtime(engine, fake_twilio)
    fake_twilio.script(Outcome.error(63016, http_status=400))
    dispatch.send_due(runtime, THURSDAY_2059)
    queue.drain(runtime)  # WhatsApp fails for good; the SMS is created ...
    queue.drain(runtime)  # ... and sent
    whatsapp, sms = _messages(a)
    assert (whatsapp.channel, whatsapp.status, sms.channel, sms.retry_of_id) == (
        Channel.WHATSAPP, MessageStatus.FAILED, Channel.SMS, whatsapp.id)
    assert sms.body == whatsapp.body


def test_two_clinics_with_the_same_patients_each_remind_their_own(engine, clinics) -> None:
    a, b = clinics
    runtime, _queue = _runtime(engine)
    a_booked = a.book(SUNDAY_10)
    b_booked = b.book(riyadh(2026, 12, 13, 11))  # the same patient's name and number, an hour later, in B
    assert dispatch.send_due(runtime, THURSDAY_2059) == 2
    [a_message], [b_message] = _messages(a), _messages(b)
    assert (a_message.patient_id, "10:00" in a_message.body) == (a.sara, True)
    assert (b_message.patient_id, "11:00" in b_message.body) == (b.sara, True)
    assert a.reminders(a_booked)["WhatsApp 48 h before"].message_id == a_message.id
    assert b.reminders(b_booked)["WhatsApp 48 h before"].message_id == b_message.id
    with system_session(engine) as session:
        tenants = {m.id: m.tenant_id for m in session.scalars(select(Message).where(Message.id.in_(
            [a_message.id, b_message.id])))}
    assert tenants == {a_message.id: a.tenant_id, b_message.id: b.tenant_id}


def test_the_maintenance_pass_sends_due_reminders(engine, clinics) -> None:
    a, _ = clinics
    runtime, _queue = _runtime(engine)
    a.book(SUNDAY_10)
    report = maintenance.run_pass(runtime, THURSDAY_2059)
    assert report.reminders_sent == 1 and not [n for n in report.notes if "reminder" in n]


def test_the_preview_is_exactly_what_is_sent(engine, clinics) -> None:
    a, _ = clinics
    runtime, _queue = _runtime(engine)
    booked = a.book(SUNDAY_10, patient=a.omar)
    reminder = a.reminders(booked)["WhatsApp 48 h before"]
    with tenant_session(engine, a.tenant_id) as session:
        shown = dispatch.preview(session, a.admin, reminder.id, now=NOW)
    assert (shown.channel, shown.language, shown.recipient, shown.problem) == (
        Channel.WHATSAPP, Language.AR, "+966507654321", "")
    dispatch.send_due(runtime, THURSDAY_2059)
    [message] = _messages(a)
    assert shown.body == message.body


def test_the_preview_is_for_admins_of_the_clinic_only(engine, clinics) -> None:
    a, b = clinics
    booked = a.book(SUNDAY_10)
    reminder = a.reminders(booked)["SMS 3 h before"]
    with tenant_session(engine, a.tenant_id) as session:
        with pytest.raises(PermissionDenied):
            dispatch.preview(session, a.front_desk, reminder.id, now=NOW)
    with tenant_session(engine, b.tenant_id) as session:
        from app.errors import NotFoundError

        with pytest.raises(NotFoundError):
            dispatch.preview(session, b.admin, reminder.id, now=NOW)


def test_the_preview_says_why_a_reminder_would_not_go(engine, clinics) -> None:
    a, _ = clinics
    booked = a.book(SUNDAY_10)
    reminder = a.reminders(booked)["SMS 3 h before"]
    with tenant_session(engine, a.tenant_id) as session:
        session.get(Appointment, booked).status = AppointmentStatus.CANCELLED
    with tenant_session(engine, a.tenant_id) as session:
        shown = dispatch.preview(session, a.admin, reminder.id, now=NOW)
    assert shown.problem == "It will not be sent: the appointment was cancelled."
    assert shown.body.startswith("Hi Sara Ali")


def test_a_reminder_found_long_after_its_time_is_skipped_not_sent_late(engine, clinics) -> None:
    a, _ = clinics
    runtime, _queue = _runtime(engine)
    booked = a.book(SUNDAY_10)
    assert a.reminders(booked)["SMS 3 h before"].due_at == SUNDAY_09
    assert dispatch.send_due(runtime, SUNDAY_09) == 1  # no worker ran since Thursday: only Sunday's goes
    assert [m.channel for m in _messages(a)] == [Channel.SMS]
    whatsapp = a.reminders(booked)["WhatsApp 48 h before"]
    assert (whatsapp.status, whatsapp.status_reason) == (ReminderStatus.SKIPPED, dispatch.LATE)


def test_an_appointment_moved_after_its_reminder_was_sent_is_reminded_of_the_new_time(engine, clinics) -> None:
    """The clinic moves Sunday 10:00 to Tuesday 16:00 after the 48 h reminder went (it named Sunday):
    the reminder is planned again for Tuesday and sent once more with Tuesday's time, under a new key;
    clinic B's appointment of its own Sara at the same time keeps its one reminder."""
    a, b = clinics
    runtime, _queue = _runtime(engine)
    booked, neighbours = a.book(SUNDAY_10), b.book(SUNDAY_10)
    assert dispatch.send_due(runtime, THURSDAY_2059) == 2  # A's and B's 48 h reminders
    first = a.reminders(booked)["WhatsApp 48 h before"]

    tuesday_16 = riyadh(2026, 12, 15, 16)
    result = a.change(booked, starts_at=tuesday_16, now=THURSDAY_2059 + dt.timedelta(hours=1))
    assert result.planned == 1  # the sent one, again (the SMS one was pending and just moved)
    again = a.reminders(booked)["WhatsApp 48 h before"]
    assert (again.id, again.status, again.message_id, again.due_at, again.status_reason) == (
        first.id, ReminderStatus.PENDING, None, riyadh(2026, 12, 13, 16),
        "the appointment moved after its reminder was sent")
    assert a.plan([booked], now=THURSDAY_2059 + dt.timedelta(hours=2)).planned == 0, "planned again once"

    sunday_16 = riyadh(2026, 12, 13, 16)
    assert dispatch.send_due(runtime, sunday_16) >= 1
    assert dispatch.send_due(runtime, sunday_16 + dt.timedelta(minutes=5)) == 0  # never twice
    reminders = [m for m in _messages(a) if (m.idempotency_key or "").startswith(f"reminder:{first.id}")]
    assert [m.body for m in reminders] == ["Hi Sara Ali, your appointment is on 2026-12-13 at 10:00.",
                                           "Hi Sara Ali, your appointment is on 2026-12-15 at 16:00."]
    assert reminders[1].idempotency_key == f"reminder:{first.id}@20261215T130000Z"
    sent = a.reminders(booked)["WhatsApp 48 h before"]
    assert (sent.status, sent.message_id, sent.sent_for_starts_at) == (ReminderStatus.SENT, reminders[1].id,
                                                                       tuesday_16)
    # B's Sara, same name and number, same Sunday: one reminder, for Sunday
    b_whatsapp = [m.body for m in _messages(b) if m.channel == Channel.WHATSAPP]
    assert b_whatsapp == ["Hi Sara Ali, your appointment is on 2026-12-13 at 10:00."]
    assert b.reminders(neighbours)["WhatsApp 48 h before"].status == ReminderStatus.SENT


def test_a_reminder_message_still_waiting_when_the_appointment_moves_is_cancelled(engine, clinics) -> None:
    """It names the old time: it must not leave; the reminder goes again for the new time."""
    a, _ = clinics
    runtime, _queue = _runtime(engine)
    booked = a.book(SUNDAY_10)
    dispatch.send_due(runtime, THURSDAY_2059)  # written and queued; the worker has not sent it yet
    old = a.reminders(booked)["WhatsApp 48 h before"].message_id

    a.change(booked, starts_at=riyadh(2026, 12, 15, 16), now=THURSDAY_2059 + dt.timedelta(minutes=1))

    with tenant_session(engine, a.tenant_id) as session:
        message = session.get(Message, old)
        assert (message.status, message.status_reason) == (
            MessageStatus.CANCELLED, "Reminder cancelled: the appointment moved after its reminder was sent.")
    assert a.reminders(booked)["WhatsApp 48 h before"].status == ReminderStatus.PENDING


def test_a_move_too_close_to_send_again_keeps_the_sent_reminder(engine, clinics) -> None:
    """Moved to a time whose reminder time has passed: nothing is sent late; the sent one stays."""
    a, _ = clinics
    runtime, _queue = _runtime(engine)
    booked = a.book(SUNDAY_10)
    dispatch.send_due(runtime, THURSDAY_2059)
    sent = a.reminders(booked)["WhatsApp 48 h before"]
    a.change(booked, starts_at=riyadh(2026, 12, 11, 12), now=THURSDAY_2059 + dt.timedelta(minutes=1))  # Friday noon
    kept = a.reminders(booked)["WhatsApp 48 h before"]
    assert (kept.status, kept.message_id) == (ReminderStatus.SENT, sent.message_id)
