"""The demo seeder (``python -m app seed-demo``): what it creates, on both backends."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import uuid
from collections import Counter, defaultdict
from decimal import Decimal
from zoneinfo import ZoneInfo

import jinja2
import phonenumbers
import pytest
from jinja2 import meta
from sqlalchemy import Engine, func, select, text

from app.analytics.store import Period
from app.demo import DEMO_LOGINS, SeedReport, seed_demo, seeder
from app.demo.content import INBOX_SCENES, REMINDER_RULES, REPLY_BUTTONS, REPLY_TEXTS
from app.demo.history import sms_segments
from app.services import analytics, inbox
from app.services.auth import LoginPolicy, authenticate
from app.services.message_content import STANDARD_VARIABLES
from app.services.permissions import Actor
from app.services.reminders import rules, schedule
from app.services.replies.intents import classify
from app.services.replies.receive import CANCELLED, CONFIRMED, FOR_FRONT_DESK, REPLY_ACTOR
from app.services.whatsapp_templates import APPROVED
from db.enums import ReminderStatus, ReplyIntent, Role
from db.models import (
    Appointment,
    AppointmentReminder,
    AuditEvent,
    BulkJob,
    Conversation,
    InboundMessage,
    Message,
    MessageLog,
    MessageTemplate,
    MessageTemplateVersion,
    NotificationPreference,
    Patient,
    PatientTag,
    PreferenceChange,
    ReminderRule,
    Tenant,
    User,
)
from db.session import system_session, tenant_session
from tests.factories import OWNER_ENGINES, empty_all_tables, system_connection


@pytest.fixture
def engine(engine: Engine) -> Engine:
    """The demo seeder creates its own two clinics (and refuses to seed twice): no neighbouring clinic."""
    empty_all_tables(engine)
    return engine


@pytest.fixture
def pg_engine(pg_engine: Engine) -> Engine:
    empty_all_tables(pg_engine)
    return pg_engine


PATIENTS = 50
MESSAGES = 501  # odd on purpose: the two clinics share it 251 / 250
ARABIC = re.compile(r"[\u0600-\u06FF]")
SID = re.compile(r"^SM[0-9a-f]{32}$")
EXPECTED_TEMPLATES = {
    "appointment_reminder": "sms", "appointment_confirmation": "whatsapp", "appointment_cancellation": "sms",
    "lab_results_ready": "sms", "vaccination_due": "whatsapp", "holiday_hours": "email",
    "appointment_reminder_whatsapp": "whatsapp", "appointment_cancelled_by_reply": "whatsapp",
}
SOURCE_ID = re.compile(r"^HIS-\d{6}$")


def _seed(engine: Engine, **kwargs: object) -> SeedReport:
    return seed_demo(engine, patients_per_clinic=PATIENTS, messages=MESSAGES, **kwargs)  # type: ignore[arg-type]


def _count(engine: Engine, model: type) -> int:
    with system_session(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_two_clinics_each_with_one_working_login_per_role(engine: Engine) -> None:
    report = _seed(engine)

    assert not report.already_present
    assert sorted(report.tenants) == ["alnoor", "riyadh-family"]
    with system_session(engine) as session:
        clinics = {t.slug: t for t in session.scalars(select(Tenant))}
        assert set(clinics) == {"alnoor", "riyadh-family"}
        assert {t.default_language for t in clinics.values()} == {"en", "ar"}
        assert all(t.timezone == "Asia/Riyadh" and t.default_region == "SA" for t in clinics.values())
        assert all(t.settings.get("phone", "").startswith("+966") for t in clinics.values())
        users = session.scalars(select(User)).all()
        tenant_of = {t.id: slug for slug, t in clinics.items()}
        roles = Counter((tenant_of[u.tenant_id], Role(u.role)) for u in users)
    assert roles == Counter({(slug, role): 1 for slug in clinics for role in Role})
    assert len(DEMO_LOGINS) == 6 and len({login[1] for login in DEMO_LOGINS}) == 6
    for slug, username, password, role in DEMO_LOGINS:
        assert len(password) >= 10
        actor = authenticate(engine, username, password, policy=LoginPolicy())
        assert actor.role == Role(role)
        assert tenant_of[actor.tenant_id] == slug


def test_patients_have_saudi_mobiles_bilingual_names_tags_and_preferences(engine: Engine) -> None:
    report = _seed(engine)

    assert report.patients == 2 * PATIENTS
    with system_session(engine) as session:
        patients = session.scalars(select(Patient)).all()
        prefs = {p.patient_id: p for p in session.scalars(select(NotificationPreference))}
        changes = session.scalars(select(PreferenceChange)).all()
        tags = session.scalars(select(PatientTag)).all()
    assert len(patients) == 2 * PATIENTS
    by_tenant: dict[object, list[Patient]] = defaultdict(list)
    for p in patients:
        by_tenant[p.tenant_id].append(p)
        number = phonenumbers.parse(p.phone_e164)
        assert phonenumbers.is_valid_number(number), p.phone_e164
        assert phonenumbers.region_code_for_number(number) == "SA"
        assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
        assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == p.phone_e164
        assert ARABIC.search(p.name_ar) and not ARABIC.search(p.name_en), (p.name_en, p.name_ar)
        assert re.fullmatch(r"[A-Z][a-z]+ Al-[A-Z][a-z]+", p.name_en), p.name_en
        assert p.mrn and p.date_of_birth is not None
        assert p.email is None or re.fullmatch(r"[a-z0-9.]+@[a-z0-9.-]+\.[a-z]+", p.email), p.email
    for rows in by_tenant.values():
        assert len({p.phone_e164 for p in rows}) == len(rows)
        assert len({p.mrn for p in rows}) == len(rows)
    assert {p.language for p in patients} == {"en", "ar"}
    assert sum(p.email is not None for p in patients) > len(patients) / 2

    assert set(prefs) == {p.id for p in patients}  # every patient has preferences
    tenant_of = {p.id: p.tenant_id for p in patients}
    assert all(pref.tenant_id == tenant_of[pid] for pid, pref in prefs.items())
    assert {t.tag for t in tags} <= {"diabetes", "pediatrics", "prenatal", "vip", "hypertension", "cardiology",
                                     "asthma"}
    assert all(t.tenant_id == tenant_of[t.patient_id] for t in tags)
    assert max(Counter(t.patient_id for t in tags).values()) <= 3
    changed = defaultdict(set)
    for change in changes:
        assert change.tenant_id == tenant_of[change.patient_id]
        assert change.new_value == "false" and change.source
        changed[change.patient_id].add(change.field)
    for pid, pref in prefs.items():
        off = {f"{ch}_opt_in" for ch in ("sms", "whatsapp", "email") if not getattr(pref, f"{ch}_opt_in")}
        assert off == changed.get(pid, set())  # every opt-out has its history
        assert (pref.opted_out_at is not None) == bool(off) == (pref.opt_out_source is not None)
        assert (pref.quiet_hours_start is None) == (pref.quiet_hours_end is None)
        if pref.quiet_hours_start is not None:
            assert (pref.quiet_hours_start, pref.quiet_hours_end) == (dt.time(22), dt.time(7))
        assert (pref.promotional_consent_at is not None) == pref.promotional_consent
    assert any(p.promotional_consent for p in prefs.values())


def test_appointments_of_the_last_month_and_the_next_two_weeks_fall_in_clinic_hours(engine: Engine) -> None:
    report = _seed(engine)

    with system_session(engine) as session:
        appointments = session.scalars(select(Appointment)).all()
        tenant_of = {p.id: p.tenant_id for p in session.scalars(select(Patient))}
    now = dt.datetime.now(dt.UTC)
    assert len(appointments) == report.appointments > 0
    upcoming = [a for a in appointments if a.starts_at > now]
    past = [a for a in appointments if a.starts_at <= now]
    assert upcoming and past
    for a in appointments:
        local = a.starts_at.astimezone(ZoneInfo("Asia/Riyadh"))
        assert a.tenant_id == tenant_of[a.patient_id]
        assert now - dt.timedelta(days=32) < a.starts_at < now + dt.timedelta(days=15)
        assert local.weekday() != 4 and 8 <= local.hour < 20 and local.minute % 15 == 0  # closed on Fridays
        assert a.doctor_name_en.startswith("Dr. ") and ARABIC.search(a.doctor_name_ar) and a.department
        assert SOURCE_ID.match(a.source_id or ""), a.source_id  # the clinic system's id
        assert a.appointment_type and a.created_at < a.starts_at
        assert a.status_source in ("api", "reply") and a.status_changed_at is not None
    for clinic in set(tenant_of.values()):
        ids = [a.source_id for a in appointments if a.tenant_id == clinic]
        assert len(set(ids)) == len(ids)
    assert {a.status for a in upcoming} <= {"booked", "confirmed", "cancelled"}
    assert {a.status for a in past} <= {"completed", "no_show", "cancelled"}  # the final ones
    assert {"completed", "no_show"} <= {a.status for a in past}
    assert len(past) / 31 < len(upcoming) / 15  # fewer a day than are coming


def test_six_bilingual_templates_per_clinic_each_with_its_first_version(engine: Engine) -> None:
    _seed(engine)

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 - plain text
    with system_session(engine) as session:
        templates = session.scalars(select(MessageTemplate)).all()
        versions = {v.template_id: v for v in session.scalars(select(MessageTemplateVersion))}
    assert len(templates) == 2 * len(EXPECTED_TEMPLATES)
    per_tenant: dict[object, dict[str, str]] = defaultdict(dict)
    for t in templates:
        per_tenant[t.tenant_id][t.code] = t.channel
        version = versions[t.id]
        assert version.version == t.current_version == 1 and version.tenant_id == t.tenant_id
        for source in (version.body_en, version.body_ar, version.subject_en, version.subject_ar):
            assert meta.find_undeclared_variables(env.parse(source)) <= set(STANDARD_VARIABLES)
            assert not re.search(r"\b(STOP|CANCEL|YES)\b", source)
        assert ARABIC.search(version.body_ar) and not ARABIC.search(version.body_en)
        assert "{{ patient_name }}" in version.body_en and "{{ patient_name }}" in version.body_ar
        if t.code == "holiday_hours":
            assert t.message_class == "promotional"
            assert version.subject_en and ARABIC.search(version.subject_ar)
        else:
            assert t.message_class == "service"
        if t.code == "appointment_reminder_whatsapp":  # a reminder outside the 24 hours: linked and approved
            assert t.whatsapp_approval_status == APPROVED and re.fullmatch(r"HX[0-9a-f]{32}", t.whatsapp_content_sid)
            used = meta.find_undeclared_variables(env.parse(version.body_en))
            assert set(t.whatsapp_variable_map.values()) == used
            assert sorted(t.whatsapp_variable_map, key=int) == [str(n) for n in range(1, len(used) + 1)]
        else:
            assert t.whatsapp_content_sid is None and t.whatsapp_approval_status is None
    assert list(per_tenant.values()) == [EXPECTED_TEMPLATES, EXPECTED_TEMPLATES]


def test_message_history_is_exact_mixed_and_consistent(engine: Engine) -> None:
    report = _seed(engine)

    assert report.messages == MESSAGES and report.messages_per_second > 0
    with system_session(engine) as session:
        messages = session.scalars(select(Message)).all()
        patients = {p.id: p for p in session.scalars(select(Patient))}
        templates = {t.id: t for t in session.scalars(select(MessageTemplate))}
        versions = {v.id: v for v in session.scalars(select(MessageTemplateVersion))}
        jobs = {j.id: j for j in session.scalars(select(BulkJob))}
        staff = {u.id: u for u in session.scalars(select(User))}
    assert len(messages) == MESSAGES
    assert sorted(Counter(m.tenant_id for m in messages).values()) == [250, 251]
    now = dt.datetime.now(dt.UTC)
    answers = 0
    for m in messages:
        patient = patients[m.patient_id]
        if m.created_by_id is not None:
            assert staff[m.created_by_id].tenant_id == m.tenant_id
        if m.template_id is None:  # a front desk answer typed in the inbox (WhatsApp free text)
            answers += 1
            assert m.channel == "whatsapp" and m.bulk_job_id is None and m.tenant_id == patient.tenant_id
            assert staff[m.created_by_id].role == Role.FRONT_DESK
        else:
            template = templates[m.template_id]
            assert m.tenant_id == patient.tenant_id == template.tenant_id == versions[m.template_version_id].tenant_id
            assert versions[m.template_version_id].template_id == template.id
            assert m.channel == template.channel
        assert m.recipient == (patient.email if m.channel == "email" else patient.phone_e164)
        assert "{{" not in m.body and "}}" not in m.body
        assert bool(ARABIC.search(m.body)) == (m.language == "ar")
        if m.language == "ar" and "+966" in m.body:  # as the app sends it: the number keeps its order (app.bidi)
            assert "\u200e+966" in m.body, m.body
        assert (patient.name_ar if m.language == "ar" else patient.name_en) in m.body
        assert now - dt.timedelta(days=91) < m.created_at < now
        assert m.updated_at >= m.created_at
        if m.bulk_job_id is not None:
            job = jobs[m.bulk_job_id]
            assert job.tenant_id == m.tenant_id and job.template_id == m.template_id
        # Timestamps agree with the status.
        if m.status == "read":
            assert m.channel == "whatsapp"
            assert m.sent_at < m.delivered_at < m.read_at == m.finished_at <= now
        if m.status == "delivered":
            assert m.sent_at < m.delivered_at <= now and m.read_at is None and m.finished_at is None
        if m.status in ("failed", "undelivered"):
            assert m.error_code and m.status_reason and m.finished_at is not None
        if m.status in ("scheduled", "cancelled"):
            assert m.scheduled_at is not None and m.queued_at is None and m.sent_at is None
        if m.status == "scheduled":
            assert m.scheduled_at > now
        if m.status in ("queued", "sending", "scheduled"):
            assert m.sent_at is None and m.finished_at is None and m.provider_message_id is None
        # Provider, price and segments.
        if m.sent_at is not None:
            assert m.provider == ("smtp" if m.channel == "email" else "twilio")
            assert m.price_unit == "USD"
            if m.channel == "email":
                assert m.provider_message_id and m.price == 0
            else:
                assert SID.match(m.provider_message_id or ""), m.provider_message_id
        if m.channel == "sms":
            assert m.segments == sms_segments(m.body) >= 1
            if m.price is not None:
                assert m.price == Decimal("0.0395") * m.segments
        elif m.channel == "whatsapp":
            assert m.segments == 1 and m.price in (None, Decimal("0.005"))
        else:
            assert m.segments == 0 and m.subject
        if m.channel == "sms" and m.language == "en" and templates[m.template_id].code == "appointment_reminder":
            assert len(m.body) <= 160 and m.segments == 1, m.body
    statuses = Counter(m.status for m in messages)
    channels = Counter(m.channel for m in messages)
    assert set(channels) == {"sms", "whatsapp", "email"}
    assert channels["sms"] > channels["whatsapp"] > channels["email"]
    assert statuses.most_common(1)[0][0] == "delivered"
    assert {"delivered", "read", "sent", "failed"} <= set(statuses)
    assert {m.language for m in messages} == {"en", "ar"}
    assert any(m.bulk_job_id for m in messages) and any(m.bulk_job_id is None for m in messages)
    assert 0 < answers < 0.1 * MESSAGES
    for job in jobs.values():  # completed bulk sends own exactly the messages they count
        assert job.status == "completed" and job.completed_at is not None
        assert job.end_noticed_at == job.completed_at  # no notice of weeks-old jobs at the admin's first sign-in
        assert job.total_recipients == sum(m.bulk_job_id == job.id for m in messages) > 0


def test_history_spreads_over_ninety_days_mostly_on_working_days_in_clinic_hours(engine: Engine) -> None:
    _seed(engine)

    with system_session(engine) as session:
        created = [m.created_at for m in session.scalars(select(Message).where(Message.bulk_job_id.is_(None)))]
    riyadh = [c.astimezone(ZoneInfo("Asia/Riyadh")) for c in created]
    assert max(created) - min(created) > dt.timedelta(days=80)
    assert sum(7 <= t.hour < 22 for t in riyadh) >= 0.9 * len(riyadh)
    per_weekday = Counter(t.weekday() for t in riyadh)
    assert per_weekday[4] < min(per_weekday[d] for d in (6, 0, 1, 2, 3))  # Friday is quiet


def _check_timelines(engine: Engine, *, since: dt.datetime | None = None) -> int:
    with system_session(engine) as session:
        messages = {m.id: m for m in session.scalars(select(Message))}
        logs = session.scalars(select(MessageLog).order_by(MessageLog.message_id, MessageLog.created_at)).all()
    by_message: dict[object, list[MessageLog]] = defaultdict(list)
    for log in logs:
        by_message[log.message_id].append(log)
    expected = {mid for mid, m in messages.items() if since is None or m.created_at >= since}
    assert set(by_message) == expected
    for mid, events in by_message.items():
        message = messages[mid]
        assert all(e.tenant_id == message.tenant_id and e.event == "status" for e in events)
        assert events[0].from_status is None and events[0].created_at == message.created_at
        for before, after in itertools.pairwise(events):
            assert after.from_status == before.to_status, [(e.from_status, e.to_status) for e in events]
            assert after.created_at > before.created_at
        assert events[-1].to_status == message.status
        if message.error_code:
            assert events[-1].error_code == message.error_code
        if message.sent_at is not None:
            assert any(e.to_status == "sent" and e.created_at == message.sent_at for e in events)
    return len(logs)


def test_every_message_has_a_lifecycle_timeline(engine: Engine) -> None:
    report = _seed(engine)

    assert report.timelines_since is None
    assert report.message_logs == _check_timelines(engine) > 2 * MESSAGES


def test_timelines_can_be_limited_to_recent_days(engine: Engine) -> None:
    report = _seed(engine, timeline_days=10)

    assert report.timeline_days == 10 and report.timelines_since is not None
    assert abs(dt.datetime.now(dt.UTC) - dt.timedelta(days=10) - report.timelines_since) < dt.timedelta(minutes=5)
    assert 0 < report.message_logs == _check_timelines(engine, since=report.timelines_since)


def _schema(engine: Engine) -> set[tuple[str, ...]]:
    with system_connection(engine) as conn:
        indexes = conn.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('messages', 'message_logs')")).all()
        constraints = conn.execute(text(
            "SELECT conname, pg_get_constraintdef(oid), convalidated::text FROM pg_constraint "
            "WHERE conrelid IN ('messages'::regclass, 'message_logs'::regclass)")).all()
    return {tuple(row) for row in [*indexes, *constraints]}


def test_a_big_postgresql_load_restores_every_index_and_foreign_key(
        pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seeder, "BIG_LOAD", 100)  # take the big-load path with a small load
    before = _schema(pg_engine)

    report = _seed(OWNER_ENGINES[pg_engine.url.database or ""])  # sets keys aside: the owner's work (seed-demo)

    assert "keys_and_indexes" in report.timings
    assert _schema(pg_engine) == before
    assert report.message_logs == _check_timelines(pg_engine)
    with system_connection(pg_engine) as conn:  # laid out as a live table fills: in time order (the planner's view)
        correlation = conn.execute(text(
            "SELECT correlation FROM pg_stats WHERE tablename = 'messages' AND attname = 'created_at'")).scalar()
    assert correlation is not None and correlation > 0.95


def test_seeding_again_changes_nothing(engine: Engine) -> None:
    _seed(engine)
    before = {model: _count(engine, model) for model in (Tenant, User, Patient, Message, MessageLog, BulkJob,
                                                         ReminderRule, AppointmentReminder, Conversation,
                                                         InboundMessage)}

    again = seed_demo(engine, patients_per_clinic=PATIENTS, messages=MESSAGES)

    assert again.already_present
    assert (again.patients, again.messages, again.message_logs) == (0, 0, 0)
    assert {model: _count(engine, model) for model in before} == before


# --- reminders, replies and the inbox (issue 20) -----------------------------------------------------

STORY_PATIENTS, STORY_MESSAGES = 200, 6001
RIYADH = ZoneInfo("Asia/Riyadh")
PENDING, SENT = ReminderStatus.PENDING, ReminderStatus.SENT


def _seed_story(engine: Engine) -> SeedReport:
    """Enough patients for every part of the story in both clinics (a month of reminders and replies)."""
    return seed_demo(engine, patients_per_clinic=STORY_PATIENTS, messages=STORY_MESSAGES)


def _staff(engine: Engine) -> dict[str, dict[Role, Actor]]:
    """Each demo clinic's staff as they sign in, by role."""
    with system_session(engine) as session:
        clinics = {t.id: t for t in session.scalars(select(Tenant))}
        users = session.scalars(select(User)).all()
    found: dict[str, dict[Role, Actor]] = defaultdict(dict)
    for u in users:
        clinic = clinics[u.tenant_id]
        found[clinic.slug][Role(u.role)] = Actor(user_id=u.id, tenant_id=u.tenant_id, username=u.username,
                                                 display_name=u.display_name, role=Role(u.role),
                                                 tenant_name=clinic.name)
    return found


