"""Dashboard: who am I, which clinic, the clinic's live numbers and the emergency stop."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from streamlit.testing.v1 import AppTest

from app.analytics import rollups
from app.ui.text import plain
from db.enums import MessageStatus, Role
from tests.analytics.helpers import add_message
from tests.pages.conftest import Clinic, signed_in


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_home_shows_who_is_signed_in_and_the_clinic(clinic: Clinic) -> None:
    at = signed_in(clinic.front_desk)

    intro = at.main.markdown[0].value
    assert plain("fatima") in intro
    assert "Front desk" in intro
    assert "Al Noor Clinic" in intro


def test_dashboard_tiles_count_the_clinics_messages(clinic: Clinic) -> None:
    now = dt.datetime.now(dt.UTC)
    tenant = clinic.admin.tenant_id
    add_message(clinic.engine, tenant, created_at=now - dt.timedelta(days=2), status=MessageStatus.DELIVERED,
                price=Decimal("0.04"))
    add_message(clinic.engine, tenant, created_at=now - dt.timedelta(days=2), status=MessageStatus.UNDELIVERED,
                error_code="30003")
    rollups.rebuild(clinic.engine)
    add_message(clinic.engine, tenant, created_at=now, status=MessageStatus.QUEUED)  # this hour: raw rows

    at = signed_in(clinic.front_desk)

    assert metrics(at) == {"Messages": "3", "Delivered": "1", "Failed": "1", "In progress": "1",
                           "Success rate": "50.0%", "Cost": "0.04", "SMS": "3"}  # the last: messages by channel
    failures = [m.value for m in at.markdown if m.value.startswith("**1** · ")]
    assert len(failures) == 1 and ":gray[" in failures[0], "the count first, then the reason and what to do"
    assert not at.error
    assert not [b for b in at.get("download_button")]  # front desk may not export


def test_an_empty_clinic_shows_zeros_and_no_rate(clinic: Clinic) -> None:
    at = signed_in(clinic.admin)
    assert metrics(at)["Messages"] == "0" and metrics(at)["Success rate"] == "—"
    assert "No failed messages in this period." in [c.value for c in at.caption]


def test_the_time_range_can_be_custom_dates(clinic: Clinic) -> None:
    at = signed_in(clinic.admin)
    at.get("button_group")[0].set_value("Custom").run()
    assert not at.exception
    today = dt.datetime.now(dt.UTC).date()
    at.date_input(key="dashboard_dates").set_value((today, today - dt.timedelta(days=1))).run()
    assert any("after the end date" in e.value for e in at.error)


def test_admin_pauses_and_resumes_sending_for_the_clinic(clinic: Clinic) -> None:
    at = signed_in(clinic.admin)
    at.checkbox(key="pause_confirm").check().run()
    at.text_input(key="pause_reason").input("wrong reminder text").run()
    next(b for b in at.button if b.label == "Pause all sending").click().run()
    assert any("Sending is paused" in e.value for e in at.error)
    from app.services import messaging
    from tests.factories import call

    assert call(clinic.engine, clinic.admin, messaging.is_paused)
    next(b for b in at.button if b.label == "Resume sending").click().run()
    assert not call(clinic.engine, clinic.admin, messaging.is_paused)
    assert not any("Sending is paused" in e.value for e in at.error)


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ANALYST])
def test_only_admins_see_the_emergency_stop_but_everyone_sees_the_pause(clinic: Clinic, role: Role) -> None:
    from app.services import messaging
    from tests.factories import call

    call(clinic.engine, clinic.admin, messaging.pause_sending)
    at = signed_in(clinic.by_role(role))
    at.switch_page("../pages/home.py").run()
    assert not [b for b in at.button if b.label == "Pause all sending" or b.label == "Resume sending"]
    assert any("Sending is paused" in e.value for e in at.error)


def _clinic_zone(clinic: Clinic, zone: str) -> None:
    from db.models import Tenant
    from db.session import tenant_session

    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        session.get(Tenant, clinic.admin.tenant_id).timezone = zone


def test_every_time_on_the_dashboard_is_the_clinics_and_says_so(clinic: Clinic) -> None:
    _clinic_zone(clinic, "Asia/Riyadh")
    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    add_message(clinic.engine, clinic.admin.tenant_id, created_at=created, status=MessageStatus.QUEUED)

    at = signed_in(clinic.admin)

    captions = [c.value for c in at.caption]
    assert "Days and times are in the clinic's time zone, Asia/Riyadh." in captions
    assert any(c.startswith("Updated ") and c.endswith("(Asia/Riyadh); refreshes on its own.") for c in captions)
    assert not any("UTC" in c for c in captions)
    recent = next(d for d in at.dataframe if d.proto.id.endswith("recent_messages") or "Details" in d.value.columns)
    assert recent.value["Created"].tolist() == [(created + dt.timedelta(hours=3)).replace(tzinfo=None)]
    assert "Created (Asia/Riyadh)" in recent.proto.columns


def test_the_dashboard_lists_only_bulk_jobs_still_moving(clinic: Clinic) -> None:
    from db.enums import BulkJobStatus, Channel
    from db.models import BulkJob
    from db.session import tenant_session

    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        session.add_all([
            BulkJob(name="Flu campaign", channel=Channel.SMS, status=BulkJobStatus.SENDING, total_recipients=2),
            BulkJob(name="Done last week", channel=Channel.SMS, status=BulkJobStatus.COMPLETED, total_recipients=2),
            BulkJob(name="Called off", channel=Channel.SMS, status=BulkJobStatus.CANCELLED, total_recipients=2),
        ])

    at = signed_in(clinic.admin)

    table = next(d for d in at.dataframe if "Recipients" in d.value.columns)
    jobs = table.value
    assert jobs["Job"].tolist() == ["Flu campaign"]
    import json  # review 19b, point 3: counts read 5,251, not 5251

    assert json.loads(table.proto.columns)["Recipients"]["type_config"]["format"] == "%,d"
    assert not [b for b in at.button if b.label in ("Pause", "Cancel", "Resume")]


def test_the_live_window_slides_with_each_refresh() -> None:
    from app.ui.reports import PeriodChoice

    choice = PeriodChoice("Asia/Riyadh", days=7)
    first = choice.at(dt.datetime(2026, 12, 6, 4, 10, tzinfo=dt.UTC))
    later = choice.at(dt.datetime(2026, 12, 6, 5, 20, tzinfo=dt.UTC))
    assert first.end == dt.datetime(2026, 12, 6, 4, 10, tzinfo=dt.UTC)
    assert later.end == dt.datetime(2026, 12, 6, 5, 20, tzinfo=dt.UTC)  # a message sent meanwhile is inside
    assert later.start == dt.datetime(2026, 11, 29, 5, tzinfo=dt.UTC) and later.timezone == "Asia/Riyadh"


def test_recent_messages_show_times_in_the_one_format_and_keep_the_open_link_narrow(clinic: Clinic) -> None:
    """The Dashboard's recent messages use the app's one time format (6 Dec 2026, 13:01, not
    2026-12-06 13:01) and the "Open" link first and narrow, so it is not cut off at 1,400 px."""
    import json

    add_message(clinic.engine, clinic.admin.tenant_id, created_at=dt.datetime.now(dt.UTC), status=MessageStatus.QUEUED)
    at = signed_in(clinic.admin)
    recent = next(d for d in at.dataframe if "Details" in d.value.columns)
    columns = json.loads(recent.proto.columns)
    assert columns["Created"]["type_config"]["format"] == "D MMM YYYY, HH:mm"
    assert columns["Details"]["type_config"]["display_text"] == "Open" and columns["Details"]["width"] == "small"
    # first: a long template name or reason cannot push them out of view
    assert recent.value.columns.tolist()[:4] == ["Details", "Created", "Channel", "Status"]
