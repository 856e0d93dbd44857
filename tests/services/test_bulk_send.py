"""Bulk sends: audience selection, the review (every skip reason), idempotent confirm, expansion."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import uuid
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import Engine, func, select, update

from app.config import get_settings
from app.delivery.queue import BATCH_SIZE
from app.errors import PermissionDenied, ValidationError
from app.services.bulk import expansion, jobs, wizard
from app.services.bulk import recipients as ri
from app.services.bulk.wizard import Draft
from app.services.explorer import MessageFilter
from db.enums import BulkJobStatus, Channel, Language, MessageClass, MessageStatus, OptOutSource, Role
from db.models import (
    AuditEvent,
    BulkJob,
    Message,
    MessageTemplate,
    NotificationPreference,
    Patient,
    PatientTag,
)
from db.session import tenant_session
from tests.factories import make_tenant, make_user, owner_connection, system_connection


class RecordingQueue:
    def __init__(self) -> None:
        self.batches: list[tuple[str, list[str]]] = []
        self.calls: list[tuple[str, tuple]] = []

    def enqueue_batches(self, batches):  # type: ignore[no-untyped-def]
        self.batches.extend(batches)

    def enqueue(self, func, *args, delay_seconds=0.0):  # type: ignore[no-untyped-def]
        self.calls.append((func, args))

    def running(self, job_id):  # type: ignore[no-untyped-def]
        return contextlib.nullcontext()

    def alive(self, job_ids):  # type: ignore[no-untyped-def]
        return set()


class FakeRuntime:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.queue = RecordingQueue()
        self.settings = get_settings()

    def clock(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


def add_patients(engine: Engine, tenant_id: uuid.UUID, count: int, *, tags: tuple[str, ...] = (),
                 language: Language = Language.EN, start: int = 0) -> list[uuid.UUID]:
    ids = []
    with tenant_session(engine, tenant_id) as session:
        for i in range(start, start + count):
            p = Patient(name_en=f"Patient {i}", name_ar=f"مريض {i}", phone_e164=f"+9665{i:08d}",
                        email=f"p{i}@example.com", language=language)
            session.add(p)
            session.flush()
            for tag in tags:
                session.add(PatientTag(patient_id=p.id, tag=tag))
            ids.append(p.id)
    return ids


@pytest.fixture
def clinic(engine: Engine):  # type: ignore[no-untyped-def]
    tenant_id = make_tenant(engine, "clinic-a")
    return engine, tenant_id, make_user(engine, tenant_id, "amira", Role.ADMIN), make_user(
        engine, tenant_id, "fatima", Role.FRONT_DESK), make_user(engine, tenant_id, "omar", Role.ANALYST)


def draft(audience: dict, body: str = "Clinic closed Friday. {{ clinic_name }}", **kw) -> Draft:  # type: ignore[no-untyped-def]
    return Draft(idempotency_key=kw.pop("key", wizard.new_draft_key()), audience=audience,
                 channel=kw.pop("channel", Channel.SMS), body_en=body, body_ar=kw.pop("body_ar", ""), **kw)


def review(engine, admin, d):  # type: ignore[no-untyped-def]
    with tenant_session(engine, admin.tenant_id) as s:
        return wizard.dry_run(s, admin, d)


def confirm(engine, actor, d, **kw):  # type: ignore[no-untyped-def]
    """The wizard's confirm; the expansion job it asks for is recorded (the tests run ``expand`` themselves)."""
    with tenant_session(engine, actor.tenant_id) as s:
        s.info["queue"] = RecordingQueue()
        return wizard.confirm(s, actor, d, **kw)


# --- audience --------------------------------------------------------------------------------


def test_tags_any_all_and_exclusions_select_the_right_patients(clinic) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    add_patients(engine, tenant_id, 3, tags=("diabetes",))
    add_patients(engine, tenant_id, 2, tags=("diabetes", "pediatrics"), start=10)
    add_patients(engine, tenant_id, 4, tags=("pediatrics",), start=20)
    add_patients(engine, tenant_id, 1, tags=("diabetes", "deceased"), start=30)
    assert review(engine, admin, draft({"kind": "tags", "any_of": ["diabetes", "pediatrics"]})).sendable == 10
    assert review(engine, admin, draft({"kind": "tags", "all_of": ["diabetes", "pediatrics"]})).sendable == 2
    assert review(engine, admin, draft({"kind": "tags", "any_of": ["diabetes"], "exclude": ["deceased",
                                                                                          "pediatrics"]})).sendable == 3
    assert review(engine, admin, draft({"kind": "all"})).sendable == 10


