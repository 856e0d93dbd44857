"""Reminders and replies on Analytics: confirmation rate, cancellations by reply, no-shows of reminded
and not-reminded appointments, the front desk's reply time, replies by intent.

Two clinics in Riyadh (UTC+3) share patients (names, numbers) and appointment times; clinic B's
reminders, replies and answers differ, so a query that forgets its clinic gets a wrong answer.
Every expected figure is read off the tables below. Both backends.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import statistics
import uuid
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from app.analytics import charts
from app.analytics.chart_csv import to_csv
from app.analytics.reminders import ReminderResults, week_of
from app.analytics.store import Period
from app.errors import PermissionDenied
from app.services import analytics
from app.services.permissions import Actor
from app.services.replies.receive import CANCELLED, CONFIRMED, FOR_FRONT_DESK
from db.enums import (
    AppointmentStatus,
    BulkJobStatus,
    Channel,
    MessageStatus,
    ReminderStatus,
    ReplyIntent,
    Role,
)
from db.models import (
    Appointment,
    AppointmentReminder,
    AuditEvent,
    BulkJob,
    Conversation,
    InboundMessage,
    Message,
    Patient,
    ReminderRule,
    Tenant,
)
from db.session import tenant_session
from db.tenancy import TenantScopeError
from tests.factories import make_tenant, make_user

RIYADH = ZoneInfo("Asia/Riyadh")
NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
FIRST, LAST = dt.date(2026, 11, 1), dt.date(2026, 11, 14)  # two weeks, each from a Sunday
HOSTILE = "=cmd|' /C calc'!A0"
A, S = AppointmentStatus, ReplyIntent

PATIENTS = {  # the neighbouring clinic and clinic B have patients with these very names and numbers
    "sara": ("+966501234567", "Sara Ali"), "omar": ("+966507654321", "Omar Said"),
    "layla": ("+966501112233", "Layla Hassan"),
}
UNKNOWN = "+966500000009"  # writes to the clinic; no patient has this number


def local(*parts: int) -> dt.datetime:
    """A clinic time (Riyadh) as the UTC time stored."""
    return dt.datetime(*parts, tzinfo=RIYADH).astimezone(dt.UTC)


def clinic_day(at: dt.datetime) -> dt.date:
    return at.astimezone(RIYADH).date()


@dataclass(frozen=True)
class Booking:
    key: str
    patient: str
    starts: tuple[int, ...]  # clinic time
    reminded: bool  # a reminder was sent (otherwise its reminders were skipped or are pending)
    status: AppointmentStatus  # what the clinic's system says now
    replies: tuple[tuple[ReplyIntent, float], ...] = ()  # replies acted on by themselves: (intent, hours before)

    @property
    def starts_at(self) -> dt.datetime:
        return local(*self.starts)

    @property
    def in_period(self) -> bool:
        return FIRST <= clinic_day(self.starts_at) <= LAST


BOOKINGS = (
    Booking("early", "sara", (2026, 11, 1, 0, 30), True, A.COMPLETED, ((S.CONFIRM, 20),)),  # 31 Oct in UTC
    Booking("kept", "omar", (2026, 11, 2, 9, 0), True, A.COMPLETED, ((S.CONFIRM, 24),)),
    Booking("missed", "layla", (2026, 11, 2, 10, 0), True, A.NO_SHOW, ((S.CONFIRM, 30),)),
    Booking("silent", "sara", (2026, 11, 2, 11, 0), True, A.COMPLETED),  # its confirm went to the front desk
    Booking("freed", "omar", (2026, 11, 2, 12, 0), True, A.CANCELLED, ((S.CANCEL, 26),)),
    Booking("changed mind", "layla", (2026, 11, 3, 9, 0), True, A.CANCELLED, ((S.CONFIRM, 48), (S.CANCEL, 5))),
    Booking("asks", "omar", (2026, 11, 3, 13, 0), True, A.BOOKED),  # no attendance recorded yet
    Booking("walk-in 1", "sara", (2026, 11, 3, 10, 0), False, A.NO_SHOW),
    Booking("walk-in 2", "omar", (2026, 11, 3, 11, 0), False, A.COMPLETED),
    Booking("walk-in 3", "layla", (2026, 11, 3, 12, 0), False, A.COMPLETED),
    Booking("walk-in 4", "sara", (2026, 11, 3, 14, 0), False, A.NO_SHOW),
    Booking("late night", "layla", (2026, 11, 14, 23, 30), False, A.COMPLETED),  # still 14 Nov in Riyadh
    Booking("before", "sara", (2026, 10, 31, 23, 30), True, A.COMPLETED, ((S.CONFIRM, 24),)),  # not in the period
    Booking("after", "omar", (2026, 11, 15, 0, 30), True, A.CANCELLED, ((S.CANCEL, 30),)),  # 14 Nov in UTC: not in it
)


@dataclass(frozen=True)
class ForTheDesk:
    """A reply nobody acted on automatically."""

    thread: str  # a patient, or UNKNOWN
    received: tuple[int, ...]
    intent: ReplyIntent
    about: str | None = None  # the booking it names
    outcome: str = ""

    @property
    def received_at(self) -> dt.datetime:
        return local(*self.received)


FRONT_DESK = (
    ForTheDesk("sara", (2026, 11, 2, 9, 0), S.CONFIRM, "silent", f"{FOR_FRONT_DESK} too close to the visit"),
    ForTheDesk("sara", (2026, 11, 2, 9, 5), S.UNCLEAR),  # same wait as the one before: answered 09:30
    ForTheDesk("omar", (2026, 11, 2, 17, 0), S.UNCLEAR, "asks"),
    ForTheDesk("layla", (2026, 11, 4, 10, 0), S.RESCHEDULE),
    ForTheDesk(UNKNOWN, (2026, 11, 9, 10, 0), S.CONFIRM, None, f"{FOR_FRONT_DESK} no appointment awaits"),
    ForTheDesk("layla", (2026, 11, 10, 9, 0), S.UNCLEAR),  # nobody answered: still waiting
    ForTheDesk("sara", (2026, 11, 11, 9, 0), S.UNCLEAR),  # the thread was marked done at 09:15, unanswered
    ForTheDesk("sara", (2026, 11, 12, 9, 0), S.UNCLEAR),  # reopens the thread: a new wait, answered 09:40
)
SARA_DONE_AT = local(2026, 11, 11, 9, 15)
OPT_OUT = ("layla", (2026, 11, 5, 8, 0))  # "STOP": neither acted on an appointment nor for the desk

# Clinic A's front desk answers (a message written by a staff member): (thread, clinic time, to the e-mail)
ANSWERS = (
    ("sara", (2026, 11, 2, 8, 0), False),  # before Sara's replies: answers none of them
    ("sara", (2026, 11, 2, 9, 30), False),
    ("omar", (2026, 11, 2, 18, 0), True),  # by e-mail: the patient, not the number
    ("layla", (2026, 11, 4, 10, 10), False),
    (UNKNOWN, (2026, 11, 9, 10, 20), False),
    ("sara", (2026, 11, 12, 9, 40), False),
)
# Read off the two tables: the waits in minutes, per week (from Sunday) of each wait's first reply.
WAITS = {dt.date(2026, 11, 1): [30, 60, 10], dt.date(2026, 11, 8): [20, 40]}
STILL_WAITING = {dt.date(2026, 11, 8): 1}
DONE_UNANSWERED = {dt.date(2026, 11, 8): 1}

# Clinic B: the same patients, times and replies; every appointment reminded and missed, every reply
# for the desk answered five minutes later.
B_BOOKINGS = tuple(replace(b, reminded=True, status=A.NO_SHOW) for b in BOOKINGS)
B_ANSWER_AFTER = dt.timedelta(minutes=5)


def _address(thread: str) -> str:
    return PATIENTS[thread][0] if thread in PATIENTS else thread


def _build(engine: Engine, tenant: uuid.UUID, desk: Actor, admin: Actor, bookings: tuple[Booking, ...],
           answers: list[tuple[str, dt.datetime, bool]], *, hostile: bool = False, done: bool = True) -> None:
    """The clinic's appointments, reminders, threads, replies and staff messages, as the system leaves them."""
    with tenant_session(engine, tenant) as session:
        session.get(Tenant, tenant).timezone = "Asia/Riyadh"
        patients = {key: Patient(name_en=HOSTILE if hostile and key == "layla" else name, name_ar="مريض",
                                 phone_e164=phone, email=f"{key}@example.com")
                    for key, (phone, name) in PATIENTS.items()}
        whatsapp = ReminderRule(name="WhatsApp 48 h before", channel=Channel.WHATSAPP, offset_minutes=48 * 60)
        sms = ReminderRule(name="SMS 3 h before", channel=Channel.SMS, offset_minutes=180)
        session.add_all([*patients.values(), whatsapp, sms])
        session.flush()
        threads = {key: Conversation(address=_address(key), patient_id=patients[key].id if key in patients else None)
                   for key in (*PATIENTS, UNKNOWN)}
        session.add_all(threads.values())
        session.flush()
        numbers = iter(range(1, 1000))

        def reply(thread: str, at: dt.datetime, intent: ReplyIntent, about: uuid.UUID | None, outcome: str,
                  body: str = "نعم") -> None:
            session.add(InboundMessage(
                conversation_id=threads[thread].id, patient_id=threads[thread].patient_id, channel=Channel.WHATSAPP,
                from_address=_address(thread), body=HOSTILE if hostile else body, received_at=at, intent=intent,
                appointment_id=about, outcome=outcome, provider_message_id=f"SM{next(numbers)}"))

        appointments = {}
        for booking in bookings:
            patient = patients[booking.patient]
            appointment = Appointment(patient_id=patient.id, starts_at=booking.starts_at, status=booking.status,
                                      source_id=f"HIS-{booking.key}", status_source="api",
                                      status_changed_at=booking.starts_at)
            session.add(appointment)
            session.flush()
            appointments[booking.key] = appointment.id
            due = booking.starts_at - dt.timedelta(hours=48)
            if booking.reminded:
                reminder_id = uuid.uuid4()
                message = Message(patient_id=patient.id, recipient=patient.phone_e164, channel=Channel.WHATSAPP,
                                  body="Reminder", status=MessageStatus.DELIVERED, created_at=due, updated_at=due,
                                  idempotency_key=f"reminder:{reminder_id}")
                session.add(message)
                session.flush()
                session.add(AppointmentReminder(id=reminder_id, appointment_id=appointment.id, rule_id=whatsapp.id,
                                                status=ReminderStatus.SENT, due_at=due, sent_at=due,
                                                message_id=message.id))
            later = ReminderStatus.PENDING if booking.status == A.BOOKED else ReminderStatus.SKIPPED
            session.add(AppointmentReminder(appointment_id=appointment.id, rule_id=sms.id, status=later,
                                            due_at=booking.starts_at - dt.timedelta(hours=3)))
            for intent, hours in booking.replies:
                reply(booking.patient, booking.starts_at - dt.timedelta(hours=hours), intent, appointment.id,
                      CONFIRMED if intent == S.CONFIRM else CANCELLED)
        for item in FRONT_DESK:
            reply(item.thread, item.received_at, item.intent, appointments.get(item.about or ""), item.outcome,
                  body="Can I come later?")
        reply(OPT_OUT[0], local(*OPT_OUT[1]), S.STOP, None, "opted out of whatsapp", body="STOP")
        if done:  # as the inbox's "mark done" records it (the thread's later reply reopened it since)
            session.add(AuditEvent(actor_id=desk.user_id, actor_name=desk.username, action="inbox.done",
                                   object_type="conversation", object_id=str(threads["sara"].id),
                                   details={"waiting_since": local(*FRONT_DESK[-2].received).isoformat()},
                                   created_at=SARA_DONE_AT))
        for thread, at, by_email in answers:
            patient = patients.get(thread)
            session.add(Message(patient_id=patient.id if patient else None, created_by_id=desk.user_id,
                                recipient=f"{thread}@example.com" if by_email else _address(thread),
                                channel=Channel.EMAIL if by_email else Channel.WHATSAPP, body="We can see you at 4.",
                                status=MessageStatus.DELIVERED, created_at=at, updated_at=at))
        # after Layla's last reply, messages that are no answer: the system's, a bulk send's, a test, a retry
        after = local(2026, 11, 10, 10, 0)
        job = BulkJob(name="Flu clinic", channel=Channel.WHATSAPP, status=BulkJobStatus.COMPLETED, total_recipients=1)
        session.add(job)
        session.flush()
        layla = patients["layla"]
        reminder = session.scalar(select(Message.id).where(Message.recipient == layla.phone_e164).limit(1))
        for fields in ({}, {"created_by_id": admin.user_id, "bulk_job_id": job.id},
                       {"created_by_id": admin.user_id, "is_test": True},
                       {"created_by_id": desk.user_id, "retry_of_id": reminder}):
            session.add(Message(patient_id=layla.id, recipient=layla.phone_e164, channel=Channel.WHATSAPP,
                                body="Notice", status=MessageStatus.DELIVERED, created_at=after, updated_at=after,
                                **fields))


