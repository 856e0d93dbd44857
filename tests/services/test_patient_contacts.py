"""Correcting a patient's mobile number, e-mail and language: who may, what is refused, what is
audited (that messages not yet sent go to the new contact: tests/delivery/test_contact_changes.py).

The neighbouring clinic has a patient with the same phone and e-mail; it is never touched.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, select

from app.errors import ConflictError, PermissionDenied, ValidationError
from app.services import patients
from app.services.patients import ContactUpdate
from app.services.permissions import Actor
from db.enums import Language, Role
from db.models import AuditEvent, Patient
from db.session import system_session, tenant_session
from db.types import utcnow
from tests.factories import call, make_patient, make_tenant, make_user
from tests.neighbours import neighbour_id

OLD_PHONE, NEW_PHONE = "+966501234567", "+966509876543"


def _detail(engine: Engine, actor: Actor, patient: uuid.UUID) -> patients.PatientDetail:
    return call(engine, actor, patients.patient_detail, patient)


def _edit(engine: Engine, actor: Actor, patient: uuid.UUID, *, phone: str = OLD_PHONE,
          email: str = "sara@example.com", language: Language = Language.EN,
          version: str | None = None) -> patients.ContactChange:
    seen = version if version is not None else _detail(engine, actor, patient).patient.version
    return call(engine, actor, patients.change_contacts, patient, ContactUpdate(phone, email, language),
                version=seen)


def _row(engine: Engine, model, row_id):  # type: ignore[no-untyped-def]
    with system_session(engine) as session:
        row = session.get(model, row_id)
        session.expunge(row)
        return row


def _neighbour_sara(engine: Engine) -> Patient:
    with tenant_session(engine, neighbour_id(engine)) as session:
        row = session.scalar(select(Patient).where(Patient.phone_e164 == OLD_PHONE))
        assert row is not None
        session.expunge(row)
        return row


@pytest.fixture
def clinic(engine: Engine) -> tuple[uuid.UUID, Actor, uuid.UUID]:
    tenant = make_tenant(engine)
    return tenant, make_user(engine, tenant, "fatima", Role.FRONT_DESK), make_patient(engine, tenant)


def test_front_desk_corrects_a_number_typed_locally_and_it_is_audited_with_old_and_new(engine, clinic) -> None:
    tenant, front, sara = clinic
    before = _neighbour_sara(engine)

    change = _edit(engine, front, sara, phone="050 987 6543", email="Sara.New@Example.com", language=Language.AR)

    assert change.changed == ("phone", "email", "language")
    assert (change.patient.patient.phone, change.patient.patient.email) == (NEW_PHONE, "sara.new@example.com")
    assert change.patient.patient.language == Language.AR
    with tenant_session(engine, tenant) as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "patient.contacts"))
        assert event is not None and event.actor_name == "fatima" and event.object_id == str(sara)
        assert event.details["phone"] == {"from": OLD_PHONE, "to": NEW_PHONE}
        assert event.details["email"] == {"from": "sara@example.com", "to": "sara.new@example.com"}
        assert event.details["language"] == {"from": "en", "to": "ar"}
    after = _neighbour_sara(engine)
    assert (after.phone_e164, after.email, after.language, after.updated_at) == (
        before.phone_e164, before.email, before.language, before.updated_at)


@pytest.mark.parametrize(("phone", "email", "said"), [
    ("050-ABC-DEFG", "sara@example.com", "The mobile number '050-ABC-DEFG' cannot be used: the number contains"),
    ("0112345678", "sara@example.com", "cannot be used: the number is not a mobile number"),
    ("+966501234567", "sara at example", "The e-mail address 'sara at example' cannot be used: not a valid e-mail"),
])
def test_a_contact_that_cannot_be_used_is_refused_with_the_reason(engine, clinic, phone, email, said) -> None:
    _tenant, front, sara = clinic
    with pytest.raises(ValidationError, match=said):
        _edit(engine, front, sara, phone=phone, email=email)
    assert _row(engine, Patient, sara).phone_e164 == OLD_PHONE


def test_nothing_changed_is_said(engine, clinic) -> None:
    _tenant, front, sara = clinic
    with pytest.raises(ValidationError, match="Nothing was changed"):
        _edit(engine, front, sara, phone="0501234567")


def test_the_analyst_may_not_edit_contacts(engine, clinic) -> None:
    tenant, front, sara = clinic
    analyst = make_user(engine, tenant, "omar", Role.ANALYST)
    version = _detail(engine, front, sara).patient.version
    with pytest.raises(PermissionDenied):
        _edit(engine, analyst, sara, phone=NEW_PHONE, version=version)
    assert _row(engine, Patient, sara).phone_e164 == OLD_PHONE


def test_another_clinic_cannot_edit_this_patient(engine, clinic) -> None:
    _tenant, front, sara = clinic
    version = _detail(engine, front, sara).patient.version
    other = make_user(engine, make_tenant(engine, "clinic-b"), "nadia", Role.FRONT_DESK)
    with pytest.raises(Exception, match="does not exist in your clinic"):
        _edit(engine, other, sara, phone=NEW_PHONE, version=version)
    assert _row(engine, Patient, sara).phone_e164 == OLD_PHONE


def test_two_staff_editing_at_once_the_second_is_refused_and_nothing_of_it_saved(engine, clinic) -> None:
    tenant, front, sara = clinic
    admin = make_user(engine, tenant, "boss", Role.ADMIN)
    both_saw = _detail(engine, front, sara).patient.version
    _edit(engine, admin, sara, phone=NEW_PHONE, version=both_saw)
    with pytest.raises(ConflictError, match="Someone else changed this patient's contacts"):
        _edit(engine, front, sara, phone="+966505555555", email="other@example.com", version=both_saw)
    row = _row(engine, Patient, sara)
    assert (row.phone_e164, row.email) == (NEW_PHONE, "sara@example.com")


def test_an_inbound_message_does_not_make_the_form_stale(engine, clinic) -> None:
    tenant, front, sara = clinic
    version = _detail(engine, front, sara).patient.version
    with tenant_session(engine, tenant) as session:
        session.get(Patient, sara).whatsapp_last_inbound_at = utcnow()
    assert _edit(engine, front, sara, phone=NEW_PHONE, version=version).changed == ("phone",)
