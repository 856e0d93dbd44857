"""A patient's reply received (app/services/replies/receive.py), on both backends.

Clinics A and B each send WhatsApp from their own number; both have Sara Ali (+966501234567), as
does the neighbouring clinic, which shares the server's WhatsApp number. Each clinic reminded Sara
of an appointment the day after tomorrow (a sent reminder) and has a second reminder still pending.
Acknowledgements are delivered to the loopback Twilio.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from app.delivery.ratelimit import LocalRateLimiter
from app.delivery.runtime import Runtime
from app.providers.registry import build_providers
from app.providers.routing import ANY, RouteStep
from app.services import clinic_settings, templates
from app.services.permissions import Actor
from app.services.replies.receive import (
    ALREADY_CONFIRMED,
    CANCELLED,
    CONFIRMED,
    FOR_FRONT_DESK,
    OPTED_OUT,
    InboundReply,
    Received,
    ReplyOutcome,
    receive_reply,
)
from db.enums import (
    AppointmentStatus,
    Channel,
    ConversationState,
    MessageStatus,
    ReminderStatus,
    ReplyIntent,
)
from db.models import (
    Appointment,
    AppointmentReminder,
    AuditEvent,
    Conversation,
    InboundMessage,
    Message,
    NotificationPreference,
    Patient,
    ReminderRule,
)
from db.session import system_session, tenant_session
from db.types import utcnow
from tests.delivery.conftest import RecordingQueue, delivery_settings
from tests.factories import make_patient, make_tenant, make_user
from tests.neighbours import neighbour_id

SARA = "+966501234567"
A_NUMBER, B_NUMBER, SHARED_NUMBER = "+14155550001", "+14155550002", "+14155238886"
PLANNER = importlib.util.find_spec("app.services.reminders.planner") is not None


@dataclass(frozen=True)
class Clinic:
    tenant_id: uuid.UUID
    number: str
    patient: uuid.UUID
    appointment: uuid.UUID
    pending: uuid.UUID  # a reminder of the appointment not sent yet


@dataclass
class World:
    engine: Engine
    runtime: Runtime
    queue: RecordingQueue
    a: Clinic
    b: Clinic
    sids: int = 0

    def reply(self, to: str, body: str = "", *, sender: str = SARA, payload: str = "", sid: str | None = None,
              channel: Channel = Channel.WHATSAPP) -> ReplyOutcome:
        self.sids += 1
        prefix = "whatsapp:" if channel == Channel.WHATSAPP else ""
        reply = InboundReply(provider_message_id=sid or f"SM{self.sids:032d}", from_address=prefix + sender,
                             to_address=prefix + to, body=body, button_payload=payload,
                             button_text=body if payload else "", channel=channel)
        return receive_reply(self.engine, reply, settings=self.runtime.settings, queue=self.queue)


def reminded_clinic(engine: Engine, slug: str, number: str | None, *, ack: bool = True) -> Clinic:
    """A clinic sending WhatsApp from ``number`` (None: the server's), with Sara reminded of an appointment."""
    tenant = make_tenant(engine, slug)
    admin = make_user(engine, tenant, f"admin-{slug}")
    patient = make_patient(engine, tenant, phone=SARA)
    with tenant_session(engine, tenant) as session:
        if number:
            clinic_settings.set_route(session, admin, Channel.WHATSAPP, ANY, [RouteStep("twilio", number)])
        made = {code: templates.create_template(session, admin, code=code, name=code, channel=Channel.WHATSAPP,
                                                body_en=body).id
                for code, body in (("reminder", "Your appointment is on {{ appointment_date }}."),
                                   ("ack_yes", f"{slug}: see you on {{{{ appointment_date }}}} at "
                                               "{{ appointment_time }}."),
                                   ("ack_no", f"{slug}: your appointment on {{{{ appointment_date }}}} is cancelled."))}
        rule = ReminderRule(name="WhatsApp 48 h before", channel=Channel.WHATSAPP, template_id=made["reminder"],
                            offset_minutes=48 * 60, confirm_ack_template_id=made["ack_yes"] if ack else None,
                            cancel_ack_template_id=made["ack_no"] if ack else None)
        later = ReminderRule(name="WhatsApp 3 h before", channel=Channel.WHATSAPP, template_id=made["reminder"],
                             offset_minutes=180)
        session.add_all([rule, later])
        session.flush()
    appointment, pending = _appointment_reminded(engine, tenant, patient, rule.id, later.id,
                                                 utcnow() + dt.timedelta(days=2), sender=number or SHARED_NUMBER)
    return Clinic(tenant, number or SHARED_NUMBER, patient, appointment, pending)


def _appointment_reminded(engine: Engine, tenant: uuid.UUID, patient: uuid.UUID, rule: uuid.UUID,
                          later: uuid.UUID | None, starts_at: dt.datetime, *, sender: str,
                          sent: bool = True) -> tuple[uuid.UUID, uuid.UUID | None]:
    """An appointment whose first rule's reminder went to Sara (a delivered message) and whose
    second rule's reminder is pending."""
    now = utcnow()
    with tenant_session(engine, tenant) as session:
        appointment = Appointment(patient_id=patient, starts_at=starts_at, source_id=uuid.uuid4().hex,
                                  doctor_name_en="Dr. Ahmed", status=AppointmentStatus.BOOKED)
        session.add(appointment)
        session.flush()
        message = Message(patient_id=patient, channel=Channel.WHATSAPP, recipient=SARA, body="Reminder",
                          status=MessageStatus.DELIVERED, sender=f"whatsapp:{sender}", created_at=now,
                          updated_at=now)
        session.add(message)
        session.flush()
        session.add(AppointmentReminder(appointment_id=appointment.id, rule_id=rule,
                                        status=ReminderStatus.SENT if sent else ReminderStatus.PENDING,
                                        due_at=now - dt.timedelta(minutes=5), message_id=message.id if sent else None,
                                        sent_at=now if sent else None, sent_for_starts_at=starts_at if sent else None))
        pending = None
        if later is not None:
            row = AppointmentReminder(appointment_id=appointment.id, rule_id=later, status=ReminderStatus.PENDING,
                                      due_at=starts_at - dt.timedelta(hours=3))
            session.add(row)
            session.flush()
            pending = row.id
        return appointment.id, pending


@pytest.fixture
def world(engine: Engine, fake_twilio: Any) -> World:
    queue = RecordingQueue()
    settings = delivery_settings(engine, fake_twilio)
    runtime = Runtime(engine, settings, build_providers(settings), LocalRateLimiter(), queue)
    return World(engine, runtime, queue, reminded_clinic(engine, "clinic-a", A_NUMBER),
                 reminded_clinic(engine, "clinic-b", B_NUMBER))


# -- reading the database --------------------------------------------------------------------------


def appointment_status(engine: Engine, clinic: Clinic, appointment: uuid.UUID | None = None) -> AppointmentStatus:
    with tenant_session(engine, clinic.tenant_id) as session:
        return AppointmentStatus(session.scalar(select(Appointment.status).where(
            Appointment.id == (appointment or clinic.appointment))))


def _count(engine: Engine, model: Any, *conditions: Any) -> int:
    with system_session(engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0


def _row(engine: Engine, model: Any, *conditions: Any) -> Any:
    with system_session(engine) as session:
        found = session.scalar(select(model).where(*conditions))
        if found is not None:
            session.expunge(found)
        return found


def _untouched(engine: Engine, clinic: Clinic) -> None:
    assert appointment_status(engine, clinic) == AppointmentStatus.BOOKED
    assert _count(engine, InboundMessage, InboundMessage.tenant_id == clinic.tenant_id) == 0
    assert _count(engine, Conversation, Conversation.tenant_id == clinic.tenant_id) == 0
    assert _count(engine, Message, Message.tenant_id == clinic.tenant_id, Message.idempotency_key.like("ack:%")) == 0
    with system_session(engine) as session:
        patient = session.get(Patient, clinic.patient)
        assert patient.whatsapp_last_inbound_at is None
        assert session.scalar(select(NotificationPreference).where(
            NotificationPreference.patient_id == clinic.patient)) is None


# -- a clear answer --------------------------------------------------------------------------------


def test_a_confirm_updates_the_right_appointment_is_audited_and_acknowledged_once(world: World, fake_twilio) -> None:
    engine, b = world.engine, world.b
    outcome = world.reply(B_NUMBER, "نعم", sid="SM" + "1" * 32)
    assert (outcome.received, outcome.tenant_id, outcome.intent) == (Received.STORED, b.tenant_id, ReplyIntent.CONFIRM)
    assert (outcome.outcome, outcome.for_front_desk, outcome.appointment_id) == (CONFIRMED, False, b.appointment)
    assert appointment_status(engine, b) == AppointmentStatus.CONFIRMED
    reply = _row(engine, InboundMessage, InboundMessage.id == outcome.reply_id)
    assert (reply.tenant_id, reply.patient_id, reply.appointment_id, reply.body) == (
        b.tenant_id, b.patient, b.appointment, "نعم")
    assert reply.read_at is not None and reply.in_reply_to_id is not None  # acted on: not unread
    thread = _row(engine, Conversation, Conversation.id == reply.conversation_id)
    assert (thread.unread_count, thread.state, thread.patient_id) == (0, ConversationState.DONE, b.patient)
    audit = _row(engine, AuditEvent, AuditEvent.action == "appointment.status")
    assert (audit.tenant_id, audit.actor_name, audit.object_id) == (b.tenant_id, "patient reply", str(b.appointment))
    assert audit.details == {"from": "booked", "to": "confirmed", "source": "reply"}

    world.queue.drain(world.runtime)
    [sent] = fake_twilio.sends
    assert sent.params["To"] == f"whatsapp:{SARA}" and sent.params["From"] == f"whatsapp:{B_NUMBER}"
    assert sent.params["Body"].startswith("clinic-b: see you on ")

    again = world.reply(B_NUMBER, "نعم", sid="SM" + "1" * 32)  # Twilio delivers the same webhook again
    assert again.received == Received.DUPLICATE
    world.queue.drain(world.runtime)
    assert len(fake_twilio.sends) == 1
    assert _count(engine, InboundMessage) == 1
    assert _count(engine, AuditEvent, AuditEvent.action == "appointment.status") == 1
    _untouched(engine, world.a)


def test_a_button_reply_confirms_by_its_payload(world: World) -> None:
    outcome = world.reply(A_NUMBER, "Yes, I'll come", payload="CONFIRM")
    assert (outcome.intent, outcome.outcome) == (ReplyIntent.CONFIRM, CONFIRMED)
    reply = _row(world.engine, InboundMessage, InboundMessage.id == outcome.reply_id)
    assert (reply.button_payload, reply.button_text) == ("CONFIRM", "Yes, I'll come")
    assert appointment_status(world.engine, world.a) == AppointmentStatus.CONFIRMED
    _untouched(world.engine, world.b)


def test_a_second_confirm_is_kept_but_not_acknowledged_again(world: World) -> None:
    world.reply(A_NUMBER, "yes")
    second = world.reply(A_NUMBER, "تمام")
    assert (second.received, second.outcome, second.acknowledgement_id) == (Received.STORED, ALREADY_CONFIRMED, None)
    assert _count(world.engine, Message, Message.idempotency_key.like("ack:%")) == 1


def test_the_same_webhook_twice_at_once_is_acted_on_once(world: World) -> None:
    outcomes: list[ReplyOutcome] = []
    start = threading.Barrier(2)

    def deliver() -> None:
        start.wait()
        outcomes.append(world.reply(B_NUMBER, "yes", sid="SM" + "7" * 32))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(o.received for o in outcomes) == [Received.DUPLICATE, Received.STORED]
    assert _count(world.engine, InboundMessage) == 1
    assert _count(world.engine, Conversation) == 1
    assert _count(world.engine, AuditEvent, AuditEvent.action == "appointment.status") == 1
    assert _count(world.engine, Message, Message.idempotency_key.like("ack:%")) == 1


@pytest.mark.skipif(not PLANNER, reason="the reminder planner (app.services.reminders.planner, helper C of "
                                        "issue 20) is not in this tree: set_status cannot re-plan yet")
def test_a_cancel_cancels_the_appointment_and_its_pending_reminder_in_that_clinic_only(world: World) -> None:
    engine, a, b = world.engine, world.a, world.b
    outcome = world.reply(B_NUMBER, "cancel")
    assert outcome.intent == ReplyIntent.CANCEL
    assert outcome.outcome.startswith(CANCELLED) and "not an opt-out" in outcome.outcome
    assert appointment_status(engine, b) == AppointmentStatus.CANCELLED
    assert _row(engine, AppointmentReminder, AppointmentReminder.id == b.pending).status == ReminderStatus.CANCELLED
    assert _row(engine, AppointmentReminder, AppointmentReminder.id == a.pending).status == ReminderStatus.PENDING
    assert _count(engine, NotificationPreference, NotificationPreference.whatsapp_opt_in.is_(False)) == 0
    _untouched(engine, a)


def test_a_reply_to_b_never_touches_a_or_the_neighbour(world: World) -> None:
    engine = world.engine
    outcome = world.reply(B_NUMBER, "إلغاء")
    assert (outcome.tenant_id, outcome.intent) == (world.b.tenant_id, ReplyIntent.CANCEL)
    assert appointment_status(engine, world.b) == AppointmentStatus.CANCELLED
    _untouched(engine, world.a)
    neighbour = neighbour_id(engine)
    assert _count(engine, Conversation, Conversation.tenant_id == neighbour) == 0
    assert _count(engine, Appointment, Appointment.tenant_id == neighbour,
                  Appointment.status != AppointmentStatus.BOOKED) == 0


# -- for the front desk ----------------------------------------------------------------------------


def test_a_reschedule_request_and_an_unclear_reply_wait_unread(world: World) -> None:
    engine, a = world.engine, world.a
    first = world.reply(A_NUMBER, "ابي اغير الموعد")
    second = world.reply(A_NUMBER, "ان شاء الله")
    assert (first.intent, second.intent) == (ReplyIntent.RESCHEDULE, ReplyIntent.UNCLEAR)
    assert first.for_front_desk and second.for_front_desk
    assert first.outcome.startswith(FOR_FRONT_DESK) and second.outcome.startswith(FOR_FRONT_DESK)
    assert appointment_status(engine, a) == AppointmentStatus.BOOKED
    thread = _row(engine, Conversation, Conversation.tenant_id == a.tenant_id)
    assert (thread.unread_count, thread.state, thread.last_intent) == (2, ConversationState.OPEN, ReplyIntent.UNCLEAR)
    first_row = _row(engine, InboundMessage, InboundMessage.id == first.reply_id)
    assert thread.waiting_since == first_row.received_at and first_row.read_at is None
    assert first_row.appointment_id == a.appointment  # the one appointment awaiting an answer, for the person
    _untouched(engine, world.b)


def test_an_acted_on_reply_does_not_reopen_a_thread_the_front_desk_closed(world: World) -> None:
    world.reply(A_NUMBER, "hmm")
    with tenant_session(world.engine, world.a.tenant_id) as session:
        thread = session.scalar(select(Conversation))
        thread.state, thread.unread_count, thread.waiting_since = ConversationState.DONE, 0, None
    world.reply(A_NUMBER, "1")
    thread = _row(world.engine, Conversation, Conversation.tenant_id == world.a.tenant_id)
    assert (thread.state, thread.unread_count, thread.last_intent) == (ConversationState.DONE, 0,
                                                                        ReplyIntent.CONFIRM)


def test_an_unknown_number_is_kept_in_the_clinics_inbox_without_a_patient(world: World) -> None:
    outcome = world.reply(A_NUMBER, "Hello, is the clinic open on Friday?", sender="+966559876543")
    assert (outcome.received, outcome.tenant_id, outcome.for_front_desk) == (Received.STORED, world.a.tenant_id, True)
    thread = _row(world.engine, Conversation, Conversation.tenant_id == world.a.tenant_id)
    assert (thread.address, thread.patient_id, thread.unread_count) == ("+966559876543", None, 1)
    assert appointment_status(world.engine, world.a) == AppointmentStatus.BOOKED
    _untouched(world.engine, world.b)


def test_a_confirm_with_no_or_several_appointments_awaiting_goes_to_the_front_desk(world: World) -> None:
    engine, a = world.engine, world.a
    nobody = world.reply(A_NUMBER, "نعم", sender="+966559876543")  # ("yes" would be an opt-in: no appointment)
    assert (nobody.intent, nobody.for_front_desk) == (ReplyIntent.CONFIRM, True)
    assert "no appointment awaits" in nobody.outcome
    with tenant_session(engine, a.tenant_id) as session:
        rule = session.scalar(select(ReminderRule.id).where(ReminderRule.offset_minutes == 48 * 60))
    other, _ = _appointment_reminded(engine, a.tenant_id, a.patient, rule, None, utcnow() + dt.timedelta(days=5),
                                     sender=A_NUMBER)
    several = world.reply(A_NUMBER, "yes")
    assert several.for_front_desk and "2 appointments await an answer" in several.outcome
    assert appointment_status(engine, a) == appointment_status(engine, a, other) == AppointmentStatus.BOOKED


def test_a_past_or_cancelled_appointment_awaits_no_answer(world: World) -> None:
    engine, a = world.engine, world.a
    with tenant_session(engine, a.tenant_id) as session:
        session.get(Appointment, a.appointment).starts_at = utcnow() - dt.timedelta(minutes=1)
    outcome = world.reply(A_NUMBER, "yes")
    assert outcome.for_front_desk and "no appointment awaits" in outcome.outcome
    assert appointment_status(engine, a) == AppointmentStatus.BOOKED


def test_a_yes_to_the_reminder_of_a_time_since_moved_confirms_nothing(world: World) -> None:
    """The clinic's system moved the appointment after its reminder went: the reminder named the old
    time, so a "yes" to it is for a person to settle, not a confirmation of the new time."""
    engine, a = world.engine, world.a
    with tenant_session(engine, a.tenant_id) as session:
        session.get(Appointment, a.appointment).starts_at += dt.timedelta(days=2)
    outcome = world.reply(A_NUMBER, "نعم")
    assert outcome.for_front_desk and "no appointment awaits" in outcome.outcome
    assert appointment_status(engine, a) == AppointmentStatus.BOOKED


# -- opt-out words ---------------------------------------------------------------------------------


def _preference(engine: Engine, patient: uuid.UUID) -> NotificationPreference | None:
    return _row(engine, NotificationPreference, NotificationPreference.patient_id == patient)


def test_cancel_with_no_appointment_awaiting_opts_out_as_before(world: World) -> None:
    engine, a = world.engine, world.a
    with tenant_session(engine, a.tenant_id) as session:
        session.get(Appointment, a.appointment).status = AppointmentStatus.CANCELLED
    outcome = world.reply(A_NUMBER, "CANCEL")
    assert (outcome.intent, outcome.for_front_desk) == (ReplyIntent.STOP, False)
    assert outcome.outcome.startswith(f"{OPTED_OUT} WhatsApp") and "is an opt-out" in outcome.outcome
    preference = _preference(engine, a.patient)
    assert (preference.whatsapp_opt_in, preference.sms_opt_in) == (False, True)
    assert _preference(engine, world.b.patient) is None  # B's own number was not written to
    back = world.reply(A_NUMBER, "START")
    assert back.intent == ReplyIntent.START and _preference(engine, a.patient).whatsapp_opt_in is True


def test_stop_to_the_shared_number_opts_out_in_every_clinic_sharing_it(world: World) -> None:
    """Twilio applies STOP to the whole sender, so every clinic sending from it records it; A and B,
    with their own numbers, do not. With no message from it to Sara, no clinic gets the thread."""
    engine = world.engine
    shared = make_tenant(engine, "clinic-c")  # no route of its own: the server's WhatsApp number
    patient = make_patient(engine, shared, phone=SARA)
    outcome = world.reply(SHARED_NUMBER, "STOP")
    assert (outcome.received, outcome.tenant_id, outcome.intent) == (Received.UNROUTED, None, ReplyIntent.STOP)
    assert _preference(engine, patient).whatsapp_opt_in is False
    with tenant_session(engine, neighbour_id(engine)) as session:
        neighbour_sara = session.scalar(select(Patient.id).where(Patient.phone_e164 == SARA))
    assert _preference(engine, neighbour_sara).whatsapp_opt_in is False
    assert _preference(engine, world.a.patient) is None and _preference(engine, world.b.patient) is None
    assert _count(engine, InboundMessage) == 0 and _count(engine, Conversation) == 0


def test_a_shared_number_goes_to_the_clinic_that_last_wrote_from_it(world: World) -> None:
    engine = world.engine
    shared = reminded_clinic(engine, "clinic-c", None)  # reminded Sara from the server's number
    outcome = world.reply(SHARED_NUMBER, "yes")
    assert (outcome.tenant_id, outcome.outcome) == (shared.tenant_id, CONFIRMED)
    assert _count(engine, Conversation, Conversation.tenant_id == neighbour_id(engine)) == 0
    with system_session(engine) as session:  # the window belongs to the number: both sharing clinics have it
        windows = dict(session.execute(select(Patient.tenant_id, Patient.whatsapp_last_inbound_at)
                                       .where(Patient.phone_e164 == SARA)).all())
    assert windows[shared.tenant_id] is not None and windows[neighbour_id(engine)] is not None
    assert windows[world.a.tenant_id] is None and windows[world.b.tenant_id] is None


# -- acknowledgements ------------------------------------------------------------------------------


def test_no_acknowledgement_template_still_confirms_and_says_so(engine: Engine, fake_twilio) -> None:
    queue = RecordingQueue()
    settings = delivery_settings(engine, fake_twilio)
    runtime = Runtime(engine, settings, build_providers(settings), LocalRateLimiter(), queue)
    clinic = reminded_clinic(engine, "clinic-d", A_NUMBER, ack=False)
    world = World(engine, runtime, queue, clinic, clinic)
    outcome = world.reply(A_NUMBER, "أكيد")
    assert outcome.outcome.startswith(CONFIRMED) and "no acknowledgement" in outcome.outcome
    assert outcome.acknowledgement_id is None and appointment_status(engine, clinic) == AppointmentStatus.CONFIRMED


def test_an_sms_reply_is_not_acknowledged_with_a_whatsapp_template(world: World) -> None:
    with tenant_session(world.engine, world.a.tenant_id) as session:
        clinic_settings.set_route(session, Actor.system(world.a.tenant_id, name="test script"), Channel.SMS,
                                  "other", [RouteStep("twilio", "+15005550001")])
    outcome = world.reply("+15005550001", "yes", channel=Channel.SMS)
    assert outcome.tenant_id == world.a.tenant_id and outcome.outcome.startswith(CONFIRMED)
    assert "for WhatsApp" in outcome.outcome and outcome.acknowledgement_id is None


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sid", "sender"), [("", SARA), ("SM" + "x" * 100, SARA), ("SM1", "whatsapp:"),
                                             ("SM1", "ClinicAD"), ("SM1", "+966 50 123")])
def test_a_malformed_reply_is_refused_and_nothing_is_written(world: World, sid: str, sender: str) -> None:
    with pytest.raises(ValueError):
        receive_reply(world.engine, InboundReply(sid, sender, f"whatsapp:{A_NUMBER}", "yes"),
                      settings=world.runtime.settings)
    assert _count(world.engine, InboundMessage) == 0
    assert appointment_status(world.engine, world.a) == AppointmentStatus.BOOKED


def test_hostile_text_is_stored_as_it_came_and_understood_as_nothing(world: World) -> None:
    body = "\u202eyes\u202c <b>نعم</b> {{ 7*7 }} \x00" + "ي" * 5000
    outcome = world.reply(A_NUMBER, body, payload="P" * 1000)
    assert (outcome.intent, outcome.for_front_desk) == (ReplyIntent.UNCLEAR, True)
    reply = _row(world.engine, InboundMessage, InboundMessage.id == outcome.reply_id)
    assert reply.body == body.replace("\x00", "") and len(reply.button_payload) == 256
    assert appointment_status(world.engine, world.a) == AppointmentStatus.BOOKED

