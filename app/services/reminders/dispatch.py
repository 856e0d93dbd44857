"""Sending the reminders whose time has come, once each, and previewing exactly what one would send.

``send_due`` is a step of the maintenance pass. It finds the clinics with reminders due (ids only,
the one cross-clinic read) and works in each clinic's own unit of work: the appointment is read
again (cancelled, over or started: the reminder is cancelled, never sent late), the reminder is
claimed with a conditional update (``pending -> sent``; two workers at once claim it once) and its
message is written through the messaging service (``messaging.send``: the row, the ``message.send``
audit event under the name "Reminders", the delivery job after the commit) with the idempotency
key ``reminder:<id>`` (``reminder:<id>@<new time>`` when the appointment moved after it was sent
and the planner planned it again), so nothing is sent twice however often the pass runs.

The message is the rule's template filled with *this* appointment's values (date, time, doctor,
department), in the patient's language. The rule's fallback channel: a patient with no contact for
the rule's channel, or who opted out of it, gets the rule's text on the fallback channel when
that one can reach them; a WhatsApp reminder that fails for good falls back to SMS through
``app.delivery.fallback`` when the rule (or its template) says SMS.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select, update

from app.delivery.fallback import reminder_key
from app.errors import AppError, NotFoundError, ValidationError
from app.services import messaging, tenants
from app.services.contacts import shown_contact
from app.services.message_content import choose_language, recipient_variables, render_body
from app.services.permissions import Actor, Permission, authorize
from app.services.queueing import use_queue
from app.services.reminders.planner import CLOSED_REASONS, RULE_OFF, STARTED
from db.enums import (
    OPEN_APPOINTMENT_STATUSES,
    AppointmentStatus,
    Channel,
    Language,
    MessageClass,
    ReminderStatus,
    Role,
)
from db.models import (
    Appointment,
    AppointmentReminder,
    MessageTemplate,
    MessageTemplateVersion,
    NotificationPreference,
    Patient,
    ReminderRule,
    Tenant,
)
from db.session import system_session, tenant_session
from db.tenancy import TenantSession
from db.types import utcnow

if TYPE_CHECKING:
    from app.delivery.runtime import Runtime

log = logging.getLogger(__name__)

ACTOR_NAME = "Reminders"  # how the audit log and the messages' timeline name the sender
BATCH = 100  # reminders per unit of work
MAX_PER_CLINIC = 5000  # per pass; the rest waits for the next pass (a minute later)
MAX_LATE = dt.timedelta(hours=1)  # a reminder found later than this (no worker ran) is skipped, never sent late
LATE = "not sent: it was found more than an hour after its time (no worker was running)"
@dataclass(frozen=True)
class Composed:
    """What one reminder sends now: the channel, the address, the template (or, on the fallback channel,
    the template's own text), the language and this appointment's values; or why it cannot go."""

    channel: Channel
    address: str
    template_code: str | None  # None: the text below, on the fallback channel
    text_en: str
    text_ar: str
    subject: str
    language: Language
    message_class: MessageClass
    variables: dict[str, Any]
    note: str = ""  # "Sent by SMS: no WhatsApp number."
    problem: str = ""  # why it cannot be sent ("" when it can)


@dataclass(frozen=True)
class ReminderPreview:
    """Exactly what a reminder would send now (nothing is written)."""

    reminder_id: uuid.UUID
    status: ReminderStatus
    due_at: dt.datetime
    channel: Channel
    recipient: str  # as the actor may see it
    language: Language
    subject: str
    body: str
    note: str
    problem: str


@dataclass(frozen=True)
class _Loaded:
    reminder: AppointmentReminder
    appointment: Appointment
    rule: ReminderRule
    patient: Patient | None
    preference: NotificationPreference | None


def _load(session: TenantSession, reminder_id: uuid.UUID) -> _Loaded | None:
    row = session.execute(
        select(AppointmentReminder, Appointment, ReminderRule, Patient, NotificationPreference)
        .join(Appointment, Appointment.id == AppointmentReminder.appointment_id)
        .join(ReminderRule, ReminderRule.id == AppointmentReminder.rule_id)
        .outerjoin(Patient, and_(Patient.id == Appointment.patient_id, Patient.deleted_at.is_(None)))
        .outerjoin(NotificationPreference, NotificationPreference.patient_id == Appointment.patient_id)
        .where(AppointmentReminder.id == reminder_id)).first()
    return _Loaded(*row) if row is not None else None


def _closed(loaded: _Loaded, now: dt.datetime) -> tuple[ReminderStatus, str] | None:
    """Why this reminder must not go at all now (the appointment or the rule changed since planning)."""
    appointment, rule = loaded.appointment, loaded.rule
    if AppointmentStatus(appointment.status) not in OPEN_APPOINTMENT_STATUSES:
        return ReminderStatus.CANCELLED, CLOSED_REASONS.get(AppointmentStatus(appointment.status), "closed")
    if appointment.starts_at <= now:
        return ReminderStatus.CANCELLED, STARTED
    if not rule.is_active or rule.deleted_at is not None:
        return ReminderStatus.CANCELLED, RULE_OFF
    if loaded.patient is None:
        return ReminderStatus.SKIPPED, "the patient's record was deleted"
    if now - loaded.reminder.due_at > MAX_LATE:
        return ReminderStatus.SKIPPED, LATE
    return None


def _address(patient: Patient, channel: Channel) -> str | None:
    return patient.email if channel == Channel.EMAIL else patient.phone_e164


def _unreachable(patient: Patient, preference: NotificationPreference | None, channel: Channel) -> str:
    """Why ``channel`` cannot reach the patient ("" when it can)."""
    if not _address(patient, channel):
        return f"no {'e-mail address' if channel == Channel.EMAIL else 'mobile number'} for {channel.label}"
    if preference is not None and not preference.allows(channel):
        return f"the patient opted out of {channel.label}"
    return ""


def _compose(session: TenantSession, tenant: Tenant, loaded: _Loaded) -> Composed:
    """What ``loaded``'s reminder sends now (the dispatch and the preview share it, so they agree)."""
    rule, patient, preference = loaded.rule, loaded.patient, loaded.preference
    assert patient is not None
    template = session.scalar(select(MessageTemplate).where(MessageTemplate.id == rule.template_id,
                                                            MessageTemplate.deleted_at.is_(None)))
    version = session.scalar(select(MessageTemplateVersion).where(
        MessageTemplateVersion.template_id == template.id,
        MessageTemplateVersion.version == template.current_version)) if template is not None else None
    channel = Channel(rule.channel)
    if template is None or version is None:
        return Composed(channel, "", None, "", "", "", Language.EN, MessageClass.SERVICE, {},
                        problem="the rule's template was deleted")
    why = _unreachable(patient, preference, channel)
    fallback = Channel(rule.fallback_channel) if rule.fallback_channel else None
    note = ""
    if why and fallback is not None and not _unreachable(patient, preference, fallback):
        note, channel = f"Sent by {fallback.label}: {why}.", fallback
    choice = choose_language(preference=preference, patient=patient, tenant=tenant,
                             has_arabic_body=bool(version.body_ar.strip()))
    arabic = choice.language == Language.AR
    subject = (version.subject_ar if arabic and version.subject_ar else version.subject_en)
    on_own_channel = channel == Channel(rule.channel)
    problem = "" if _address(patient, channel) else f"{why[:1].upper()}{why[1:]}."
    return Composed(
        channel=channel, address=_address(patient, channel) or "",
        template_code=template.code if on_own_channel else None, text_en=version.body_en, text_ar=version.body_ar,
        subject=subject, language=choice.language, message_class=MessageClass(template.message_class),
        variables=recipient_variables(tenant, patient, choice.language, loaded.appointment), note=note,
        problem=problem)


# -- sending -------------------------------------------------------------------------------------


def _set(session: TenantSession, reminder_id: uuid.UUID, *conditions: Any, **values: Any) -> bool:
    result = session.execute(update(AppointmentReminder).where(AppointmentReminder.id == reminder_id, *conditions)
                             .values(**values).execution_options(synchronize_session=False))
    return result.rowcount == 1


def _send_one(session: TenantSession, actor: Actor, tenant: Tenant, reminder_id: uuid.UUID, now: dt.datetime) -> bool:
    """Send one due reminder; True when its message was written here."""
    loaded = _load(session, reminder_id)
    pending = AppointmentReminder.status == ReminderStatus.PENDING
    if loaded is None or ReminderStatus(loaded.reminder.status) != ReminderStatus.PENDING:
        return False
    closed = _closed(loaded, now)
    if closed is not None:
        _set(session, reminder_id, pending, status=closed[0], status_reason=closed[1], planned_at=now)
        return False
    sent_before = loaded.reminder.sent_for_starts_at  # set: sent for an earlier time, planned again since
    key = reminder_key(reminder_id, loaded.appointment.starts_at if sent_before is not None else None)
    if not _set(session, reminder_id, pending, AppointmentReminder.due_at <= now, status=ReminderStatus.SENT,
                sent_at=now, sent_for_starts_at=loaded.appointment.starts_at):
        return False  # another worker took it, or the planner moved it meanwhile
    try:
        with session.begin_nested():
            composed = _compose(session, tenant, loaded)
            if composed.problem:
                raise ValidationError(composed.problem)
            result = messaging.send(
                session, actor, composed.channel, patient_id=loaded.appointment.patient_id,
                template_code=composed.template_code, variables=composed.variables,
                text=None if composed.template_code else composed.text_en,
                text_ar=None if composed.template_code else composed.text_ar,
                subject=composed.subject, language=composed.language, urgent=loaded.rule.urgent,
                idempotency_key=key, message_class=composed.message_class)
            _set(session, reminder_id, message_id=result.message_id, status_reason=composed.note[:200])
    except AppError as exc:
        log.info("reminder %s not sent: %s", reminder_id, exc)
        _set(session, reminder_id, AppointmentReminder.message_id.is_(None), status=ReminderStatus.SKIPPED,
             sent_at=None, sent_for_starts_at=sent_before, status_reason=str(exc)[:200])
        return False
    return True


def _send_in_clinic(runtime: Runtime, clinic: uuid.UUID, now: dt.datetime) -> int:
    actor = Actor.system(clinic, name=ACTOR_NAME, role=Role.ADMIN)
    sent = seen = 0
    after: tuple[dt.datetime, uuid.UUID] | None = None
    while seen < MAX_PER_CLINIC:
        with tenant_session(runtime.engine, clinic) as session:
            use_queue(session, runtime.queue)
            tenant = tenants.current(session)
            query = select(AppointmentReminder.id, AppointmentReminder.due_at).where(
                AppointmentReminder.status == ReminderStatus.PENDING, AppointmentReminder.due_at <= now)
            if after is not None:
                query = query.where(or_(AppointmentReminder.due_at > after[0], and_(
                    AppointmentReminder.due_at == after[0], AppointmentReminder.id > after[1])))
            batch = session.execute(query.order_by(AppointmentReminder.due_at, AppointmentReminder.id)
                                    .limit(BATCH)).all()
            for reminder_id, _due in batch:
                sent += _send_one(session, actor, tenant, reminder_id, now)
        if len(batch) < BATCH:
            break
        seen += len(batch)
        after = (batch[-1].due_at, batch[-1].id)
    return sent


def send_due(runtime: Runtime, now: dt.datetime | None = None) -> int:
    """Send every reminder due at ``now`` (the maintenance pass's step); how many messages were written.
    One clinic's failure is logged and the others still go."""
    now = now or runtime.clock()
    with system_session(runtime.engine) as session:  # which clinics have work: ids only
        clinics = list(session.scalars(
            select(AppointmentReminder.tenant_id).join(Tenant, Tenant.id == AppointmentReminder.tenant_id)
            .where(AppointmentReminder.status == ReminderStatus.PENDING, AppointmentReminder.due_at <= now,
                   Tenant.is_active.is_(True)).distinct()))
    sent = 0
    for clinic in clinics:
        try:
            sent += _send_in_clinic(runtime, clinic, now)
        except Exception:  # the next clinic still gets its reminders
            log.exception("sending the due reminders of clinic %s failed", clinic)
    return sent


# -- the preview ---------------------------------------------------------------------------------


def preview(session: TenantSession, actor: Actor, reminder_id: uuid.UUID, *,
            now: dt.datetime | None = None) -> ReminderPreview:
    """The exact subject and text the reminder would send now, to whom, and why it could not go."""
    authorize(session, actor, Permission.MANAGE_REMINDERS)
    now = now or utcnow()
    loaded = _load(session, reminder_id)
    if loaded is None:
        raise NotFoundError("That reminder does not exist in your clinic.")
    tenant = tenants.current(session)
    reminder = loaded.reminder
    closed = _closed(loaded, now)
    if loaded.patient is None:
        return ReminderPreview(reminder.id, ReminderStatus(reminder.status), reminder.due_at,
                               Channel(loaded.rule.channel), "", Language.EN, "", "", "",
                               "It will not be sent: the patient's record was deleted.")
    composed = _compose(session, tenant, loaded)
    problem = composed.problem or (f"It will not be sent: {closed[1]}." if closed else "")
    body = subject = ""
    if not composed.problem:
        source = composed.text_ar if composed.language == Language.AR else composed.text_en
        try:
            body = render_body(source, composed.variables, composed.channel)
            subject_source = composed.subject
            subject = (render_body(subject_source, composed.variables, Channel.EMAIL) if subject_source.strip()
                       else tenant.name) if composed.channel == Channel.EMAIL else ""
        except ValidationError as exc:
            problem = str(exc)
    return ReminderPreview(reminder.id, ReminderStatus(reminder.status), reminder.due_at, composed.channel,
                           shown_contact(actor, composed.address) or "", composed.language, subject, body,
                           composed.note, problem)
