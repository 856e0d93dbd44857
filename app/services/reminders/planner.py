"""Planning reminders: one row per (appointment, rule), kept in step with appointments, rules and the calendar.

``plan`` is the one place that decides when a reminder goes, and whether it goes at all. It is
called by every path that changes what reminders depend on (the appointments' intake, a reply
that cancels, a rule or calendar change) and, as a safety net, by the maintenance pass for the
appointments changed since its last look (``plan_changed``). It is idempotent: planning twice
changes nothing the second time; one planner at a time works in a clinic (on PostgreSQL a lock held
to the end of the caller's transaction), so each reminder is inserted once (the unique (appointment,
rule) row backs that up).

What it decides, for each open appointment still to come and each active rule covering it:
- a reminder not sent yet goes at the rule's time, moved by the clinic's calendar
  (``calendar.ClinicHours.place``; an urgent rule goes at its exact time);
- a time that had passed when it was planned (booked too late), or no sending time before the
  appointment, is ``skipped`` with the reason: a reminder is never sent late;
- a sent reminder is not touched again, unless the appointment moved after it was sent: then the
  reminder is planned again for the new time (the old message, if it has not left yet, is
  cancelled: it names the old time), and it goes at the new time like any other, or is skipped
  when that time has passed;
Reminders of an appointment that was cancelled, completed, missed or has started, and of a rule
that was turned off or no longer covers it, are cancelled with the reason; when the appointment
itself is over, a reminder message that has not left yet is cancelled too.

Set-based: one read of the rules, one of the appointments and one of their reminders per chunk,
placement in Python (the calendar caches its days), one COPY of the new rows and one bulk update.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, and_, bindparam, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from app.delivery.lifecycle import transition
from app.services.reminders.calendar import ClinicHours, Placement
from db.enums import (
    CANCELLABLE,
    OPEN_APPOINTMENT_STATUSES,
    AppointmentStatus,
    MessageStatus,
    ReminderShift,
    ReminderStatus,
)
from db.models import (
    Appointment,
    AppointmentReminder,
    ClinicCalendar,
    Message,
    ReminderRule,
    RollupWatermark,
    Tenant,
)
from db.pgcopy import copy_rows
from db.session import SYSTEM, scoped_connection, tenant_session
from db.tenancy import TenantScopeError, TenantSession
from db.types import utcnow

CHUNK = 5000  # appointments per read (and per IN list)
PLANNER_LOCK = 20_020  # the advisory lock's first key (the second: the clinic)
WATERMARK = "reminder_planner"  # how far the maintenance pass has read appointments.updated_at
WATERMARK_OVERLAP = dt.timedelta(minutes=2)  # re-read a little: a change committed late is not missed
OPEN = tuple(sorted(OPEN_APPOINTMENT_STATUSES))
REVIVABLE = (ReminderStatus.PENDING, ReminderStatus.SKIPPED, ReminderStatus.CANCELLED)  # while no message is written
WATCHED = (ReminderStatus.PENDING, ReminderStatus.SENT)  # may still be cancelled (a sent one: its waiting message)

PASSED = "its time had passed when it was planned (booked too late)"
CLOSED_REASONS = {
    AppointmentStatus.CANCELLED: "the appointment was cancelled",
    AppointmentStatus.COMPLETED: "the appointment took place",
    AppointmentStatus.NO_SHOW: "the patient did not come",
}
STARTED = "the appointment has started"
MOVED_SINCE_SENT = "the appointment moved after its reminder was sent"
RULE_OFF = "the rule was turned off"
NOT_COVERED = "the rule no longer covers this appointment's type or department"


@dataclass(frozen=True)
class PlanResult:
    """What one planning pass changed: reminders newly planned, moved to another time, cancelled, skipped."""

    planned: int = 0
    moved: int = 0
    cancelled: int = 0
    skipped: int = 0

    def __add__(self, other: PlanResult) -> PlanResult:
        return PlanResult(self.planned + other.planned, self.moved + other.moved,
                          self.cancelled + other.cancelled, self.skipped + other.skipped)


@dataclass(frozen=True)
class _Rule:
    id: uuid.UUID
    revision: int
    offset: dt.timedelta
    shift: ReminderShift
    urgent: bool
    types: frozenset[str]
    departments: frozenset[str]

    def covers(self, appointment_type: str, department: str) -> bool:
        return ((not self.types or _key(appointment_type) in self.types)
                and (not self.departments or _key(department) in self.departments))


@dataclass(frozen=True)
class _Wanted:
    status: ReminderStatus
    due_at: dt.datetime
    moved_reason: str
    status_reason: str


def _key(value: str | None) -> str:
    """Types and departments match ignoring case and surrounding spaces (clinic systems differ)."""
    return (value or "").strip().casefold()


def clinic_hours(session: TenantSession) -> ClinicHours:
    """The session's clinic's sending calendar (its ``ClinicCalendar`` row, or the defaults)."""
    tenant = session.get(Tenant, session.tenant_id)
    if tenant is None:
        raise LookupError("the session's clinic does not exist")
    row = session.scalar(select(ClinicCalendar))
    return ClinicHours.of(row, timezone=tenant.timezone, region=tenant.default_region)


def _rules(session: TenantSession) -> dict[uuid.UUID, _Rule]:
    rows = session.scalars(select(ReminderRule).where(ReminderRule.is_active.is_(True),
                                                      ReminderRule.deleted_at.is_(None)))
    return {r.id: _Rule(r.id, r.revision, dt.timedelta(minutes=r.offset_minutes), ReminderShift(r.shift),
                        bool(r.urgent), frozenset(map(_key, r.appointment_types or ())),
                        frozenset(map(_key, r.departments or ()))) for r in rows}


def _scopes(appointment_ids: Collection[uuid.UUID] | None, now: dt.datetime) -> Iterator[Any]:
    """The appointments each read covers: the given ids (in chunks), or every upcoming open one plus
    those with a reminder that may still need cancelling."""
    if appointment_ids is not None:
        ids = list(dict.fromkeys(appointment_ids))
        for start in range(0, len(ids), CHUNK):
            yield Appointment.id.in_(ids[start:start + CHUNK])
        return
    waiting = select(Message.id).where(Message.status.in_(CANCELLABLE))
    yield or_(
        and_(Appointment.status.in_(OPEN), Appointment.starts_at > now),
        Appointment.id.in_(select(AppointmentReminder.appointment_id).where(
            AppointmentReminder.status == ReminderStatus.PENDING)),
        Appointment.id.in_(select(AppointmentReminder.appointment_id).where(
            AppointmentReminder.message_id.in_(waiting), AppointmentReminder.status == ReminderStatus.SENT)),
    )


def plan(session: TenantSession, *, appointment_ids: Collection[uuid.UUID] | None = None,
         now: dt.datetime | None = None) -> PlanResult:
    """(Re)plan the reminders of ``appointment_ids`` (None: every upcoming appointment of the session's
    clinic, and cancel what no longer applies). Writes in ``session``; idempotent."""
    now = now or utcnow()
    _lock(session)
    rules = _rules(session)
    if not rules and session.scalar(select(AppointmentReminder.id).where(
            AppointmentReminder.status.in_(WATCHED)).limit(1)) is None:
        return PlanResult()  # no rule, and no reminder that may still need cancelling: nothing to read
    hours = clinic_hours(session)
    total = PlanResult()
    for scope in _scopes(appointment_ids, now):
        total += _plan_chunk(session, scope, rules, hours, now)
    return total


def _wanted(rule: _Rule, starts_at: dt.datetime, hours: ClinicHours, now: dt.datetime,
            existing_due: dt.datetime | None) -> _Wanted:
    """Where ``rule``'s reminder of an appointment at ``starts_at`` goes; ``existing_due``: the time of
    its pending reminder, kept when it is already due (the dispatch takes it), never revived late."""
    wanted = starts_at - rule.offset
    placement = Placement(wanted) if rule.urgent else hours.place(wanted, rule.shift, not_after=starts_at)
    if placement.at_utc is None:
        return _Wanted(ReminderStatus.SKIPPED, wanted, placement.moved_reason, placement.refused)
    if placement.at_utc >= starts_at:  # an urgent rule's offset never puts it after the start (offset > 0)
        return _Wanted(ReminderStatus.SKIPPED, wanted, "", "it would come after the appointment")
    if placement.at_utc < now and placement.at_utc != existing_due:  # due and waiting for dispatch: keep
        return _Wanted(ReminderStatus.SKIPPED, placement.at_utc, placement.moved_reason, PASSED)
    return _Wanted(ReminderStatus.PENDING, placement.at_utc, placement.moved_reason, "")


def _plan_chunk(session: TenantSession, scope: Any, rules: dict[uuid.UUID, _Rule], hours: ClinicHours,
                now: dt.datetime) -> PlanResult:
    appointments = session.execute(select(
        Appointment.id, Appointment.starts_at, Appointment.status, Appointment.appointment_type,
        Appointment.department).where(scope)).all()
    if not appointments:
        return PlanResult()
    existing = {(r.appointment_id, r.rule_id): r for r in session.execute(select(
        AppointmentReminder.id, AppointmentReminder.appointment_id, AppointmentReminder.rule_id,
        AppointmentReminder.rule_revision, AppointmentReminder.status, AppointmentReminder.due_at,
        AppointmentReminder.moved_reason, AppointmentReminder.status_reason, AppointmentReminder.message_id,
        AppointmentReminder.sent_for_starts_at,
    ).where(AppointmentReminder.appointment_id.in_(select(Appointment.id).where(scope)))).all()}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    cancels: list[dict[str, Any]] = []
    over: dict[uuid.UUID, str] = {}  # appointments that are over: their waiting reminder messages go too
    again: list[tuple[Any, dict[str, Any]]] = []  # sent for a time the appointment no longer has
    planned = moved = skipped = 0
    for appointment in appointments:
        status = AppointmentStatus(appointment.status)
        closed = CLOSED_REASONS.get(status) or (STARTED if appointment.starts_at <= now else "")
        if closed:
            over[appointment.id] = closed
        for rule in rules.values():
            if closed or not rule.covers(appointment.appointment_type, appointment.department):
                continue
            row = existing.pop((appointment.id, rule.id), None)
            waiting = row is not None and row.message_id is None and row.status == ReminderStatus.PENDING
            want = _wanted(rule, appointment.starts_at, hours, now, row.due_at if waiting else None)
            if row is None:
                inserts.append(_new_row(session.tenant_id, appointment.id, rule, want, now))
                planned += want.status == ReminderStatus.PENDING
                skipped += want.status == ReminderStatus.SKIPPED
                continue
            if _moved_since_sent(row, appointment.starts_at):
                if want.status == ReminderStatus.PENDING:
                    again.append((row, {"b_id": row.id, "status": want.status, "due_at": want.due_at,
                                        "moved_reason": want.moved_reason, "status_reason": MOVED_SINCE_SENT,
                                        "rule_revision": rule.revision, "planned_at": now}))
                continue
            if row.message_id is not None or ReminderStatus(row.status) not in REVIVABLE:
                continue  # sent: never planned again
            if (ReminderStatus(row.status), row.due_at, row.moved_reason, row.status_reason, row.rule_revision) == (
                    want.status, want.due_at, want.moved_reason, want.status_reason, rule.revision):
                continue
            updates.append({"b_id": row.id, "status": want.status, "due_at": want.due_at,
                            "moved_reason": want.moved_reason, "status_reason": want.status_reason,
                            "rule_revision": rule.revision, "planned_at": now})
            if want.status == ReminderStatus.PENDING:
                if ReminderStatus(row.status) != ReminderStatus.PENDING:
                    planned += 1
                elif row.due_at != want.due_at:
                    moved += 1
            elif ReminderStatus(row.status) == ReminderStatus.PENDING:
                skipped += 1
    for (appointment_id, rule_id), row in existing.items():  # what no rule wants any more
        if ReminderStatus(row.status) == ReminderStatus.PENDING:
            reason = over.get(appointment_id) or (NOT_COVERED if rule_id in rules else RULE_OFF)
            cancels.append({"b_id": row.id, "status_reason": reason, "planned_at": now})
    _insert(session, inserts)
    _update(session, updates, only_unsent=True)
    planned += _plan_again(session, again, now)
    _update(session, [{**c, "status": ReminderStatus.CANCELLED} for c in cancels], only_unsent=True,
            columns=("status", "status_reason", "planned_at"))
    cancelled = len(cancels) + _cancel_waiting_messages(session, [
        (row, over[appointment_id]) for (appointment_id, _rule), row in existing.items()
        if appointment_id in over and row.message_id is not None
        and ReminderStatus(row.status) == ReminderStatus.SENT], now)
    return PlanResult(planned=planned, moved=moved, cancelled=cancelled, skipped=skipped)


def _moved_since_sent(row: Any, starts_at: dt.datetime) -> bool:
    """A reminder sent for another time than the appointment's now (it named the old time)."""
    return (row.message_id is not None and ReminderStatus(row.status) == ReminderStatus.SENT
            and row.sent_for_starts_at is not None and row.sent_for_starts_at != starts_at)