def test_each_clinic_has_its_reminder_rules_and_its_coming_reminders_planned(engine: Engine) -> None:
    report = _seed_story(engine)

    now = dt.datetime.now(dt.UTC)
    total = 0
    for people in _staff(engine).values():
        admin = people[Role.ADMIN]
        with tenant_session(engine, admin.tenant_id) as session:
            made = rules.list_rules(session, admin)
            page = schedule.upcoming(session, admin, days=7, limit=500)
            created = session.scalars(select(AuditEvent).where(AuditEvent.action == "reminder_rule.create")).all()
            appointments = {a.id: a for a in session.scalars(select(Appointment))}
            reminders = session.scalars(select(AppointmentReminder)).all()
        total += len(reminders)
        assert [r.name for r in made] == [r.name for r in REMINDER_RULES]  # the earliest reminder first
        assert all(r.is_active and r.revision == 1 for r in made)
        assert made[0].confirm_ack_template_id and made[0].cancel_ack_template_id  # the WhatsApp one is answered
        assert [e.actor_name for e in created] == [seeder.SEEDER] * len(REMINDER_RULES)  # through the service
        assert len(page.reminders) > 20 and {r.rule_name for r in page.reminders} == {r.name for r in made}
        pending = [r for r in reminders if r.status == PENDING]
        assert pending and all(r.message_id is None and r.sent_at is None for r in pending)
        for r in pending:
            appointment = appointments[r.appointment_id]
            assert appointment.status in ("booked", "confirmed")
            assert now - dt.timedelta(minutes=5) < r.due_at < appointment.starts_at
        cancelled = {a.id for a in appointments.values() if a.status == "cancelled"}
        assert cancelled and not any(r.appointment_id in cancelled and r.status == PENDING for r in reminders)
        assert len({(r.appointment_id, r.rule_id) for r in reminders}) == len(reminders)
        assert {PENDING, SENT, ReminderStatus.SKIPPED} <= {r.status for r in reminders}  # skipped: booked too late
    assert report.reminders == total


