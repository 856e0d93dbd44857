"""The audit log: who did what to which object, when. Written by ``record``, then never changed.

Writing: ``record(session, actor, action, ...)`` adds one event to the session's unit of work, so it
commits with the change itself (the guard at the end of ``db/models.py`` and migration 0006 keep
events insert-only).

Reading: filter (``AuditFilter``), page through (``search``, keyset, newest first), show readably
(``action_label``, ``describe``), offer filter choices (``choices``) and export (``export_csv``).
Reading needs ``VIEW_AUDIT`` (admins); exporting is itself an audit event.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, or_, select

from app.csv_safe import to_csv
from app.errors import ValidationError
from app.search_text import check_text
from app.services.contacts import mask_contact
from app.services.permissions import Actor, Permission, authorize
from db.models import (
    ApiKey,
    Appointment,
    AuditEvent,
    BulkJob,
    Conversation,
    Message,
    MessageTemplate,
    Patient,
    ReminderRule,
    Tenant,
    User,
)
from db.tenancy import TenantSession

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
EXPORT_CHUNK = 1000
MAX_EXPORT_ROWS = 200_000
MAX_FILTER_ACTIONS = 200
CSV_HEADER = ("time (UTC)", "who", "action", "object type", "object id", "details")


# -- writing ---------------------------------------------------------------------------------------


def record(
    session: TenantSession,
    actor: Actor | None,
    action: str,
    *,
    object_type: str | None = None,
    object_id: uuid.UUID | str | None = None,
    details: dict[str, Any] | None = None,
    tenant_id: uuid.UUID | None = None,
    actor_name: str | None = None,
) -> None:
    """Add one audit event to the session's unit of work (committed with the change itself)."""
    session.add(
        AuditEvent(
            tenant_id=tenant_id or (actor.tenant_id if actor else session.tenant_id),
            actor_id=actor.user_id if actor else None,
            actor_name=actor_name if actor_name is not None else (actor.username if actor else "system"),
            action=action,
            object_type=object_type,
            object_id=str(object_id) if object_id is not None else None,
            details=details or {},
        )
    )


# -- reading ---------------------------------------------------------------------------------------

# Plain words for the actions the app records; an action not listed is shown by its own name.
ACTION_LABELS: dict[str, str] = {
    "auth.login": "Signed in",
    "auth.login_failed": "Sign-in refused",
    "auth.locked": "Account locked (too many wrong passwords)",
    "auth.logout": "Signed out",
    "auth.timeout": "Signed out (idle)",
    "auth.session_revoked": "Signed out (account changed by an admin)",
    "auth.password_change_required": "Asked to choose a new password (after a reset)",
    "auth.password_changed": "New password chosen",
    "staff.create": "Staff member added",
    "staff.change_role": "Role changed",
    "staff.activate": "Account reactivated",
    "staff.deactivate": "Account deactivated",
    "staff.reset_password": "Password reset",
    "staff.unlock": "Account unlocked",
    "staff.contact_access": "Contact access changed",
    "template.create": "Template created",
    "template.update": "Template edited",
    "template.duplicate": "Template duplicated",
    "template.activate": "Template activated",
    "template.deactivate": "Template deactivated",
    "template.delete": "Template deleted",
    "template.restore": "Template version restored",
    "message.send": "Message sent",
    "message.send_test": "Test message sent",
    "message.bulk_send": "Bulk send",
    "message.retry": "Message retried",
    "message.cancel": "Messages cancelled",
    "sending.pause": "Sending paused (emergency stop)",
    "sending.resume": "Sending resumed",
    "bulk_job.create": "Bulk send confirmed",
    "bulk_job.pause": "Bulk job paused",
    "bulk_job.resume": "Bulk job resumed",
    "bulk_job.cancel": "Bulk job cancelled",
    "bulk.skipped_export": "Bulk send skipped list downloaded",
    "patient.preferences": "Patient preferences changed",
    "patient.contacts": "Patient contacts changed",
    "template.whatsapp_link": "WhatsApp Content template linked",
    "template.whatsapp_approval": "WhatsApp approval status changed",
    "settings.route_changed": "Sending route changed",
    "settings.credentials_changed": "Provider credentials changed",
    "settings.credentials_cleared": "Provider credentials removed",
    "settings.dlr_token_created": "Delivery-report token created",
    "settings.dlr_token_rotated": "Delivery-report token replaced",
    "settings.locale_changed": "Time zone or region changed",
    "settings.profile_changed": "Clinic profile changed",
    "messages.export": "Messages exported",
    "messages.export_requested": "Large message export requested",
    "messages.export_download": "Large message export downloaded",
    "analytics.export": "Chart data downloaded",
    "tenant.create": "Clinic created",
    "audit.export": "Audit log exported",
    "appointments.apply": "Appointments imported (upload or API)",
    "appointment.status": "Appointment status changed",
    "inbox.assign": "Inbox thread assigned",
    "inbox.done": "Inbox thread marked done",
    "inbox.reopen": "Inbox thread reopened",
    "inbox.reply": "Patient's reply answered",
    "api_key.create": "Appointments API key created",
    "api_key.revoke": "Appointments API key revoked",
    "reminder_rule.create": "Reminder rule added",
    "reminder_rule.update": "Reminder rule changed",
    "reminder_rule.activate": "Reminder rule turned on",
    "reminder_rule.deactivate": "Reminder rule turned off",
    "reminder_calendar.update": "Reminder calendar changed",
}


