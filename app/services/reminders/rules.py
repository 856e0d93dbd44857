"""A clinic's reminder rules and its sending calendar, as admins edit them (``MANAGE_REMINDERS``).

"WhatsApp 48 h before, SMS 3 h before": a rule is a channel, a template, an offset before the
appointment, the side of the calendar a reminder moves to when its time is not a sending time
(or urgent: its exact time, whatever the calendar), an optional fallback channel, the appointment
types and departments it covers (none listed: all) and the templates that acknowledge a patient's
confirm or cancel reply. Every change is audited with its old and new values and moves the rule's
``revision`` on; the planner then re-plans the reminders not sent yet (a sent one is never
touched). A calendar change re-plans them too.

Checks, each with a message a clerk can act on: the offset is 5 minutes to 30 days; the template
exists, is active, is a service template and is for the rule's channel; a WhatsApp template is
approved by WhatsApp (a reminder is business-initiated, outside the patient's 24-hour window);
the fallback is another channel and not WhatsApp (which would need an approved template of its
own); an acknowledgement template is an active SMS or WhatsApp template (it answers a reply).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from hijridate import Gregorian, Hijri
from sqlalchemy import select

from app.errors import ConflictError, NotFoundError, ValidationError
from app.search_text import check_text
from app.services import audit, tenants
from app.services.bulk.wizard import active_templates
from app.services.permissions import Actor, Permission, authorize
from app.services.reminders import planner
from app.services.reminders.calendar import DEFAULT_RAMADAN, DEFAULT_SEND, DEFAULT_WEEKEND
from app.services.whatsapp_templates import ensure_sendable_in_bulk
from db.enums import Channel, MessageClass, ReminderShift
from db.models import Appointment, ClinicCalendar, MessageTemplate, ReminderRule
from db.tenancy import TenantSession
from db.types import utcnow

MIN_OFFSET_MINUTES = 5
MAX_OFFSET_MINUTES = 30 * 24 * 60
MAX_NAME_CHARS = 100
MAX_SCOPE_ENTRIES = 50
MAX_SCOPE_CHARS = 120
MAX_CLOSED_DATES = 366
REPLY_CHANNELS = (Channel.SMS, Channel.WHATSAPP)  # where a patient's reply comes from, so where an acknowledgement goes
HOLIDAYS_AHEAD_DAYS = 365


@dataclass(frozen=True)
class RuleInput:
    """What an admin sets on a rule."""

    name: str
    channel: Channel
    template_id: uuid.UUID | None
    offset_minutes: int
    shift: ReminderShift = ReminderShift.EARLIER
    fallback_channel: Channel | None = None
    urgent: bool = False
    appointment_types: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    confirm_ack_template_id: uuid.UUID | None = None
    cancel_ack_template_id: uuid.UUID | None = None
    is_active: bool = True


@dataclass(frozen=True)
class RuleView:
    id: uuid.UUID
    name: str
    channel: Channel
    template_id: uuid.UUID | None
    template_label: str  # "Reminder (appointment_reminder)"; "(deleted)" when its template was deleted
    offset_minutes: int
    shift: ReminderShift
    fallback_channel: Channel | None
    urgent: bool
    appointment_types: tuple[str, ...]
    departments: tuple[str, ...]
    confirm_ack_template_id: uuid.UUID | None
    cancel_ack_template_id: uuid.UUID | None
    is_active: bool
    revision: int

    @property
    def offset_text(self) -> str:
        return offset_text(self.offset_minutes)

    def as_input(self) -> RuleInput:
        """The rule as the form edits it."""
        return RuleInput(self.name, self.channel, self.template_id, self.offset_minutes, self.shift,
                         self.fallback_channel, self.urgent, self.appointment_types, self.departments,
                         self.confirm_ack_template_id, self.cancel_ack_template_id, self.is_active)


@dataclass(frozen=True)
class RuleOptions:
    """What the rule form offers: active templates per channel, and the appointment types and
    departments the clinic's appointments use."""

    templates: dict[Channel, list[tuple[uuid.UUID, str]]]
    appointment_types: list[str]
    departments: list[str]


