"""Promotional templates may not carry a patient's clinical details; service templates may."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from app.errors import ValidationError
from app.services import templates
from db.enums import MessageClass, Role
from db.session import tenant_session
from tests.factories import make_tenant, make_user

OFFER = "Free flu shots at {{ clinic_name }} this Saturday."


@pytest.fixture
def clinic(engine: Engine):
    tenant = make_tenant(engine)
    return engine, tenant, make_user(engine, tenant, "boss", Role.ADMIN)


def _create(clinic, **overrides) -> templates.TemplateDetail:
    engine, tenant, admin = clinic
    args = {"code": "campaign", "name": "Campaign", "channel": "sms", "body_en": OFFER,
            "message_class": "promotional"} | overrides
    with tenant_session(engine, tenant) as session:
        return templates.create_template(session, admin, **args)


def test_promotional_template_with_a_diagnosis_is_refused(clinic) -> None:
    with pytest.raises(ValidationError) as caught:
        _create(clinic, body_en="Managing your {{ diagnosis }}? Join our health day.",
                custom_variables=("diagnosis",))
    assert caught.value.field == "body_en"
    assert str(caught.value) == ("Promotional messages may not include clinical details (diagnosis). "
                                 "Remove {{ diagnosis }} or make this a service template.")


def test_the_arabic_text_is_checked_too(clinic) -> None:
    with pytest.raises(ValidationError, match="clinical details \\(lab_result\\)") as caught:
        _create(clinic, body_ar="نتيجتك {lab_result}", custom_variables=("lab_result",))
    assert caught.value.field == "body_ar"


@pytest.mark.parametrize("name", ["doctor_name", "department"])
def test_who_treats_the_patient_is_clinical(clinic, name: str) -> None:
    with pytest.raises(ValidationError, match=f"Remove {{{{ {name} }}}}"):
        _create(clinic, body_en=f"News from {{{{ {name} }}}}")


def test_service_template_with_a_diagnosis_is_accepted(clinic) -> None:
    detail = _create(clinic, message_class="service", body_en="Your {{ diagnosis }} follow-up is due.",
                     custom_variables=("diagnosis",))
    assert detail.message_class == MessageClass.SERVICE and "diagnosis" in detail.variables


def test_promotional_template_may_use_names_and_appointment_times(clinic) -> None:
    detail = _create(clinic, body_en="Hi {patient_name}, after your visit on {{ appointment_date }} at "
                                     "{{ appointment_time }}, try our flu shots at {{ clinic_name }}.")
    assert detail.message_class == MessageClass.PROMOTIONAL


def test_turning_a_clinical_service_template_promotional_is_refused(clinic) -> None:
    engine, tenant, admin = clinic
    service = _create(clinic, message_class="service", body_en="Your {{ medication }} refill is ready.",
                      custom_variables=("medication",))
    with tenant_session(engine, tenant) as session, pytest.raises(ValidationError, match="medication"):
        templates.update_template(session, admin, service.id, message_class="promotional")
    with tenant_session(engine, tenant) as session:
        assert templates.get_template(session, admin, service.id).message_class == MessageClass.SERVICE
        updated = templates.update_template(session, admin, service.id, message_class="promotional",
                                            body_en="Our pharmacy now opens on Fridays.")
    assert updated.message_class == MessageClass.PROMOTIONAL
