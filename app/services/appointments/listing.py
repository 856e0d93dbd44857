"""What the Appointments page reads: the clinic's appointments in a date range, page by page.

Paged by keyset on (start, id), never by offset, so a late page of a busy month costs what the
first does. Days are the clinic's (its time zone). Each row carries its reminders' state in words
from the reminders' own read (``app.services.reminders.schedule.reminders_of``) when that is there.
"""

from __future__ import annotations

import datetime as dt
import importlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select

from app.errors import ValidationError
from app.search_text import clean_search, contains
from app.services import tenants
from app.services.audit import local_days
from app.services.permissions import Actor, Permission, authorize
from db.enums import AppointmentStatus, ReminderStatus
from db.models import Appointment, Patient
from db.tenancy import TenantSession

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_DAYS = 366


@dataclass(frozen=True)
class AppointmentFilter:
    """Which appointments: clinic days (inclusive), statuses (empty: all), patient name or MRN."""

    first_day: dt.date
    last_day: dt.date
    statuses: tuple[AppointmentStatus, ...] = ()
    text: str = ""


@dataclass(frozen=True)
class AppointmentCursor:
    starts_at: dt.datetime
    id: uuid.UUID


@dataclass(frozen=True)
class AppointmentRow:
    id: uuid.UUID
    starts_at: dt.datetime  # UTC
    duration_minutes: int
    patient_name_en: str
    patient_name_ar: str
    mrn: str
    appointment_type: str
    department: str
    doctor_name_en: str
    doctor_name_ar: str
    location: str
    status: AppointmentStatus
    source_id: str
    reminders: str  # "" when the reminders' read is not there


@dataclass(frozen=True)
class AppointmentPage:
    rows: list[AppointmentRow]
    next_cursor: AppointmentCursor | None  # None on the last page
    timezone: str


def _check(flt: AppointmentFilter, limit: int) -> str:
    if flt.first_day > flt.last_day:
        raise ValidationError("The first day is after the last day.", field="first_day")
    if (flt.last_day - flt.first_day).days >= MAX_DAYS:
        raise ValidationError(f"Choose at most {MAX_DAYS} days.", field="last_day")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(f"Show between 1 and {MAX_PAGE_SIZE} appointments per page.", field="limit")
    return clean_search(flt.text, label="The patient search")


def appointments(session: TenantSession, actor: Actor, flt: AppointmentFilter, *,
                 cursor: AppointmentCursor | None = None, limit: int = PAGE_SIZE) -> AppointmentPage:
    """One page of the clinic's appointments in ``flt``, earliest first; pass ``next_cursor`` for the next."""
    authorize(session, actor, Permission.VIEW_APPOINTMENTS)
    text = _check(flt, limit)
    zone = tenants.current(session).timezone
    since, until = local_days((flt.first_day, flt.last_day), zone)
    query = (select(Appointment, Patient.name_en, Patient.name_ar, Patient.mrn)
             .join(Patient, Patient.id == Appointment.patient_id)
             .where(Appointment.starts_at >= since, Appointment.starts_at <= until))
    if flt.statuses:
        query = query.where(Appointment.status.in_(list(flt.statuses)))
    if text:
        query = query.where(or_(Patient.mrn == text, contains(Patient.name_en, text), contains(Patient.name_ar, text)))
    if cursor is not None:
        query = query.where(or_(Appointment.starts_at > cursor.starts_at,
                                and_(Appointment.starts_at == cursor.starts_at, Appointment.id > cursor.id)))
    found = session.execute(query.order_by(Appointment.starts_at, Appointment.id).limit(limit + 1)).all()
    more = len(found) > limit
    found = found[:limit]
    states = _reminder_states(session, actor, [row[0].id for row in found], zone)
    rows = [_row(appointment, name_en, name_ar, mrn, states.get(appointment.id, ""))
            for appointment, name_en, name_ar, mrn in found]
    last = rows[-1] if rows and more else None
    return AppointmentPage(rows, AppointmentCursor(last.starts_at, last.id) if last else None, zone)


def _row(a: Appointment, name_en: str, name_ar: str, mrn: str | None, reminders: str) -> AppointmentRow:
    return AppointmentRow(a.id, a.starts_at, a.duration_minutes, name_en or "", name_ar or "", mrn or "",
                          a.appointment_type, a.department, a.doctor_name_en, a.doctor_name_ar, a.location,
                          AppointmentStatus(a.status), a.source_id or "", reminders)


def _reminder_states(session: TenantSession, actor: Actor, appointment_ids: Sequence[uuid.UUID], zone: str
                     ) -> Mapping[uuid.UUID, str]:
    """Each appointment's reminders in words ("WhatsApp 48 h: pending, 8 Dec 09:00"), from the reminders'
    own read (``app.services.reminders.schedule.reminders_of``); empty while that is not in the tree."""
    if not appointment_ids:
        return {}
    try:
        schedule = importlib.import_module("app.services.reminders.schedule")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("app.services.reminders"):
            raise
        return {}
    found = schedule.reminders_of(session, actor, list(appointment_ids))
    return {key: "; ".join(_words(view, ZoneInfo(zone)) for view in views) for key, views in found.items()}


def _words(view: Any, zone: ZoneInfo) -> str:
    status = ReminderStatus(view.status)
    when = f", {view.due_at.astimezone(zone):%-d %b %H:%M}" if status == ReminderStatus.PENDING else ""
    return f"{view.rule_name}: {status.label.lower()}{when}"