@dataclass(frozen=True)
class Clinics:
    a: uuid.UUID
    b: uuid.UUID
    admin_a: Actor
    analyst_a: Actor
    desk_a: Actor
    admin_b: Actor


@pytest.fixture
def clinics(engine: Engine) -> Clinics:
    a, b = make_tenant(engine, "clinic-a"), make_tenant(engine, "clinic-b")
    world = Clinics(a, b, make_user(engine, a, "amira", Role.ADMIN), make_user(engine, a, "omar", Role.ANALYST),
                    make_user(engine, a, "fatima", Role.FRONT_DESK), make_user(engine, b, "bilal", Role.ADMIN))
    desk_b = make_user(engine, b, "huda", Role.FRONT_DESK)
    _build(engine, a, world.desk_a, world.admin_a, BOOKINGS,
           [(thread, local(*at), by_email) for thread, at, by_email in ANSWERS], hostile=True)
    _build(engine, b, desk_b, world.admin_b, B_BOOKINGS,
           [(item.thread, item.received_at + B_ANSWER_AFTER, False) for item in FRONT_DESK], done=False)
    return world


def period() -> Period:
    return Period.between_dates(FIRST, LAST, now=NOW, timezone="Asia/Riyadh")


def results(engine: Engine, tenant: uuid.UUID, actor: Actor) -> ReminderResults:
    with tenant_session(engine, tenant) as session:
        return analytics.reminder_results(session, actor, period())


