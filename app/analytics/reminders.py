"""What reminders and replies achieve, for one clinic and one period: the Analytics page's
"Reminders and replies" tab. Each table is ready to chart and to download (``app.analytics.chart_csv``).

Appointments are counted by the clinic day they start on (``Appointment.starts_at`` in the period),
replies by the clinic day they came in (``InboundMessage.received_at`` in the period). Weeks start
on Sunday (the Saudi working week) and are named by that day. Days and weeks are in the clinic's
time zone (``app.analytics.sql.in_zone``).

Definitions:

- **Reminded**: the appointment has at least one reminder sent (``AppointmentReminder.status`` is
  ``sent``: its message was written), whatever became of that message afterwards.
- **Acted on** (``acted_on``): a confirm or cancel reply that changed the appointment it names: the
  reply handler (``app.services.replies.receive``) stored an outcome starting "appointment
  confirmed" or "appointment cancelled". A second confirm ("appointment already confirmed") changed
  nothing.
- **Confirmed by reply**: a reply acted on confirmed the appointment and no later one cancelled it.
  Counted from the replies, not from ``Appointment.status``: once the clinic's system records the
  visit (completed, no-show) or echoes the change back, the status no longer says who confirmed,
  and the reply still does.
- **Confirmation rate**: confirmed by reply / reminded, over the reminded appointments of each day
  (cancelled ones included: they were reminded and not confirmed).
- **Cancelled by reply**: a reply acted on cancelled the appointment (reminded or not).
  **Hours freed**: from that reply (the first, if several) to the appointment's start; their total
  and median.
- **No-show rate**: no-shows / (completed + no-shows) (``db.enums.ATTENDANCE_RECORDED``), for the
  reminded and the not-reminded appointments apart; appointments whose attendance is not recorded
  (still booked or confirmed, or cancelled) are left out of the rate and counted beside it.
- **For the front desk** (``for_the_front_desk``): a reply nobody acted on automatically: intent
  reschedule or unclear, or an outcome starting "for the front desk:" (a confirm or cancel with no
  appointment, or several, awaiting an answer; a change the appointment refused).
- **Front desk reply time**: a wait starts at a reply for the front desk and ends at the first of
  (1) an answer: a message written by a staff member (``Message.created_by_id`` set, not part of a
  bulk send, not a test, not a retry of an earlier message) to the thread's address or to its
  patient, created at or after the reply,
  or (2) the thread marked done (the inbox's ``inbox.done`` audit event). Replies of one thread that
  the same event ends are one wait, from the first of them: a patient who writes three times
  before anyone answers waited once. **Median** and **90th percentile** (linear between the closest
  ranks) of the answered waits, per week of their first reply, in minutes. **Done without an
  answer**: waits ended by marking the thread done; **still waiting**: waits nothing has ended yet
  (neither is in the reply time).
- **Replies by intent**: every reply received, per day and understood intent (``ReplyIntent.label``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, and_, case, func, or_, select, text

from app.analytics.sql import in_zone, local_day, seconds_between
from app.analytics.stats import rate
from app.analytics.store import Period
from app.services.replies.receive import CANCELLED, CONFIRMED, FOR_FRONT_DESK
from db.enums import ATTENDANCE_RECORDED, AppointmentStatus, ReminderStatus, ReplyIntent
from db.models import Appointment, AppointmentReminder, AuditEvent, Conversation, InboundMessage, Message
from db.tenancy import TenantSession

# The beginnings of the outcomes the reply handler stores on a reply.
FRONT_DESK_OUTCOME = FOR_FRONT_DESK
ACTED_OUTCOMES = {ReplyIntent.CONFIRM: CONFIRMED, ReplyIntent.CANCEL: CANCELLED}
PERSON_INTENTS = (ReplyIntent.RESCHEDULE, ReplyIntent.UNCLEAR)  # never acted on automatically
THREAD_DONE = "inbox.done"  # the audit action of marking a thread done (``app.services.inbox.working``)
REMINDED, NOT_REMINDED = "Reminded", "Not reminded"

CONFIRMATION_COLUMNS = ["Day", "Reminded appointments", "Confirmed by reply", "Confirmation rate (%)"]
CANCELLATION_COLUMNS = ["Day", "Cancelled by reply", "Hours freed", "Median hours before the appointment"]
NO_SHOW_COLUMNS = ["Appointments", "With attendance recorded", "Completed", "No-shows", "No-show rate (%)",
                   "Attendance not recorded"]
REPLY_TIME_COLUMNS = ["Week", "Answered", "Median reply time (min)", "90th percentile (min)",
                      "Done without an answer", "Still waiting"]
INTENT_COLUMNS = ["Day", "Intent", "Replies"]


def for_the_front_desk(reply: Any = InboundMessage) -> ColumnElement[bool]:
    """A reply nobody acted on automatically: it waits in the inbox for a person."""
    return or_(reply.intent.in_(PERSON_INTENTS), reply.outcome.startswith(FRONT_DESK_OUTCOME, autoescape=True))


def acted_on(reply: Any, intent: ReplyIntent) -> ColumnElement[bool]:
    """A ``reply`` whose clear ``intent`` (confirm or cancel) changed the appointment it names."""
    return and_(reply.intent == intent, reply.appointment_id.is_not(None),
                reply.outcome.startswith(ACTED_OUTCOMES[intent], autoescape=True))


@dataclass(frozen=True)
class Totals:
    """The period's figures in one line each (the metrics above the charts)."""

    reminded: int
    confirmed: int
    cancelled_by_reply: int
    hours_freed: float
    median_hours_freed: float | None
    answered: int
    median_reply_minutes: float | None
    p90_reply_minutes: float | None
    still_waiting: int
    replies: int

    @property
    def confirmation_rate(self) -> float | None:
        return rate(self.confirmed, self.reminded)


