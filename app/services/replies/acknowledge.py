"""The answer a patient gets when their reply confirmed or cancelled an appointment: the reminder rule's
acknowledgement template, on the channel they wrote on, once per reply.

Sent through ``messaging.send`` (the row, its audit event, the delivery job after the commit) with
the idempotency key ``ack:<reply id>``. On WhatsApp the patient's reply has just opened the 24-hour
window, so the rendered text goes out. The appointment's own date, time, doctor and department
fill the template (after a cancellation it is no longer the patient's *next* appointment). An
acknowledgement that cannot be sent never undoes the appointment's change: the reason is returned
and stored with the reply.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from app.errors import AppError
from app.services import messaging, tenants
from app.services.message_content import choose_language, recipient_variables
from app.services.permissions import Actor
from db.enums import Channel, ReplyIntent
from db.models import (
    Appointment,
    MessageTemplate,
    MessageTemplateVersion,
    NotificationPreference,
    Patient,
    ReminderRule,
)
from db.tenancy import TenantSession

KEY_PREFIX = "ack:"
APPOINTMENT_VARIABLES = ("appointment_date", "appointment_time", "doctor_name", "department")


@dataclass(frozen=True)
class Acknowledgement:
    message_id: uuid.UUID | None  # None: not sent (``reason`` says why)
    reason: str = ""


def _template(session: TenantSession, rule: ReminderRule | None, intent: ReplyIntent
              ) -> tuple[MessageTemplate | None, str]:
    if rule is None:
        return None, "no reminder rule to take the acknowledgement from"
    template_id = rule.confirm_ack_template_id if intent == ReplyIntent.CONFIRM else rule.cancel_ack_template_id
    if template_id is None:
        return None, f"the reminder rule '{rule.name}' has no acknowledgement for this"
    template = session.scalar(select(MessageTemplate).where(
        MessageTemplate.id == template_id, MessageTemplate.deleted_at.is_(None)))
    if template is None or not template.is_active:
        return None, "the acknowledgement template is deleted or inactive"
    return template, ""


def acknowledge(session: TenantSession, actor: Actor, *, reply_id: uuid.UUID, intent: ReplyIntent,
                channel: Channel, phone: str, appointment: Appointment, rule: ReminderRule | None
                ) -> Acknowledgement:
    """Send the rule's acknowledgement of ``intent`` (confirm or cancel) for the reply ``reply_id``."""
    template, reason = _template(session, rule, intent)
    if template is None:
        return Acknowledgement(None, reason)
    if Channel(template.channel) != Channel(channel):
        return Acknowledgement(None, f"the acknowledgement template is for {Channel(template.channel).label}; "
                                     f"the patient wrote on {Channel(channel).label}")
    version = session.scalar(select(MessageTemplateVersion).where(
        MessageTemplateVersion.template_id == template.id, MessageTemplateVersion.version == template.current_version))
    patient = session.get(Patient, appointment.patient_id)
    preference = session.scalar(select(NotificationPreference).where(
        NotificationPreference.patient_id == appointment.patient_id))
    tenant = tenants.current(session)
    language = choose_language(preference=preference, patient=patient, tenant=tenant,
                               has_arabic_body=bool(version and version.body_ar.strip())).language
    values = recipient_variables(tenant, patient, language, appointment)
    try:
        with session.begin_nested():
            sent = messaging.send(
                session, actor, channel, patient_id=appointment.patient_id, recipient=phone,
                template_code=template.code, language=language,
                variables={k: values[k] for k in APPOINTMENT_VARIABLES if values.get(k)},
                idempotency_key=f"{KEY_PREFIX}{reply_id}")
    except AppError as exc:
        return Acknowledgement(None, f"the acknowledgement could not be sent: {exc}")
    return Acknowledgement(sent.message_id)