@dataclass(frozen=True)
class AuditFilter:
    """Which events to show. Empty fields do not filter; times are inclusive and timezone-aware."""

    actor_id: uuid.UUID | None = None
    actions: tuple[str, ...] = ()
    object_type: str | None = None
    object_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def described(self) -> dict[str, Any]:
        """The filter as plain values (for the export's own audit event)."""
        return {k: (v.isoformat() if isinstance(v, dt.datetime) else str(v) if isinstance(v, uuid.UUID)
                    else list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self).items() if v not in (None, (), "")}


@dataclass(frozen=True)
class AuditCursor:
    """Where the next page starts: the last event shown (newest first)."""

    created_at: dt.datetime
    id: uuid.UUID


@dataclass(frozen=True)
class AuditEntry:
    id: uuid.UUID
    created_at: dt.datetime
    actor_id: uuid.UUID | None
    actor_name: str
    action: str
    action_label: str
    object_type: str | None
    object_id: str | None
    details: dict[str, Any]
    details_text: str
    object_label: str = ""  # the object in words: "Template appointment_reminder", "Patient Sara A."


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    next_cursor: AuditCursor | None  # None on the last page


@dataclass(frozen=True)
class AuditChoices:
    """What the filters can offer: the clinic's staff, the actions and object types recorded."""

    users: dict[uuid.UUID, str] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    object_types: list[str] = field(default_factory=list)


def local_days(days: Sequence[dt.date] | dt.date | None, timezone: str) -> tuple[dt.datetime | None,
                                                                              dt.datetime | None]:
    """A day or a (first, last) pair of days in the clinic's time zone as an inclusive UTC range."""
    chosen = [days] if isinstance(days, dt.date) else list(days or [])
    if not chosen:
        return None, None
    zone = ZoneInfo(timezone)
    first, last = chosen[0], chosen[-1]
    since = dt.datetime.combine(first, dt.time.min, zone).astimezone(dt.UTC)
    until = (dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min, zone)
             - dt.timedelta(microseconds=1)).astimezone(dt.UTC)
    return since, until


# What each kind of object is called on screen.
OBJECT_TYPE_LABELS: dict[str, str] = {
    "template": "Template", "bulk_job": "Bulk send", "bulk_draft": "Bulk send (draft)", "user": "Staff member",
    "patient": "Patient", "message": "Message", "messages": "Messages", "tenant": "Clinic",
    "provider": "Provider", "data_export": "Message export", "chart": "Chart", "audit_log": "Audit log",
    "appointment": "Appointment", "appointments": "Appointments", "conversation": "Inbox thread",
    "api_key": "API key", "reminder_rule": "Reminder rule", "clinic_calendar": "Reminder calendar",
}


def object_type_label(object_type: str | None) -> str:
    """``bulk_job`` -> ``Bulk send``; an unknown type by its own name."""
    if not object_type:
        return "—"
    return OBJECT_TYPE_LABELS.get(object_type, object_type.replace("_", " ").capitalize())


def _masked_name(name: str) -> str:
    """``Sara Al-Qahtani`` -> ``Sara A.``: enough to recognise a patient in the log, not the whole name."""
    parts = name.split()
    if not parts:
        return "(no name)"
    return parts[0] if len(parts) == 1 else f"{parts[0]} {parts[-1][:1]}."