def _confirmed(booking: Booking) -> bool:
    """The patient's last clear word on the appointment was a confirm."""
    decided = sorted(booking.replies, key=lambda r: -r[1])  # earliest first
    return bool(decided) and decided[-1][0] == S.CONFIRM


def test_confirmation_rate_is_confirmed_by_reply_of_the_reminded_per_clinic_day(engine: Engine,
                                                                                clinics: Clinics) -> None:
    got = results(engine, clinics.a, clinics.analyst_a)
    reminded = [b for b in BOOKINGS if b.in_period and b.reminded]
    days = sorted({clinic_day(b.starts_at) for b in reminded})
    expected = []
    for day in days:
        mine = [b for b in reminded if clinic_day(b.starts_at) == day]
        confirmed = sum(_confirmed(b) for b in mine)
        expected.append([day, len(mine), confirmed, round(100 * confirmed / len(mine), 1)])
    assert got.confirmations.values.tolist() == expected
    assert expected[0][0] == dt.date(2026, 11, 1)  # "early" is on the clinic's 1 November, 31 October in UTC
    assert (got.totals.reminded, got.totals.confirmed) == (7, 3)  # early, kept, missed; not silent nor changed mind
    assert got.totals.confirmation_rate == pytest.approx(3 / 7)


def test_cancellations_by_reply_count_the_slots_and_the_hours_they_were_freed_ahead(engine: Engine,
                                                                                   clinics: Clinics) -> None:
    got = results(engine, clinics.a, clinics.analyst_a)
    cancelled = {b.key: next(h for i, h in b.replies if i == S.CANCEL)
                 for b in BOOKINGS if b.in_period and any(i == S.CANCEL for i, _ in b.replies)}
    assert cancelled == {"freed": 26, "changed mind": 5}
    by_day: dict[dt.date, list[float]] = {}
    for b in BOOKINGS:
        if b.key in cancelled:
            by_day.setdefault(clinic_day(b.starts_at), []).append(cancelled[b.key])
    assert got.cancellations.values.tolist() == [
        [day, len(hours), sum(hours), statistics.median(hours)] for day, hours in sorted(by_day.items())]
    totals = got.totals
    assert (totals.cancelled_by_reply, totals.hours_freed) == (2, 31.0)
    assert totals.median_hours_freed == statistics.median(cancelled.values())  # 15.5, of all, not of the days