def test_appointments_in_a_clinic_date_range(clinic) -> None:  # type: ignore[no-untyped-def]
    from db.models import Appointment

    engine, tenant_id, admin, *_ = clinic
    ids = add_patients(engine, tenant_id, 3)
    # two days ahead, so every appointment below is still upcoming whatever the time of day (a past
    # one has no "next appointment" to fill the variables with)
    day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).date()
    with tenant_session(engine, tenant_id) as s:
        # 23:30 UTC the day before is 02:30 that day in Riyadh (+3): inside the range
        s.add(Appointment(patient_id=ids[0], starts_at=dt.datetime.combine(
            day - dt.timedelta(days=1), dt.time(23, 30), tzinfo=dt.UTC)))
        s.add(Appointment(patient_id=ids[1], starts_at=dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC)))
        s.add(Appointment(patient_id=ids[2], starts_at=dt.datetime.combine(
            day + dt.timedelta(days=3), dt.time(9), tzinfo=dt.UTC)))
    result = review(engine, admin, draft({"kind": "appointments", "from": day.isoformat(),
                                          "to": day.isoformat()},
                                         body="See you on {{ appointment_date }} at {{ appointment_time }}"))
    assert result.sendable == 2


def test_other_clinics_patients_are_never_selected(clinic) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    other = make_tenant(engine, "clinic-b")
    add_patients(engine, other, 5)
    add_patients(engine, tenant_id, 2, start=100)
    assert review(engine, admin, draft({"kind": "all"})).sendable == 2
    created = confirm(engine, admin, draft({"kind": "all"}))
    _, result = expand(engine, created.bulk_job_id)
    assert result["written"] == 2
    with tenant_session(engine, tenant_id) as s:
        assert s.get(BulkJob, created.bulk_job_id).total_recipients == 2


# --- review reasons ------------------------------------------------------------------------------


def test_review_lists_every_skip_reason(clinic) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    ids = add_patients(engine, tenant_id, 4)
    with tenant_session(engine, tenant_id) as s:
        s.add(NotificationPreference(patient_id=ids[0], sms_opt_in=False, opted_out_at=dt.datetime.now(dt.UTC)))
        s.add(NotificationPreference(patient_id=ids[1], sms_opt_in=False))
        now_local = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
        s.add(NotificationPreference(patient_id=ids[2], quiet_hours_start=(now_local - dt.timedelta(hours=1)).time(),
                                     quiet_hours_end=(now_local + dt.timedelta(hours=1)).time()))
    table = ri.read_csv(b"phone,name,code\n+966500000000,A,X1\n0500000003,B,\n12ab,C,X3\n+966500000003,D,X4\n"
)
    imported = ri.to_recipients(table, ri.ColumnMapping(contact="phone", name="name", variables=("code",)),
                                Channel.SMS, "SA")
    result = review(engine, admin, draft({"kind": "list", "recipients": imported.recipients},
                                         body="Hi {{ patient_name }}, code {{ code }}",
                                         import_rejections=tuple(imported.rejected)))
    reasons = {s.reason: s for s in result.skipped}
    assert reasons["opted out"].recipient == "+966500000000"
    assert reasons["invalid number"].row == 4 and "letters" in reasons["invalid number"].detail
    assert reasons["duplicate"].row == 5 and "row 3" in reasons["duplicate"].detail
    assert reasons["missing variable"].row == 3 and "code" in reasons["missing variable"].detail
    table2 = ri.read_csv(b"phone,code\n+966500000001,Y\n+966500000002,Z\n")
    more = ri.to_recipients(table2, ri.ColumnMapping(contact="phone", variables=("code",)), Channel.SMS, "SA")
    result2 = review(engine, admin, draft({"kind": "list", "recipients": more.recipients},
                                          body="Code {{ code }}"))
    assert {s.reason for s in result2.skipped} == {"channel disabled"}
    assert {s.reason for s in result2.later} == {"quiet hours (deferred)"}  # sent, later: not skipped
    assert result2.sendable == 1 and result2.deferred == 1 and result2.skipped_count == 1


def test_review_counts_languages_samples_cost_and_duration(clinic) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    add_patients(engine, tenant_id, 3)
    add_patients(engine, tenant_id, 2, language=Language.AR, start=50)
    result = review(engine, admin, draft({"kind": "all"}, body="Closed Friday", body_ar="مغلق يوم الجمعة"))
    assert result.will_send == {"SMS, English": 3, "SMS, Arabic": 2}
    assert {s.language for s in result.samples} == {Language.EN, Language.AR}
    settings = get_settings()
    assert result.segments_total == 5
    assert result.estimated_cost == pytest.approx(5 * settings.sms_price_per_segment)
    assert result.duration_seconds == pytest.approx(5 / settings.sms_rate_per_second)