@dataclass(frozen=True)
class ReminderResults:
    totals: Totals
    confirmations: pd.DataFrame  # CONFIRMATION_COLUMNS, per clinic day of the appointments
    cancellations: pd.DataFrame  # CANCELLATION_COLUMNS, per clinic day of the appointments
    no_shows: pd.DataFrame  # NO_SHOW_COLUMNS, one row for the reminded and one for the others
    reply_times: pd.DataFrame  # REPLY_TIME_COLUMNS, per week (from Sunday) of the first reply
    intents: pd.DataFrame  # INTENT_COLUMNS, per clinic day of the replies

    @property
    def empty(self) -> bool:
        return (self.confirmations.empty and self.cancellations.empty and self.no_shows.empty
                and self.reply_times.empty and self.intents.empty)


def week_of(day: dt.date) -> dt.date:
    """The Sunday that starts ``day``'s week."""
    return day - dt.timedelta(days=(day.weekday() + 1) % 7)


def _day(column: Any, period: Period) -> ColumnElement[Any]:
    return in_zone(local_day, column, period.timezone, period.end)


def _as_date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _pct(part: float, whole: float) -> float | None:
    value = rate(part, whole)
    return None if value is None else round(100 * value, 1)


def _acted_replies(session: TenantSession, period: Period) -> Any:
    """Per appointment, its last confirm and its last cancel acted on (one pass over the clinic's replies
    before the period's end: a reply is acted on only before its appointment starts)."""
    def last(intent: ReplyIntent) -> Any:
        return func.max(case((acted_on(InboundMessage, intent), InboundMessage.received_at)))

    return (select(InboundMessage.appointment_id, last(ReplyIntent.CONFIRM).label("confirmed_at"),
                   last(ReplyIntent.CANCEL).label("cancelled_at"))
            .where(InboundMessage.tenant_id == session.tenant_id, InboundMessage.received_at < period.end,
                   or_(*(acted_on(InboundMessage, intent) for intent in ACTED_OUTCOMES)))
            .group_by(InboundMessage.appointment_id).subquery("acted_replies"))


def _appointments(session: TenantSession, period: Period) -> Any:
    """The period's appointments: clinic day, status, reminded (0/1), confirmed by reply (0/1)."""
    tenant = session.tenant_id
    sent = (select(AppointmentReminder.id)
            .where(AppointmentReminder.tenant_id == tenant, AppointmentReminder.appointment_id == Appointment.id,
                   AppointmentReminder.status == ReminderStatus.SENT).exists())
    replies = _acted_replies(session, period)
    confirmed = and_(replies.c.confirmed_at.is_not(None),
                     or_(replies.c.cancelled_at.is_(None), replies.c.cancelled_at < replies.c.confirmed_at))
    return (select(_day(Appointment.starts_at, period).label("day"), Appointment.status.label("status"),
                   case((sent, 1), else_=0).label("reminded"), case((confirmed, 1), else_=0).label("confirmed"))
            .outerjoin(replies, replies.c.appointment_id == Appointment.id)
            .where(Appointment.tenant_id == tenant, Appointment.starts_at >= period.start,
                   Appointment.starts_at < period.end)
            .subquery("appointments_in_period"))


def _confirmations(session: TenantSession, period: Period) -> pd.DataFrame:
    rows = _appointments(session, period)
    result = session.execute(
        select(rows.c.day, func.count(), func.sum(rows.c.confirmed))
        .where(rows.c.reminded == 1).group_by(rows.c.day).order_by(rows.c.day)).all()
    return pd.DataFrame([[_as_date(day), int(reminded), int(confirmed or 0), _pct(confirmed or 0, reminded)]
                         for day, reminded, confirmed in result], columns=CONFIRMATION_COLUMNS)


