"""The Analytics page for each role: analysts land on it, front desk cannot open it, charts can be downloaded."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from streamlit.testing.v1 import AppTest

from app.analytics import rollups
from db.enums import Channel, MessageStatus, Role
from tests.analytics.helpers import add_message, add_template
from tests.pages.conftest import Clinic, signed_in


def _history(clinic: Clinic) -> None:
    tenant = clinic.admin.tenant_id
    now = dt.datetime.now(dt.UTC)
    sms = add_template(clinic.engine, tenant, "reminder", Channel.SMS, "تذكير بالموعد")
    wa = add_template(clinic.engine, tenant, "wa", Channel.WHATSAPP, "=cmd|' /C calc'!A0")  # a hostile name
    for days in (1, 2, 3):
        at = now - dt.timedelta(days=days)
        add_message(clinic.engine, tenant, created_at=at, status=MessageStatus.DELIVERED, template_id=sms,
                    price=Decimal("0.04"), sent_at=at, delivered_at=at + dt.timedelta(seconds=4))
        add_message(clinic.engine, tenant, created_at=at, status=MessageStatus.READ, channel=Channel.WHATSAPP,
                    template_id=wa, sent_at=at, delivered_at=at, read_at=at)
        add_message(clinic.engine, tenant, created_at=at, status=MessageStatus.UNDELIVERED, template_id=sms,
                    error_code="30003")
    rollups.rebuild(clinic.engine)


def open_tab(at: AppTest, label: str) -> AppTest:
    """Choose a tab as a click does (the page then draws that tab's charts)."""
    at.session_state["analytics_tab"] = label
    return at.run()


@pytest.mark.parametrize("role", [Role.ANALYST, Role.ADMIN])
def test_analytics_shows_every_chart_with_a_download(clinic: Clinic, role: Role) -> None:
    _history(clinic)
    at = signed_in(clinic.by_role(role))
    if role == Role.ADMIN:
        at.switch_page("../pages/analytics.py").run()

    assert at.title[0].value == "Analytics"
    assert not at.exception and not at.error
    assert [t.label for t in at.tabs][:3] == ["Delivery", "Channels", "Templates"]
    assert {b.key for b in at.get("download_button")} == {"csv_delivery_rate"}  # only the open tab is drawn
    keys, captions = set(), []
    for tab in [t.label for t in at.tabs]:
        at = open_tab(at, tab)
        assert not at.exception and not at.error
        assert {b.proto.label for b in at.get("download_button")} <= {"Download CSV"}
        keys |= {b.key for b in at.get("download_button")}
        captions += [c.value for c in at.caption]
    assert keys == {f"csv_{name}" for name in (
        "delivery_rate", "channel_comparison", "templates_by_volume", "templates_by_success_rate",
        "failure_reasons", "cost_per_day", "cost_per_template", "whatsapp_read_rate", "sends_by_weekday_and_hour",
        "success_by_weekday_and_hour")}  # no opt-outs and no bulk jobs in this history
    assert "Opt outs: no messages in this period." in captions


def test_analysts_land_on_analytics_and_may_open_the_dashboard(clinic: Clinic) -> None:
    at = signed_in(clinic.analyst)
    at.switch_page("../pages/home.py").run()
    assert at.title[0].value == "Dashboard" and not at.exception


def test_front_desk_cannot_open_analytics(clinic: Clinic) -> None:
    at = signed_in(clinic.front_desk)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/analytics.py")


def test_filters_narrow_the_report(clinic: Clinic) -> None:
    _history(clinic)
    at = open_tab(signed_in(clinic.analyst), "Channels")
    at.selectbox(key="analytics_channel").set_value(Channel.WHATSAPP).run()
    assert not at.exception
    channels = next(d.value for d in at.dataframe if "Median time to delivered (s)" in d.value.columns)
    assert channels["Channel"].tolist() == ["WhatsApp"]
    assert channels["Messages"].tolist() == [3]


def test_an_empty_period_says_so_instead_of_drawing_nothing(clinic: Clinic) -> None:
    at = signed_in(clinic.analyst)
    assert not at.exception
    assert "Delivery rate: no messages in this period." in [c.value for c in at.caption]
    assert not at.get("download_button")


def test_the_channels_and_failures_tables_count_with_thousands_separators(clinic: Clinic) -> None:
    """Review 19b, point 3: every count in a table reads 5,251, not 5251 (app.ui.reports.count_columns)."""
    import json

    _history(clinic)
    at = open_tab(signed_in(clinic.analyst), "Channels")
    channels = next(d for d in at.dataframe if "Median time to delivered (s)" in d.value.columns)
    formats = {name: c.get("type_config", {}).get("format") for name, c in json.loads(channels.proto.columns).items()}
    assert {name: formats[name] for name in ("Messages", "Delivered", "Failed", "In progress")} == dict.fromkeys(
        ("Messages", "Delivered", "Failed", "In progress"), "%,d")
    assert "Cost" not in formats  # money is not a count
    at = open_tab(at, "Failures")
    failures = next(d for d in at.dataframe if "Suggested action" in d.value.columns)
    assert json.loads(failures.proto.columns)["Messages"]["type_config"]["format"] == "%,d"
