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
                           "Success rate": "50.0%", "Cost": "0.04"}
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
