"""Dashboard and Analytics figures: rollups for closed hours, raw rows for the current one, per clinic."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select

from app.analytics import rollups
from app.analytics.store import Filters, Period
from app.errors import PermissionDenied
from app.services import analytics
from db.enums import BulkJobStatus, Channel, MessageStatus, OptOutSource, Role
from db.models import AuditEvent, BulkJob, PreferenceChange, Tenant
from db.session import tenant_session
from tests.analytics.helpers import add_message, add_template
from tests.factories import make_patient, make_tenant, make_user

NOW = dt.datetime.now(dt.UTC)
S = MessageStatus


def _history(engine: Engine, tenant: object, *, scale: int = 1) -> None:
    """Yesterday: 3 delivered SMS (one 20 s), 1 undelivered 30003, 1 failed 21211; this hour: 2 read WhatsApp."""
    sms = add_template(engine, tenant, "reminder", Channel.SMS, "Reminder")
    wa = add_template(engine, tenant, "wa", Channel.WHATSAPP, "WhatsApp hello")
    day = NOW - dt.timedelta(days=1)
    for _ in range(scale):
        for i in range(3):
            add_message(engine, tenant, created_at=day, status=S.DELIVERED, template_id=sms, price=Decimal("0.04"),
                        sent_at=day, delivered_at=day + dt.timedelta(seconds=20 if i == 0 else 5))
        add_message(engine, tenant, created_at=day, status=S.UNDELIVERED, template_id=sms, error_code="30003")
        add_message(engine, tenant, created_at=day, status=S.FAILED, template_id=sms, error_code="21211")
        add_message(engine, tenant, created_at=day, status=S.DELIVERED, is_test=True)  # never counted
    rollups.rebuild(engine)
    for _ in range(2 * scale):  # after the rebuild, in the current hour: read from the raw rows
        add_message(engine, tenant, created_at=NOW - dt.timedelta(seconds=5), status=S.READ, channel=Channel.WHATSAPP,
                    template_id=wa, price=Decimal("0.005"), sent_at=NOW, delivered_at=NOW, read_at=NOW)


@pytest.fixture
def clinics(engine: Engine) -> tuple:
    a, b = make_tenant(engine, "clinic-a"), make_tenant(engine, "clinic-b")
    admin_a = make_user(engine, a, "amira", Role.ADMIN)
    analyst_a = make_user(engine, a, "omar", Role.ANALYST)
    desk_a = make_user(engine, a, "fatima", Role.FRONT_DESK)
    admin_b = make_user(engine, b, "bilal", Role.ADMIN)
    _history(engine, a)
    _history(engine, b, scale=3)  # clinic B's numbers must never show at A
    return a, b, admin_a, analyst_a, desk_a, admin_b


def test_summary_counts_closed_hours_from_rollups_and_this_hour_from_messages(engine: Engine, clinics: tuple) -> None:
    a, _b, admin_a, *_ = clinics
    with tenant_session(engine, a) as session:
        result = analytics.summary(session, admin_a, Period.last_days(7, now=NOW))
    totals = result.totals
    assert (totals.messages, totals.delivered, totals.failed, totals.in_progress) == (7, 5, 2, 0)
    assert totals.success_rate == pytest.approx(5 / 7)
    assert totals.cost == Decimal("0.13")
    channels = result.channels.set_index("Channel")
    assert channels.loc["SMS", "Messages"] == 5 and channels.loc["WhatsApp", "Delivered"] == 2
    assert int(result.daily[["Delivered", "Failed", "In progress", "Not sent"]].sum().sum()) == 7
    assert list(result.daily.columns) == ["Day", "Delivered", "Failed", "In progress", "Not sent"]
    expected = {(NOW - dt.timedelta(days=1)).date(): [3, 2, 0, 0]}  # the test clinic's time zone is UTC
    this_hour = expected.setdefault((NOW - dt.timedelta(seconds=5)).date(), [0, 0, 0, 0])  # same day just after 0:00
    this_hour[0] += 2
    assert {row[0]: list(row[1:]) for row in result.daily.itertuples(index=False)} == expected


@pytest.mark.parametrize("days", [7, 90])
def test_the_dashboard_and_the_messages_page_count_a_period_alike(engine: Engine, clinics: tuple, days: int) -> None:
    from app.services import explorer
    from app.services.explorer import MessageFilter

    a, _b, admin_a, *_ = clinics
    first_hour = Period.last_days(days, now=NOW).start  # the hour the window starts in, from its first second
    add_message(engine, a, created_at=first_hour, status=S.DELIVERED)
    rollups.rebuild(engine)
    with tenant_session(engine, a) as session:
        tiles = analytics.summary(session, admin_a, Period.last_days(days, now=NOW)).totals
        listed = explorer.count_messages(session, admin_a, MessageFilter(period=f"{days}d"), now=NOW)
    assert listed.exact and tiles.messages == listed.value == 8  # 7 of the history (no test message) + 1


def test_every_aggregate_is_of_the_signed_in_clinic_only(engine: Engine, clinics: tuple) -> None:
    a, b, admin_a, analyst_a, _desk, admin_b = clinics
    period = Period.last_days(30, now=NOW)
    with tenant_session(engine, a) as session:
        summary_a = analytics.summary(session, admin_a, period)
        report_a = analytics.report(session, analyst_a, period, now=NOW)
        failures_a = analytics.failure_reasons(session, admin_a, period)
    with tenant_session(engine, b) as session:
        summary_b = analytics.summary(session, admin_b, period)
        report_b = analytics.report(session, admin_b, period, now=NOW)
    assert (summary_a.totals.messages, summary_b.totals.messages) == (7, 21)
    assert report_a.templates["Messages"].sum() == 7 and report_b.templates["Messages"].sum() == 21
    assert report_a.channels["Messages"].sum() == 7
    assert failures_a["Messages"].sum() == 2
    assert report_a.heatmap["Messages"].sum() == 7 and report_b.heatmap["Messages"].sum() == 21
    assert report_a.whatsapp_reads["Read"].sum() == 2 and report_b.whatsapp_reads["Read"].sum() == 6
    with tenant_session(engine, a) as session, pytest.raises(Exception):  # noqa: B017 - the scope check
        analytics.summary(session, admin_b, period)


def test_failure_reasons_come_with_plain_words_and_a_pareto_share(engine: Engine, clinics: tuple) -> None:
    a, _b, admin_a, *_ = clinics
    with tenant_session(engine, a) as session:
        failures = analytics.failure_reasons(session, admin_a, Period.last_days(7, now=NOW))
    assert set(failures["Code"]) == {"30003", "21211"}
    row = failures.set_index("Code").loc["21211"]
    assert row["Reason"] == "The number is not a valid mobile number."
    assert "Correct the phone number" in row["Suggested action"]
    assert failures["Cumulative share (%)"].iloc[-1] == 100.0


def test_analytics_filters_by_channel_and_template(engine: Engine, clinics: tuple) -> None:
    a, _b, _admin, analyst_a, *_ = clinics
    period = Period.last_days(7, now=NOW)
    with tenant_session(engine, a) as session:
        whatsapp = analytics.report(session, analyst_a, period, Filters(channel=Channel.WHATSAPP), now=NOW)
        templates = analytics.template_choices(session, analyst_a)
        reminder = next(t for t, name in templates.items() if name == "Reminder")
        by_template = analytics.report(session, analyst_a, period, Filters(template_id=reminder), now=NOW)
    assert list(whatsapp.channels["Channel"]) == ["WhatsApp"]
    assert by_template.templates["Template"].tolist() == ["Reminder"]
    assert by_template.channels["Messages"].sum() == 5
    median = by_template.channels.set_index("Channel").loc["SMS", "Median time to delivered (s)"]
    assert 0 < median < 10  # two of three deliveries took 5 s


def test_roles_see_what_they_may(engine: Engine, clinics: tuple) -> None:
    a, _b, _admin, _analyst, desk_a, _ = clinics
    period = Period.last_days(7, now=NOW)
    with tenant_session(engine, a) as session:
        assert analytics.summary(session, desk_a, period).totals.messages == 7
        with pytest.raises(PermissionDenied):
            analytics.report(session, desk_a, period, now=NOW)
        with pytest.raises(PermissionDenied):
            analytics.record_export(session, desk_a, "cost", rows=3, period=period)


def test_a_download_is_audited(engine: Engine, clinics: tuple) -> None:
    a, _b, _admin, analyst_a, *_ = clinics
    period = Period.last_days(7, now=NOW)
    with tenant_session(engine, a) as session:
        analytics.record_export(session, analyst_a, "failure_reasons", rows=2, period=period)
    with tenant_session(engine, a) as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "analytics.export"))
        assert event is not None and event.object_id == "failure_reasons" and event.details["rows"] == 2


def _job(engine: Engine, tenant: object, name: str, status: BulkJobStatus, created_at: dt.datetime) -> object:
    with tenant_session(engine, tenant) as session:
        job = BulkJob(name=name, channel=Channel.SMS, status=status, total_recipients=3, created_at=created_at)
        session.add(job)
        session.flush()
        return job.id


def test_bulk_jobs_in_progress_are_the_moving_ones_counted_by_each_recipients_last_attempt(
        engine: Engine, clinics: tuple) -> None:
    a, b, admin_a, *_ = clinics
    started = NOW - dt.timedelta(hours=4)
    flu = _job(engine, a, "Flu campaign", BulkJobStatus.SENDING, started)
    _job(engine, a, "Held", BulkJobStatus.PAUSED, started - dt.timedelta(hours=1))
    _job(engine, a, "Old", BulkJobStatus.COMPLETED, started)
    _job(engine, a, "Stopped", BulkJobStatus.CANCELLED, started)
    add_message(engine, a, created_at=NOW - dt.timedelta(hours=3), status=S.DELIVERED, bulk_job_id=flu)
    add_message(engine, a, created_at=NOW - dt.timedelta(hours=3), status=S.QUEUED, bulk_job_id=flu)
    first = add_message(engine, a, created_at=NOW - dt.timedelta(hours=3), status=S.UNDELIVERED, bulk_job_id=flu)
    add_message(engine, a, created_at=NOW, status=S.DELIVERED, bulk_job_id=flu, retry_of_id=first)  # same recipient
    theirs = _job(engine, b, "Flu campaign", BulkJobStatus.SENDING, started)  # clinic B: same name, other numbers
    for _ in range(4):
        add_message(engine, b, created_at=NOW, status=S.FAILED, bulk_job_id=theirs)
    with tenant_session(engine, a) as session:
        session.get(Tenant, a).timezone = "Asia/Riyadh"

    with tenant_session(engine, a) as session:
        jobs = analytics.bulk_jobs_in_progress(session, admin_a)

    assert jobs[["Job", "Status", "Delivered", "Failed", "In progress"]].values.tolist() == [
        ["Flu campaign", "Sending", 2, 0, 1], ["Held", "Paused", 0, 0, 0]]  # ended jobs are not listed
    assert jobs["Created"][0] == (started + dt.timedelta(hours=3)).replace(tzinfo=None)  # Riyadh is UTC+3


def test_recent_messages_show_the_clinics_own_time(engine: Engine, clinics: tuple) -> None:
    a, b, admin_a, *_ = clinics
    with tenant_session(engine, a) as session:
        session.get(Tenant, a).timezone = "Asia/Riyadh"
    with tenant_session(engine, b) as session:
        session.get(Tenant, b).timezone = "Europe/London"
    newest = NOW.replace(microsecond=0)
    add_message(engine, a, created_at=newest, status=S.QUEUED)
    with tenant_session(engine, a) as session:
        recent = analytics.recent_messages(session, admin_a, limit=1)
    assert recent["Created"].tolist() == [(newest + dt.timedelta(hours=3)).replace(tzinfo=None)]


def test_opt_out_trend_counts_opt_outs_per_day_and_channel(engine: Engine, clinics: tuple) -> None:
    a, _b, _admin, analyst_a, *_ = clinics
    patient = make_patient(engine, a)
    with tenant_session(engine, a) as session:
        session.add_all([
            PreferenceChange(patient_id=patient, field="sms_opt_in", old_value="true", new_value="false",
                             source=OptOutSource.PATIENT_REPLY),
            PreferenceChange(patient_id=patient, field="sms_opt_in", old_value="false", new_value="true",
                             source=OptOutSource.STAFF),
        ])
    with tenant_session(engine, a) as session:
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        trend = analytics.report(session, analyst_a, Period.last_days(7, now=later), now=later).optouts
    assert trend[["Channel", "Opt-outs"]].values.tolist() == [["SMS", 1]]


def test_recent_messages_link_to_their_detail_page(engine: Engine, clinics: tuple) -> None:
    a, _b, admin_a, *_ = clinics
    with tenant_session(engine, a) as session:
        recent = analytics.recent_messages(session, admin_a, limit=3)
        count = session.scalar(select(func.count()).select_from(BulkJob))
    assert len(recent) == 3 and count == 0
    assert all(link.startswith("messages?message=") for link in recent["Details"])


def test_a_custom_period_is_checked(engine: Engine) -> None:
    from app.errors import ValidationError

    with pytest.raises(ValidationError, match="after the end"):
        Period.between_dates(dt.date(2026, 5, 2), dt.date(2026, 5, 1), now=NOW, timezone="Asia/Riyadh")
    with pytest.raises(ValidationError, match="future"):
        Period.between_dates(NOW.date() + dt.timedelta(days=3), NOW.date() + dt.timedelta(days=4), now=NOW,
                             timezone="Asia/Riyadh")
    period = Period.between_dates(dt.date(2026, 5, 1), dt.date(2026, 5, 1), now=NOW, timezone="Asia/Riyadh")
    assert (period.start, period.end) == (dt.datetime(2026, 4, 30, 21, tzinfo=dt.UTC),
                                          dt.datetime(2026, 5, 1, 21, tzinfo=dt.UTC))


def test_days_weekdays_and_hours_are_in_clinic_time(engine: Engine) -> None:
    tenant = make_tenant(engine, "riyadh")
    analyst = make_user(engine, tenant, "rana", Role.ANALYST)
    today = dt.datetime.now(dt.UTC).date()
    monday = today - dt.timedelta(days=today.weekday() + 7)
    late_monday_utc = dt.datetime.combine(monday, dt.time(21, 30), dt.UTC)  # Tuesday 00:30 in Riyadh (UTC+3)
    add_message(engine, tenant, created_at=late_monday_utc, status=S.DELIVERED)
    rollups.rebuild(engine)
    now = dt.datetime.now(dt.UTC)
    with tenant_session(engine, tenant) as session:
        result = analytics.report(session, analyst, Period.last_days(30, now=now, timezone="Asia/Riyadh"), now=now)
        summary = analytics.summary(session, analyst, Period.last_days(30, now=now, timezone="Asia/Riyadh"))
    assert result.heatmap[["Weekday", "Hour", "Messages"]].values.tolist() == [["Tuesday", 0, 1]]
    assert summary.daily["Day"].tolist() == [monday + dt.timedelta(days=1)]