def test_reminders_sent_are_the_rules_messages_about_these_appointments(engine: Engine) -> None:
    _seed_story(engine)

    with system_session(engine) as session:
        sent = session.scalars(select(AppointmentReminder).where(AppointmentReminder.status == SENT)).all()
        messages = {m.id: m for m in session.scalars(select(Message).where(Message.template_id.is_not(None)))}
        appointments = {a.id: a for a in session.scalars(select(Appointment))}
        rule_of = {r.id: r for r in session.scalars(select(ReminderRule))}
        patients = {p.id: p for p in session.scalars(select(Patient))}
    now = dt.datetime.now(dt.UTC)
    assert sent
    for r in sent:
        message, appointment, rule = messages[r.message_id], appointments[r.appointment_id], rule_of[r.rule_id]
        patient = patients[appointment.patient_id]
        assert r.tenant_id == message.tenant_id == appointment.tenant_id == rule.tenant_id == patient.tenant_id
        assert message.template_id == rule.template_id and message.channel == rule.channel
        assert message.patient_id == patient.id and message.recipient == patient.phone_e164
        assert message.created_by_id is None and message.bulk_job_id is None and not message.is_test
        assert r.due_at <= r.sent_at == message.created_at < min(appointment.starts_at, now)
        assert r.sent_at - r.due_at < dt.timedelta(minutes=1)  # the dispatch runs every minute
        local = appointment.starts_at.astimezone(RIYADH)
        assert f"{local:%Y-%m-%d}" in message.body and f"{local:%H:%M}" in message.body
    reminded = {r.appointment_id for r in sent}
    past = [a for a in appointments.values() if a.starts_at < now and a.status != "cancelled"]
    assert {a.id in reminded for a in past} == {True, False}  # the no-show comparison has both sides