def _plan_again(session: TenantSession, rows: list[tuple[Any, dict[str, Any]]], now: dt.datetime) -> int:
    """Reminders sent for an old time, planned again for the new one (the dispatch then writes a new
    message under a new key); an old message that has not left yet is cancelled. How many."""
    if not rows:
        return 0
    _cancel_unsent_messages(session, [(row, MOVED_SINCE_SENT) for row, _ in rows], now)
    table = AppointmentReminder.__table__
    statement = (update(table).where(table.c.id == bindparam("b_id"), table.c.tenant_id == session.tenant_id,
                                     table.c.message_id == bindparam("b_message"))
                 .values({**{c: bindparam(c) for c in _UPDATE_COLUMNS}, "message_id": None, "sent_at": None}))
    session.connection().execute(statement, [{**values, "b_message": row.message_id} for row, values in rows])
    return len(rows)


def _new_row(tenant_id: uuid.UUID | None, appointment_id: uuid.UUID, rule: _Rule, want: _Wanted,
             now: dt.datetime) -> dict[str, Any]:
    return {"id": uuid.uuid4(), "tenant_id": tenant_id, "appointment_id": appointment_id, "rule_id": rule.id,
            "rule_revision": rule.revision, "status": want.status, "due_at": want.due_at,
            "moved_reason": want.moved_reason, "status_reason": want.status_reason, "message_id": None,
            "planned_at": now, "sent_at": None}