@dataclass(frozen=True)
class CalendarSettings:
    """A clinic's sending calendar as admins set it (Python weekdays: Monday 0 ... Sunday 6)."""

    weekend_days: tuple[int, ...] = tuple(sorted(DEFAULT_WEEKEND))
    send_start: dt.time = DEFAULT_SEND[0]
    send_end: dt.time = DEFAULT_SEND[1]
    ramadan_start: dt.time = DEFAULT_RAMADAN[0]
    ramadan_end: dt.time = DEFAULT_RAMADAN[1]
    public_holidays: bool = True
    closed_dates: tuple[dt.date, ...] = ()


@dataclass(frozen=True)
class CalendarView:
    settings: CalendarSettings
    is_default: bool  # the clinic has not set its own yet
    timezone: str
    region: str
    coming_holidays: list[tuple[dt.date, str]] = field(default_factory=list)  # the next year's, from the library
    next_ramadan: tuple[dt.date, dt.date] | None = None  # first and last day of the current or next Ramadan


def offset_text(minutes: int) -> str:
    """``2880`` -> ``48 h before``; ``90`` -> ``1 h 30 min before``."""
    hours, rest = divmod(minutes, 60)
    parts = ([f"{hours} h"] if hours else []) + ([f"{rest} min"] if rest else [])
    return f"{' '.join(parts) or '0 min'} before"


# -- rules ---------------------------------------------------------------------------------------


def _view(rule: ReminderRule, labels: dict[uuid.UUID, str]) -> RuleView:
    return RuleView(
        id=rule.id, name=rule.name, channel=Channel(rule.channel), template_id=rule.template_id,
        template_label=labels.get(rule.template_id, "(deleted)") if rule.template_id else "(deleted)",
        offset_minutes=rule.offset_minutes, shift=ReminderShift(rule.shift),
        fallback_channel=Channel(rule.fallback_channel) if rule.fallback_channel else None,
        urgent=rule.urgent, appointment_types=tuple(rule.appointment_types or ()),
        departments=tuple(rule.departments or ()), confirm_ack_template_id=rule.confirm_ack_template_id,
        cancel_ack_template_id=rule.cancel_ack_template_id, is_active=rule.is_active, revision=rule.revision)