def test_no_show_rate_splits_reminded_and_not_reminded_with_the_sample_sizes(engine: Engine,
                                                                             clinics: Clinics) -> None:
    got = results(engine, clinics.a, clinics.analyst_a).no_shows.set_index("Appointments")
    for label, reminded in (("Reminded", True), ("Not reminded", False)):
        mine = [b for b in BOOKINGS if b.in_period and b.reminded == reminded]
        recorded = [b for b in mine if b.status in (A.COMPLETED, A.NO_SHOW)]
        no_shows = sum(b.status == A.NO_SHOW for b in recorded)
        row = got.loc[label]
        assert (row["With attendance recorded"], row["Completed"], row["No-shows"]) == (
            len(recorded), len(recorded) - no_shows, no_shows)
        assert row["No-show rate (%)"] == round(100 * no_shows / len(recorded), 1)
        assert row["Attendance not recorded"] == len(mine) - len(recorded)
    assert got.loc["Reminded", "No-show rate (%)"] == 25.0 and got.loc["Not reminded", "No-show rate (%)"] == 40.0


def test_front_desk_reply_time_per_week_and_the_threads_still_waiting(engine: Engine, clinics: Clinics) -> None:
    got = results(engine, clinics.a, clinics.analyst_a)
    expected = [[week, len(WAITS[week]), round(statistics.median(WAITS[week]), 1),
                 round(statistics.quantiles(WAITS[week], n=10, method="inclusive")[-1], 1)
                 if len(WAITS[week]) > 1 else float(WAITS[week][0]),
                 DONE_UNANSWERED.get(week, 0), STILL_WAITING.get(week, 0)] for week in sorted(WAITS)]
    assert got.reply_times.values.tolist() == expected
    everything = [minutes for week in WAITS.values() for minutes in week]
    assert (got.totals.answered, got.totals.still_waiting) == (5, 1)
    assert got.totals.median_reply_minutes == statistics.median(everything)  # 30: of the waits, not of the weeks
    assert got.totals.p90_reply_minutes == round(statistics.quantiles(everything, n=10, method="inclusive")[-1], 1)
    assert {week_of(clinic_day(item.received_at)) for item in FRONT_DESK} == set(WAITS)