def _no_shows(session: TenantSession, period: Period) -> pd.DataFrame:
    rows = _appointments(session, period)
    counts: dict[tuple[int, str], int] = {
        (int(reminded), str(status)): int(count) for reminded, status, count in session.execute(
            select(rows.c.reminded, rows.c.status, func.count()).group_by(rows.c.reminded, rows.c.status))}
    recorded_values = {status.value for status in ATTENDANCE_RECORDED}
    if not any(status in recorded_values for _flag, status in counts):
        return pd.DataFrame(columns=NO_SHOW_COLUMNS)  # nothing to compare yet
    table = []
    for reminded, label in ((1, REMINDED), (0, NOT_REMINDED)):
        mine = {status: count for (flag, status), count in counts.items() if flag == reminded}
        completed = mine.get(AppointmentStatus.COMPLETED.value, 0)
        no_shows = mine.get(AppointmentStatus.NO_SHOW.value, 0)
        recorded = sum(mine.get(s.value, 0) for s in ATTENDANCE_RECORDED)
        table.append([label, recorded, completed, no_shows, _pct(no_shows, recorded),
                      sum(mine.values()) - recorded])
    return pd.DataFrame(table, columns=NO_SHOW_COLUMNS)


def _cancellations(session: TenantSession, period: Period) -> tuple[pd.DataFrame, list[float]]:
    """Per day, and every cancelled appointment's hours freed (for the period's median)."""
    tenant = session.tenant_id
    freed_at = func.min(InboundMessage.received_at)
    day = _day(Appointment.starts_at, period)
    rows = session.execute(
        select(day, seconds_between(freed_at, Appointment.starts_at))
        .join(InboundMessage, and_(InboundMessage.appointment_id == Appointment.id,
                                   InboundMessage.tenant_id == tenant))
        .where(Appointment.tenant_id == tenant, Appointment.starts_at >= period.start,
               Appointment.starts_at < period.end, InboundMessage.received_at < period.end,
               acted_on(InboundMessage, ReplyIntent.CANCEL))
        .group_by(Appointment.id, Appointment.starts_at, day)).all()
    if not rows:
        return pd.DataFrame(columns=CANCELLATION_COLUMNS), []
    hours = pd.DataFrame([(_as_date(d), float(seconds) / 3600) for d, seconds in rows], columns=["Day", "hours"])
    table = hours.groupby("Day")["hours"].agg(["count", "sum", "median"]).reset_index().sort_values("Day")
    table.columns = CANCELLATION_COLUMNS
    table["Hours freed"] = table["Hours freed"].round(1)
    table["Median hours before the appointment"] = table["Median hours before the appointment"].round(1)
    return table.reset_index(drop=True), hours["hours"].tolist()


def _first_answers(tenant: Any) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """When staff first wrote, at or after the reply of the outer query, to its thread's address and
    to its patient: two index probes ((clinic, recipient, time) and (clinic, patient, time))."""
    def first(to: ColumnElement[bool]) -> ColumnElement[Any]:
        return (select(Message.created_at)
                .where(Message.tenant_id == tenant, to, Message.created_at >= InboundMessage.received_at,
                       Message.created_by_id.is_not(None), Message.bulk_job_id.is_(None), Message.is_test.is_(False),
                       Message.retry_of_id.is_(None))
                .order_by(Message.created_at).limit(1)  # the index's order: stops at the first
                .correlate(InboundMessage, Conversation).scalar_subquery())

    return first(Message.recipient == Conversation.address), first(Message.patient_id == InboundMessage.patient_id)


def _done_marks(session: TenantSession, period: Period) -> dict[uuid.UUID, list[dt.datetime]]:
    """When each thread was marked done since the period began (the inbox's audit events), in order."""
    marks: dict[uuid.UUID, list[dt.datetime]] = {}
    for object_id, at in session.execute(
            select(AuditEvent.object_id, AuditEvent.created_at)
            .where(AuditEvent.tenant_id == session.tenant_id, AuditEvent.action == THREAD_DONE,
                   AuditEvent.object_type == "conversation", AuditEvent.created_at >= period.start)
            .order_by(AuditEvent.created_at)):
        try:
            marks.setdefault(uuid.UUID(str(object_id)), []).append(_utc(at))
        except ValueError:
            continue
    return marks