def test_replies_are_stored_as_the_reply_handler_stores_them(engine: Engine) -> None:
    report = _seed_story(engine)

    with system_session(engine) as session:
        replies = session.scalars(select(InboundMessage).order_by(InboundMessage.received_at)).all()
        threads = {t.id: t for t in session.scalars(select(Conversation))}
        appointments = {a.id: a for a in session.scalars(select(Appointment))}
        messages = {m.id: m for m in session.scalars(select(Message))}
        patients = {p.id: p for p in session.scalars(select(Patient))}
        phones = {t.id: t.settings["phone"] for t in session.scalars(select(Tenant))}
        all_reminders = session.scalars(select(AppointmentReminder)).all()
        reminder_of = {r.message_id: r for r in all_reminders}
        rule_of = {r.id: r for r in session.scalars(select(ReminderRule))}
        changes = {(e.object_id, e.created_at) for e in session.scalars(select(AuditEvent).where(
            AuditEvent.action == "appointment.status", AuditEvent.actor_name == REPLY_ACTOR))}
    assert report.replies == len(replies) > 0
    by_tenant_and_address = Counter((t.tenant_id, t.address) for t in threads.values())
    assert max(by_tenant_and_address.values()) == 1  # one thread per number in a clinic
    for r in replies:
        thread = threads[r.conversation_id]
        assert r.tenant_id == thread.tenant_id and r.from_address == thread.address and r.channel == "whatsapp"
        assert r.to_address == phones[r.tenant_id]  # the clinic's WhatsApp number
        assert r.intent == classify(r.body, r.button_payload)  # what the handler understood
        assert r.patient_id == thread.patient_id
        if r.patient_id is not None:
            assert patients[r.patient_id].tenant_id == r.tenant_id
            assert patients[r.patient_id].phone_e164 == r.from_address
            assert patients[r.patient_id].whatsapp_last_inbound_at >= r.received_at  # the 24-hour window
        if r.in_reply_to_id is not None:  # the reminder it answers reached the patient first
            reminder = messages[r.in_reply_to_id]
            assert reminder.tenant_id == r.tenant_id and reminder.recipient == r.from_address
            assert reminder.created_at < (reminder.read_at or reminder.delivered_at) < r.received_at
            assert reminder_of[r.in_reply_to_id].appointment_id == r.appointment_id
        if r.appointment_id is not None:
            appointment = appointments[r.appointment_id]
            assert appointment.tenant_id == r.tenant_id and appointment.patient_id == r.patient_id
            assert appointment.starts_at > r.received_at  # it awaited an answer
        acted = r.outcome.startswith((CONFIRMED, CANCELLED))
        if acted:
            appointment = appointments[r.appointment_id]
            assert r.read_at == r.received_at and (str(appointment.id), r.received_at) in changes
            if r.intent == ReplyIntent.CANCEL:
                assert (appointment.status, appointment.status_source) == ("cancelled", "reply")
                assert appointment.status_changed_at == r.received_at
                for later in all_reminders:  # the reminders still to go were cancelled with it, never sent
                    if later.appointment_id == appointment.id and later.due_at > r.received_at:
                        assert later.status == ReminderStatus.CANCELLED and later.message_id is None
            else:
                assert appointment.status in ("confirmed", "completed", "no_show")
            rule = rule_of[reminder_of[r.in_reply_to_id].rule_id]
            ack = rule.confirm_ack_template_id if r.intent == ReplyIntent.CONFIRM else rule.cancel_ack_template_id
            assert r.outcome in (CONFIRMED, CANCELLED)  # acknowledged:
            assert any(m.template_id == ack and m.recipient == r.from_address and m.tenant_id == r.tenant_id
                       and r.received_at <= m.created_at <= r.received_at + dt.timedelta(seconds=5)
                       for m in messages.values())
        else:
            assert r.outcome.startswith(FOR_FRONT_DESK) and r.intent in (ReplyIntent.RESCHEDULE, ReplyIntent.UNCLEAR)
    assert {ReplyIntent.CONFIRM, ReplyIntent.CANCEL, ReplyIntent.RESCHEDULE, ReplyIntent.UNCLEAR} == {
        ReplyIntent(r.intent) for r in replies}
    assert any(r.button_payload for r in replies) and any(not r.button_payload for r in replies)


