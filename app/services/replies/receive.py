"""A patient's reply received: found its clinic, stored on the patient's thread, acted on when clear.

``receive_reply(engine, reply)`` is what the Twilio inbound webhook calls. In order:

1. **The clinic** is the one the ``To`` belongs to (``replies.clinic``). When none can be told the
   reply is kept nowhere, logged without the patient's number or text, and the outcome says so;
   opt-out keywords still apply to every clinic sharing the sender.
2. **Once.** Everything about one reply happens in one unit of work of that clinic. The reply's row
   is written first; the same ``MessageSid`` again hits the unique (clinic, provider id) constraint,
   the whole unit is undone and the outcome is ``duplicate``: stored once, acted on once.
3. **The thread.** One conversation per number in the clinic (created at the first reply; its
   patient is the clinic's one patient with that number, or none: an unknown number, or several
   patients sharing one, stays in the inbox without a patient).
4. **Acting.** An appointment *awaits an answer* from the number when a reminder of it was sent to
   that number and it is still open and to come. A clear confirm or cancel (``intents``) of the one
   such appointment changes its status (``appointments.records.set_status``, source "reply",
   audited, its pending reminders re-planned) and sends the rule's acknowledgement
   (``replies.acknowledge``). STOP / START opt the number out of / into that channel as before.
   CANCEL / الغاء / YES answer the awaiting appointment when there is one; otherwise they keep
   their opt-out / opt-in meaning, and the stored outcome says which reading was taken. When that
   opt-out or opt-in changes nothing (YES from a number that is opted in), the word is an answer
   after all: with no appointment awaiting it, the front desk reads it.
5. **Unread or not.** A reply that was acted on is stored and visible in the thread but not unread,
   and does not reopen the thread (a new thread it starts is created done). Everything else (a
   reschedule request, anything unclear, a confirm or cancel with no appointment or several
   awaiting an answer, a change the appointment refused) is unread for the front desk: the thread
   (re)opens, its unread count goes up, ``waiting_since`` is set if it was empty, and the stored
   outcome says why a person is needed.

WhatsApp's 24-hour window (``Patient.whatsapp_last_inbound_at``) is recorded for every WhatsApp
reply, before the acknowledgement is written.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from app.config import Settings, get_settings
from app.delivery.inbound import apply_keyword, record_whatsapp_inbound
from app.delivery.optouts import patients_with_phone
from app.delivery.queue import JobQueue
from app.errors import AppError
from app.services.appointments import records
from app.services.permissions import Actor
from app.services.queueing import use_queue
from app.services.replies.acknowledge import acknowledge
from app.services.replies.clinic import bare, find_clinic
from app.services.replies.intents import STOP_WORDS, classify, normalise
from db.enums import OPEN_APPOINTMENT_STATUSES, AppointmentStatus, Channel, ConversationState, ReplyIntent, Role
from db.models import Appointment, AppointmentReminder, Conversation, InboundMessage, Message, ReminderRule
from db.session import tenant_session
from db.tenancy import TenantSession
from db.types import StrEnum, utcnow

log = logging.getLogger(__name__)

REPLY_ACTOR = "patient reply"  # how the audit log names the changes a reply makes
_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
_SID = re.compile(r"^[A-Za-z0-9]{2,64}$")
MAX_BODY_CHARS = 10_000  # Twilio's bodies are at most 1,600 (SMS) / 4,096 (WhatsApp) characters

# What was done with a reply (stored on it; the inbox and the results read these beginnings).
CONFIRMED = "appointment confirmed"
CANCELLED = "appointment cancelled"
ALREADY_CONFIRMED = "appointment already confirmed"
OPTED_OUT = "opted out of"
OPTED_IN = "opted back in to"
FOR_FRONT_DESK = "for the front desk:"


class Received(StrEnum):
    """What became of one webhook delivery."""

    STORED = "stored"  # a new reply on the clinic's thread
    DUPLICATE = "duplicate"  # the same MessageSid again: nothing more was done
    UNROUTED = "unrouted"  # no clinic can be told: kept nowhere (logged)


@dataclass(frozen=True)
class InboundReply:
    """One inbound SMS or WhatsApp message as Twilio posts it (addresses may carry ``whatsapp:``)."""

    provider_message_id: str
    from_address: str
    to_address: str
    body: str = ""
    button_payload: str = ""
    button_text: str = ""
    channel: Channel = Channel.SMS
    messaging_service_sid: str = ""

    @classmethod
    def from_twilio(cls, form: Mapping[str, str]) -> InboundReply:
        """The reply in Twilio's form fields; ValueError with the reason when it cannot be one."""
        sender = form.get("From", "")
        reply = cls(
            provider_message_id=(form.get("MessageSid") or form.get("SmsSid") or "").strip(),
            from_address=sender, to_address=form.get("To", ""), body=form.get("Body", ""),
            button_payload=form.get("ButtonPayload", ""), button_text=form.get("ButtonText", ""),
            channel=Channel.WHATSAPP if sender.strip().startswith("whatsapp:") else Channel.SMS,
            messaging_service_sid=form.get("MessagingServiceSid", ""))
        reply.check()
        return reply

    @property
    def phone(self) -> str:
        return bare(self.from_address)

    def check(self) -> None:
        if not _SID.match(self.provider_message_id):
            raise ValueError("the message has no MessageSid (or not one of Twilio's)")
        if not _PHONE.match(self.phone):
            raise ValueError("the sender is not a phone number in international form")