def _lock(session: TenantSession) -> None:
    """One planner at a time per clinic (PostgreSQL: a lock held to the end of the caller's transaction),
    so what it read is what it writes: the rows it inserts cannot exist yet."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key, hashtext(:clinic))"),
                           {"key": PLANNER_LOCK, "clinic": str(session.tenant_id)})


def _insert(session: TenantSession, rows: list[dict[str, Any]]) -> None:
    """New reminders: one COPY on PostgreSQL (under the planner's lock: none of them exists yet); on
    SQLite (one writer at a time) an INSERT that leaves a row already there as it is."""
    if not rows:
        return
    if any(row["tenant_id"] != session.tenant_id for row in rows):
        raise TenantScopeError("refusing to insert a reminder of another clinic")
    connection = session.connection()
    table = AppointmentReminder.__table__
    if connection.dialect.name == "postgresql":
        copy_rows(connection, table, rows)
    else:
        connection.execute(sqlite.insert(table).on_conflict_do_nothing(index_elements=["appointment_id", "rule_id"]),
                           rows)


_UPDATE_COLUMNS = ("status", "due_at", "moved_reason", "status_reason", "rule_revision", "planned_at")


def _update(session: TenantSession, rows: list[dict[str, Any]], *, only_unsent: bool,
            columns: Sequence[str] = _UPDATE_COLUMNS) -> None:
    """Bulk update by id in the session's clinic; ``only_unsent``: never a reminder whose message was
    written meanwhile (dispatch won the race)."""
    if not rows:
        return
    table = AppointmentReminder.__table__
    statement = update(table).where(table.c.id == bindparam("b_id"), table.c.tenant_id == session.tenant_id)
    if only_unsent:
        statement = statement.where(table.c.message_id.is_(None), table.c.status != ReminderStatus.SENT.value)
    session.connection().execute(statement.values({c: bindparam(c) for c in columns}), rows)


def _cancel_unsent_messages(session: TenantSession, rows: list[tuple[Any, str]], now: dt.datetime) -> list[
        tuple[Any, str]]:
    """Cancel each reminder's message that has not left yet, with the reason; the (reminder, reason)
    pairs whose message was cancelled."""
    waiting = set(session.scalars(select(Message.id).where(
        Message.id.in_([row.message_id for row, _ in rows]), Message.status.in_(CANCELLABLE)))) if rows else set()
    return [(row, reason) for row, reason in rows if row.message_id in waiting and transition(
        session, row.message_id, MessageStatus.CANCELLED, event="cancelled", detail=f"reminder cancelled: {reason}",
        only_from=set(CANCELLABLE), now=now, values={"status_reason": f"Reminder cancelled: {reason}."})]


def _cancel_waiting_messages(session: TenantSession, rows: list[tuple[Any, str]], now: dt.datetime) -> int:
    """The reminder messages of appointments that are over and have not left yet: cancelled (the
    reminder with them). How many reminders that cancelled."""
    done = [{"b_id": row.id, "status": ReminderStatus.CANCELLED,
             "status_reason": f"{reason}; its message was cancelled before it left", "planned_at": now}
            for row, reason in _cancel_unsent_messages(session, rows, now)]
    _update(session, done, only_unsent=False, columns=("status", "status_reason", "planned_at"))
    return len(done)


# -- the maintenance pass's safety net -----------------------------------------------------------


def _changed_clinics(engine: Engine, since: dt.datetime | None) -> list[uuid.UUID]:
    """Clinics (ids only) with active rules whose appointments changed since ``since`` (None: all of them)."""
    with_rules = select(ReminderRule.tenant_id).where(ReminderRule.is_active.is_(True),
                                                      ReminderRule.deleted_at.is_(None))
    query: Select[Any] = select(Appointment.tenant_id).where(Appointment.tenant_id.in_(with_rules)).distinct()
    if since is not None:
        query = query.where(Appointment.updated_at > since)
    with scoped_connection(engine, SYSTEM) as connection:
        return list(connection.scalars(query))


def plan_changed(engine: Engine, now: dt.datetime) -> int:
    """Re-plan the appointments changed since the last pass, clinic by clinic (the intake paths plan
    what they change themselves; this catches anything written another way). The first pass plans
    every upcoming appointment. Returns how many reminders changed. The watermark is read and moved on
    the wall clock that stamps ``appointments.updated_at``; ``now`` is the planning time."""
    started = utcnow()
    with scoped_connection(engine, SYSTEM) as connection:
        since = connection.scalar(select(RollupWatermark.watermark).where(RollupWatermark.name == WATERMARK))
    read_from = since - WATERMARK_OVERLAP if since is not None else None
    changed = 0
    for clinic in _changed_clinics(engine, read_from):
        with tenant_session(engine, clinic) as session:
            ids = None if read_from is None else list(session.scalars(
                select(Appointment.id).where(Appointment.updated_at > read_from)))
            result = plan(session, appointment_ids=ids, now=now)
        changed += result.planned + result.moved + result.cancelled + result.skipped
    with scoped_connection(engine, SYSTEM) as connection:
        table = RollupWatermark.__table__
        mark = max(started, since) if since is not None else started
        if connection.execute(table.update().where(table.c.name == WATERMARK).values(watermark=mark)).rowcount == 0:
            make = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
            connection.execute(make(table).values(name=WATERMARK, watermark=mark).on_conflict_do_nothing())
    return changed
