"""The demo seeder (``python -m app seed-demo``): what it creates, on both backends."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections import Counter, defaultdict
from decimal import Decimal
from zoneinfo import ZoneInfo

import jinja2
import phonenumbers
import pytest
from jinja2 import meta
from sqlalchemy import Engine, func, select, text

from app.demo import DEMO_LOGINS, SeedReport, seed_demo, seeder
from app.demo.history import sms_segments
from app.services.auth import LoginPolicy, authenticate
from app.services.message_content import STANDARD_VARIABLES
from db.enums import Role
from db.models import (
    Appointment,
    BulkJob,
    Message,
    MessageLog,
    MessageTemplate,
    MessageTemplateVersion,
    NotificationPreference,
    Patient,
    PatientTag,
    PreferenceChange,
    Tenant,
    User,
)
from db.session import system_session
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
}


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


def test_upcoming_appointments_fall_in_clinic_hours_within_two_weeks(engine: Engine) -> None:
    report = _seed(engine)

    with system_session(engine) as session:
        appointments = session.scalars(select(Appointment)).all()
        tenant_of = {p.id: p.tenant_id for p in session.scalars(select(Patient))}
    now = dt.datetime.now(dt.UTC)
    assert len(appointments) == report.appointments > 0
    for a in appointments:
        local = a.starts_at.astimezone(ZoneInfo("Asia/Riyadh"))
        assert a.tenant_id == tenant_of[a.patient_id]
        assert now < a.starts_at < now + dt.timedelta(days=15)
        assert local.weekday() != 4 and 8 <= local.hour < 20 and local.minute % 15 == 0  # closed on Fridays
        assert a.doctor_name_en.startswith("Dr. ") and ARABIC.search(a.doctor_name_ar) and a.department
    assert {a.status for a in appointments} <= {"booked", "confirmed", "cancelled"}


def test_six_bilingual_templates_per_clinic_each_with_its_first_version(engine: Engine) -> None:
    _seed(engine)

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 - plain text
    with system_session(engine) as session:
        templates = session.scalars(select(MessageTemplate)).all()
        versions = {v.template_id: v for v in session.scalars(select(MessageTemplateVersion))}
    assert len(templates) == 12
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
    assert len(messages) == MESSAGES
    assert sorted(Counter(m.tenant_id for m in messages).values()) == [250, 251]
    now = dt.datetime.now(dt.UTC)
    for m in messages:
        patient = patients[m.patient_id]
        template = templates[m.template_id]
        assert m.tenant_id == patient.tenant_id == template.tenant_id == versions[m.template_version_id].tenant_id
        assert versions[m.template_version_id].template_id == template.id
        assert m.channel == template.channel
        assert m.recipient == (patient.email if m.channel == "email" else patient.phone_e164)
        assert "{{" not in m.body and "}}" not in m.body
        assert bool(ARABIC.search(m.body)) == (m.language == "ar")
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
    for job in jobs.values():  # completed bulk sends own exactly the messages they count
        assert job.status == "completed" and job.completed_at is not None
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
    before = {model: _count(engine, model) for model in (Tenant, User, Patient, Message, MessageLog, BulkJob)}

    again = seed_demo(engine, patients_per_clinic=PATIENTS, messages=MESSAGES)

    assert again.already_present
    assert (again.patients, again.messages, again.message_logs) == (0, 0, 0)
    assert {model: _count(engine, model) for model in before} == before


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