@dataclass(frozen=True)
class ReplyOutcome:
    received: Received
    tenant_id: uuid.UUID | None = None
    reply_id: uuid.UUID | None = None
    intent: ReplyIntent | None = None
    outcome: str = ""  # as stored on the reply (or why it was kept nowhere)
    for_front_desk: bool = False
    appointment_id: uuid.UUID | None = None
    acknowledgement_id: uuid.UUID | None = None


class _Duplicate(Exception):
    """The reply is already stored: undo this unit of work."""


@dataclass(frozen=True)
class _Awaiting:
    appointment_id: uuid.UUID
    patient_id: uuid.UUID
    rule_id: uuid.UUID
    message_id: uuid.UUID  # the latest reminder of it sent to the number


@dataclass(frozen=True)
class _Done:
    outcome: str
    for_front_desk: bool = False
    acknowledgement_id: uuid.UUID | None = None
    intent: ReplyIntent | None = None  # when acting read the reply otherwise than ``classify`` first did


def receive_reply(engine: Engine, reply: InboundReply, *, settings: Settings | None = None,
                  queue: JobQueue | None = None, now: dt.datetime | None = None) -> ReplyOutcome:
    """Store ``reply`` in its clinic and act on it (see the module docstring). A reply no clinic can
    be told for is an outcome, not an error; a malformed one (no MessageSid, a sender that is not a
    phone number) raises ValueError. ``queue``: where the acknowledgement's delivery job goes (the
    process's when None)."""
    reply.check()
    settings = settings or get_settings()
    now = now or utcnow()
    match = find_clinic(engine, settings, reply.channel, reply.to_address, reply.phone, reply.messaging_service_sid)
    if match.tenant_id is None:
        intent = classify(reply.body, reply.button_payload, awaiting_answer=False)
        _sender_facts(engine, match.sharing, reply, intent, now)
        log.warning("inbound %s to %s kept nowhere: %s", reply.provider_message_id, bare(reply.to_address),
                    match.how)
        return ReplyOutcome(Received.UNROUTED, intent=intent, outcome=f"kept nowhere: {match.how}")
    try:
        with tenant_session(engine, match.tenant_id) as session:
            if queue is not None:
                use_queue(session, queue)
            outcome = _store_and_act(session, reply, now)
    except _Duplicate:
        return ReplyOutcome(Received.DUPLICATE, tenant_id=match.tenant_id, outcome="already received")
    others = [clinic for clinic in match.sharing if clinic != match.tenant_id]
    _sender_facts(engine, others, reply, outcome.intent, now)
    return outcome


def _sender_facts(engine: Engine, clinics: list[uuid.UUID] | tuple[uuid.UUID, ...], reply: InboundReply,
                  intent: ReplyIntent | None, now: dt.datetime) -> None:
    """What holds for the whole sender in each clinic sharing it: an opt-out or opt-in keyword (the
    patient opted out of the number they see, whichever clinic used it; on SMS Twilio itself then
    refuses that sender to them, error 21610) and WhatsApp's window (it belongs to the number)."""
    for clinic in clinics:
        with tenant_session(engine, clinic) as session:
            if reply.channel == Channel.WHATSAPP:
                record_whatsapp_inbound(session, reply.phone, now)
            if intent in (ReplyIntent.STOP, ReplyIntent.START):
                apply_keyword(session, reply.phone, reply.channel, opted_in=intent == ReplyIntent.START)


# -- in the clinic ----------------------------------------------------------------------------------


