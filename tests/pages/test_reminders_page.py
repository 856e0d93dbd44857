"""The Reminders page: an admin edits a rule and sees the schedule follow, previews a reminder (Arabic
right to left), keeps the calendar; front desk and analysts cannot open it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app.errors import PermissionDenied
from app.services import templates
from app.services.reminders import planner, rules
from app.services.reminders.rules import CalendarSettings, RuleInput
from app.ui.rtl import RLI
from db.enums import Channel, Language, Role
from db.models import Appointment, ClinicCalendar
from db.session import tenant_session
from tests.factories import call, make_patient
from tests.pages.conftest import Clinic, button, form_key, signed_in, texts

RIYADH = ZoneInfo("Asia/Riyadh")
ALWAYS_OPEN = CalendarSettings(weekend_days=(), send_start=dt.time(0, 0), send_end=dt.time(23, 59),
                               ramadan_start=dt.time(0, 0), ramadan_end=dt.time(23, 59), public_holidays=False)


def _setup(clinic: Clinic) -> tuple[dt.datetime, str]:
    """A clinic open every day, an SMS rule 3 h before, and an appointment of an Arabic-speaking patient
    five days from now at noon (clinic time). Returns the appointment's start and the rule's id."""
    tenant = clinic.admin.tenant_id
    patient = make_patient(clinic.engine, tenant, name_en="Omar Said", name_ar="عمر سعيد",
                           phone="+966507654321", language=Language.AR)
    template = call(clinic.engine, clinic.admin, templates.create_template, code="sms_reminder", name="SMS reminder",
                    channel=Channel.SMS, body_en="See you at {{ appointment_time }}.",
                    body_ar="موعدك الساعة {{ appointment_time }}.").id
    call(clinic.engine, clinic.admin, rules.set_calendar, ALWAYS_OPEN)
    rule = call(clinic.engine, clinic.admin, rules.create_rule, RuleInput(
        name="SMS 3 h before", channel=Channel.SMS, template_id=template, offset_minutes=180))
    starts = dt.datetime.combine(dt.datetime.now(RIYADH).date() + dt.timedelta(days=5), dt.time(12, 0), RIYADH)
    with tenant_session(clinic.engine, tenant) as session:
        row = Appointment(patient_id=patient, starts_at=starts.astimezone(dt.UTC))
        session.add(row)
        session.flush()
        planner.plan(session, appointment_ids=[row.id])
    return starts, str(rule.id)


def page(clinic: Clinic, role: Role = Role.ADMIN) -> AppTest:
    at = signed_in(clinic.by_role(role))
    at.switch_page("../pages/reminders.py").run()
    assert not at.exception, at.exception
    return at


def open_tab(at: AppTest, label: str) -> AppTest:
    at.session_state["reminders_tab"] = label
    at.run()
    assert not at.exception, at.exception
    return at


def _due_times(at: AppTest) -> list[dt.datetime]:
    table = at.dataframe[0].value
    return [value.to_pydatetime() for value in table["Due (Asia/Riyadh)"]]


def test_an_admin_edits_a_rule_and_the_schedule_follows(clinic: Clinic) -> None:
    starts, rule_id = _setup(clinic)
    at = open_tab(page(clinic), "Schedule")
    assert _due_times(at) == [(starts - dt.timedelta(hours=3)).replace(tzinfo=None)]

    at = open_tab(at, "Rules")
    assert list(at.dataframe[0].value["Rule"]) == ["SMS 3 h before"]
    at.selectbox(key="rule_choice").set_value(rule_id).run()
    at.number_input(key=f"rule_hours_{rule_id}").set_value(4)  # inside the form: sent with its button
    button(at, "Save rule").click().run()
    assert not at.exception, at.exception
    assert any("Saved the rule" in t for t in texts(at.success)), texts(at.error)
    assert list(at.dataframe[0].value["When"]) == ["4 h before"]

    at = open_tab(at, "Schedule")
    assert _due_times(at) == [(starts - dt.timedelta(hours=4)).replace(tzinfo=None)]


def test_an_admin_previews_exactly_what_a_reminder_says_right_to_left(clinic: Clinic) -> None:
    _setup(clinic)
    at = open_tab(page(clinic), "Schedule")
    [reminder] = at.selectbox(key="schedule_preview").options
    at.selectbox(key="schedule_preview").set_value(at.selectbox(key="schedule_preview").options[0]).run()
    assert not at.exception, at.exception
    assert reminder
    shown = [m.value for m in at.markdown if "موعدك" in str(m.value)]
    assert shown and shown[0].startswith(RLI) and "12:00" in shown[0].replace("\\", "")
    assert any("SMS to +966507654321 · Arabic" in t.replace("\\", "") for t in texts(at.caption))


def test_a_bad_rule_is_refused_with_its_reason_and_nothing_is_saved(clinic: Clinic) -> None:
    _setup(clinic)
    at = open_tab(page(clinic), "Rules")
    at.selectbox(key="rule_channel_new").set_value(Channel.SMS).run()  # outside the form: the templates follow
    at.text_input(key="rule_name_new").input("Too soon")
    at.number_input(key="rule_hours_new").set_value(0)
    at.number_input(key="rule_minutes_new").set_value(0)
    template = at.selectbox(key="rule_template_new")
    template.set_value(template.options[0])
    button(at, "Save rule").click().run()
    assert any("between 5 minutes and 30 days" in t for t in texts(at.error)), texts(at.error)
    assert len(call(clinic.engine, clinic.admin, rules.list_rules)) == 1


def test_the_calendar_tab_saves_the_working_week_and_lists_the_holidays(clinic: Clinic) -> None:
    _setup(clinic)
    at = open_tab(page(clinic), "Calendar")
    assert "Holiday" in at.dataframe[0].value.columns
    at.multiselect(key="cal_weekend").set_value([4, 5])
    at.text_area(key="cal_closed").input("2027-01-03\nnot a date")
    button(at, "Save calendar").click().run()
    assert any("Line 2" in t for t in texts(at.error)), texts(at.error)
    at.text_area(key="cal_closed").input("2027-01-04\n\n 2027-01-03 ")
    button(at, "Save calendar").click().run()
    assert any("Saved the calendar" in t for t in texts(at.success)), texts(at.error)
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        saved = session.scalar(select(ClinicCalendar))
        assert (saved.weekend_days, saved.closed_dates) == ([4, 5], ["2027-01-03", "2027-01-04"])
    # a new form, showing the calendar as saved (not as typed)
    assert at.text_area(key=form_key(at, "calendar", "cal_closed")).value == "2027-01-03\n2027-01-04"
    assert at.multiselect(key=form_key(at, "calendar", "cal_weekend")).value == [4, 5]


def test_the_new_rule_form_is_empty_after_a_rule_is_saved(clinic: Clinic) -> None:
    _setup(clinic)
    at = open_tab(page(clinic), "Rules")
    at.selectbox(key="rule_channel_new").set_value(Channel.SMS).run()
    at.text_input(key="rule_name_new").input("SMS 1 h before")
    typed_in = at.text_input(key="rule_name_new").id
    at.number_input(key="rule_hours_new").set_value(1)
    template = at.selectbox(key="rule_template_new")
    template.set_value(template.options[0])
    button(at, "Save rule").click().run()
    assert any("Saved the rule 'SMS 1 h before'" in t for t in texts(at.success)), texts(at.error)
    assert len(call(clinic.engine, clinic.admin, rules.list_rules)) == 2

    def key(name: str) -> str:
        return form_key(at, "rules", name)

    assert at.selectbox(key=key("rule_choice")).value == "new"
    name = at.text_input(key=key("rule_name_new"))
    assert name.value == "" and name.id != typed_in  # a new box: the browser cannot give the name back
    assert at.selectbox(key=key("rule_channel_new")).value == Channel.WHATSAPP  # the defaults again
    assert at.number_input(key=key("rule_hours_new")).value == 24


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ANALYST])
def test_front_desk_and_analysts_cannot_open_it(clinic: Clinic, role: Role) -> None:
    at = signed_in(clinic.by_role(role))
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/reminders.py")
    for fn in (rules.list_rules, rules.get_calendar):  # and the page's reads refuse them too
        with pytest.raises(PermissionDenied):
            call(clinic.engine, clinic.by_role(role), fn)
