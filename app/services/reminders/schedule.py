"""What the screens read about reminders: the coming schedule (admins) and an appointment's reminders.

``upcoming`` pages through the reminders still to go, soonest first (keyset on due time and id, no
OFFSET); ``reminders_of`` gives the Appointments page each appointment's reminders. Patients'
names are read inside the session's clinic only.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import and_, or_, select

from app.errors import ValidationError
from app.services.permissions import Actor, Permission, authorize
from db.enums import Channel, ReminderStatus
from db.models import Appointment, AppointmentReminder, Patient, ReminderRule
from db.tenancy import TenantSession
from db.types import utcnow

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_DAYS = 60
MAX_APPOINTMENTS = 1000


@dataclass(frozen=True)
class ReminderView:
    """One reminder as a screen shows it (times in UTC; the page shows them in the clinic's zone)."""

    id: uuid.UUID
    appointment_id: uuid.UUID
    appointment_starts_at: dt.datetime
    patient_id: uuid.UUID
    patient_name: str  # English name, else Arabic
    patient_name_ar: str
    rule_id: uuid.UUID
    rule_name: str
    channel: Channel
    status: ReminderStatus
    due_at: dt.datetime
    moved_reason: str  # why the calendar moved it ("Friday (weekend)"); "" when it goes at the rule's time
    status_reason: str  # why it was cancelled or skipped, or how it was sent ("Sent by SMS: ...")
    message_id: uuid.UUID | None
    sent_at: dt.datetime | None


@dataclass(frozen=True)
class ScheduleCursor:
    """Where the next page starts: the last reminder shown."""

    due_at: dt.datetime
    id: uuid.UUID


@dataclass(frozen=True)
class SchedulePage:
    reminders: list[ReminderView]
    next_cursor: ScheduleCursor | None  # None on the last page


def _query():  # type: ignore[no-untyped-def]
    return (select(AppointmentReminder, Appointment.starts_at, Appointment.patient_id, Patient.name_en,
                   Patient.name_ar, ReminderRule.name, ReminderRule.channel)
            .join(Appointment, Appointment.id == AppointmentReminder.appointment_id)
            .join(ReminderRule, ReminderRule.id == AppointmentReminder.rule_id)
            .join(Patient, Patient.id == Appointment.patient_id))


def _view(row) -> ReminderView:  # type: ignore[no-untyped-def]
    reminder, starts_at, patient_id, name_en, name_ar, rule_name, channel = row
    return ReminderView(
        id=reminder.id, appointment_id=reminder.appointment_id, appointment_starts_at=starts_at,
        patient_id=patient_id, patient_name=name_en or name_ar or "", patient_name_ar=name_ar or "",
        rule_id=reminder.rule_id, rule_name=rule_name, channel=Channel(channel),
        status=ReminderStatus(reminder.status), due_at=reminder.due_at, moved_reason=reminder.moved_reason,
        status_reason=reminder.status_reason, message_id=reminder.message_id, sent_at=reminder.sent_at)


def upcoming(session: TenantSession, actor: Actor, *, days: int = 7, after: ScheduleCursor | None = None,
             limit: int = PAGE_SIZE, now: dt.datetime | None = None) -> SchedulePage:
    """The reminders waiting to go in the next ``days`` days (and any due now), soonest first."""
    authorize(session, actor, Permission.MANAGE_REMINDERS)
    if not 1 <= days <= MAX_DAYS:
        raise ValidationError(f"Show between 1 and {MAX_DAYS} days.", field="days")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(f"Show between 1 and {MAX_PAGE_SIZE} reminders per page.", field="limit")
    until = (now or utcnow()) + dt.timedelta(days=days)
    query = _query().where(AppointmentReminder.status == ReminderStatus.PENDING, AppointmentReminder.due_at <= until)
    if after is not None:
        query = query.where(or_(AppointmentReminder.due_at > after.due_at, and_(
            AppointmentReminder.due_at == after.due_at, AppointmentReminder.id > after.id)))
    rows = session.execute(query.order_by(AppointmentReminder.due_at, AppointmentReminder.id).limit(limit + 1)).all()
    views = [_view(row) for row in rows[:limit]]
    last = views[-1] if len(rows) > limit else None
    return SchedulePage(views, ScheduleCursor(last.due_at, last.id) if last else None)


def reminders_of(session: TenantSession, actor: Actor, appointment_ids: Collection[uuid.UUID]
                 ) -> dict[uuid.UUID, list[ReminderView]]:
    """Each appointment's reminders (every status), in the order they go; appointments with none are left out."""
    authorize(session, actor, Permission.VIEW_APPOINTMENTS)
    ids = list(dict.fromkeys(appointment_ids))
    if len(ids) > MAX_APPOINTMENTS:
        raise ValidationError(f"Ask for at most {MAX_APPOINTMENTS} appointments at a time.", field="appointment_ids")
    found: dict[uuid.UUID, list[ReminderView]] = {}
    if not ids:
        return found
    rows = session.execute(_query().where(AppointmentReminder.appointment_id.in_(ids))
                           .order_by(AppointmentReminder.due_at, AppointmentReminder.id)).all()
    for row in rows:
        view = _view(row)
        found.setdefault(view.appointment_id, []).append(view)
    return found