def _labels(session: TenantSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {row.id: f"{row.name} ({row.code})" for row in session.execute(
        select(MessageTemplate.id, MessageTemplate.name, MessageTemplate.code).where(
            MessageTemplate.id.in_(wanted), MessageTemplate.deleted_at.is_(None)))}


def _rule(session: TenantSession, rule_id: uuid.UUID) -> ReminderRule:
    rule = session.scalar(select(ReminderRule).where(ReminderRule.id == rule_id, ReminderRule.deleted_at.is_(None)))
    if rule is None:
        raise NotFoundError("That reminder rule does not exist in your clinic.")
    return rule


def list_rules(session: TenantSession, actor: Actor) -> list[RuleView]:
    """The clinic's rules (turned-off ones too), the earliest reminder first."""
    authorize(session, actor, Permission.MANAGE_REMINDERS)
    rules = list(session.scalars(select(ReminderRule).where(ReminderRule.deleted_at.is_(None))
                                 .order_by(ReminderRule.offset_minutes.desc(), ReminderRule.name)))
    labels = _labels(session, (r.template_id for r in rules))
    return [_view(r, labels) for r in rules]


def rule_options(session: TenantSession, actor: Actor) -> RuleOptions:
    authorize(session, actor, Permission.MANAGE_REMINDERS)

    def distinct(column: Any) -> list[str]:
        return sorted({v for v in session.scalars(select(column).distinct()) if (v or "").strip()}, key=str.casefold)

    return RuleOptions(templates={channel: active_templates(session, channel) for channel in Channel},
                       appointment_types=distinct(Appointment.appointment_type),
                       departments=distinct(Appointment.department))


def _template(session: TenantSession, template_id: uuid.UUID | None, *, what: str, field_name: str,
              channels: tuple[Channel, ...]) -> MessageTemplate:
    if template_id is None:
        raise ValidationError(f"Choose {what}.", field=field_name)
    template = session.scalar(select(MessageTemplate).where(MessageTemplate.id == template_id,
                                                            MessageTemplate.deleted_at.is_(None)))
    if template is None:
        raise ValidationError(f"{what.capitalize()} does not exist in your clinic.", field=field_name)
    if not template.is_active:
        raise ValidationError(f"The template '{template.code}' is not active.", field=field_name)
    if Channel(template.channel) not in channels:
        allowed = " or ".join(c.label for c in channels)
        raise ValidationError(f"The template '{template.code}' is for {Channel(template.channel).label}, "
                              f"not {allowed}.", field=field_name)
    if MessageClass(template.message_class) != MessageClass.SERVICE:
        raise ValidationError(f"The template '{template.code}' is promotional; reminders and their "
                              "acknowledgements are service messages.", field=field_name)
    return template


def _scope_list(values: Iterable[str], *, label: str, field_name: str) -> tuple[str, ...]:
    cleaned: dict[str, str] = {}
    for value in values:
        text = check_text(str(value).strip(), field=field_name, label=f"{label} '{str(value)[:40]}'",
                          max_chars=MAX_SCOPE_CHARS)
        if text:
            cleaned.setdefault(text.casefold(), text)
    if len(cleaned) > MAX_SCOPE_ENTRIES:
        raise ValidationError(f"List at most {MAX_SCOPE_ENTRIES} {label.lower()}s.", field=field_name)
    return tuple(cleaned.values())


def _checked(session: TenantSession, data: RuleInput, rule_id: uuid.UUID | None) -> dict[str, Any]:
    """The rule's columns from ``data``, or a ValidationError naming the field that is wrong."""
    name = check_text((data.name or "").strip(), field="name", label="The rule's name", max_chars=MAX_NAME_CHARS)
    if not name:
        raise ValidationError("Give the rule a name.", field="name")
    same_name = select(ReminderRule.id).where(ReminderRule.name == name, ReminderRule.deleted_at.is_(None))
    clash = session.scalar(same_name.where(ReminderRule.id != rule_id) if rule_id else same_name)
    if clash is not None:
        raise ConflictError(f"Another rule is already named '{name}'.")
    try:
        channel = Channel.parse(data.channel)
        fallback = Channel.parse(data.fallback_channel) if data.fallback_channel else None
        shift = ReminderShift(data.shift)
    except ValueError as exc:
        raise ValidationError(str(exc), field="channel") from None
    offset = int(data.offset_minutes)
    if not MIN_OFFSET_MINUTES <= offset <= MAX_OFFSET_MINUTES:
        raise ValidationError(f"A reminder goes between {MIN_OFFSET_MINUTES} minutes and 30 days before the "
                              f"appointment ({offset_text(offset)} is outside that).", field="offset_minutes")
    template = _template(session, data.template_id, what="the template the reminder sends", field_name="template_id",
                         channels=(channel,))
    if channel == Channel.WHATSAPP:
        try:
            ensure_sendable_in_bulk(session, template)
        except ValidationError as exc:
            raise ValidationError(f"A WhatsApp reminder reaches most patients outside their 24-hour window, where "
                                  f"WhatsApp delivers only an approved template. {exc}", field="template_id") from None
    if fallback == channel:
        raise ValidationError("The fallback channel must differ from the rule's channel.", field="fallback_channel")
    if fallback == Channel.WHATSAPP:
        raise ValidationError("WhatsApp cannot be a fallback: outside the patient's 24-hour window it delivers only "
                              "an approved template of its own. Make a WhatsApp rule instead.",
                              field="fallback_channel")
    acks = {}
    for column, label in (("confirm_ack_template_id", "the confirmation acknowledgement"),
                          ("cancel_ack_template_id", "the cancellation acknowledgement")):
        chosen = getattr(data, column)
        acks[column] = _template(session, chosen, what=label, field_name=column,
                                 channels=REPLY_CHANNELS).id if chosen else None
    return {"name": name, "channel": channel, "template_id": template.id, "offset_minutes": offset, "shift": shift,
            "fallback_channel": fallback, "urgent": bool(data.urgent), "is_active": bool(data.is_active),
            "appointment_types": list(_scope_list(data.appointment_types, label="Appointment type",
                                                  field_name="appointment_types")),
            "departments": list(_scope_list(data.departments, label="Department", field_name="departments")),
            **acks}


def _audit_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Channel | ReminderShift):
        return value.value
    return value