def test_review_renders_a_personal_text_for_each_recipient_as_the_expansion_will(clinic) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    add_patients(engine, tenant_id, 2)
    with tenant_session(engine, tenant_id) as s:  # an Arabic name makes this English SMS UCS-2: 2 parts
        s.add(Patient(name_en="محمد عبد الله", name_ar="", phone_e164="+966500000099", language=Language.EN))
    body = "Dear {{ patient_name }}, your test results are ready. Please collect them at reception."
    result = review(engine, admin, draft({"kind": "all"}, body=body))
    assert result.sendable == 3 and result.segments_total == 1 + 1 + 2
    created = confirm(engine, admin, draft({"kind": "all"}, body=body))
    expand(engine, created.bulk_job_id)
    with tenant_session(engine, tenant_id) as s:
        assert s.scalar(select(func.sum(Message.segments))) == result.segments_total


def test_review_finds_each_recipient_whose_own_text_is_too_long(clinic) -> None:  # type: ignore[no-untyped-def]
    engine, _, admin, *_ = clinic
    table = ri.read_csv(("phone,note\n0500000001,short\n0500000002," + "x" * 2000 + "\n0500000003,ok\n").encode())
    imported = ri.to_recipients(table, ri.ColumnMapping(contact="phone", variables=("note",)), Channel.SMS, "SA")
    d = draft({"kind": "list", "recipients": imported.recipients}, body="Note: {{ note }}")
    result = review(engine, admin, d)
    assert result.sendable == 2 and result.skipped_by_reason == {"text cannot be sent": 1}
    assert [(s.row, s.recipient) for s in result.skipped] == [(3, "+966500000002")]
    _, expanded = expand(engine, confirm(engine, admin, d).bulk_job_id)
    assert expanded["written"] == 2 and expanded["skipped"] == 1


def test_review_counts_every_skip_even_beyond_the_list_it_keeps(clinic, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    ids = add_patients(engine, tenant_id, 6)
    with tenant_session(engine, tenant_id) as s:
        for patient_id in ids[:5]:
            s.add(NotificationPreference(patient_id=patient_id, sms_opt_in=False))
    monkeypatch.setattr(wizard, "MAX_SKIPPED_KEPT", 2)
    result = review(engine, admin, draft({"kind": "all"}))
    assert len(result.skipped) == 2
    assert result.skipped_by_reason == {"channel disabled": 5} and result.skipped_count == 5 and result.sendable == 1


def _varied_preferences(engine: Engine, tenant_id: uuid.UUID) -> None:
    """Patients covering every preference the plan looks at, and another clinic's patients."""
    other = make_tenant(engine, "clinic-b")
    add_patients(engine, other, 3)
    ids = add_patients(engine, tenant_id, 24) + add_patients(engine, tenant_id, 12, language=Language.AR, start=100)
    variants = [
        None, {}, {"language": Language.AR}, {"language": Language.EN}, {"promotional_consent": True},
        {"promotional_consent": True, "language": Language.AR}, {"sms_opt_in": False},
        {"email_opt_in": False, "opted_out_at": dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
         "opt_out_source": OptOutSource.PATIENT_REPLY},
        {"quiet_hours_start": dt.time(0, 0), "quiet_hours_end": dt.time(23, 59)},
        {"quiet_hours_start": dt.time(22, 0), "quiet_hours_end": dt.time(6, 0), "promotional_consent": True},
        {"quiet_hours_start": dt.time(22, 0)},
    ]
    with tenant_session(engine, tenant_id) as s:
        for i, patient_id in enumerate(ids):
            variant = variants[i % len(variants)]
            if variant is not None:
                s.add(NotificationPreference(patient_id=patient_id, **variant))


@pytest.mark.parametrize("channel", [Channel.SMS, Channel.EMAIL])
@pytest.mark.parametrize("message_class", [MessageClass.SERVICE, MessageClass.PROMOTIONAL])
@pytest.mark.parametrize("hour", [3, 12])  # UTC: 06:00 and 15:00 in Riyadh (the promotional window)
def test_the_grouped_review_equals_the_review_one_by_one(clinic, monkeypatch, channel, message_class, hour) -> None:  # type: ignore[no-untyped-def]
    from app.services.bulk import plan

    engine, tenant_id, admin, *_ = clinic
    _varied_preferences(engine, tenant_id)
    d = draft({"kind": "all"}, body="Closed Friday. {{ clinic_name }}", body_ar="مغلق يوم الجمعة", channel=channel,
              message_class=message_class)
    at = dt.datetime(2026, 12, 1, hour, 0, tzinfo=dt.UTC)

    def reviewed():  # type: ignore[no-untyped-def]
        with tenant_session(engine, tenant_id) as s:
            return wizard.dry_run(s, admin, d, send_at=at)

    counted_in_groups = []

    def spy(*args):  # type: ignore[no-untyped-def]
        groups, rest = plan.plan_grouped(*args)
        counted_in_groups.append(sum(g.count for g in groups))
        return groups, rest

    monkeypatch.setattr(wizard, "plan_grouped", spy)
    grouped = reviewed()
    assert 18 < counted_in_groups[0] < 36  # most by groups, the opted-out and quiet-hours ones one by one
    monkeypatch.setattr(wizard, "plan_grouped", lambda session, tenant, audience, content, now: (
        [], plan.plan(session, tenant, audience, content, now)))
    one_by_one = reviewed()
    assert grouped.audience_size == one_by_one.audience_size == 36
    for name in ("will_send", "deferred", "skipped_by_reason", "samples", "segments_total", "estimated_cost",
                 "sendable", "duration_seconds"):
        assert getattr(grouped, name) == getattr(one_by_one, name), name
    assert sorted(map(repr, grouped.skipped)) == sorted(map(repr, one_by_one.skipped))
    assert grouped.skipped_by_reason  # the data set does skip some, in every case


def test_promotional_needs_consent_and_says_so(clinic) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    ids = add_patients(engine, tenant_id, 2)
    with tenant_session(engine, tenant_id) as s:
        s.add(NotificationPreference(patient_id=ids[0], promotional_consent=True))
    result = review(engine, admin, draft({"kind": "all"}, body="Flu shots 20% off",
                                         message_class=MessageClass.PROMOTIONAL))
    assert "consent" in result.class_effect and "-AD" in result.class_effect
    assert result.skipped_by_reason.get("no promotional consent") == 1


def test_skipped_list_downloads_as_safe_csv_and_is_audited(clinic) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    table = ri.read_csv(b"phone\n=HYPERLINK(1)\n")
    imported = ri.to_recipients(table, ri.ColumnMapping(contact="phone"), Channel.SMS, "SA")
    add_patients(engine, tenant_id, 1)
    result = review(engine, admin, draft({"kind": "all"}, import_rejections=tuple(imported.rejected)))
    with tenant_session(engine, tenant_id) as s:
        data = wizard.skipped_csv(s, admin, result).decode("utf-8-sig")
    assert "'=HYPERLINK(1)" in data
    with tenant_session(engine, tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "bulk.skipped_export")) == 1


