"""Two clinics for the reminder tests: the same patients' names and numbers, their own templates and rules.

Times are fixed: "now" is Monday 7 December 2026, 08:00 in Riyadh (UTC+3, no daylight saving), so
a reminder 48 hours before a Sunday appointment falls on Friday, the Saudi weekend.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from app.services import templates
from app.services.permissions import Actor
from app.services.reminders import planner, rules
from app.services.reminders.planner import PlanResult
from app.services.reminders.rules import RuleInput
from db.enums import AppointmentStatus, Channel, Language, ReminderShift, Role
from db.models import Appointment, AppointmentReminder, MessageTemplate
from db.session import system_session, tenant_session
from tests.factories import make_patient, make_tenant, make_user

RIYADH = ZoneInfo("Asia/Riyadh")
NOW = dt.datetime(2026, 12, 7, 8, 0, tzinfo=RIYADH).astimezone(dt.UTC)  # Monday morning
CONTENT_SID = "HX" + "d" * 32
REMINDER_EN = "Hi {{ patient_name }}, your appointment is on {{ appointment_date }} at {{ appointment_time }}."
REMINDER_AR = "مرحبا {{ patient_name }}، موعدك يوم {{ appointment_date }} الساعة {{ appointment_time }}."


def riyadh(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A Riyadh wall-clock time, in UTC."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=RIYADH).astimezone(dt.UTC)


@dataclass(frozen=True)
class Clinic:
    engine: Engine
    tenant_id: uuid.UUID
    admin: Actor
    front_desk: Actor
    analyst: Actor
    sara: uuid.UUID  # "Sara Ali", +966501234567: the neighbour and the other clinic have her too
    omar: uuid.UUID  # Arabic-speaking
    sms_template: uuid.UUID
    whatsapp_template: uuid.UUID  # linked and approved
    email_template: uuid.UUID

    def rule(self, name: str = "SMS 3 h before", *, channel: Channel = Channel.SMS, offset_minutes: int = 180,
             **kwargs: object) -> uuid.UUID:
        template = {Channel.SMS: self.sms_template, Channel.WHATSAPP: self.whatsapp_template,
                    Channel.EMAIL: self.email_template}[channel]
        data = RuleInput(name=name, channel=channel, template_id=kwargs.pop("template_id", template),  # type: ignore[arg-type]
                         offset_minutes=offset_minutes, **kwargs)  # type: ignore[arg-type]
        with tenant_session(self.engine, self.tenant_id) as session:
            return rules.create_rule(session, self.admin, data, now=NOW).id

    def book(self, starts_at: dt.datetime, *, patient: uuid.UUID | None = None, appointment_type: str = "",
             department: str = "", plan: bool = True, now: dt.datetime = NOW) -> uuid.UUID:
        with tenant_session(self.engine, self.tenant_id) as session:
            row = Appointment(patient_id=patient or self.sara, starts_at=starts_at, appointment_type=appointment_type,
                              department=department, doctor_name_en="Dr. Ahmed", doctor_name_ar="د. أحمد",
                              source_id=uuid.uuid4().hex)
            session.add(row)
            session.flush()
            if plan:
                planner.plan(session, appointment_ids=[row.id], now=now)
            return row.id

    def change(self, appointment_id: uuid.UUID, *, now: dt.datetime = NOW, **values: object) -> PlanResult:
        """Change an appointment (as the intake does) and re-plan it."""
        with tenant_session(self.engine, self.tenant_id) as session:
            row = session.get(Appointment, appointment_id)
            assert row is not None
            for key, value in values.items():
                setattr(row, key, value)
            session.flush()
            return planner.plan(session, appointment_ids=[appointment_id], now=now)

    def plan(self, appointment_ids: list[uuid.UUID] | None = None, *, now: dt.datetime = NOW) -> PlanResult:
        with tenant_session(self.engine, self.tenant_id) as session:
            return planner.plan(session, appointment_ids=appointment_ids, now=now)

    def reminders(self, appointment_id: uuid.UUID) -> dict[str, AppointmentReminder]:
        """The appointment's reminders by rule name."""
        from db.models import ReminderRule

        with tenant_session(self.engine, self.tenant_id) as session:
            rows = session.execute(select(AppointmentReminder, ReminderRule.name)
                                   .join(ReminderRule, ReminderRule.id == AppointmentReminder.rule_id)
                                   .where(AppointmentReminder.appointment_id == appointment_id)).all()
            session.expunge_all()
        return {name: row for row, name in rows}


def make_clinic(engine: Engine, slug: str = "clinic-a", *, usernames: tuple[str, str, str] | None = None) -> Clinic:
    tenant = make_tenant(engine, slug, slug.replace("-", " ").title())
    admin_name, desk_name, analyst_name = usernames or (f"{slug}-admin", f"{slug}-desk", f"{slug}-analyst")
    admin = make_user(engine, tenant, admin_name)
    front_desk = make_user(engine, tenant, desk_name, Role.FRONT_DESK)
    analyst = make_user(engine, tenant, analyst_name, Role.ANALYST)
    sara = make_patient(engine, tenant)
    omar = make_patient(engine, tenant, name_en="Omar Said", name_ar="عمر سعيد", phone="+966507654321",
                        email="omar@example.com", language=Language.AR)
    with tenant_session(engine, tenant) as session:
        sms = templates.create_template(session, admin, code="sms_reminder", name="SMS reminder", channel=Channel.SMS,
                                        body_en=REMINDER_EN, body_ar=REMINDER_AR)
        whatsapp = templates.create_template(session, admin, code="wa_reminder", name="WhatsApp reminder",
                                             channel=Channel.WHATSAPP, body_en=REMINDER_EN, body_ar=REMINDER_AR)
        email = templates.create_template(session, admin, code="email_reminder", name="E-mail reminder",
                                          channel=Channel.EMAIL, body_en=REMINDER_EN, body_ar=REMINDER_AR,
                                          subject_en="Your appointment")
    approve(engine, whatsapp.id)
    return Clinic(engine, tenant, admin, front_desk, analyst, sara, omar, sms.id, whatsapp.id, email.id)


def approve(engine: Engine, template_id: uuid.UUID, status: str = "approved") -> None:
    """What the approval poll leaves on a linked WhatsApp template (test setup)."""
    with system_session(engine) as session:
        template = session.get(MessageTemplate, template_id)
        assert template is not None
        template.whatsapp_content_sid = CONTENT_SID
        template.whatsapp_variable_map = {"1": "patient_name", "2": "appointment_time"}
        template.whatsapp_approval_status = status


SUNDAY_10 = riyadh(2026, 12, 13, 10)  # 48 h before is Friday 10:00 (weekend); 3 h before is 07:00
WHATSAPP_48H = {"name": "WhatsApp 48 h before", "channel": Channel.WHATSAPP, "offset_minutes": 48 * 60}
SMS_3H_LATER = {"name": "SMS 3 h before", "channel": Channel.SMS, "offset_minutes": 180,
                "shift": ReminderShift.LATER}
BOOKED = AppointmentStatus.BOOKED