def _replan(session: TenantSession, now: dt.datetime | None) -> None:
    session.flush()
    planner.plan(session, now=now)


def create_rule(session: TenantSession, actor: Actor, data: RuleInput, *, now: dt.datetime | None = None) -> RuleView:
    """A new rule; its reminders are planned for every upcoming appointment it covers."""
    authorize(session, actor, Permission.MANAGE_REMINDERS)
    values = _checked(session, data, None)
    rule = ReminderRule(tenant_id=session.tenant_id, revision=1, **values)
    session.add(rule)
    session.flush()
    audit.record(session, actor, "reminder_rule.create", object_type="reminder_rule", object_id=rule.id,
                 details={k: _audit_value(v) for k, v in values.items()})
    _replan(session, now)
    return _view(rule, _labels(session, [rule.template_id]))


def update_rule(session: TenantSession, actor: Actor, rule_id: uuid.UUID, data: RuleInput, *,
                now: dt.datetime | None = None) -> RuleView:
    """Change a rule; the reminders not sent yet follow (re-planned). Nothing changed: nothing written."""
    authorize(session, actor, Permission.MANAGE_REMINDERS)
    rule = _rule(session, rule_id)
    values = _checked(session, data, rule.id)
    changed = {k: [_audit_value(getattr(rule, k)), _audit_value(v)] for k, v in values.items()
               if _audit_value(getattr(rule, k)) != _audit_value(v)}
    if not changed:
        return _view(rule, _labels(session, [rule.template_id]))
    for key, value in values.items():
        setattr(rule, key, value)
    rule.revision += 1
    rule.updated_at = utcnow()
    audit.record(session, actor, "reminder_rule.update", object_type="reminder_rule", object_id=rule.id,
                 details={"name": rule.name, "revision": rule.revision, "changed": changed})
    _replan(session, now)
    return _view(rule, _labels(session, [rule.template_id]))


def set_rule_active(session: TenantSession, actor: Actor, rule_id: uuid.UUID, active: bool, *,
                    now: dt.datetime | None = None) -> RuleView:
    """Turn a rule off (its reminders not sent yet are cancelled) or on again (they are planned)."""
    authorize(session, actor, Permission.MANAGE_REMINDERS)
    rule = _rule(session, rule_id)
    if rule.is_active != active:
        if active:  # what was valid when it was turned off may not be now (a template deleted, unapproved)
            _checked(session, _view(rule, _labels(session, [rule.template_id])).as_input(), rule.id)
        rule.is_active = active
        rule.revision += 1
        rule.updated_at = utcnow()
        audit.record(session, actor, "reminder_rule.activate" if active else "reminder_rule.deactivate",
                     object_type="reminder_rule", object_id=rule.id, details={"name": rule.name,
                                                                              "revision": rule.revision})
        _replan(session, now)
    return _view(rule, _labels(session, [rule.template_id]))


# -- the calendar --------------------------------------------------------------------------------


def _settings(row: ClinicCalendar | None) -> CalendarSettings:
    if row is None:
        return CalendarSettings()
    return CalendarSettings(
        weekend_days=tuple(sorted(int(d) for d in row.weekend_days or ())), send_start=row.send_start,
        send_end=row.send_end, ramadan_start=row.ramadan_send_start, ramadan_end=row.ramadan_send_end,
        public_holidays=row.public_holidays,
        closed_dates=tuple(sorted(dt.date.fromisoformat(str(d)) for d in row.closed_dates or ())))


def _ramadan_around(today: dt.date) -> tuple[dt.date, dt.date] | None:
    """The current Ramadan, or the next one (Umm al-Qura), as its first and last day."""
    try:
        hijri = Gregorian(today.year, today.month, today.day).to_hijri()
        year = hijri.year if hijri.month <= 9 else hijri.year + 1
        first = Hijri(year, 9, 1).to_gregorian()
        after = Hijri(year, 10, 1).to_gregorian()
    except (OverflowError, ValueError):
        return None
    return dt.date(first.year, first.month, first.day), dt.date(after.year, after.month, after.day) - dt.timedelta(1)