@pytest.mark.parametrize(("intent", "texts"), sorted(REPLY_TEXTS.items()))
def test_the_demo_replies_are_read_as_the_intent_they_stand_for(intent: str, texts: dict[str, tuple[str, ...]]
                                                                ) -> None:
    for reply in (*texts["en"], *texts["ar"]):
        assert classify(reply) == ReplyIntent(intent), reply
    if intent in REPLY_BUTTONS:
        payload, text_en, text_ar = REPLY_BUTTONS[intent]
        assert classify(text_en, payload) == classify(text_ar, payload) == ReplyIntent(intent)


def test_each_clinic_inbox_shows_unread_replies_in_english_and_arabic(engine: Engine) -> None:
    _seed_story(engine)

    for people in _staff(engine).values():
        desk = people[Role.FRONT_DESK]
        with tenant_session(engine, desk.tenant_id) as session:
            rows = inbox.threads(session, desk, limit=200).rows  # open threads, the newest reply first
            done = inbox.threads(session, desk, state="done", limit=200).rows
            unread = inbox.unread_total(session, desk)
            answered = next(r for r in rows if r.unread == 0 and r.snippet == _scene("answered").body)
            view = inbox.thread(session, desk, answered.id)

        def shown(rows: list[inbox.ThreadRow], body: str) -> list[inbox.ThreadRow]:
            return [r for r in rows if body.startswith(r.snippet.removesuffix("…"))]

        for scene in INBOX_SCENES:
            found = shown(done if scene.how == "done" else rows, scene.body)
            assert len(found) == 1, scene.key
            row = found[0]
            assert (row.patient_id is None) == scene.unknown_number
            assert (row.name == inbox.UNKNOWN_NUMBER) == scene.unknown_number
            assert (row.unread > 0) == (scene.how in ("unread", "assigned"))
            assert (row.assigned_to_id == desk.user_id) == (scene.how == "assigned")
            assert row.assigned_to == (desk.display_name if scene.how == "assigned" else "")
            assert (row.waiting_since is not None) == (scene.how in ("unread", "assigned"))
        waiting = [r for r in rows if r.unread]
        assert len(waiting) >= 5 and unread == sum(r.unread for r in rows)
        assert any(ARABIC.search(r.snippet) for r in waiting) and any(not ARABIC.search(r.snippet) for r in waiting)
        assert any(re.search("[٠-٩]", r.snippet) for r in waiting)  # Arabic-Indic digits
        assert {inbox.Waiting.UNDER_HOUR, inbox.Waiting.OVER_DAY} <= {_waited(r) for r in waiting}
        # The answered thread: the patient's question, then the front desk's answer minutes later.
        inbound = [i for i in view.items if i.direction == inbox.Direction.INBOUND]
        answer = view.items[-1]
        assert answer.direction == inbox.Direction.OUTBOUND and answer.by == desk.display_name
        assert dt.timedelta(0) < answer.at - inbound[-1].at < dt.timedelta(hours=1)