def _patient_name(patient_id: Any) -> Any:
    """The English name of the patient ``patient_id`` names (a correlated subquery, same clinic)."""
    return select(Patient.name_en).where(Patient.id == patient_id).correlate_except(Patient).scalar_subquery()


def _thread_name(name: str | None, address: str | None) -> str:
    """An inbox thread by its patient (masked), or by the masked number when no patient has it."""
    return f"with {_masked_name(name)}" if name else f"with {mask_contact(address or '')}"


# object type -> (model, the columns that name it, how they are shown); every read is in the session's
# clinic. A patient's name is masked, a contact too.
_NAMERS: dict[str, tuple[Any, tuple[Any, ...], Any]] = {
    "template": (MessageTemplate, (MessageTemplate.code,), str),
    "bulk_job": (BulkJob, (BulkJob.name,), lambda name: f"'{name}'"),
    "user": (User, (User.username,), str),
    "patient": (Patient, (Patient.name_en,), lambda name: _masked_name(name or "")),
    "message": (Message, (Message.recipient,), lambda recipient: f"to {mask_contact(recipient or '')}"),
    "tenant": (Tenant, (Tenant.name,), str),
    "reminder_rule": (ReminderRule, (ReminderRule.name,), lambda name: f"'{name}'"),
    "api_key": (ApiKey, (ApiKey.name,), lambda name: f"'{name}'"),
    "appointment": (Appointment, (_patient_name(Appointment.patient_id),),
                    lambda name: f"of {_masked_name(name or '')}"),
    "conversation": (Conversation, (_patient_name(Conversation.patient_id), Conversation.address), _thread_name),
}
# object types a clinic has one of: the type says which, an id would add nothing
_ONE_PER_CLINIC = frozenset({"clinic_calendar"})


def _object_names(session: TenantSession, events: Sequence[AuditEvent]) -> dict[tuple[str, str], str]:
    """What each event's object is called (template code, job name, username, masked patient name ...),
    read with one query per kind of object, in the session's clinic."""
    wanted: dict[str, set[uuid.UUID]] = {}
    for event in events:
        if event.object_type in _NAMERS and event.object_id:
            try:
                wanted.setdefault(event.object_type, set()).add(uuid.UUID(event.object_id))
            except ValueError:
                continue
    names: dict[tuple[str, str], str] = {}
    for object_type, ids in wanted.items():
        model, columns, shown = _NAMERS[object_type]
        for row_id, *values in session.execute(select(model.id, *columns).where(model.id.in_(ids))):
            names[(object_type, str(row_id))] = shown(*(value or "" for value in values))
    return names


def _object_label(event: AuditEvent, names: Mapping[tuple[str, str], str]) -> str:
    if not event.object_type:
        return ""
    kind = object_type_label(event.object_type)
    if not event.object_id or event.object_type in _ONE_PER_CLINIC:
        return kind
    name = names.get((event.object_type, event.object_id))
    if name is None:  # not a row we can name (a provider, a chart) or gone: the id, shortened if it is one
        try:
            uuid.UUID(event.object_id)
        except ValueError:
            return f"{kind} {event.object_id}"
        return f"{kind} {event.object_id[:8]}"
    return f"{kind} {name}"


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action.replace("_", " ").replace(".", ": "))


def _value_text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_value_text(v) for v in value) or "—"
    if isinstance(value, Mapping):
        return "(" + describe(value) + ")"
    return str(value)


def describe(details: Mapping[str, Any] | None) -> str:
    """Details as one readable line: ``from: admin · to: analyst · username: sara``."""
    if not details:
        return ""
    return " · ".join(f"{str(key).replace('_', ' ')}: {_value_text(value)}" for key, value in details.items())


def _entry(event: AuditEvent, names: Mapping[tuple[str, str], str] | None = None) -> AuditEntry:
    details = dict(event.details or {})
    return AuditEntry(
        id=event.id, created_at=event.created_at, actor_id=event.actor_id, actor_name=event.actor_name or "",
        action=event.action, action_label=action_label(event.action), object_type=event.object_type,
        object_id=event.object_id, details=details, details_text=describe(details),
        object_label=_object_label(event, names or {}),
    )


