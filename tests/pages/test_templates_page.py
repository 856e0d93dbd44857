"""The Templates page: admins write, version and check templates; front desk and analysts read them."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app.reply_lint import ONE_WAY_SMS
from app.services import templates
from app.services.templates import TemplateDetail
from app.ui import rtl
from app.ui.text import plain
from db.enums import Channel, Language, Role
from db.models import Message
from db.session import tenant_session
from tests.pages.conftest import Clinic, button, form_key, signed_in, texts

REMINDER_EN = "Hi {patient_name}, your appointment is on {appointment_date}."
REMINDER_AR = "مرحبا {patient_name}، موعدك يوم {appointment_date}."
EDIT_BUTTONS = {"Save", "Delete template", "Duplicate", "Deactivate", "Send test"}


def make_template(clinic: Clinic, code: str = "reminder", body_en: str = REMINDER_EN,
                  body_ar: str = REMINDER_AR) -> TemplateDetail:
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as db:
        return templates.create_template(db, clinic.admin, code=code, name="Appointment reminder",
                                         channel="sms", body_en=body_en, body_ar=body_ar)


def edit(clinic: Clinic, template: TemplateDetail, body_en: str) -> TemplateDetail:
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as db:
        return templates.update_template(db, clinic.admin, template.id, body_en=body_en, note="shorter")


def templates_page(clinic: Clinic, role: Role = Role.ADMIN) -> AppTest:
    at = signed_in(clinic.by_role(role))
    at.switch_page("../pages/templates.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Templates"
    return at


def open_template(at: AppTest, template: TemplateDetail | str) -> AppTest:
    value = template if isinstance(template, str) else str(template.id)
    at.selectbox(key="templates_open").set_value(value).run()
    assert not at.exception, at.exception
    return at


def listed(at: AppTest) -> dict[str, dict]:
    return {row["Code"]: row for row in at.dataframe[0].value.to_dict("records")}


def markdown(at: AppTest) -> list[str]:
    return texts(at.markdown)


def test_admin_creates_a_template_and_sees_it_listed(clinic: Clinic) -> None:
    at = open_template(templates_page(clinic), "new")
    at.text_input(key="new_code").input("reminder")
    at.text_input(key="new_name").input("Appointment reminder")
    at.text_area(key="new_body_en").input(REMINDER_EN)
    at.text_area(key="new_body_ar").input(REMINDER_AR)
    at.run()
    assert any("GSM-7" in c and "1 segment" in c for c in texts(at.caption))  # the live counter

    button(at, "Save").click().run()

    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    assert texts(at.success) == ["Created reminder (version 1)."]
    row = listed(at)["reminder"]
    assert row["Name"] == "Appointment reminder"
    assert row["Channel"] == "SMS"
    assert row["Active"] is True
    assert row["Version"] == 1
    assert row["Sent"] == 0
    assert at.query_params["template"] == row_id(clinic, "reminder")  # a link reopens it


def test_the_next_new_template_starts_from_an_empty_form(clinic: Clinic) -> None:
    at = open_template(templates_page(clinic), "new")
    at.text_input(key="new_code").input("reminder")
    at.text_input(key="new_name").input("Appointment reminder")
    at.text_area(key="new_body_en").input(REMINDER_EN)
    typed_in = at.text_input(key="new_code").id
    button(at, "Save").click().run()
    assert texts(at.success) == ["Created reminder (version 1)."]

    at = open_template(at, "new")
    code = at.text_input(key=form_key(at, "new", "new_code"))
    assert code.value == "" and code.id != typed_in  # a new box: the browser cannot give the old code back
    assert at.text_input(key=form_key(at, "new", "new_name")).value == ""
    assert at.text_area(key=form_key(at, "new", "new_body_en")).value == ""


def row_id(clinic: Clinic, code: str) -> str:
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as db:
        return str(next(t.id for t in templates.list_templates(db, clinic.admin) if t.code == code))


def test_an_unknown_variable_is_shown_under_the_text_and_nothing_is_saved(clinic: Clinic) -> None:
    at = open_template(templates_page(clinic), "new")
    at.text_input(key="new_code").input("reminder")
    at.text_input(key="new_name").input("Appointment reminder")
    at.text_area(key="new_body_en").input("Hi {pateint_name}")
    at.run()
    assert any("patient\\_name" in w for w in texts(at.warning))  # flagged live, with a suggestion

    button(at, "Save").click().run()

    errors = texts(at.error)
    assert len(errors) == 1
    assert "pateint\\_name" in errors[0] and "Did you mean 'patient\\_name'" in errors[0]
    assert "reminder" not in listed(at)
    assert at.text_area(key="new_body_en").value == "Hi {pateint_name}"  # nothing typed is lost


def test_asking_for_a_reply_is_warned_about_under_the_text_but_can_be_saved(clinic: Clinic) -> None:
    at = open_template(templates_page(clinic), "new")
    at.text_input(key="new_code").input("confirm")
    at.text_input(key="new_name").input("Confirmation")
    at.text_area(key="new_body_en").input("Reply CANCEL to cancel")
    at.run()
    warnings = texts(at.warning)
    assert plain(ONE_WAY_SMS) in warnings  # an SMS channel by default: Saudi SMS is one-way
    assert any(w.startswith("Replying CANCEL unsubscribes the patient") for w in warnings), warnings

    at.text_area(key="new_body_en").input("Reply 1 to confirm")
    at.text_area(key="new_body_ar").input("للتأكيد أرسل 1")
    at.run()
    assert texts(at.warning).count(plain(ONE_WAY_SMS)) == 2  # under each text
    assert not any("CANCEL" in w for w in texts(at.warning))

    button(at, "Save").click().run()
    assert not at.error, texts(at.error)
    assert texts(at.success) == ["Created confirm (version 1)."]


def test_a_duplicate_code_is_refused_under_the_code(clinic: Clinic) -> None:
    make_template(clinic)
    at = open_template(templates_page(clinic), "new")
    at.text_input(key="new_code").input("reminder")
    at.text_input(key="new_name").input("Another")
    at.text_area(key="new_body_en").input("Hello")
    button(at, "Save").click().run()

    assert texts(at.error) == [plain("Your clinic already has a template with the code 'reminder'.")]
    assert listed(at)["reminder"]["Name"] == "Appointment reminder"


def test_the_preview_renders_sample_data_and_arabic_right_to_left(clinic: Clinic) -> None:
    template = make_template(clinic)
    at = open_template(templates_page(clinic), template)

    shown = markdown(at)
    assert plain("Hi Sara Al-Qahtani, your appointment is on 2026-12-01.") in shown
    arabic = [text for text in shown if text.startswith(rtl.RLI) and "موعدك" in text]
    assert arabic, shown
    assert all(text.endswith(rtl.PDI) for text in arabic)
    assert "{" not in arabic[-1]  # the preview is rendered, not the raw text


def test_an_empty_arabic_text_says_english_is_used(clinic: Clinic) -> None:
    template = make_template(clinic, body_ar="")
    at = open_template(templates_page(clinic), template)

    assert "The Arabic text is empty: patients who prefer Arabic get the English text." in texts(at.info)


def test_edit_makes_a_new_version(clinic: Clinic) -> None:
    template = make_template(clinic)
    at = open_template(templates_page(clinic), template)
    prefix = f"edit_{template.id}_1"
    at.text_area(key=f"{prefix}_body_en").input("Reminder: {appointment_date}.")
    at.text_input(key=f"{prefix}_note").input("shorter")
    button(at, "Save").click().run()

    assert not at.error, texts(at.error)
    assert texts(at.success) == ["Saved reminder as version 2."]
    assert listed(at)["reminder"]["Version"] == 2
    assert at.text_area(key=f"edit_{template.id}_2_body_en").value == "Reminder: {appointment_date}."


def test_compare_two_versions(clinic: Clinic) -> None:
    template = edit(clinic, make_template(clinic), "Reminder: {appointment_date}.")
    at = open_template(templates_page(clinic), template)

    diff = next(c.value for c in at.code if c.language == "diff")
    assert f"-{REMINDER_EN}" in diff
    assert "+Reminder: {appointment_date}." in diff


def test_restore_a_version_makes_a_new_one(clinic: Clinic) -> None:
    template = edit(clinic, make_template(clinic), "Reminder: {appointment_date}.")
    at = open_template(templates_page(clinic), template)
    at.selectbox(key=f"read_version_{template.id}").set_value(1).run()
    button(at, "Restore version 1").click().run()

    assert texts(at.success) == ["Version 1 restored as version 3."]
    assert listed(at)["reminder"]["Version"] == 3
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as db:
        assert templates.get_template(db, clinic.admin, template.id).body_en == REMINDER_EN


def test_html_in_a_body_is_shown_as_text(clinic: Clinic) -> None:
    template = make_template(clinic, body_en="<script>alert(1)</script> Hi {patient_name}")
    at = open_template(templates_page(clinic), template)

    assert any("\\<script\\>" in text for text in markdown(at))
    assert not any("<script>" in text for text in markdown(at))


def test_delete_needs_the_code_typed(clinic: Clinic) -> None:
    template = make_template(clinic)
    at = open_template(templates_page(clinic), template)
    assert button(at, "Delete template").disabled

    at.text_input(key=f"delete_confirm_{template.id}").input("reminder").run()
    button(at, "Delete template").click().run()

    assert texts(at.success) == ["Deleted reminder."]
    assert "reminder" not in listed(at)
    assert at.selectbox(key="templates_open").value == ""


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ANALYST])
def test_front_desk_and_analysts_read_only(clinic: Clinic, role: Role) -> None:
    template = edit(clinic, make_template(clinic), "Reminder: {appointment_date}.")
    at = templates_page(clinic, role)
    assert "New template…" not in [at.selectbox(key="templates_open").format_func(o)
                                   for o in at.selectbox(key="templates_open").options]
    open_template(at, template)

    assert listed(at)["reminder"]["Version"] == 2
    assert any(c.language == "diff" for c in at.code)  # versions can be compared
    labels = {b.label for b in at.button}
    assert not labels & EDIT_BUTTONS
    assert not any(label.startswith("Restore") for label in labels)
    assert not at.text_area  # no editor


def test_sample_values_can_be_edited(clinic: Clinic) -> None:
    template = make_template(clinic)
    at = open_template(templates_page(clinic), template)
    at.text_input(key=f"edit_{template.id}_1_sample_ar_patient_name").input("Layla Hamad").run()

    arabic = [text for text in markdown(at) if text.startswith(rtl.RLI) and "موعدك" in text]
    assert any("Layla Hamad" in text for text in arabic)  # a Latin name inside the Arabic line


def test_the_arabic_preview_and_test_send_use_arabic_samples_and_keep_the_date_in_order(clinic: Clinic) -> None:
    template = make_template(clinic)
    at = open_template(templates_page(clinic), template)

    arabic = [text for text in markdown(at) if text.startswith(rtl.RLI) and "موعدك" in text]
    assert any("سارة القحطاني" in text and "\u200e2026" in text for text in arabic)  # the mark before the date
    assert any("including 1 direction mark" in c for c in texts(at.caption))  # the counter says so
    at.selectbox(key=f"test_language_{template.id}").set_value(Language.AR).run()
    assert at.text_input(key=f"test_{template.id}_ar_patient_name").value == "سارة القحطاني"
    at.selectbox(key=f"test_language_{template.id}").set_value(Language.EN).run()
    assert at.text_input(key=f"test_{template.id}_en_patient_name").value == "Sara Al-Qahtani"


def test_send_a_test(clinic: Clinic) -> None:
    template = make_template(clinic)
    at = open_template(templates_page(clinic), template)
    at.text_input(key=f"test_recipient_{template.id}").input("+966501234567")
    button(at, "Send test").click().run()

    assert not at.error, texts(at.error)
    assert any(text.startswith("Test message ") for text in texts(at.success))

    button(at, "Send test").click().run()  # a second click straight away

    assert "This test was just sent. To send it again, wait 10 seconds." in texts(at.info)
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        sent = session.execute(select(Message.is_test)).scalars().all()
    assert sent == [True]


def test_a_link_with_the_template_reopens_it(clinic: Clinic) -> None:
    template = make_template(clinic)
    at = signed_in(clinic.front_desk)
    at.query_params["template"] = str(template.id)
    at.switch_page("../pages/templates.py").run()

    assert at.selectbox(key="templates_open").value == str(template.id)
    assert at.subheader[0].value == "Appointment reminder"


def test_filter_by_channel_status_and_search(clinic: Clinic) -> None:
    make_template(clinic)
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as db:
        templates.create_template(db, clinic.admin, code="results", name="Lab results", channel="email",
                                  subject_en="Your results", body_en="Hi {patient_name}, your results are ready.")
    at = templates_page(clinic, Role.ANALYST)
    assert set(listed(at)) == {"reminder", "results"}

    at.selectbox(key="templates_channel").set_value(Channel.EMAIL).run()
    assert set(listed(at)) == {"results"}

    at.selectbox(key="templates_channel").set_value(None)
    at.text_input(key="templates_search").input("REMIND").run()
    assert set(listed(at)) == {"reminder"}

    at.selectbox(key="templates_active").set_value("Inactive").run()
    assert listed(at) == {}
    assert "No templates match." in texts(at.caption)


def test_an_email_needs_a_subject(clinic: Clinic) -> None:
    at = open_template(templates_page(clinic), "new")
    at.selectbox(key="new_channel").set_value(Channel.EMAIL).run()
    at.text_input(key="new_code").input("results")
    at.text_input(key="new_name").input("Lab results")
    at.text_area(key="new_body_en").input("Your results are ready.")
    button(at, "Save").click().run()

    assert texts(at.error) == [plain("An e-mail needs an English subject.")]
    assert listed(at) == {}


def test_the_arabic_source_shows_each_placeholder_left_to_right_and_stores_it_unchanged(clinic: Clinic) -> None:
    """Review 19b, point 1: in the Text tab (and an earlier version read in Versions) the Arabic source's
    placeholders are left-to-right isolates with no-break spaces, so their braces are not flipped nor the
    placeholder broken across lines;
    the stored text and what is sent hold no isolate."""
    body_ar = "{{ patient_name }}، موعدك يوم {{ appointment_date }} الساعة {appointment_time}."
    template = edit(clinic, make_template(clinic, body_ar=body_ar), "Reminder: {appointment_date}.")
    at = open_template(templates_page(clinic), template)

    sources = [text for text in markdown(at) if text.startswith(rtl.RLI) and "appointment" in text]
    placeholder = f"{rtl.LRI}\\{{\\{{{rtl.NBSP}appointment\\_date{rtl.NBSP}\\}}\\}}{rtl.PDI}"
    assert len(sources) == 2, sources  # the Text tab, and version 1 in the Versions tab
    first = f"{rtl.RLI}{rtl.LRI}\\{{\\{{{rtl.NBSP}patient\\_name{rtl.NBSP}\\}}\\}}{rtl.PDI}"
    assert all(text.startswith(first) for text in sources)
    assert all(placeholder in text and f"{rtl.LRI}\\{{appointment\\_time\\}}{rtl.PDI}" in text for text in sources)
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as db:
        assert templates.get_template(db, clinic.admin, template.id).body_ar == body_ar
    previews = [text for text in markdown(at) if text.startswith(rtl.RLI) and "موعدك" in text and "{" not in text]
    assert previews and not any(rtl.LRI in text for text in previews)  # the rendered text has none


def _column_configs(frame) -> dict:  # type: ignore[no-untyped-def]
    import json

    return json.loads(frame.proto.columns)


def test_the_list_shows_sent_with_thousands_separators_and_last_used_in_view(clinic: Clinic) -> None:
    """Review 19b, points 2 and 3: "Sent" reads 5,251 (one number format); code and name are kept to
    180 px so "Last used" is in view at 1,400 px, and the version, least asked for, comes last."""
    make_template(clinic)
    at = templates_page(clinic)

    table = at.dataframe[0]
    columns = _column_configs(table)
    assert columns["Sent"]["type_config"]["format"] == "%,d"
    assert columns["Version"]["type_config"]["format"] == "%,d"
    assert columns["Code"]["width"] == 180 and columns["Name"]["width"] == 180
    assert table.value.columns.tolist() == ["Code", "Name", "Channel", "Class", "Active", "Sent", "Delivery rate",
                                            "Last used (Asia/Riyadh)", "Version"]
    assert listed(at)["reminder"]["Sent"] == 0  # the data stay numbers: only the display is formatted