def _scene(how: str):  # type: ignore[no-untyped-def]
    return next(s for s in INBOX_SCENES if s.how == how)


def _waited(row: inbox.ThreadRow) -> inbox.Waiting:
    assert row.waiting_since is not None
    age = dt.datetime.now(dt.UTC) - row.waiting_since
    return (inbox.Waiting.UNDER_HOUR if age < dt.timedelta(hours=1) else inbox.Waiting.HOURS
            if age <= dt.timedelta(hours=24) else inbox.Waiting.OVER_DAY)


def test_each_clinic_has_reminder_results_to_show(engine: Engine) -> None:
    _seed_story(engine)

    now = dt.datetime.now(dt.UTC)
    cancelled = 0
    for people in _staff(engine).values():
        admin = people[Role.ADMIN]
        with tenant_session(engine, admin.tenant_id) as session:
            got = analytics.reminder_results(session, admin, Period.last_days(30, now=now, timezone="Asia/Riyadh"))
            week = analytics.reminder_results(session, admin, Period.last_days(7, now=now, timezone="Asia/Riyadh"))
        totals = got.totals
        assert totals.reminded > 0 and 0.15 < (totals.confirmation_rate or 0) < 0.75
        assert not got.confirmations.empty and not week.confirmations.empty and not week.intents.empty
        no_shows = got.no_shows.set_index("Appointments")
        assert (no_shows["With attendance recorded"] > 0).all()  # reminded and not reminded, side by side
        assert totals.answered > 0 and totals.median_reply_minutes is not None
        assert totals.still_waiting >= sum(1 for s in INBOX_SCENES if s.how in ("unread", "assigned"))
        assert not got.reply_times.empty
        assert {ReplyIntent.CONFIRM.label, ReplyIntent.UNCLEAR.label} <= set(got.intents["Intent"])
        cancelled += totals.cancelled_by_reply
    assert cancelled > 0