def _conversation(session: TenantSession, phone: str, now: dt.datetime) -> tuple[Conversation, bool]:
    """The clinic's thread for ``phone``, locked for this reply, and whether it is new (a race to
    create it is settled by the unique (clinic, address) constraint). Its patient is the clinic's one
    patient with that number; none while no patient, or several, have it."""
    query = select(Conversation).where(Conversation.address == phone).with_for_update()
    thread = session.scalar(query)
    if thread is not None and thread.patient_id is not None:
        return thread, False
    patients = patients_with_phone(session, phone, session.tenant_id)
    patient_id = patients[0].id if len(patients) == 1 else None
    if thread is not None:
        thread.patient_id = patient_id
        return thread, False
    thread = Conversation(address=phone, patient_id=patient_id, state=ConversationState.OPEN, unread_count=0,
                          created_at=now, updated_at=now)
    try:
        with session.begin_nested():
            session.add(thread)
            session.flush()
    except IntegrityError:
        found = session.scalar(query.execution_options(populate_existing=True))
        if found is None:
            raise
        return found, False
    return thread, True


def _awaiting(session: TenantSession, phone: str, now: dt.datetime) -> list[_Awaiting]:
    """The appointments awaiting an answer from ``phone``, each with its latest reminder sent there.

    Only a reminder that named the appointment's present time: after a reschedule, a "yes" to the
    reminder of the old time would confirm a time the patient was never told (it goes to the front desk)."""
    rows = session.execute(
        select(Appointment.id, Appointment.patient_id, AppointmentReminder.rule_id, Message.id)
        .join(AppointmentReminder, AppointmentReminder.appointment_id == Appointment.id)
        .join(Message, Message.id == AppointmentReminder.message_id)
        .where(Message.recipient == phone, Appointment.status.in_(OPEN_APPOINTMENT_STATUSES),
               Appointment.starts_at > now, AppointmentReminder.sent_for_starts_at == Appointment.starts_at)
        .order_by(Message.created_at.desc(), Message.id.desc()))
    latest: dict[uuid.UUID, _Awaiting] = {}
    for row in rows:
        latest.setdefault(row[0], _Awaiting(*row))
    return list(latest.values())


def _last_message_to(session: TenantSession, phone: str, channel: Channel) -> uuid.UUID | None:
    return session.scalar(select(Message.id).where(Message.recipient == phone, Message.channel == channel)
                          .order_by(Message.created_at.desc()).limit(1))


def _store_and_act(session: TenantSession, reply: InboundReply, now: dt.datetime) -> ReplyOutcome:
    phone = reply.phone
    thread, new_thread = _conversation(session, phone, now)
    awaiting = _awaiting(session, phone, now)
    intent = classify(reply.body, reply.button_payload, awaiting_answer=bool(awaiting))
    about = awaiting[0] if len(awaiting) == 1 else None  # the appointment the reply is about, when one
    inbound = InboundMessage(
        conversation_id=thread.id, channel=reply.channel, from_address=phone,
        to_address=_text(bare(reply.to_address), 64), body=_text(reply.body, MAX_BODY_CHARS),
        button_payload=_text(reply.button_payload, 256), button_text=_text(reply.button_text, 256),
        provider_message_id=reply.provider_message_id, received_at=now,
        intent=intent, patient_id=about.patient_id if about else thread.patient_id,
        appointment_id=about.appointment_id if about else None,
        in_reply_to_id=about.message_id if about else _last_message_to(session, phone, reply.channel))
    try:
        with session.begin_nested():
            session.add(inbound)
            session.flush()
    except IntegrityError:
        raise _Duplicate from None
    if reply.channel == Channel.WHATSAPP:
        record_whatsapp_inbound(session, phone, now)
    result = _act(session, reply, inbound, intent, awaiting, now)
    intent = result.intent or intent
    inbound.outcome = result.outcome[:200]
    _file(thread, inbound, intent, now, unread=result.for_front_desk, new_thread=new_thread)
    return ReplyOutcome(Received.STORED, session.tenant_id, inbound.id, intent, inbound.outcome,
                        result.for_front_desk, inbound.appointment_id, result.acknowledgement_id)


def _text(value: str, limit: int) -> str:
    """Provider text as it can be stored (no NUL, within the column)."""
    return (value or "").replace("\x00", "")[:limit]