def _check_filter(filters: AuditFilter) -> None:
    for name, label in (("object_type", "The object type"), ("object_id", "The object id")):
        check_text(getattr(filters, name) or "", field=name, label=label)
    if len(filters.actions) > MAX_FILTER_ACTIONS:
        raise ValidationError(f"Choose at most {MAX_FILTER_ACTIONS} actions.", field="actions")
    for action in filters.actions:
        check_text(action, field="actions", label="An action")
    for name in ("since", "until"):
        value = getattr(filters, name)
        if value is not None and value.tzinfo is None:
            raise ValidationError("Give the time with its time zone.", field=name)
    if filters.since and filters.until and filters.since > filters.until:
        raise ValidationError("The start of the time range is after its end.", field="since")


def _query(filters: AuditFilter) -> Select[tuple[AuditEvent]]:
    query = select(AuditEvent)
    if filters.actor_id is not None:
        query = query.where(AuditEvent.actor_id == filters.actor_id)
    if filters.actions:
        query = query.where(AuditEvent.action.in_(list(filters.actions)))
    if filters.object_type:
        query = query.where(AuditEvent.object_type == filters.object_type.strip())
    if filters.object_id:
        query = query.where(AuditEvent.object_id == filters.object_id.strip())
    if filters.since is not None:
        query = query.where(AuditEvent.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.created_at <= filters.until)
    return query.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())


def _after(query: Select[tuple[AuditEvent]], cursor: AuditCursor | None) -> Select[tuple[AuditEvent]]:
    if cursor is None:
        return query
    return query.where(or_(
        AuditEvent.created_at < cursor.created_at,
        and_(AuditEvent.created_at == cursor.created_at, AuditEvent.id < cursor.id),
    ))


def _page(session: TenantSession, filters: AuditFilter, cursor: AuditCursor | None, limit: int) -> AuditPage:
    rows = list(session.scalars(_after(_query(filters), cursor).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows and more else None
    names = _object_names(session, rows)
    return AuditPage([_entry(r, names) for r in rows], AuditCursor(last.created_at, last.id) if last else None)


def search(
    session: TenantSession, actor: Actor, filters: AuditFilter | None = None, *,
    cursor: AuditCursor | None = None, limit: int = PAGE_SIZE,
) -> AuditPage:
    """One page of the clinic's audit events, newest first; pass ``next_cursor`` for the next page."""
    authorize(session, actor, Permission.VIEW_AUDIT)
    filters = filters or AuditFilter()
    _check_filter(filters)
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(f"Show between 1 and {MAX_PAGE_SIZE} events per page.", field="limit")
    return _page(session, filters, cursor, limit)


def choices(session: TenantSession, actor: Actor) -> AuditChoices:
    """The clinic's staff (deactivated included) and the actions and object types on record."""
    authorize(session, actor, Permission.VIEW_AUDIT)
    users = {u.id: f"{u.display_name} ({u.username})" for u in session.scalars(
        select(User).order_by(User.username))}
    actions = sorted(set(ACTION_LABELS) | set(session.scalars(select(AuditEvent.action).distinct())))
    object_types = sorted(t for t in session.scalars(select(AuditEvent.object_type).distinct()) if t)
    return AuditChoices(users=users, actions=actions, object_types=object_types)


def _all(session: TenantSession, filters: AuditFilter) -> Iterator[AuditEntry]:
    cursor: AuditCursor | None = None
    sent = 0
    while sent < MAX_EXPORT_ROWS:
        page = _page(session, filters, cursor, min(EXPORT_CHUNK, MAX_EXPORT_ROWS - sent))
        yield from page.entries
        sent += len(page.entries)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def export_csv(session: TenantSession, actor: Actor, filters: AuditFilter | None = None) -> bytes:
    """The matching events as a CSV file (UTF-8 with BOM, formula-safe); the export is audited."""
    authorize(session, actor, Permission.VIEW_AUDIT)
    filters = filters or AuditFilter()
    _check_filter(filters)
    entries = list(_all(session, filters))
    data = to_csv(CSV_HEADER, (
        (e.created_at.astimezone(dt.UTC), e.actor_name, e.action, e.object_type, e.object_id, e.details_text)
        for e in entries
    ))
    record(session, actor, "audit.export", object_type="audit_log",
           details={"rows": len(entries), "filters": filters.described()})
    return data
