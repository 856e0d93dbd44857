"""The template editor's WhatsApp tab (Content SID, variables, SMS fallback, approval status) and
the live explanation of what a message class implies."""

from __future__ import annotations

import pytest

from app.services import templates
from app.services.templates import TemplateDetail
from db.enums import Channel, MessageClass, Role
from db.models import MessageTemplate
from db.session import system_session, tenant_session
from tests.pages.conftest import Clinic, button, texts
from tests.pages.test_templates_page import open_template, templates_page

SID = "HX" + "d" * 32


def whatsapp_template(clinic: Clinic) -> TemplateDetail:
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as db:
        return templates.create_template(db, clinic.admin, code="wa_reminder", name="WhatsApp reminder",
                                         channel="whatsapp", body_en="Hi {patient_name}, see you soon.")


def stored(clinic: Clinic, template: TemplateDetail) -> MessageTemplate:
    with system_session(clinic.engine) as session:
        row = session.get(MessageTemplate, template.id)
        session.expunge(row)
        return row


def test_admin_links_a_content_template_with_sms_fallback(clinic: Clinic) -> None:
    template = whatsapp_template(clinic)
    at = open_template(templates_page(clinic), template)
    at.text_input(key=f"content_sid_{template.id}").input(SID)
    at.text_area(key=f"variable_map_{template.id}").input("1 = patient_name")
    at.checkbox(key=f"fallback_{template.id}").check()
    button(at, "Save WhatsApp settings").click().run()
    assert not at.error, texts(at.error)
    assert "Saved the WhatsApp settings." in texts(at.success)
    row = stored(clinic, template)
    assert (row.whatsapp_content_sid, row.whatsapp_variable_map, row.fallback_channel) == (
        SID, {"1": "patient_name"}, Channel.SMS)


@pytest.mark.parametrize("sid,mapping,message", [
    ("HX123", "1 = patient_name", "is not a Content SID"),
    (SID, "1 patient_name", "should look like"),
    (SID, "2 = patient_name", "numbered 1 to 1"),
])
def test_a_bad_link_is_refused_and_nothing_saved(clinic: Clinic, sid: str, mapping: str, message: str) -> None:
    template = whatsapp_template(clinic)
    at = open_template(templates_page(clinic), template)
    at.text_input(key=f"content_sid_{template.id}").input(sid)
    at.text_area(key=f"variable_map_{template.id}").input(mapping)
    button(at, "Save WhatsApp settings").click().run()
    assert any(message in t for t in texts(at.error)), texts(at.error)
    assert stored(clinic, template).whatsapp_content_sid is None
    assert at.text_input(key=f"content_sid_{template.id}").value == sid  # nothing typed is lost


def test_refresh_shows_the_approval_from_twilio(clinic: Clinic, fake_twilio, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name, value in {"TWILIO_ACCOUNT_SID": fake_twilio.account_sid, "TWILIO_AUTH_TOKEN": fake_twilio.auth_token,
                        "TWILIO_CONTENT_API_BASE_URL": fake_twilio.base_url}.items():
        monkeypatch.setenv(name, value)
    template = whatsapp_template(clinic)
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as db:
        from app.services import whatsapp_templates

        whatsapp_templates.set_whatsapp_link(db, clinic.admin, template.id, content_sid=SID,
                                             variable_map={"1": "patient_name"}, fallback_channel=None)
    fake_twilio.set_content_approval(SID, "rejected", rejection_reason="Too many variables")
    at = open_template(templates_page(clinic, Role.FRONT_DESK), template)
    assert any("Not checked yet" in t for t in texts(at.warning))
    assert not [b for b in at.button if b.label == "Save WhatsApp settings"]  # read-only for front desk
    button(at, "Refresh approval status").click().run()
    assert any("Rejected by WhatsApp" in t for t in texts(at.warning)), texts(at.warning)
    assert any("Too many variables" in t for t in texts(at.markdown))
    assert stored(clinic, template).whatsapp_approval_status == "rejected"


def test_the_editor_explains_the_class_as_it_is_chosen(clinic: Clinic) -> None:
    at = open_template(templates_page(clinic), "new")
    at.selectbox(key="new_channel").set_value(Channel.SMS).run()
    assert any("any time of day" in t for t in texts(at.caption))
    at.selectbox(key="new_class").set_value(MessageClass.PROMOTIONAL).run()
    rules = " ".join(texts(at.caption))
    assert "promotional consent" in rules and "-AD" in rules and "diagnosis" in rules