def test_the_review_counts_add_up_with_one_meaning_each(clinic) -> None:  # type: ignore[no-untyped-def]
    """Recipients = will be sent + skipped; skipped = the sum of its reasons; deferred ones are sent (later),
    never skipped. The neighbouring clinic's patients share these numbers and are not counted."""
    engine, tenant_id, admin, *_ = clinic
    ids = add_patients(engine, tenant_id, 4)
    with tenant_session(engine, tenant_id) as s:
        s.add(NotificationPreference(patient_id=ids[0], sms_opt_in=False))
        now_local = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
        s.add(NotificationPreference(patient_id=ids[1], quiet_hours_start=(now_local - dt.timedelta(hours=1)).time(),
                                     quiet_hours_end=(now_local + dt.timedelta(hours=1)).time()))
    # +966501234567 and +966501112233 are the neighbour's patients too; "oops" and the repeat are refused.
    table = ri.read_csv(b"phone\n+966500000000\n+966500000001\n+966500000002\n+966501234567\n+966501112233\n"
                        b"oops\n+966500000002\n")
    imported = ri.to_recipients(table, ri.ColumnMapping(contact="phone"), Channel.SMS, "SA")
    d = draft({"kind": "list", "recipients": imported.recipients}, body="Closed Friday.",
              import_rejections=tuple(imported.rejected))
    result = review(engine, admin, d)

    assert result.audience_size == 7
    assert result.sendable == 4 and result.deferred == 1  # 01 (later), 02, and the two shared numbers
    assert result.skipped_by_reason == {"invalid number": 1, "duplicate": 1, "channel disabled": 1}
    assert result.skipped_count == 3 == len(result.skipped)
    assert result.audience_size == result.sendable + result.skipped_count
    assert sum(result.will_send.values()) == result.sendable
    assert [s.recipient for s in result.later] == ["+966500000001"]
    created = confirm(engine, admin, d)  # the jobs list counts the same recipients as the review
    with tenant_session(engine, tenant_id) as s:
        job = s.get(BulkJob, created.bulk_job_id)
        assert (job.name, job.total_recipients) == ("SMS to 7 recipients", result.audience_size)

    everyone = review(engine, admin, draft({"kind": "all"}))
    assert everyone.audience_size == 4 == everyone.sendable + everyone.skipped_count  # not the neighbour's six


