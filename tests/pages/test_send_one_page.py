"""Sending one message to one patient from the patient's page and from a message's detail (AppTest)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app.services import templates
from app.services.permissions import Actor
from db.enums import Channel, Role
from db.models import Message
from db.session import tenant_session
from tests.factories import call, make_message, make_patient
from tests.pages.conftest import Clinic, button, form_key, signed_in, texts


def open_patient(actor: Actor, patient_id: uuid.UUID) -> AppTest:
    at = signed_in(actor)
    at.switch_page("../pages/patients.py")
    at.query_params["patient"] = str(patient_id)
    at.run()
    assert not at.exception, at.exception
    return at


def widget(elements, key: str):  # type: ignore[no-untyped-def]
    """The widget whose key ends with ``key`` (a renewed form's keys end with their generation: ``@1``)."""
    found = [e for e in elements if e.key and e.key.rsplit("@", 1)[0].endswith(key)]
    assert found, f"no widget whose key ends with {key!r}: {[e.key for e in elements]}"
    return found[0]


def shown(at: AppTest) -> list[str]:
    """The Markdown on screen without its escaping (stored and typed text is escaped to show as typed)."""
    return [m.value.replace("\\", "") for m in at.markdown]


def sent(clinic: Clinic) -> list[Message]:
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        rows = list(session.scalars(select(Message).order_by(Message.created_at)))
        session.expunge_all()
        return rows


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ADMIN])
def test_own_text_from_the_patients_page_with_its_preview(clinic: Clinic, role: Role) -> None:
    actor = clinic.by_role(role)
    sara = make_patient(clinic.engine, actor.tenant_id)
    at = open_patient(actor, sara)

    widget(at.radio, "-kind").set_value("text").run()
    widget(at.text_area, "-text").input("Hello {patient_first_name}, your results are ready.").run()
    typed_in = widget(at.text_area, "-text").id
    assert not at.exception
    assert "Hello Sara, your results are ready." in shown(at)  # the preview, her name
    assert any("1 segment" in caption for caption in texts(at.caption))

    button(at, "Send message").click().run()
    assert not at.exception and not at.error
    assert any("The message to Sara Ali is queued" in s for s in texts(at.success))
    [message] = sent(clinic)
    assert (message.patient_id, message.body, message.created_by_id) == (
        sara, "Hello Sara, your results are ready.", actor.user_id)

    button(at, "Write another message").click().run()  # a fresh form: the next send is another message
    assert "Send message" in [b.label for b in at.button] and not texts(at.success)
    form = f"send1-patient-{sara}"
    assert at.radio(key=form_key(at, form, f"{form}-kind")).value == "template"  # the form's defaults again
    at.radio(key=form_key(at, form, f"{form}-kind")).set_value("text").run()
    text = at.text_area(key=form_key(at, form, f"{form}-text"))
    assert text.value == "" and text.id != typed_in  # a new box: the browser cannot give the sent text back
    text.input("See you on Sunday.").run()
    button(at, "Send message").click().run()
    assert [m.body for m in sent(clinic)] == ["Hello Sara, your results are ready.", "See you on Sunday."]


def test_a_template_is_previewed_with_the_reply_lint(clinic: Clinic) -> None:
    sara = make_patient(clinic.engine, clinic.admin.tenant_id)
    call(clinic.engine, clinic.admin, templates.create_template, code="confirm", name="Confirm",
         channel=Channel.SMS, body_en="Hi {patient_name}, reply YES to confirm.")
    at = open_patient(clinic.front_desk, sara)

    assert "Hi Sara Ali, reply YES to confirm." in shown(at)
    assert any("patients cannot reply to it" in w for w in texts(at.warning))  # the editor's reply lint
    button(at, "Send message").click().run()
    [message] = sent(clinic)
    assert message.template_id is not None and message.body == "Hi Sara Ali, reply YES to confirm."


def test_an_opted_out_channel_cannot_be_sent_and_says_why(clinic: Clinic) -> None:
    no_phone = make_patient(clinic.engine, clinic.admin.tenant_id, name_en="Noor", phone=None)  # type: ignore[arg-type]
    at = open_patient(clinic.front_desk, no_phone)

    assert widget(at.selectbox, "-channel").value == Channel.EMAIL  # the first channel that reaches her
    widget(at.selectbox, "-channel").set_value(Channel.SMS).run()
    widget(at.radio, "-kind").set_value("text").run()
    widget(at.text_area, "-text").input("Hello").run()
    assert any("Noor has no mobile number on record" in w for w in texts(at.warning))
    assert button(at, "Send message").disabled
    assert sent(clinic) == []


def test_send_another_message_from_a_messages_detail(clinic: Clinic) -> None:
    sara = make_patient(clinic.engine, clinic.admin.tenant_id)
    earlier = make_message(clinic.engine, clinic.admin.tenant_id, patient_id=sara, status="failed",
                           error_code="30003")
    at = signed_in(clinic.front_desk)
    at.switch_page("../pages/messages.py")
    at.query_params["message"] = str(earlier)
    at.run()
    widget(at.toggle, "another-toggle").set_value(True).run()
    widget(at.radio, "-kind").set_value("text").run()
    widget(at.text_area, "-text").input("We tried to reach you; please call the clinic.").run()
    button(at, "Send message").click().run()

    assert not at.exception
    assert [m.body for m in sent(clinic)][-1] == "We tried to reach you; please call the clinic."


def test_the_analyst_is_not_offered_a_send(clinic: Clinic) -> None:
    sara = make_patient(clinic.engine, clinic.admin.tenant_id)
    earlier = make_message(clinic.engine, clinic.admin.tenant_id, patient_id=sara)
    at = signed_in(clinic.analyst)
    at.switch_page("../pages/messages.py")
    at.query_params["message"] = str(earlier)
    at.run()

    assert not at.exception
    assert not [t for t in at.toggle if t.key and t.key.endswith("another-toggle")]
    assert "Send message" not in [b.label for b in at.button]
