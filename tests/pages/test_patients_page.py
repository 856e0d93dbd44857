"""The Patients page's "Correct contacts" form: front desk corrects a number, a bad one is refused
in words, a stale form is refused, and an analyst never gets the page."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import TextInput

from app.services import patients
from app.services.patients import ContactUpdate
from db.enums import Language, Role
from db.models import AuditEvent, Patient
from db.session import system_session
from tests.factories import call, make_patient
from tests.pages.conftest import Clinic, button, form_key, signed_in, texts


def _open(clinic: Clinic, role: Role, patient: uuid.UUID) -> AppTest:
    at = signed_in(clinic.by_role(role))
    at.switch_page("../pages/patients.py")
    at.query_params["q"] = "Sara"
    at.query_params["patient"] = str(patient)
    at.run()
    assert not at.exception, at.exception
    return at


def _phone(clinic: Clinic, patient: uuid.UUID) -> str | None:
    with system_session(clinic.engine) as session:
        return session.scalar(select(Patient.phone_e164).where(Patient.id == patient))


@pytest.fixture
def sara(clinic: Clinic) -> uuid.UUID:
    return make_patient(clinic.engine, clinic.admin.tenant_id)


def test_front_desk_corrects_a_mobile_number(clinic: Clinic, sara: uuid.UUID) -> None:
    at = _open(clinic, Role.FRONT_DESK, sara)
    at.text_input(key=f"contacts_phone_{sara}").input("050 987 6543")
    button(at, "Save contacts").click().run()

    assert not at.exception and not at.error, texts(at.error)
    assert "Saved the mobile number." in texts(at.success)
    assert _phone(clinic, sara) == "+966509876543"
    assert any("+966509876543" in m for m in texts(at.markdown))
    with system_session(clinic.engine) as session:
        assert session.scalar(select(AuditEvent.actor_name).where(AuditEvent.action == "patient.contacts")) == "fatima"


def _phone_box(at: AppTest, patient: uuid.UUID) -> TextInput:
    return at.text_input(key=form_key(at, f"contacts-{patient}", f"contacts_phone_{patient}"))


def test_after_a_save_the_form_shows_the_contacts_as_saved(clinic: Clinic, sara: uuid.UUID) -> None:
    """Not as typed: a new box (a browser keeps a box's typed text while it is the same widget), filled from the
    record; and a second correction is not refused as made on an old form."""
    at = _open(clinic, Role.FRONT_DESK, sara)
    typed_in = _phone_box(at, sara).id
    _phone_box(at, sara).input("050 987 6543")
    button(at, "Save contacts").click().run()

    assert "Saved the mobile number." in texts(at.success)
    assert _phone_box(at, sara).value == "+966509876543"
    assert _phone_box(at, sara).id != typed_in

    _phone_box(at, sara).input("055 123 4567")
    button(at, "Save contacts").click().run()
    assert not at.error, texts(at.error)
    assert _phone(clinic, sara) == "+966551234567"
    assert _phone_box(at, sara).value == "+966551234567"


def test_a_number_that_is_not_a_mobile_is_refused_in_words(clinic: Clinic, sara: uuid.UUID) -> None:
    at = _open(clinic, Role.FRONT_DESK, sara)
    at.text_input(key=f"contacts_phone_{sara}").input("011 234 5678")
    button(at, "Save contacts").click().run()

    assert any("is not a mobile number" in e for e in texts(at.error)), texts(at.error)
    assert _phone(clinic, sara) == "+966501234567"


def test_a_form_read_before_someone_elses_change_is_refused(clinic: Clinic, sara: uuid.UUID) -> None:
    at = _open(clinic, Role.FRONT_DESK, sara)
    seen = call(clinic.engine, clinic.admin, patients.patient_detail, sara).patient
    call(clinic.engine, clinic.admin, patients.change_contacts, sara,
         ContactUpdate("+966505555555", "sara@example.com", Language.EN), version=seen.version)

    at.text_input(key=f"contacts_phone_{sara}").input("+966509876543")
    button(at, "Save contacts").click().run()

    assert any("Someone else changed this patient's contacts" in e for e in texts(at.error)), texts(at.error)
    assert _phone(clinic, sara) == "+966505555555"
    assert _phone_box(at, sara).value == "+966505555555"  # the form shows them now


def test_the_admin_also_sees_the_form(clinic: Clinic, sara: uuid.UUID) -> None:
    at = _open(clinic, Role.ADMIN, sara)
    assert [b.label for b in at.button if b.label == "Save contacts"] == ["Save contacts"]


def test_the_analyst_has_no_patients_page(clinic: Clinic) -> None:
    at = signed_in(clinic.analyst)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/patients.py")


def test_the_two_languages_say_which_one_messages_use(clinic: Clinic, sara: uuid.UUID) -> None:
    """Review 19b, point 4: the record's language and the preference's (which wins) were both labelled
    "Language"; now one is "on the record" and the other says it is what messages use, and why. The
    neighbouring clinic's Sara Ali prefers Arabic: ours is read."""
    from app.services.patients import PreferenceUpdate

    at = _open(clinic, Role.FRONT_DESK, sara)
    shown = "\n".join(texts(at.markdown))
    assert "**Language on the record:** English" in shown
    assert "**Language messages use:** English (as on the patient record)" in shown
    assert "**Language:**" not in shown
    assert [s.label for s in at.selectbox if s.label == "Language messages use"]  # the form's choice too

    call(clinic.engine, clinic.front_desk, patients.change_preferences, sara, PreferenceUpdate(
        sms_opt_in=True, whatsapp_opt_in=True, email_opt_in=True, language=Language.AR, quiet_hours_start=None,
        quiet_hours_end=None), reason="patient asked at the desk")
    at = _open(clinic, Role.FRONT_DESK, sara)
    shown = "\n".join(texts(at.markdown))
    assert "**Language on the record:** English" in shown
    assert "**Language messages use:** Arabic (patient's preference)" in shown
    chooser = next(s for s in at.selectbox if s.label == "Language messages use")
    assert chooser.options == ["As on the patient record (English)", "English", "Arabic"]
    assert chooser.value == Language.AR