def test_confirming_a_large_send_asks_for_the_number_that_will_be_sent(clinic, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    monkeypatch.setenv("BULK_CONFIRM_THRESHOLD", "2")
    get_settings.cache_clear()
    try:
        ids = add_patients(engine, tenant_id, 5)
        with tenant_session(engine, tenant_id) as s:
            s.add(NotificationPreference(patient_id=ids[0], sms_opt_in=False))
        d = draft({"kind": "all"})
        result = review(engine, admin, d)
        assert (result.audience_size, result.sendable, result.skipped_count) == (5, 4, 1)
        assert result.needs_typed_count
        with pytest.raises(ValidationError, match=r"goes to 4 recipients \(1 of the 5 are skipped\)\. Type 4"):
            confirm(engine, admin, d, typed_count=5)  # the audience's size is not what is sent
        assert confirm(engine, admin, d, typed_count=4).duplicate is False
    finally:
        get_settings.cache_clear()


def test_a_front_desk_list_over_the_limit_is_refused_before_it_is_called_ready(clinic) -> None:  # type: ignore[no-untyped-def]
    _engine, _tenant_id, admin, front_desk, _analyst = clinic
    assert wizard.list_too_long(front_desk, 20) is None
    refusal = wizard.list_too_long(front_desk, 21)
    assert refusal is not None and "at most 20" in refusal and "21" in refusal
    assert wizard.list_too_long(admin, 5_000) is None


# --- permissions --------------------------------------------------------------------------------


def test_front_desk_only_small_custom_lists_and_analyst_nothing(clinic) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, _admin, front_desk, analyst = clinic
    add_patients(engine, tenant_id, 1)
    with pytest.raises(PermissionDenied, match="custom list"):
        review(engine, front_desk, draft({"kind": "all"}))
    big = [{"row": i, "recipient": f"+9665{i:08d}"} for i in range(21)]
    with pytest.raises(PermissionDenied, match="at most 20"):
        confirm(engine, front_desk, draft({"kind": "list", "recipients": big}))
    small = [{"row": i, "recipient": f"+9665{i:08d}"} for i in range(20)]
    assert review(engine, front_desk, draft({"kind": "list", "recipients": small})).sendable == 20
    with pytest.raises(PermissionDenied):
        review(engine, analyst, draft({"kind": "list", "recipients": small[:1]}))
    with pytest.raises(PermissionDenied):
        confirm(engine, analyst, draft({"kind": "list", "recipients": small[:1]}))


# --- confirm ----------------------------------------------------------------------------------


def test_confirm_twice_makes_one_job_and_audits_the_definition(clinic) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    add_patients(engine, tenant_id, 3, tags=("x",))
    d = draft({"kind": "tags", "any_of": ["x"]})
    first, second = confirm(engine, admin, d), confirm(engine, admin, d)
    assert first.bulk_job_id == second.bulk_job_id and second.duplicate and not first.duplicate
    with tenant_session(engine, tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(BulkJob)) == 1
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "bulk_job.create"))
        assert event.details["audience"] == {"kind": "tags", "any_of": ["x"], "all_of": [], "exclude": []}
        assert event.details["recipients"] == 3


def test_two_admins_confirming_at_once_make_one_job(pg_engine: Engine) -> None:
    tenant_id = make_tenant(pg_engine, "clinic-a")
    admins = [make_user(pg_engine, tenant_id, f"admin{i}", Role.ADMIN) for i in range(2)]
    add_patients(pg_engine, tenant_id, 2)
    d = draft({"kind": "all"})
    barrier, results = threading.Barrier(2), []

    def click(actor) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        results.append(confirm(pg_engine, actor, d))

    threads = [threading.Thread(target=click, args=(a,)) for a in admins]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len({r.bulk_job_id for r in results}) == 1
    with tenant_session(pg_engine, tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(BulkJob)) == 1


def test_large_sends_need_the_typed_count_and_schedules_must_be_future(clinic, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    monkeypatch.setenv("BULK_CONFIRM_THRESHOLD", "2")
    get_settings.cache_clear()
    try:
        add_patients(engine, tenant_id, 3)
        d = draft({"kind": "all"})
        with pytest.raises(ValidationError, match="Type 3"):
            confirm(engine, admin, d, typed_count=2)
        with pytest.raises(ValidationError, match="past"):
            confirm(engine, admin, d, typed_count=3, send_at_local=dt.datetime(2020, 1, 1, 9, 0))
        later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=1)  # clinic time (+3)
        created = confirm(engine, admin, d, typed_count=3, send_at_local=later)
        assert created.scheduled_at == (later - dt.timedelta(hours=3)).replace(tzinfo=dt.UTC)
    finally:
        get_settings.cache_clear()


# --- expansion ----------------------------------------------------------------------------------


def expand(engine, job_id):  # type: ignore[no-untyped-def]
    runtime = FakeRuntime(engine)
    return runtime, expansion.expand(runtime, job_id)  # type: ignore[arg-type]