def _act(session: TenantSession, reply: InboundReply, inbound: InboundMessage, intent: ReplyIntent,
         awaiting: list[_Awaiting], now: dt.datetime) -> _Done:
    if intent in (ReplyIntent.STOP, ReplyIntent.START):
        opted_in = intent == ReplyIntent.START
        if apply_keyword(session, reply.phone, reply.channel, opted_in=opted_in):
            outcome = f"{OPTED_IN if opted_in else OPTED_OUT} {reply.channel.label}"
            if not opted_in and _appointment_word(reply.body):
                outcome += " (no appointment awaits an answer from this number, so this word is an opt-out)"
            return _Done(outcome)
        answer = classify(reply.body, reply.button_payload, awaiting_answer=True)
        if answer == intent:  # STOP, START or their Arabic words: nothing to change
            return _Done(f"already {'opted in to' if opted_in else 'opted out of'} {reply.channel.label}")
        # YES from a number already opted in, CANCEL from one already opted out: an answer, not a
        # keyword (with no appointment awaiting it, a person reads it)
        inbound.intent = answer
        return replace(_act(session, reply, inbound, answer, awaiting, now), intent=answer)
    if intent == ReplyIntent.RESCHEDULE:
        return _Done(f"{FOR_FRONT_DESK} the patient asks for another time", True)
    if intent not in (ReplyIntent.CONFIRM, ReplyIntent.CANCEL):
        return _Done(f"{FOR_FRONT_DESK} not clearly understood", True)
    if not awaiting:
        return _Done(f"{FOR_FRONT_DESK} no appointment awaits an answer from this number", True)
    if len(awaiting) > 1:
        return _Done(f"{FOR_FRONT_DESK} {len(awaiting)} appointments await an answer from this number; "
                     "which one is meant cannot be told", True)
    return _answer(session, reply, inbound, intent, awaiting[0], now)


def _answer(session: TenantSession, reply: InboundReply, inbound: InboundMessage, intent: ReplyIntent,
            awaiting: _Awaiting, now: dt.datetime) -> _Done:
    """Confirm or cancel the one appointment awaiting an answer, then acknowledge it."""
    actor = Actor.system(_clinic(session), name=REPLY_ACTOR, role=Role.FRONT_DESK)
    status = AppointmentStatus.CONFIRMED if intent == ReplyIntent.CONFIRM else AppointmentStatus.CANCELLED
    try:
        with session.begin_nested():
            changed = records.set_status(session, actor, awaiting.appointment_id, status, source="reply", now=now)
    except AppError as exc:
        return _Done(f"{FOR_FRONT_DESK} the appointment could not be changed: {exc}", True)
    if not changed:
        return _Done(ALREADY_CONFIRMED)
    outcome = CONFIRMED if intent == ReplyIntent.CONFIRM else CANCELLED
    if intent == ReplyIntent.CANCEL and not reply.button_payload.strip() and _appointment_word(reply.body):
        outcome += " (this word cancels the appointment awaiting an answer; it is not an opt-out)"
    appointment = session.get(Appointment, awaiting.appointment_id, populate_existing=True)
    assert appointment is not None  # set_status just changed it, in this unit of work
    ack = acknowledge(session, actor, reply_id=inbound.id, intent=intent, channel=reply.channel, phone=reply.phone,
                      appointment=appointment, rule=session.get(ReminderRule, awaiting.rule_id))
    if ack.message_id is None:
        outcome += f"; no acknowledgement: {ack.reason}"
    return _Done(outcome, acknowledgement_id=ack.message_id)


def _clinic(session: TenantSession) -> uuid.UUID:
    clinic = session.tenant_id
    assert clinic is not None  # replies are handled in one clinic's unit of work
    return clinic


def _appointment_word(body: str) -> bool:
    """The message is an opt-out keyword that also answers a reminder (CANCEL, الغاء)."""
    return normalise(body) in STOP_WORDS and classify(body, awaiting_answer=True) == ReplyIntent.CANCEL


def _file(thread: Conversation, inbound: InboundMessage, intent: ReplyIntent, now: dt.datetime, *,
          unread: bool, new_thread: bool) -> None:
    """The thread after this reply: unread and (re)opened when a person must read it."""
    thread.last_inbound_at = now
    thread.last_intent = intent
    thread.updated_at = now
    if unread:
        thread.unread_count = (thread.unread_count or 0) + 1
        thread.state = ConversationState.OPEN
        thread.done_at = thread.done_by_id = None
        thread.waiting_since = thread.waiting_since or now
    else:
        inbound.read_at = now
        if new_thread:  # nothing for the front desk: the new thread starts done
            thread.state, thread.done_at = ConversationState.DONE, now