def get_calendar(session: TenantSession, actor: Actor, *, today: dt.date | None = None) -> CalendarView:
    """The clinic's sending calendar, the public holidays of the coming year and the next Ramadan."""
    authorize(session, actor, Permission.MANAGE_REMINDERS)
    tenant = tenants.current(session)
    row = session.scalar(select(ClinicCalendar))
    hours = planner.clinic_hours(session)
    today = today or utcnow().astimezone(hours.zone).date()
    return CalendarView(settings=_settings(row), is_default=row is None, timezone=tenant.timezone,
                        region=tenant.default_region,
                        coming_holidays=hours.holidays_between(today, today + dt.timedelta(days=HOLIDAYS_AHEAD_DAYS)),
                        next_ramadan=_ramadan_around(today))


def parse_dates(text: str) -> tuple[dt.date, ...]:
    """The calendar form's closed days, one ISO date (2026-12-24) a line; a ValidationError names the line."""
    days: list[dt.date] = []
    for number, line in enumerate(str(text).splitlines(), start=1):
        value = line.strip()
        if not value:
            continue
        try:
            days.append(dt.date.fromisoformat(value))
        except ValueError:
            raise ValidationError(f"Line {number} ('{value[:20]}') is not a date; write it as 2026-12-24.",
                                  field="closed_dates") from None
    return tuple(sorted(set(days)))


def _check_hours(start: dt.time, end: dt.time, *, label: str, field_name: str) -> tuple[dt.time, dt.time]:
    start, end = start.replace(second=0, microsecond=0), end.replace(second=0, microsecond=0)
    if start >= end:
        raise ValidationError(f"{label} must start before they end (e.g. 09:00 to 21:00); got "
                              f"{start:%H:%M} to {end:%H:%M}.", field=field_name)
    return start, end


def _checked_calendar(data: CalendarSettings) -> dict[str, Any]:
    days = set()
    for day in data.weekend_days:
        if not isinstance(day, int) or not 0 <= day <= 6:
            raise ValidationError(f"'{day}' is not a day of the week.", field="weekend_days")
        days.add(day)
    if len(days) == 7:
        raise ValidationError("Leave at least one working day in the week.", field="weekend_days")
    send = _check_hours(data.send_start, data.send_end, label="The sending hours", field_name="send_start")
    ramadan = _check_hours(data.ramadan_start, data.ramadan_end, label="The Ramadan hours",
                           field_name="ramadan_start")
    closed = sorted(set(data.closed_dates))
    if len(closed) > MAX_CLOSED_DATES:
        raise ValidationError(f"List at most {MAX_CLOSED_DATES} closed days.", field="closed_dates")
    for day in closed:
        if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
            raise ValidationError(f"'{day}' is not a date.", field="closed_dates")
    return {"weekend_days": sorted(days), "send_start": send[0], "send_end": send[1],
            "ramadan_send_start": ramadan[0], "ramadan_send_end": ramadan[1],
            "public_holidays": bool(data.public_holidays), "closed_dates": [d.isoformat() for d in closed]}


def set_calendar(session: TenantSession, actor: Actor, data: CalendarSettings, *,
                 now: dt.datetime | None = None) -> CalendarView:
    """Save the clinic's calendar (audited, old and new); the reminders not sent yet move with it."""
    authorize(session, actor, Permission.MANAGE_REMINDERS)
    values = _checked_calendar(data)
    row = session.scalar(select(ClinicCalendar))
    before = asdict(_settings(row))
    created = row is None
    if row is None:
        row = ClinicCalendar(tenant_id=session.tenant_id, **values)
        session.add(row)
    else:
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at = utcnow()
    session.flush()
    after = asdict(_settings(row))
    changed = {k: [_shown(before[k]), _shown(after[k])] for k in after if before[k] != after[k]}
    if changed or created:
        audit.record(session, actor, "reminder_calendar.update", object_type="clinic_calendar", object_id=row.id,
                     details={"changed": changed})
        _replan(session, now)
    return get_calendar(session, actor)


def _shown(value: Any) -> Any:
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    if isinstance(value, tuple):
        return [_shown(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value