@pytest.mark.parametrize("body", ["Closed Friday. {{ clinic_name }}", "Hi {{ patient_first_name }}"])
def test_expansion_writes_exact_rows_and_batches_of_500(clinic, body) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    ids = add_patients(engine, tenant_id, 1203)
    with tenant_session(engine, tenant_id) as s:
        s.add(NotificationPreference(patient_id=ids[0], sms_opt_in=False, opted_out_at=dt.datetime.now(dt.UTC)))
    created = confirm(engine, admin, draft({"kind": "all"}, body=body), typed_count=1202)  # what is sent
    runtime, result = expand(engine, created.bulk_job_id)
    assert result["written"] == 1203 and result["queued"] == 1202 and result["suppressed"] == 1
    assert len(runtime.queue.batches) == 3 and all(len(ids) <= BATCH_SIZE for _, ids in runtime.queue.batches)
    enqueued = [i for _, batch in runtime.queue.batches for i in batch]
    assert len(enqueued) == len(set(enqueued)) == 1202
    with tenant_session(engine, tenant_id) as s:
        rows = s.execute(select(Message.recipient, Message.status, Message.body, Message.delivery_job_id).where(
            Message.bulk_job_id == created.bulk_job_id)).all()
        assert len({r.recipient for r in rows}) == 1203
        job = s.get(BulkJob, created.bulk_job_id)
        assert BulkJobStatus(job.status) == BulkJobStatus.SENDING and job.accepted_count == 1203
    assert {str(r.delivery_job_id) for r in rows if r.status == MessageStatus.QUEUED} == {
        job_id for job_id, _ in runtime.queue.batches}
    assert any(r.body in ("Closed Friday. Clinic-A", "Hi Patient") for r in rows)