def test_no_row_of_one_clinic_refers_to_another_clinics_rows(engine: Engine) -> None:
    _seed_story(engine)

    tenant_of: dict[object, object] = {}
    with system_session(engine) as session:
        for model in (Patient, Appointment, Message, Conversation, ReminderRule, MessageTemplate, User,
                      InboundMessage, AppointmentReminder):
            tenant_of.update((row.id, row.tenant_id) for row in session.execute(select(model.id, model.tenant_id)))
        rows = {model: session.scalars(select(model)).all() for model in (
            Appointment, AppointmentReminder, ReminderRule, Conversation, InboundMessage, Message, AuditEvent)}
        phones = {(p.tenant_id, p.phone_e164) for p in session.scalars(select(Patient))}
    references = {
        Appointment: ("patient_id",),
        AppointmentReminder: ("appointment_id", "rule_id", "message_id"),
        ReminderRule: ("template_id", "confirm_ack_template_id", "cancel_ack_template_id"),
        Conversation: ("patient_id", "assigned_to_id", "done_by_id"),
        InboundMessage: ("conversation_id", "patient_id", "appointment_id", "in_reply_to_id"),
        Message: ("patient_id", "template_id", "created_by_id"),
        AuditEvent: ("actor_id",),
    }
    checked = Counter()
    for model, columns in references.items():
        for row in rows[model]:
            for column in columns:
                target = getattr(row, column)
                if target is not None:
                    assert tenant_of[target] == row.tenant_id, (model.__name__, column)
                    checked[model.__name__] += 1
    for event in rows[AuditEvent]:
        if event.object_type in ("conversation", "appointment", "reminder_rule"):
            assert tenant_of[uuid.UUID(event.object_id)] == event.tenant_id, event.action
            checked[event.object_type] += 1
    for thread in rows[Conversation]:  # a thread's patient is the clinic's patient with that number, or none has it
        assert ((thread.tenant_id, thread.address) in phones) == (thread.patient_id is not None)
    assert set(checked) == {"Appointment", "AppointmentReminder", "ReminderRule", "Conversation", "InboundMessage",
                            "Message", "AuditEvent", "conversation", "appointment", "reminder_rule"}


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("", 0),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("[" * 80, 1),  # extension characters count twice
        ("[" * 81, 2),
        ("ب" * 70, 1),
        ("ب" * 71, 2),
        ("a" * 69 + "’", 1),  # one curly quote forces UCS-2
        ("a" * 70 + "’", 2),
    ],
)
def test_sms_segments_follow_gsm7_and_ucs2_limits(body: str, segments: int) -> None:
    assert sms_segments(body) == segments