def test_replies_by_intent_per_clinic_day(engine: Engine, clinics: Clinics) -> None:
    got = results(engine, clinics.a, clinics.analyst_a)
    received = [(b.starts_at - dt.timedelta(hours=h), intent) for b in BOOKINGS for intent, h in b.replies]
    received += [(item.received_at, item.intent) for item in FRONT_DESK] + [(local(*OPT_OUT[1]), S.STOP)]
    counts: dict[tuple[dt.date, ReplyIntent], int] = {}
    for at, intent in received:
        if FIRST <= clinic_day(at) <= LAST:
            counts[(clinic_day(at), intent)] = counts.get((clinic_day(at), intent), 0) + 1
    order = list(ReplyIntent)
    assert got.intents.values.tolist() == [[day, intent.label, count] for (day, intent), count in
                                           sorted(counts.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1])))]
    assert got.totals.replies == sum(counts.values())


def test_each_clinic_counts_only_its_own_appointments_replies_and_answers(engine: Engine, clinics: Clinics) -> None:
    b = results(engine, clinics.b, clinics.admin_b)
    in_period = [booking for booking in B_BOOKINGS if booking.in_period]
    assert (b.totals.reminded, b.totals.confirmed) == (len(in_period), sum(_confirmed(x) for x in in_period))
    assert b.no_shows.set_index("Appointments").loc["Reminded", "No-show rate (%)"] == 100.0
    # each wait in B was answered five minutes after its first reply (Sara's two replies are one wait)
    assert (b.totals.answered, b.totals.median_reply_minutes, b.totals.still_waiting) == (7, 5.0, 0)
    a = results(engine, clinics.a, clinics.admin_a)
    assert (a.totals.reminded, a.totals.answered, a.totals.still_waiting) == (7, 5, 1)  # as if B were not there


