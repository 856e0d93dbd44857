"""``seed_demo``: two demo clinics with staff, patients, templates and 90 days of history.

Everything is written in one transaction on one connection: the clinics, staff and reminder rules
through the services (hashed passwords, validation, audit events; the reminders still to come
planned by the planner), the rest as bulk writes (the reminders already sent, patients' replies and
the inbox: ``app.demo.replies``). If anything fails nothing
is left behind, so "the demo clinics exist" reliably means "the demo is complete".
"""

from __future__ import annotations

import datetime as dt
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, select, text

from app.analytics import rollups
from app.demo import history, replies, writers
from app.demo.content import (
    APPOINTMENT_TYPES,
    BULK_CAMPAIGNS,
    CLINICS,
    DEMO_PASSWORD,
    DEPARTMENT_APPOINTMENT_TYPES,
    DEPARTMENTS_AR,
    EMAIL_DOMAINS,
    FAMILY_NAMES,
    FEMALE_FIRST_NAMES,
    MALE_FIRST_NAMES,
    MOBILE_PREFIXES,
    REMINDER_RULES,
    TAG_DEPARTMENT,
    TEMPLATES,
    DemoClinic,
)
from app.errors import ConflictError
from app.services import staff, tenants
from app.services.permissions import Actor
from app.services.reminders import planner, rules
from app.services.reminders.rules import RuleInput
from app.services.whatsapp_templates import APPROVED
from db.enums import AppointmentStatus, Channel
from db.models import (
    Appointment,
    BulkJob,
    MessageTemplate,
    MessageTemplateVersion,
    NotificationPreference,
    Patient,
    PatientTag,
    PreferenceChange,
    Tenant,
)
from db.pgcopy import column_defaults, copy_rows
from db.session import SYSTEM, scoped_connection, session_factory
from db.types import utcnow

DEFAULT_MESSAGES_PER_CLINIC = 15_000
HISTORY_DAYS = 90
APPOINTMENT_DAYS = 14
PAST_APPOINTMENT_DAYS = replies.PAST_DAYS
UPCOMING_SHARE = 0.22  # of the patients have an appointment in the next two weeks
PAST_SHARE = 0.25  # ... and one in the last 30 days (fewer a day)
SEEDER = "command line"  # the system actor the seeder's service calls are audited under
TIMELINE_ALL_LIMIT = 200_000  # above this many messages, timelines only for the last TIMELINE_RECENT_DAYS
TIMELINE_RECENT_DAYS = 7
BIG_LOAD = 20_000  # from this many messages (into a smaller table), PostgreSQL loads with keys and indexes set aside
_LOCK_KEY = 0x5EED_DE30
SQLITE_CHUNK_ROWS = 5_000


@dataclass
class SeedReport:
    tenants: list[str]  # slugs
    patients: int
    appointments: int
    templates: int
    messages: int
    message_logs: int
    seconds: float
    messages_per_second: float
    already_present: bool = False
    users: int = 0
    bulk_jobs: int = 0
    timeline_days: int | None = None  # None: every message has its timeline
    timelines_since: dt.datetime | None = None  # messages created from then on have their timeline
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase
    reminders: int = 0  # reminders written (sent, skipped, cancelled) and planned
    replies: int = 0  # patients' replies


def seed_demo(
    engine: Engine,
    *,
    messages: int | None = None,
    patients_per_clinic: int = 2000,
    seed: int = 7,
    progress: Callable[[str], None] = lambda _m: None,
    timeline_days: int | None = None,
) -> SeedReport:
    """Create the demo clinics unless they exist; return what was written and how fast.

    ``messages`` is the total across both clinics (default 15,000 per clinic). Every message
    gets its status timeline unless there are more than 200,000, in which case only messages
    of the last ``timeline_days`` (default 7) get one.
    """
    if messages is not None and messages < 0:
        raise ValueError("messages must be zero or more")
    if patients_per_clinic < 1:
        raise ValueError("patients_per_clinic must be at least 1")
    started = time.perf_counter()
    total = DEFAULT_MESSAGES_PER_CLINIC * len(CLINICS) if messages is None else messages
    if timeline_days is None and total > TIMELINE_ALL_LIMIT:
        timeline_days = TIMELINE_RECENT_DAYS
    rng = random.Random(seed)
    clock = history.Clock(utcnow().replace(microsecond=0), HISTORY_DAYS)

    try:
        report = _seed(engine, total=total, patients_per_clinic=patients_per_clinic, rng=rng, clock=clock,
                       timeline_days=timeline_days, progress=progress, started=started)
    except ConflictError:  # another process created the clinics meanwhile (SQLite has no advisory lock)
        return SeedReport([c.slug for c in CLINICS], 0, 0, 0, 0, 0, time.perf_counter() - started, 0.0,
                          already_present=True)
    if not report.already_present:  # the dashboards read rollups: build them so charts show at once
        mark = time.perf_counter()
        progress("Building the dashboard rollups...")
        rollups.rebuild(engine)
        report.timings["rollups"] = time.perf_counter() - mark
    return report


