"""Channel fallback: a WhatsApp message that failed for good goes out again by SMS, once.

Only when its template says so (``fallback_channel = sms``) or, for an appointment reminder, its
reminder rule does (``ReminderRule.fallback_channel = sms``), the patient has a phone number and
SMS is allowed for them (opt-outs, inactive records and consent rules apply as for any SMS), and
the failure was not the patient blocking us. The SMS is a new message linked to the original
(``retry_of_id``) with the idempotency key ``fallback:<original id>``, so a failure reported
twice (at send time and again by a callback) creates one SMS. Both messages get a timeline event.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.delivery.dispatch import assign_jobs, enqueue
from app.delivery.lifecycle import log_event
from app.delivery.policy import decide
from app.delivery.runtime import Runtime
from app.providers.error_codes import FailureKind, explain
from db.enums import FAILED_STATUSES, Channel, MessageClass, MessageStatus
from db.models import (
    AppointmentReminder,
    Message,
    MessageTemplate,
    NotificationPreference,
    Patient,
    ReminderRule,
    Tenant,
)
from db.session import clinic_of, tenant_session

FALLBACK_STATUSES = FAILED_STATUSES  # a failed outcome (db.enums) may fall back to SMS
REMINDER_KEY_PREFIX = "reminder:"  # app.services.reminders.dispatch keys each reminder's message so


def fallback_key(message_id: uuid.UUID) -> str:
    return f"fallback:{message_id}"


def may_fall_back(channel: Channel | str, template: MessageTemplate | None, error_code: str | None) -> bool:
    """A cheap first check (no database): WhatsApp, from a template, not an opt-out. Whether SMS is
    wanted (the template's fallback, or the reminder rule's) is read by ``fall_back_to_sms``."""
    info = explain(error_code)
    return (Channel(channel) == Channel.WHATSAPP and template is not None
            and not (info is not None and info.kind == FailureKind.OPT_OUT))


def reminder_key(reminder_id: uuid.UUID, moved_to: dt.datetime | None = None) -> str:
    """The idempotency key of an appointment reminder's message: one per reminder, and one more per
    time the appointment moved to after it was sent (``moved_to``)."""
    key = f"{REMINDER_KEY_PREFIX}{reminder_id}"
    return f"{key}@{moved_to.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}" if moved_to is not None else key


def _rule_fallback(session: Session, message: Message) -> Channel | None:
    """The fallback channel of the reminder rule that sent ``message`` (None: not a reminder)."""
    key = message.idempotency_key or ""
    if not key.startswith(REMINDER_KEY_PREFIX):
        return None
    try:
        reminder_id = uuid.UUID(key.removeprefix(REMINDER_KEY_PREFIX).partition("@")[0])
    except ValueError:
        return None
    return session.scalar(select(ReminderRule.fallback_channel)
                          .join(AppointmentReminder, AppointmentReminder.rule_id == ReminderRule.id)
                          .where(AppointmentReminder.id == reminder_id))


def calls_for_fallback(status: MessageStatus, error_code: str | None) -> bool:
    """A provider's report that may send the WhatsApp message's SMS fallback (WhatsApp errors are 63xxx)."""
    return status in FALLBACK_STATUSES and (error_code or "").startswith("63")


def fall_back_to_sms(runtime: Runtime, message_id: uuid.UUID, error_code: str | None, *,
                     clinic: uuid.UUID | None = None) -> uuid.UUID | None:
    """Create and queue the SMS for a failed WhatsApp message; its id, or None when none applies."""
    now = runtime.clock()
    clinic = clinic or clinic_of(runtime.engine, Message, message_id)  # the sender knows it; a callback asks
    if clinic is None:
        return None
    with tenant_session(runtime.engine, clinic) as session:
        row = session.execute(
            select(Message, MessageTemplate, Tenant, Patient, NotificationPreference)
            .join(Tenant, Tenant.id == Message.tenant_id)
            .join(MessageTemplate, MessageTemplate.id == Message.template_id)
            .outerjoin(Patient, Patient.id == Message.patient_id)
            .outerjoin(NotificationPreference, NotificationPreference.patient_id == Message.patient_id)
            .where(Message.id == message_id, Message.status.in_(FALLBACK_STATUSES))
        ).first()
        if row is None:
            return None
        original, template, tenant, patient, preference = row
        if not may_fall_back(original.channel, template, error_code) or not (
                template.fallback_channel == Channel.SMS or _rule_fallback(session, original) == Channel.SMS):
            return None
        key = fallback_key(original.id)
        if session.scalar(select(Message.id).where(Message.tenant_id == original.tenant_id,
                                                   Message.idempotency_key == key)) is not None:
            return None
        decision = decide(channel=Channel.SMS, patient=patient, preference=preference, urgent=original.urgent,
                          message_class=MessageClass(original.message_class), timezone=tenant.timezone, now=now,
                          promotional_window=tenant.promotional_window)
        if patient is None or not patient.phone_e164 or not (decision.send or decision.defer_until):
            why = decision.suppress_reason or "the patient has no phone number"
            log_event(session, original.id, original.tenant_id, "fallback_skipped", at=now,
                      detail=f"No SMS fallback: {why}")
            return None
        sms = Message(
            tenant_id=original.tenant_id, patient_id=original.patient_id, bulk_job_id=original.bulk_job_id,
            template_id=original.template_id, template_version_id=original.template_version_id,
            retry_of_id=original.id, channel=Channel.SMS, message_class=original.message_class,
            recipient=patient.phone_e164, language=original.language, body=original.body,
            variables=original.variables, status=MessageStatus.QUEUED, urgent=original.urgent,
            is_test=original.is_test, idempotency_key=key, queued_at=now,
        )
        try:
            with session.begin_nested():
                session.add(sms)
                session.flush()
        except IntegrityError:  # another worker or the callback service made it first
            return None
        log_event(session, original.id, original.tenant_id, "fallback", at=now,
                  detail=f"WhatsApp failed for good (error {error_code}); sent again by SMS as message {sms.id}")
        log_event(session, sms.id, sms.tenant_id, "created", to_status=MessageStatus.QUEUED, at=now,
                  detail=f"SMS fallback for WhatsApp message {original.id}")
        batches = assign_jobs(session, [sms.id], now)
        new_id = sms.id
    enqueue(runtime.queue, batches)
    return new_id