def test_expanding_twice_or_after_a_crash_neither_duplicates_nor_loses(clinic, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    add_patients(engine, tenant_id, 40)
    created = confirm(engine, admin, draft({"kind": "all"}, body="Hi {{ patient_name }}"))
    real_rows = expansion._rendered_rows

    def crash_after_the_rows(*args, **kwargs):  # type: ignore[no-untyped-def]
        yield from real_rows(*args, **kwargs)  # every row is written when the worker dies
        raise RuntimeError("worker killed")

    monkeypatch.setattr(expansion, "_rendered_rows", crash_after_the_rows)
    with pytest.raises(RuntimeError):
        expand(engine, created.bulk_job_id)
    with tenant_session(engine, tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0
        assert BulkJobStatus(s.get(BulkJob, created.bulk_job_id).status) == BulkJobStatus.EXPANDING
    monkeypatch.setattr(expansion, "_rendered_rows", real_rows)
    _, first = expand(engine, created.bulk_job_id)
    _, again = expand(engine, created.bulk_job_id)
    assert first["written"] == 40 and again["written"] == 0
    with tenant_session(engine, tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 40


def test_custom_list_expansion_uses_file_columns_and_keeps_refusals(clinic) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    table = ri.read_csv(b"phone;name;code\n0500000001;Sara;A1\n0500000002;Omar;\nbad;X;B\n")
    imported = ri.to_recipients(table, ri.ColumnMapping(contact="phone", name="name", variables=("code",)),
                                Channel.SMS, "SA")
    created = confirm(engine, admin, draft({"kind": "list", "recipients": imported.recipients},
                                           body="Hi {{ patient_name }}, code {{ code }}",
                                           import_rejections=tuple(imported.rejected)))
    _, result = expand(engine, created.bulk_job_id)
    assert result == {"written": 1, "queued": 1, "suppressed": 0, "skipped": 1, "enqueued_jobs": 1}
    with tenant_session(engine, tenant_id) as s:
        assert s.scalar(select(Message.body)) == "Hi Sara, code A1"
        job = s.get(BulkJob, created.bulk_job_id)
        assert job.total_recipients == 3 and len(job.rejections) == 2


def test_pause_resume_and_cancel_what_is_not_sent(clinic) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    add_patients(engine, tenant_id, 5)
    created = confirm(engine, admin, draft({"kind": "all"}))
    expand(engine, created.bulk_job_id)
    with tenant_session(engine, tenant_id) as s:
        assert jobs.pause(s, admin, created.bulk_job_id) == 5
    with tenant_session(engine, tenant_id) as s:
        assert jobs.progress(s, admin, created.bulk_job_id).counts["queued"] == 5
        s.info["queue"] = queue = RecordingQueue()
        assert jobs.resume(s, admin, created.bulk_job_id) == 5
        assert queue.batches == []  # enqueued only once the unit of work commits
    assert sum(len(ids) for _, ids in queue.batches) == 5
    with tenant_session(engine, tenant_id) as s:
        assert jobs.cancel(s, admin, created.bulk_job_id) == 5
    runtime = FakeRuntime(engine)
    assert jobs.settle_cancelled(runtime, runtime.clock()) == 5  # type: ignore[arg-type]  # in the background
    with tenant_session(engine, tenant_id) as s:
        progress = jobs.progress(s, admin, created.bulk_job_id)
    assert progress.counts["suppressed"] == 5 and progress.job.status == BulkJobStatus.CANCELLED
    assert progress.explorer_url == f"messages?period=all&bulk={created.bulk_job_id}"
    assert MessageFilter.from_params(dict(parse_qsl(progress.explorer_url.split("?")[1]))).bulk_job_id == \
        created.bulk_job_id, "the link opens the explorer filtered to the job"


def test_pause_changes_one_row_and_cancel_settles_exactly_the_waiting_messages(clinic) -> None:  # type: ignore[no-untyped-def]
    from db.models import MessageLog

    engine, tenant_id, admin, *_ = clinic
    add_patients(engine, tenant_id, 7)
    created = confirm(engine, admin, draft({"kind": "all"}))
    expand(engine, created.bulk_job_id)
    with tenant_session(engine, tenant_id) as s:  # a worker already sent two
        sent = list(s.scalars(select(Message.id).order_by(Message.recipient).limit(2)))
        s.execute(update(Message).where(Message.id.in_(sent)).values(status=MessageStatus.SENT))
    with tenant_session(engine, tenant_id) as s:
        assert jobs.pause(s, admin, created.bulk_job_id) == 5
    with tenant_session(engine, tenant_id) as s:  # the job changed; no message did
        assert s.scalar(select(func.count()).select_from(MessageLog).where(MessageLog.event == "paused")) == 0
        assert jobs.cancel(s, admin, created.bulk_job_id) == 5
    runtime = FakeRuntime(engine)
    assert jobs.settle_cancelled(runtime, runtime.clock()) == 5  # type: ignore[arg-type]
    assert jobs.settle_cancelled(runtime, runtime.clock()) == 0  # type: ignore[arg-type]
    with tenant_session(engine, tenant_id) as s:
        logged = s.execute(select(MessageLog.event, MessageLog.message_id, MessageLog.from_status,
                                  MessageLog.to_status).where(MessageLog.event == "cancelled")).all()
        waiting = set(s.scalars(select(Message.id).where(Message.id.not_in(sent))))
        assert {MessageStatus(st) for st in s.scalars(select(Message.status).where(Message.id.in_(sent)))} == {
            MessageStatus.SENT}
    assert sorted(m for _, m, *_ in logged) == sorted(waiting)
    assert {(f, t) for _, _, f, t in logged} == {(MessageStatus.QUEUED, MessageStatus.CANCELLED)}


def test_a_template_whose_variables_the_file_lacks_is_explained_and_nothing_is_written(clinic) -> None:  # type: ignore[no-untyped-def]
    from app.services import templates

    engine, tenant_id, admin, *_ = clinic
    with tenant_session(engine, tenant_id) as s:
        template = templates.create_template(s, admin, code="results", name="Results", channel="sms",
                                             body_en="Hi {{ patient_name }}, room {{ room }}", body_ar="",
                                             custom_variables=["room"])
    table = ri.read_csv(b"phone,name\n0500000001,Sara\n0500000002,Omar\n")
    imported = ri.to_recipients(table, ri.ColumnMapping(contact="phone", name="name"), Channel.SMS, "SA")
    d = Draft(idempotency_key="k1", audience={"kind": "list", "recipients": imported.recipients},
              channel=Channel.SMS, template_id=template.id)
    result = review(engine, admin, d)
    assert result.sendable == 0 and result.skipped_by_reason == {"missing variable": 2}
    assert "room" in result.notes[0]
    with tenant_session(engine, tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0
        assert s.scalar(select(func.count()).select_from(BulkJob)) == 0


def test_an_inactive_template_is_refused_at_review_and_confirm(clinic) -> None:  # type: ignore[no-untyped-def]
    from app.services import templates

    engine, tenant_id, admin, *_ = clinic
    add_patients(engine, tenant_id, 1)
    with tenant_session(engine, tenant_id) as s:
        template = templates.create_template(s, admin, code="old", name="Old", channel="sms", body_en="Hello")
        templates.set_active(s, admin, template.id, False)
    d = Draft(idempotency_key="k2", audience={"kind": "all"}, channel=Channel.SMS, template_id=template.id)
    with pytest.raises(ValidationError, match="not active"):
        review(engine, admin, d)
    with pytest.raises(ValidationError, match="not active"):
        confirm(engine, admin, d)


def test_an_unapproved_whatsapp_template_is_refused_before_any_job_exists(clinic) -> None:  # type: ignore[no-untyped-def]
    from app.services import templates

    engine, tenant_id, admin, *_ = clinic
    add_patients(engine, tenant_id, 3)
    with tenant_session(engine, tenant_id) as s:
        template = templates.create_template(s, admin, code="wa", name="WA", channel="whatsapp", body_en="Hello")
    d = Draft(idempotency_key="k-wa", audience={"kind": "all"}, channel=Channel.WHATSAPP, template_id=template.id)
    with pytest.raises(ValidationError, match="not linked to an approved Content template"):
        confirm(engine, admin, d)
    with tenant_session(engine, tenant_id) as s:
        template_row = s.get(MessageTemplate, template.id)
        template_row.whatsapp_content_sid = "HX" + "a" * 32
        template_row.whatsapp_approval_status = "pending"
    with pytest.raises(ValidationError, match="not approved"):
        confirm(engine, admin, d)
    with tenant_session(engine, tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(BulkJob)) == 0
        assert s.scalar(select(func.count()).select_from(Message)) == 0


def test_text_over_the_channel_limit_fails_the_job_with_the_reason(clinic) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    add_patients(engine, tenant_id, 2)
    created = confirm(engine, admin, draft({"kind": "all"}, body="{{ clinic_name }}" + "x" * 1600))
    _, result = expand(engine, created.bulk_job_id)
    assert result["written"] == 0
    with tenant_session(engine, tenant_id) as s:
        job = s.get(BulkJob, created.bulk_job_id)
        assert BulkJobStatus(job.status) == BulkJobStatus.FAILED and "at most 1,600" in job.rejections[-1]["reason"]
        assert s.scalar(select(func.count()).select_from(Message)) == 0


# --- a lost expansion ---------------------------------------------------------------------------


def _age(engine: Engine, *job_ids: uuid.UUID, minutes: int = 10) -> None:
    with system_connection(engine) as conn:
        conn.execute(update(BulkJob).where(BulkJob.id.in_(job_ids)).values(
            updated_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)))


def test_the_sweeper_asks_again_only_for_expansions_nobody_is_on(clinic) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    add_patients(engine, tenant_id, 3)
    lost, _fresh, done = (confirm(engine, admin, draft({"kind": "all"})) for _ in range(3))
    expand(engine, done.bulk_job_id)
    _age(engine, lost.bulk_job_id, done.bulk_job_id)  # confirmed 10 minutes ago; ``_fresh`` just now
    runtime = FakeRuntime(engine)

    assert expansion.resume_lost(runtime, runtime.clock()) == 1  # type: ignore[arg-type]

    assert runtime.queue.calls == [(expansion.EXPAND_JOB, (str(lost.bulk_job_id),))]
    expansion.expand(runtime, lost.bulk_job_id)  # type: ignore[arg-type]
    with tenant_session(engine, tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.bulk_job_id == lost.bulk_job_id)) == 3
    assert expansion.resume_lost(runtime, runtime.clock()) == 0  # type: ignore[arg-type]


def test_a_job_a_worker_is_expanding_is_left_alone(pg_engine: Engine) -> None:
    tenant_id = make_tenant(pg_engine, "clinic-a")
    admin = make_user(pg_engine, tenant_id, "amira", Role.ADMIN)
    add_patients(pg_engine, tenant_id, 2)
    job = confirm(pg_engine, admin, draft({"kind": "all"}))
    _age(pg_engine, job.bulk_job_id)
    runtime = FakeRuntime(pg_engine)
    with system_connection(pg_engine) as expanding:  # holds the job row's lock, as write_rows does while it runs
        expanding.execute(select(BulkJob.id).where(BulkJob.id == job.bulk_job_id).with_for_update())
        assert expansion.resume_lost(runtime, runtime.clock()) == 0  # type: ignore[arg-type]
        expanding.rollback()
    assert expansion.resume_lost(runtime, runtime.clock()) == 1  # type: ignore[arg-type]


def test_a_big_expansion_refreshes_the_planners_statistics(pg_engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    tenant_id = make_tenant(pg_engine, "clinic-a")
    admin = make_user(pg_engine, tenant_id, "amira", Role.ADMIN)
    add_patients(pg_engine, tenant_id, 30)
    with owner_connection(pg_engine) as conn:
        conn.execute(text("TRUNCATE messages CASCADE"))  # the planner's row estimate is reset
    reltuples = "SELECT reltuples FROM pg_class WHERE relname = 'messages'"
    monkeypatch.setattr(expansion, "ANALYZE_AFTER_ROWS", 31)
    expand(pg_engine, confirm(pg_engine, admin, draft({"kind": "all"})).bulk_job_id)
    with system_connection(pg_engine) as conn:
        assert conn.scalar(text(reltuples)) < 30  # 30 rows: under the threshold, not analyzed
    monkeypatch.setattr(expansion, "ANALYZE_AFTER_ROWS", 30)
    expand(pg_engine, confirm(pg_engine, admin, draft({"kind": "all"})).bulk_job_id)
    with system_connection(pg_engine) as conn:
        assert conn.scalar(text(reltuples)) == 60