def _seed(engine: Engine, *, total: int, patients_per_clinic: int, rng: random.Random, clock: history.Clock,
          timeline_days: int | None, progress: Callable[[str], None], started: float) -> SeedReport:
    timings: dict[str, float] = {}
    pg = engine.dialect.name == "postgresql"
    with scoped_connection(engine, SYSTEM) as conn:
        if pg:  # two processes starting at once: the second waits, then finds the clinics
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        slugs = [c.slug for c in CLINICS]
        present = conn.execute(select(Tenant.slug).where(Tenant.slug.in_(slugs))).scalars().all()
        if present:
            return SeedReport(sorted(present), 0, 0, 0, 0, 0, time.perf_counter() - started, 0.0,
                              already_present=True)

        mark = time.perf_counter()
        progress("Creating the demo clinics and staff logins...")
        staff_ids = [_create_clinic(engine, conn, spec) for spec in CLINICS]
        timings["clinics_and_staff"] = time.perf_counter() - mark

        mark = time.perf_counter()
        writer = _RowWriter(conn)
        plans: list[history.ClinicPlan] = []
        stories: list[replies.Story] = []
        counts = {"patients": 0, "appointments": 0, "templates": 0, "bulk_jobs": 0}
        shares = [total // len(CLINICS) + (1 if i < total % len(CLINICS) else 0) for i in range(len(CLINICS))]
        for spec, (tenant_id, users), share in zip(CLINICS, staff_ids, shares, strict=True):
            plan, story = _reference_data(engine, writer, spec, tenant_id, users, clock, rng, patients_per_clinic,
                                          share, counts)
            plans.append(plan)
            stories.append(story)
        timings["patients_templates_appointments"] = time.perf_counter() - mark
        progress(f"Created {counts['patients']:,} patients, {counts['appointments']:,} appointments (the last "
                 f"{PAST_APPOINTMENT_DAYS} days and the next {APPOINTMENT_DAYS}), {counts['templates']} templates "
                 "and the reminder rules.")

        mark = time.perf_counter()
        since = clock.now - dt.timedelta(days=timeline_days) if timeline_days is not None else None
        generated = sum(plan.messages for plan in plans)  # the front desk's answers are written with the story
        written, logs = _history(conn, plans, clock, rng, generated, since, progress, timings, pg)
        timings["messages_total"] = time.perf_counter() - mark

        mark = time.perf_counter()
        progress("Writing the reminders sent, patients' replies and the inbox, and planning the coming reminders...")
        story_rng = random.Random(rng.getrandbits(64))
        reminder_count = reply_count = 0
        for plan, story in zip(plans, stories, strict=True):
            n_reminders, n_replies, n_messages, n_logs = replies.write_story(
                conn, writer.write, plan, story, clock, story_rng, logs_from=since)
            planned = _plan_reminders(engine, conn, plan.tenant_id, clock.now)
            written, logs = written + n_messages, logs + n_logs
            reminder_count += n_reminders + planned.planned + planned.skipped
            reply_count += n_replies
        timings["reminders_and_replies"] = time.perf_counter() - mark

    seconds = time.perf_counter() - started
    report = SeedReport(
        tenants=slugs, patients=counts["patients"], appointments=counts["appointments"],
        templates=counts["templates"], messages=written, message_logs=logs, seconds=seconds,
        messages_per_second=written / seconds if seconds > 0 else 0.0,
        users=sum(len(c.staff) for c in CLINICS), bulk_jobs=counts["bulk_jobs"], timeline_days=timeline_days,
        timelines_since=since, timings=timings, reminders=reminder_count, replies=reply_count,
    )
    return report


# --- clinics and staff (through the services) -------------------------------------------------


def _create_clinic(engine: Engine, conn: Connection, spec: DemoClinic) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    make_session = session_factory(engine)
    with make_session(bind=conn) as session:
        session.info["system"] = True
        info = tenants.create_tenant(session, name=spec.name, slug=spec.slug, timezone="Asia/Riyadh",
                                     default_language=spec.default_language, default_region="SA")
        tenant = session.get(Tenant, info.id)
        assert tenant is not None
        tenant.settings = {**(tenant.settings or {}), "phone": spec.phone}
        tenant.name_ar = spec.name_ar
        session.flush()
    users: dict[str, uuid.UUID] = {}
    with make_session(bind=conn) as session:
        session.info["tenant_id"] = info.id
        seeder = Actor.system(info.id, name="command line")
        for suffix, role, display in spec.staff:
            member = staff.create_user(session, seeder, username=f"{spec.login_prefix}.{suffix}",
                                       password=DEMO_PASSWORD, role=role, display_name=display,
                                       email=f"{spec.login_prefix}.{suffix}@{spec.email_domain}")
            users[role] = member.id
        session.flush()
    return info.id, users


# --- reference data ---------------------------------------------------------------------------


class _RowWriter:
    """Bulk inserts of small tables: COPY on PostgreSQL, executemany elsewhere."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def write(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if not self.pg:
            defaults = column_defaults(table, set(rows[0]))
            full = [{**defaults, **row} for row in rows] if defaults else rows
            for start in range(0, len(full), SQLITE_CHUNK_ROWS):
                self.conn.execute(insert(table), full[start:start + SQLITE_CHUNK_ROWS])
            return
        copy_rows(self.conn, table, rows)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _phone(rng: random.Random, taken: set[str]) -> str:
    while True:
        prefix = rng.choice(MOBILE_PREFIXES)
        rest = rng.randrange(10**7)
        if prefix == "57" and rest >= 9_200_000:  # 0579 is only allocated as 05790 and 05791
            continue
        number = f"+966{prefix}{rest:07d}"
        if number not in taken:
            taken.add(number)
            return number


def _tags(rng: random.Random, age: int, female: bool) -> list[str]:
    tags: list[str] = []
    if age < 15:
        if rng.random() < 0.9:
            tags.append("pediatrics")
        if rng.random() < 0.12:
            tags.append("asthma")
    else:
        if female and 18 <= age <= 42 and rng.random() < 0.12:
            tags.append("prenatal")
        if age >= 35 and rng.random() < 0.22:
            tags.append("diabetes")
        if age >= 35 and rng.random() < 0.2:
            tags.append("hypertension")
        if age >= 45 and rng.random() < 0.1:
            tags.append("cardiology")
        if rng.random() < 0.06:
            tags.append("asthma")
    if rng.random() < 0.03:
        tags.append("vip")
    return tags[:3]


def _reference_data(
    engine: Engine, writer: _RowWriter, spec: DemoClinic, tenant_id: uuid.UUID, users: dict[str, uuid.UUID],
    clock: history.Clock, rng: random.Random, n_patients: int, n_messages: int, counts: dict[str, int],
) -> tuple[history.ClinicPlan, replies.Story]:
    now = clock.now
    calendar = history.LocalCalendar(clock, "Asia/Riyadh")
    departments = {dept: i for i, (_en, _ar, dept) in enumerate(spec.doctors)}
    general = [d for d in ("Family Medicine", "Family Medicine", "Internal Medicine", "Dermatology", "Dental")
               if d in departments]
    ar_share = 0.7 if spec.default_language == "ar" else 0.5
    pat = history.PatientData()
    patient_rows: list[dict[str, Any]] = []
    tag_rows: list[dict[str, Any]] = []
    pref_rows: list[dict[str, Any]] = []
    change_rows: list[dict[str, Any]] = []
    taken: set[str] = set()
    history_start = clock.base + dt.timedelta(days=1)
    window = int((now - history_start).total_seconds())
    for i in range(n_patients):
        female = rng.random() < 0.52
        first_en, first_ar = rng.choice(FEMALE_FIRST_NAMES if female else MALE_FIRST_NAMES)
        family_en, family_ar = rng.choice(FAMILY_NAMES)
        r = rng.random()
        age = rng.randrange(0, 15) if r < 0.25 else rng.randrange(15, 65) if r < 0.95 else rng.randrange(65, 90)
        born = now.date() - dt.timedelta(days=age * 365 + rng.randrange(365))
        pid = _uuid(rng)
        email = None
        if i == 0 or rng.random() < (0.85 if age >= 18 else 0.45):
            local = f"{first_en}.{family_en.removeprefix('Al-')}".lower().replace("-", "")
            email = f"{local}{rng.randrange(1, 100) if rng.random() < 0.6 else ''}@{rng.choice(EMAIL_DOMAINS)}"
        language = "ar" if rng.random() < ar_share else "en"
        tags = _tags(rng, age, female)
        registered = now - dt.timedelta(days=HISTORY_DAYS + 1 + rng.randrange(1000), seconds=rng.randrange(86400))
        phone = _phone(rng, taken)
        patient_rows.append({
            "id": pid, "tenant_id": tenant_id, "mrn": f"{spec.mrn_prefix}-{100001 + i}",
            "name_en": f"{first_en} {family_en}", "name_ar": f"{first_ar} {family_ar}", "phone_e164": phone,
            "email": email, "language": language, "date_of_birth": born, "is_active": True,
            "created_at": registered, "updated_at": registered,
        })
        tag_rows.extend({"id": _uuid(rng), "tenant_id": tenant_id, "patient_id": pid, "tag": t} for t in tags)

        # Preferences: a few opt-outs (with their history), quiet hours, language, consent.
        pref_language = "ar" if rng.random() < 0.25 else None
        promotional = i == 0 or rng.random() < 0.4
        opt_outs: list[tuple[str, dt.datetime, str, str]] = []
        if i > 0:
            for channel, share, sources in (
                ("sms", 0.04, (("patient_reply", "Replied to an SMS asking not to be texted."),
                               ("patient_reply", "Replied to an SMS asking not to be texted."),
                               ("staff", "Asked at reception to stop SMS."),
                               ("provider", "The provider reported the number as unsubscribed."))),
                ("whatsapp", 0.07, (("staff", "Does not use WhatsApp."),
                                    ("patient_reply", "Asked on WhatsApp not to be contacted there."))),
                ("email", 0.03, (("staff", "Asked at reception to stop e-mails."),)),
            ):
                if channel == "email" and email is None:
                    continue
                if rng.random() < share:
                    source, reason = rng.choice(sources)
                    when = history_start + dt.timedelta(seconds=rng.randrange(window))
                    opt_outs.append((channel, when, source, reason))
        last = max(opt_outs, key=lambda o: o[1]) if opt_outs else None
        quiet = rng.random() < 0.05
        pref_rows.append({
            "id": _uuid(rng), "tenant_id": tenant_id, "patient_id": pid,
            "sms_opt_in": not any(o[0] == "sms" for o in opt_outs),
            "whatsapp_opt_in": not any(o[0] == "whatsapp" for o in opt_outs),
            "email_opt_in": not any(o[0] == "email" for o in opt_outs),
            "promotional_consent": promotional,
            "promotional_consent_at": registered + dt.timedelta(days=rng.randrange(30)) if promotional else None,
            "language": pref_language,
            "quiet_hours_start": dt.time(22, 0) if quiet else None,
            "quiet_hours_end": dt.time(7, 0) if quiet else None,
            "opted_out_at": last[1] if last else None, "opt_out_source": last[2] if last else None,
            "created_at": registered, "updated_at": last[1] if last else registered,
        })
        for channel, when, source, reason in opt_outs:
            change_rows.append({
                "id": _uuid(rng), "tenant_id": tenant_id, "patient_id": pid, "field": f"{channel}_opt_in",
                "old_value": "true", "new_value": "false", "source": source, "reason": reason,
                "changed_by_id": users["front_desk"] if source == "staff" else None, "created_at": when,
            })
            pat.opted_out[channel][i] = clock.seconds(when)

        department = next((d for tag, d in TAG_DEPARTMENT if tag in tags and d in departments), None)
        department = department or rng.choice(general)
        pat.ids.append(pid)
        pat.name_en.append(f"{first_en} {family_en}")
        pat.name_ar.append(f"{first_ar} {family_ar}")
        pat.phone.append(phone)
        pat.email.append(email)
        pat.language.append(pref_language or language)
        pat.doctor.append(departments[department])
        pat.tags.append(tuple(tags))
        pat.promotional.append(promotional)

    writer.write(Patient.__table__, patient_rows)
    writer.write(PatientTag.__table__, tag_rows)
    writer.write(NotificationPreference.__table__, pref_rows)
    writer.write(PreferenceChange.__table__, change_rows)
    counts["patients"] += len(patient_rows)

    appointments, owners = _appointments(spec, tenant_id, pat, calendar, clock, rng)

    plan = history.ClinicPlan(
        tenant_id=tenant_id, slug=spec.slug, name=spec.name, name_ar=spec.name_ar, phone=spec.phone,
        email_domain=spec.email_domain, admin_id=users["admin"], doctors=spec.doctors,
        departments_ar=DEPARTMENTS_AR, calendar=calendar, patients=pat, templates=[], bulk_jobs=[],
        sms_sender=f"MG{rng.getrandbits(128):032x}", messages=n_messages,
    )
    _templates(writer, plan, users, now, rng)
    counts["templates"] += len(plan.templates)
    # The rules before the appointments: creating a rule plans the appointments there are (none yet); the
    # reminders already sent are written after the history, then the planner plans the rest.
    demo_rules = _rules(engine, writer.conn, plan, clock.now)
    logins = {role: (f"{spec.login_prefix}.{suffix}", display) for suffix, role, display in spec.staff}
    people = replies.Staff(front_desk_id=users["front_desk"], front_desk_username=logins["front_desk"][0],
                           front_desk_name=logins["front_desk"][1], admin_id=users["admin"],
                           admin_username=logins["admin"][0])
    story = replies.plan_story(plan, appointments, owners, demo_rules, people, clock,
                               random.Random(rng.getrandbits(64)))
    writer.write(Appointment.__table__, appointments)
    counts["appointments"] += len(appointments)
    _bulk_jobs(writer, plan, clock, calendar, rng)
    counts["bulk_jobs"] += sum(1 for job in plan.bulk_jobs if job.count)
    return plan, story


def _appointments(spec: DemoClinic, tenant_id: uuid.UUID, pat: history.PatientData,
                  calendar: history.LocalCalendar, clock: history.Clock, rng: random.Random
                  ) -> tuple[list[dict[str, Any]], list[int]]:
    """Appointments in clinic hours (Riyadh time, stored as UTC) as the clinic's system sent them: in the
    next 14 days, and in the last 30 (fewer a day; their final status is the story's, ``app.demo.replies``).
    Returns the rows and each one's patient (index)."""
    rows: list[dict[str, Any]] = []
    owners: list[int] = []
    today = (clock.now + dt.timedelta(seconds=calendar.offset_s)).date()
    for p in range(len(pat.ids)):
        for past in (False, True):
            if rng.random() >= (PAST_SHARE if past else UPCOMING_SHARE):
                continue
            starts = _appointment_time(today, past, calendar, clock, rng)
            if starts is None:
                continue
            doctor = pat.doctor[p]  # the patient's own doctor (the reminders name them)
            doctor_en, doctor_ar, department = spec.doctors[doctor]
            booked = _booked(starts, past, clock, rng)
            status = AppointmentStatus.BOOKED
            if not past:
                r = rng.random()
                status = (AppointmentStatus.BOOKED if r < 0.85 else AppointmentStatus.CONFIRMED if r < 0.95
                          else AppointmentStatus.CANCELLED)
            changed = booked if status != AppointmentStatus.CANCELLED else booked + (clock.now - booked) * rng.random()
            kinds = APPOINTMENT_TYPES + DEPARTMENT_APPOINTMENT_TYPES.get(department, ())
            kind = rng.choices([k for k, _w in kinds], weights=[w for _k, w in kinds])[0]
            rows.append({
                "id": _uuid(rng), "tenant_id": tenant_id, "patient_id": pat.ids[p], "starts_at": starts,
                "duration_minutes": rng.choice((15, 20, 20, 30)), "doctor_name_en": doctor_en,
                "doctor_name_ar": doctor_ar, "department": department,
                "location": f"Clinic {doctor + 1}, {'ground' if doctor < 4 else 'first'} floor", "status": status,
                "source_id": "", "appointment_type": kind, "status_source": "api", "status_changed_at": changed,
                "created_at": booked, "updated_at": changed,
            })
            owners.append(p)
    # The clinic system's ids, numbered in booking order (unique in the clinic).
    first = rng.randrange(120_000, 480_000)
    for number, i in enumerate(sorted(range(len(rows)), key=lambda i: rows[i]["created_at"])):
        rows[i]["source_id"] = f"HIS-{first + number:06d}"
    return rows, owners


def _appointment_time(today: dt.date, past: bool, calendar: history.LocalCalendar, clock: history.Clock,
                      rng: random.Random) -> dt.datetime | None:
    """A start in clinic hours: Saturday 9-13, Sunday to Thursday 8-20, never on a Friday; in the next two
    weeks (from an hour ahead) or the last 30 days (over an hour ago)."""
    for _attempt in range(10):
        if past:
            day = today - dt.timedelta(days=rng.randrange(PAST_APPOINTMENT_DAYS + 1))
        else:
            day = today + dt.timedelta(days=rng.randrange(APPOINTMENT_DAYS + 1))
        weekday = day.weekday()
        if weekday == 4:  # Friday: closed
            continue
        first, last = (9, 13) if weekday == 5 else (8, 20)
        hour, minute = rng.randrange(first, last), rng.choice((0, 15, 30, 45))
        starts = clock.at(calendar.local_seconds(day, hour, minute))
        assert starts is not None
        if (starts < clock.now - dt.timedelta(hours=1)) if past else (starts > clock.now + dt.timedelta(hours=1)):
            return starts
    return None


def _booked(starts: dt.datetime, past: bool, clock: history.Clock, rng: random.Random) -> dt.datetime:
    """When the appointment was booked: days before mostly; some the same day or the day before (too late
    for a reminder or two)."""
    if not past:
        return clock.now - dt.timedelta(days=rng.randrange(1, 21), seconds=rng.randrange(86400))
    r = rng.random()
    if r < 0.1:
        lead = dt.timedelta(minutes=rng.randrange(30, 150))  # the same day: no reminder had its time left
    elif r < 0.18:
        lead = dt.timedelta(hours=rng.randrange(4, 22))  # the day before: only the SMS one
    else:
        lead = dt.timedelta(days=rng.randrange(1, 21), seconds=rng.randrange(86400))
    return starts - lead


def _templates(writer: _RowWriter, plan: history.ClinicPlan, users: dict[str, uuid.UUID], now: dt.datetime,
               rng: random.Random) -> None:
    created = now - dt.timedelta(days=HISTORY_DAYS + 30)
    pat = plan.patients
    everyone = list(range(len(pat.ids)))
    vaccination = [p for p in everyone if {"pediatrics", "diabetes", "asthma"} & set(pat.tags[p])] or everyone
    consenting = [p for p in everyone if pat.email[p] and pat.promotional[p]] or [
        p for p in everyone if pat.email[p]] or everyone
    template_rows: list[dict[str, Any]] = []
    version_rows: list[dict[str, Any]] = []
    for spec in TEMPLATES:
        template_id, version_id = _uuid(rng), _uuid(rng)
        template_rows.append({
            "id": template_id, "tenant_id": plan.tenant_id, "code": spec.code, "name": spec.name,
            "description": spec.description, "channel": spec.channel, "message_class": spec.message_class,
            "is_active": True, "current_version": 1, "fallback_channel": spec.fallback_channel,
            "created_at": created, "updated_at": created, **_whatsapp_link(spec.whatsapp_approved, spec.body_en,
                                                                            created, rng),
        })
        version_rows.append({
            "id": version_id, "tenant_id": plan.tenant_id, "template_id": template_id, "version": 1,
            "body_en": spec.body_en, "body_ar": spec.body_ar, "subject_en": spec.subject_en,
            "subject_ar": spec.subject_ar, "note": "First version (demo data).", "created_by_id": users["admin"],
            "created_at": created,
        })
        plan.templates.append(history.TemplatePlan(
            code=spec.code, channel=spec.channel, message_class=spec.message_class, id=template_id,
            version_id=version_id, body_en=spec.body_en, body_ar=spec.body_ar, subject_en=spec.subject_en,
            subject_ar=spec.subject_ar, created_by=None if spec.automatic else users["front_desk"],
            urgent=spec.code == "appointment_cancellation",
            pool=consenting if spec.channel == "email" else vaccination if spec.code == "vaccination_due"
            else everyone,
        ))
    writer.write(MessageTemplate.__table__, template_rows)
    writer.write(MessageTemplateVersion.__table__, version_rows)


def _whatsapp_link(approved: bool, body: str, created: dt.datetime, rng: random.Random) -> dict[str, Any]:
    """A WhatsApp template linked to a Content template WhatsApp approved (what the editor's link and the
    approval poll leave): its variables numbered in the order the text uses them."""
    if not approved:
        return {"whatsapp_content_sid": None, "whatsapp_variable_map": {}, "whatsapp_approval_status": None,
                "whatsapp_approval_checked_at": None}
    names = list(dict.fromkeys(re.findall(r"\{\{ (\w+) \}\}", body)))
    return {"whatsapp_content_sid": f"HX{rng.getrandbits(128):032x}",
            "whatsapp_variable_map": {str(n): name for n, name in enumerate(names, start=1)},
            "whatsapp_approval_status": APPROVED, "whatsapp_approval_checked_at": created + dt.timedelta(days=2)}


def _rules(engine: Engine, conn: Connection, plan: history.ClinicPlan, now: dt.datetime) -> list[replies.Rule]:
    """The clinic's reminder rules (``content.REMINDER_RULES``), through the rules service as the seeder."""
    codes = {t.code: k for k, t in enumerate(plan.templates)}
    made: list[replies.Rule] = []
    with session_factory(engine)(bind=conn) as session:
        session.info["tenant_id"] = plan.tenant_id
        actor = Actor.system(plan.tenant_id, name=SEEDER)
        for spec in REMINDER_RULES:
            k = codes[spec.template_code]
            confirm = codes[spec.confirm_ack_code] if spec.confirm_ack_code else None
            cancel = codes[spec.cancel_ack_code] if spec.cancel_ack_code else None
            view = rules.create_rule(session, actor, RuleInput(
                name=spec.name, channel=Channel(spec.channel), template_id=plan.templates[k].id,
                offset_minutes=spec.offset_minutes,
                confirm_ack_template_id=plan.templates[confirm].id if confirm is not None else None,
                cancel_ack_template_id=plan.templates[cancel].id if cancel is not None else None), now=now)
            made.append(replies.Rule(view.id, spec.name, spec.channel, k, dt.timedelta(minutes=spec.offset_minutes),
                                     confirm, cancel))
        session.flush()
    return made


def _plan_reminders(engine: Engine, conn: Connection, tenant_id: uuid.UUID, now: dt.datetime) -> planner.PlanResult:
    """The planner plans the coming reminders of the clinic's appointments (what is not sent yet)."""
    with session_factory(engine)(bind=conn) as session:
        session.info["tenant_id"] = tenant_id
        result = planner.plan(session, now=now)
        session.flush()
    return result


def _bulk_jobs(writer: _RowWriter, plan: history.ClinicPlan, clock: history.Clock,
               calendar: history.LocalCalendar, rng: random.Random) -> None:
    """Completed bulk sends that own part of the history (inserted before their messages)."""
    codes = {t.code: k for k, t in enumerate(plan.templates)}
    pat = plan.patients
    for name, code, days_ago, hour, tags in BULK_CAMPAIGNS:
        if days_ago >= HISTORY_DAYS - 1 or code not in codes:
            continue
        k = codes[code]
        tmpl = plan.templates[k]
        local_today = (clock.now + dt.timedelta(seconds=calendar.offset_s)).date()
        day = local_today - dt.timedelta(days=days_ago)
        while day.weekday() in (4, 5):  # sent on a working day
            day -= dt.timedelta(days=1)
        audience = [p for p in tmpl.pool if not tags or set(tags) & set(pat.tags[p])]
        rng.shuffle(audience)
        plan.bulk_jobs.append(history.BulkPlan(
            id=_uuid(rng), name=name, template=k, start_s=calendar.local_seconds(day, hour), audience=audience,
            tags=tags,
        ))
    history.plan_bulk(plan, random.Random(rng.getrandbits(64)))
    rows = []
    for job in plan.bulk_jobs:
        if not job.count:
            continue
        tmpl = plan.templates[job.template]
        started = clock.at(job.start_s)
        assert started is not None
        finished = started + dt.timedelta(seconds=job.count // history.SEND_RATE[tmpl.channel] + 120)
        rows.append({
            "id": job.id, "tenant_id": plan.tenant_id, "name": job.name, "channel": tmpl.channel,
            "status": "completed",
            "audience": {"kind": "tags" if job.tags else "all", "tags": list(job.tags), "size": job.count},
            "template_id": tmpl.id, "template_version_id": tmpl.version_id, "message_class": tmpl.message_class,
            "total_recipients": job.count, "accepted_count": job.count, "rejected_count": 0, "rejections": [],
            "started_at": started, "completed_at": finished, "prepared_at": started, "created_by_id": plan.admin_id,
            "created_at": started - dt.timedelta(minutes=rng.randrange(10, 90)), "updated_at": finished,
            "end_noticed_at": finished,  # its creator was told then: no notice for weeks-old jobs at sign-in
        })
    writer.write(BulkJob.__table__, rows)


# --- history ----------------------------------------------------------------------------------


def _history(conn: Connection, plans: list[history.ClinicPlan], clock: history.Clock, rng: random.Random,
             total: int, since: dt.datetime | None, progress: Callable[[str], None], timings: dict[str, float],
             pg: bool) -> tuple[int, int]:
    logs_from = clock.seconds(since) if since is not None else 0
    done = 0
    mark = time.perf_counter()
    report_every = max(50_000, total // 10)
    next_report = report_every

    def tick(n: int) -> None:
        nonlocal done, next_report
        done += n
        if done >= next_report or done == total:
            next_report += report_every
            elapsed = time.perf_counter() - mark
            progress(f"Messages: {done:,} / {total:,} ({done / elapsed if elapsed else 0:,.0f}/s)")

    written = logs = 0
    if pg:
        big = total >= BIG_LOAD and _small(conn, "messages", total)
        aside = _LoadAside(conn, ["messages", "message_logs"]) if big else None
        if aside:
            aside.drop()
            # Generated template by template, so in random time order; a live table fills in time order,
            # and that layout is what the explorer's reads and exports see. Load aside, append sorted.
            conn.exec_driver_sql("CREATE TEMP TABLE messages_load (LIKE messages INCLUDING DEFAULTS) ON COMMIT DROP")
        for plan in plans:
            pg_writer = writers.PgMessageWriter(conn, plan, clock, logs_from=logs_from,
                                                table="messages_load" if aside else "messages")
            pg_writer.copy(history.generate(plan, clock, rng, pg=True), tick)
            written += pg_writer.messages
        timings["messages_copy"] = time.perf_counter() - mark
        if aside:
            mark = time.perf_counter()
            progress("Appending the messages in time order...")
            conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
            conn.exec_driver_sql("INSERT INTO messages SELECT * FROM messages_load ORDER BY created_at")
            conn.exec_driver_sql("DROP TABLE messages_load")
            timings["time_order"] = time.perf_counter() - mark
        mark = time.perf_counter()
        progress("Writing the status timelines" + (f" of messages since {since:%Y-%m-%d %H:%M}..." if since else "..."))
        logs = writers.pg_timelines(conn, [p.tenant_id for p in plans], since)
        timings["timelines"] = time.perf_counter() - mark
        if aside:
            mark = time.perf_counter()
            progress("Rebuilding the keys and indexes and checking the foreign keys...")
            aside.restore()
            timings["keys_and_indexes"] = time.perf_counter() - mark
            timings.update({f"rebuild {name}": sec for name, sec in aside.timings.items()})
            # Fresh planner statistics: without them the explorer's keyset reads sort instead of streaming
            # (a 2 s page instead of 0.3 ms on 10M rows) until autovacuum gets round to the tables.
            mark = time.perf_counter()
            conn.exec_driver_sql("ANALYZE messages, message_logs, patients")
            timings["analyze"] = time.perf_counter() - mark
    else:
        # A bigger page cache for this connection while it fills the tables' indexes.
        cache_size = int(conn.exec_driver_sql("PRAGMA cache_size").scalar() or -2000)
        conn.exec_driver_sql("PRAGMA cache_size = -131072")
        try:
            id_rng = random.Random(rng.getrandbits(64))
            for plan in plans:
                sq_writer = writers.SqliteMessageWriter(conn, plan, clock, logs_from=logs_from, rng=id_rng)
                sq_writer.write(history.generate(plan, clock, rng, pg=False), tick)
                written += sq_writer.messages
                logs += sq_writer.logs
        finally:
            conn.exec_driver_sql(f"PRAGMA cache_size = {cache_size}")
        timings["messages_and_timelines"] = time.perf_counter() - mark
    return written, logs


def _small(conn: Connection, table: str, adding: int) -> bool:
    """True when the table holds fewer rows than we are about to add (the planner's estimate)."""
    estimate = conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                            {"t": table}).scalar()
    return float(estimate or 0) < adding


class _LoadAside:
    """Set tables' keys, indexes and foreign keys aside during a big load, then rebuild them.

    PostgreSQL's advice for populating a database: building an index once is far cheaper than
    updating it row by row, and checking a foreign key in one pass is cheaper than per row.
    Primary keys go too (with the foreign keys that point at them, from any table), unique
    constraints stay. The exact definitions are read from the catalog, so whatever the
    migrations made is restored. Everything happens inside the seeding transaction: a failure
    rolls the drop back too.
    """

    def __init__(self, conn: Connection, tables: list[str]) -> None:
        self.conn = conn
        self.timings: dict[str, float] = {}
        params = {"tables": tables}
        self.constraints = conn.execute(text(
            "SELECT conname, conrelid::regclass::text, contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE (conrelid = ANY(CAST(:tables AS regclass[])) AND contype IN ('p', 'f')) "
            "OR (confrelid = ANY(CAST(:tables AS regclass[])) AND contype = 'f') "
            "ORDER BY contype, conname"  # 'f' (foreign keys) before 'p'
        ), params).all()
        self.indexes = conn.execute(text(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = ANY(CAST(:tables AS regclass[])) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
            "ORDER BY c.relname"
        ), params).all()

    def drop(self) -> None:
        for name, table, _kind, _definition in self.constraints:
            self.conn.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _definition in self.indexes:
            self.conn.exec_driver_sql(f'DROP INDEX "{name}"')

    def restore(self) -> None:
        self.conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        keys = [c for c in self.constraints if c[2] == "p"]
        foreign = [c for c in self.constraints if c[2] == "f"]
        for name, table, _kind, definition in keys:
            self._timed(name, f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for name, definition in self.indexes:
            self._timed(name, definition)
        for name, table, _kind, definition in foreign:
            self._timed(name, f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')

    def _timed(self, name: str, statement: str) -> None:
        mark = time.perf_counter()
        self.conn.exec_driver_sql(statement)
        self.timings[name] = time.perf_counter() - mark
