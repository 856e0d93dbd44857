"""What a message says: language choice, template variables from patient data, rendering."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from app.bidi import keep_ltr_order
from app.errors import ValidationError
from app.segments import MAX_BODY_CHARS
from app.templating import render_template
from db.enums import OPEN_APPOINTMENT_STATUSES, Channel, Language
from db.models import Appointment, NotificationPreference, Patient, Tenant
from db.tenancy import TenantSession
from db.types import utcnow

# The documented variables (docs/template-variables.md). Sends may add custom ones.
STANDARD_VARIABLES: dict[str, tuple[str, str]] = {
    "patient_name": ("The patient's name in the message language", "Sara Al-Qahtani / سارة القحطاني"),
    "patient_first_name": ("The patient's first name in the message language", "Sara / سارة"),
    "clinic_name": ("Your clinic's name in the message language", "Al Noor Clinic / عيادة النور"),
    "clinic_phone": ("Your clinic's phone number", "+966112345678"),
    "appointment_date": ("Date of the patient's next appointment (clinic time)", "2026-12-01"),
    "appointment_time": ("Time of the patient's next appointment (clinic time)", "09:30"),
    "doctor_name": ("The doctor of the next appointment, in the message language", "Dr. Ahmed / د. أحمد"),
    "department": ("The department of the next appointment", "Pediatrics"),
}

CHANNEL_BODY_LIMITS = {Channel.SMS: MAX_BODY_CHARS, Channel.WHATSAPP: MAX_BODY_CHARS, Channel.EMAIL: 20_000}


@dataclass(frozen=True)
class LanguageChoice:
    language: Language
    fell_back_to_english: bool = False


def preferred_language(preference: Language | str | None, record: Language | str | None) -> Language | None:
    """The patient's language for messages: the notification preference's when set, else the patient
    record's (``choose_language`` and the Patients page both read it here)."""
    chosen = preference or record
    return Language(chosen) if chosen else None


def choose_language(
    *, preference: NotificationPreference | None, patient: Patient | None, tenant: Tenant,
    has_arabic_body: bool, requested: Language | None = None,
) -> LanguageChoice:
    """Preferred language (preference, else patient), else the clinic default, else English.

    An empty Arabic body falls back to English (and says so).
    """
    wanted = requested or preferred_language(preference.language if preference else None,
                                             patient.language if patient else None) or Language(
        tenant.default_language) or Language.EN
    wanted = Language(wanted)
    if wanted == Language.AR and not has_arabic_body:
        return LanguageChoice(Language.EN, fell_back_to_english=True)
    return LanguageChoice(wanted)


def patient_variables(session: TenantSession, tenant: Tenant, patient: Patient | None,
                      language: Language, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Standard variables for one recipient (those that have a value)."""
    appointment = None
    if patient is not None:
        appointment = session.scalar(
            select(Appointment).where(
                Appointment.patient_id == patient.id, Appointment.starts_at >= (now or utcnow()),
                Appointment.status.in_(OPEN_APPOINTMENT_STATUSES),
            ).order_by(Appointment.starts_at).limit(1)
        )
    return recipient_variables(tenant, patient, language, appointment)


def recipient_variables(tenant: Tenant, patient: Patient | None, language: Language,
                        appointment: Appointment | None, *, name: str = "") -> dict[str, Any]:
    """Standard variables from rows already read: the clinic, the patient (or a list ``name``), the
    patient's next appointment."""
    settings = tenant.settings or {}
    values: dict[str, Any] = {"clinic_name": tenant.name_in(language), "clinic_phone": settings.get("phone", "")}
    if patient is not None:
        name = (patient.name_ar if language == Language.AR and patient.name_ar else patient.name_en) or (
            patient.name_ar)
    if patient is None and not name:
        return values
    values["patient_name"] = name
    values["patient_first_name"] = name.split(" ")[0] if name else ""
    if appointment is not None:
        local = appointment.starts_at.astimezone(zoneinfo.ZoneInfo(tenant.timezone))
        values["appointment_date"] = local.strftime("%Y-%m-%d")
        values["appointment_time"] = local.strftime("%H:%M")
        doctor = appointment.doctor_name_ar if language == Language.AR and appointment.doctor_name_ar else (
            appointment.doctor_name_en)
        values["doctor_name"] = doctor
        values["department"] = appointment.department
    return values


def render_body(source: str, values: dict[str, Any], channel: Channel) -> str:
    """Render and check the channel's length limit; errors are ValidationErrors naming the problem."""
    body = render_template(source, values) if ("{" in source or "%" in source) else keep_ltr_order(source.strip())
    if not body:
        raise ValidationError("The message is empty.", field="body")
    limit = CHANNEL_BODY_LIMITS[channel]
    if len(body) > limit:
        raise ValidationError(
            f"The message is {len(body):,} characters; {channel.label} allows at most {limit:,}.", field="body"
        )
    return body