def _utc(at: dt.datetime) -> dt.datetime:
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def _waits(session: TenantSession, period: Period) -> pd.DataFrame:
    """One row per wait: when its first reply came (week), how long until an answer, and how it ended."""
    tenant = session.tenant_id
    rows = session.execute(
        select(InboundMessage.conversation_id, InboundMessage.received_at, _day(InboundMessage.received_at, period),
               *_first_answers(tenant))
        .join(Conversation, and_(Conversation.id == InboundMessage.conversation_id, Conversation.tenant_id == tenant))
        .where(InboundMessage.tenant_id == tenant, InboundMessage.received_at >= period.start,
               InboundMessage.received_at < period.end, for_the_front_desk())
        .order_by(InboundMessage.received_at)).all()
    marks = _done_marks(session, period) if rows else {}
    waits: dict[tuple[uuid.UUID, dt.datetime | None], tuple[dt.date, float | None, str]] = {}
    for thread, received_at, day, *answers in rows:
        received_at = _utc(received_at)
        answered_at = min((_utc(at) for at in answers if at is not None), default=None)
        done_at = next((at for at in marks.get(thread, ()) if at >= received_at), None)
        if answered_at is not None and (done_at is None or answered_at <= done_at):
            end, ending = answered_at, "answered"
        else:
            end, ending = done_at, "done" if done_at is not None else "waiting"
        if (thread, end) not in waits:  # replies are in order: the first one starts the wait the same event ends
            minutes = (end - received_at).total_seconds() / 60 if ending == "answered" and end else None
            waits[(thread, end)] = (week_of(_as_date(day)), minutes, ending)
    frame = pd.DataFrame(list(waits.values()), columns=["week", "minutes", "ending"])
    frame["minutes"] = frame["minutes"].astype(float)
    return frame


def _reply_times(waits: pd.DataFrame) -> pd.DataFrame:
    if waits.empty:
        return pd.DataFrame(columns=REPLY_TIME_COLUMNS)
    table = []
    for week, group in waits.groupby("week", sort=True):
        minutes = group.loc[group["ending"] == "answered", "minutes"]
        table.append([week, len(minutes), _rounded(minutes.median()), _rounded(minutes.quantile(0.9)),
                      int((group["ending"] == "done").sum()), int((group["ending"] == "waiting").sum())])
    return pd.DataFrame(table, columns=REPLY_TIME_COLUMNS)


def _rounded(value: float) -> float | None:
    return None if pd.isna(value) else round(float(value), 1)


def _intents(session: TenantSession, period: Period) -> pd.DataFrame:
    day = _day(InboundMessage.received_at, period)
    rows = session.execute(
        select(day, InboundMessage.intent, func.count())
        .where(InboundMessage.tenant_id == session.tenant_id, InboundMessage.received_at >= period.start,
               InboundMessage.received_at < period.end)
        .group_by(day, InboundMessage.intent)).all()
    order = {intent: index for index, intent in enumerate(ReplyIntent)}
    rows = sorted(rows, key=lambda row: (_as_date(row[0]), order[ReplyIntent(row[1])]))
    return pd.DataFrame([[_as_date(d), ReplyIntent(intent).label, int(count)] for d, intent, count in rows],
                        columns=INTENT_COLUMNS)


def results(session: TenantSession, period: Period) -> ReminderResults:
    """Every table of the tab for ``period`` in the session's clinic (the caller checks the role)."""
    if session.get_bind().dialect.name == "postgresql":
        # the per-appointment and per-reply lookups inflate the planner's estimates: compiling the plans
        # (JIT) took a second of a 400-day period's 1.3 s; these reads run for milliseconds without it
        session.execute(text("SET LOCAL jit = off"))
    confirmations = _confirmations(session, period)
    cancellations, hours = _cancellations(session, period)
    waits = _waits(session, period)
    intents = _intents(session, period)
    answered = waits.loc[waits["ending"] == "answered", "minutes"] if not waits.empty else pd.Series(dtype=float)
    totals = Totals(
        reminded=int(confirmations["Reminded appointments"].sum()),
        confirmed=int(confirmations["Confirmed by reply"].sum()),
        cancelled_by_reply=len(hours), hours_freed=round(sum(hours), 1),
        median_hours_freed=_rounded(pd.Series(hours, dtype=float).median()),
        answered=len(answered), median_reply_minutes=_rounded(answered.median()),
        p90_reply_minutes=_rounded(answered.quantile(0.9)),
        still_waiting=int((waits["ending"] == "waiting").sum()) if not waits.empty else 0,
        replies=int(intents["Replies"].sum()),
    )
    return ReminderResults(totals=totals, confirmations=confirmations, cancellations=cancellations,
                           no_shows=_no_shows(session, period), reply_times=_reply_times(waits), intents=intents)