def test_roles_and_clinics_are_checked(engine: Engine, clinics: Clinics) -> None:
    assert results(engine, clinics.a, clinics.admin_a).totals.reminded == 7
    with pytest.raises(PermissionDenied):
        results(engine, clinics.a, clinics.desk_a)
    with pytest.raises(TenantScopeError):
        results(engine, clinics.a, clinics.admin_b)


def test_every_chart_draws_and_its_csv_is_safe_and_audited(engine: Engine, clinics: Clinics) -> None:
    got = results(engine, clinics.a, clinics.analyst_a)
    tables = {
        "reminder_confirmation_rate": (charts.confirmation_rate, got.confirmations),
        "cancellations_by_reply": (charts.cancellations_by_reply, got.cancellations),
        "no_shows_by_reminder": (charts.no_shows_by_reminder, got.no_shows),
        "front_desk_reply_time": (charts.reply_time, got.reply_times),
        "replies_by_intent": (charts.replies_by_intent, got.intents),
    }
    for name, (build, table) in tables.items():
        figure = build(table)
        assert figure.layout.title.text and figure.layout.xaxis.title.text and figure.layout.yaxis.title.text
        assert "clinic time" in figure.layout.xaxis.title.text or name == "no_shows_by_reminder"
        data = to_csv(table)
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
        assert rows[0] == list(table.columns) and len(rows) == len(table) + 1
        assert "cmd" not in data.decode("utf-8-sig")  # no patient's name or words are exported
        with tenant_session(engine, clinics.a) as session:
            analytics.record_export(session, clinics.analyst_a, name, rows=len(table), period=period())
    with tenant_session(engine, clinics.a) as session:
        audited = session.scalars(select(AuditEvent.object_id).where(AuditEvent.action == "analytics.export")).all()
    assert sorted(audited) == sorted(tables)
    bars = {trace.name: list(trace.text) for trace in charts.no_shows_by_reminder(got.no_shows).data}
    assert bars == {"Reminded": ["25.0% of 4"], "Not reminded": ["40.0% of 5"]}  # each rate with its sample size
    hostile = got.intents.assign(Intent=HOSTILE)  # were a text column ever fed from a patient, it is neutralised
    assert f"'{HOSTILE}" in to_csv(hostile).decode("utf-8-sig")


def test_a_period_without_reminders_or_replies_is_empty(engine: Engine, clinics: Clinics) -> None:
    with tenant_session(engine, clinics.a) as session:
        quiet = Period.between_dates(dt.date(2026, 9, 1), dt.date(2026, 9, 30), now=NOW, timezone="Asia/Riyadh")
        got = analytics.reminder_results(session, clinics.analyst_a, quiet)
    assert got.empty
    assert (got.totals.reminded, got.totals.confirmation_rate, got.totals.median_reply_minutes) == (0, None, None)
