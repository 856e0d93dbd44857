"""The clinic profile: names in English and Arabic, default language, e-mail sender name and the
promotional window; admins change it, every change is audited with old and new values, and
messages use the name in their own language. The neighbouring clinic keeps its own."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
from sqlalchemy import Engine, select

from app.errors import PermissionDenied, ValidationError
from app.services import clinic_settings, messaging, templates, tenants
from app.services.bulk import wizard
from app.services.clinic_settings import ClinicProfile
from app.services.permissions import Actor
from db.enums import Channel, Language, MessageClass, Role
from db.models import AuditEvent, Message, Tenant
from db.session import system_session, tenant_session
from tests.factories import call, make_patient, make_tenant, make_user
from tests.neighbours import neighbour_id


@pytest.fixture
def clinic(engine: Engine) -> tuple[uuid.UUID, Actor]:
    tenant = make_tenant(engine, "al-noor", "Al Noor Clinic")
    return tenant, make_user(engine, tenant, "boss")


def _profile(engine: Engine, admin: Actor) -> ClinicProfile:
    return call(engine, admin, clinic_settings.get_clinic_settings).profile


def _tenant(engine: Engine, tenant_id: uuid.UUID) -> Tenant:
    with system_session(engine) as session:
        row = session.get(Tenant, tenant_id)
        session.expunge(row)
        return row


def test_a_new_clinic_starts_with_the_servers_window_and_its_name(engine, clinic) -> None:
    _tenant_id, admin = clinic
    assert _profile(engine, admin) == ClinicProfile("Al Noor Clinic", "", Language.EN, "", dt.time(9, 0),
                                                    dt.time(19, 0))


def test_admin_changes_the_profile_and_each_change_is_audited_with_old_and_new(engine, clinic) -> None:
    tenant_id, admin = clinic
    neighbour_before = _tenant(engine, neighbour_id(engine))
    wanted = ClinicProfile("  Al Noor  Clinic ", "عيادة النور", Language.AR, "Al Noor Reminders", dt.time(10, 0),
                           dt.time(18, 30))

    saved = call(engine, admin, clinic_settings.set_profile, wanted)

    assert saved == ClinicProfile("Al Noor Clinic", "عيادة النور", Language.AR, "Al Noor Reminders",
                                  dt.time(10, 0), dt.time(18, 30))
    assert _profile(engine, admin) == saved
    with system_session(engine) as session:
        [details] = session.scalars(select(AuditEvent.details).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.action == "settings.profile_changed")).all()
    assert details == {
        "name_ar": {"from": "", "to": "عيادة النور"}, "default_language": {"from": "en", "to": "ar"},
        "email_sender_name": {"from": "", "to": "Al Noor Reminders"},
        "promotional_window_start": {"from": "09:00", "to": "10:00"},
        "promotional_window_end": {"from": "19:00", "to": "18:30"},
    }
    neighbour = _tenant(engine, neighbour_id(engine))
    assert (neighbour.name, neighbour.name_ar, neighbour.promotional_window) == (
        neighbour_before.name, neighbour_before.name_ar, neighbour_before.promotional_window)


def test_saving_the_same_profile_records_nothing(engine, clinic) -> None:
    tenant_id, admin = clinic
    call(engine, admin, clinic_settings.set_profile, _profile(engine, admin))
    with system_session(engine) as session:
        assert session.scalar(select(AuditEvent.id).where(AuditEvent.tenant_id == tenant_id,
                                                          AuditEvent.action == "settings.profile_changed")) is None


@pytest.mark.parametrize(("change", "said"), [
    ({"name_en": "  "}, "The clinic needs a name in English."),
    ({"name_en": "x" * 201}, "at most 200 characters"),
    ({"email_sender_name": "Al Noor <admin@evil.example>"}, "may not contain"),
    ({"promotional_window_start": dt.time(9, 0, 30)}, "hours and minutes"),
])
def test_a_profile_that_cannot_be_used_is_refused_with_the_reason(engine, clinic, change, said) -> None:
    _tenant_id, admin = clinic
    with pytest.raises(ValidationError, match=said):
        call(engine, admin, clinic_settings.set_profile, dataclasses.replace(_profile(engine, admin), **change))


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ANALYST])
def test_only_an_admin_changes_the_profile(engine, clinic, role) -> None:
    tenant_id, admin = clinic
    other = make_user(engine, tenant_id, f"staff-{role.value}", role)
    with pytest.raises(PermissionDenied):
        call(engine, other, clinic_settings.set_profile,
             dataclasses.replace(_profile(engine, admin), name_en="Hijacked"))
    assert _tenant(engine, tenant_id).name == "Al Noor Clinic"


def test_clinic_name_in_a_message_is_the_name_in_the_messages_language(engine, clinic) -> None:
    tenant_id, admin = clinic
    call(engine, admin, clinic_settings.set_profile,
         dataclasses.replace(_profile(engine, admin), name_ar="عيادة النور"))
    english = make_patient(engine, tenant_id, phone="+966501234567", language=Language.EN)
    arabic = make_patient(engine, tenant_id, phone="+966507654321", email="omar@example.com", language=Language.AR)
    bodies = {}
    for patient in (english, arabic):
        sent = call(engine, admin, messaging.send, "sms", patient_id=patient, text="From {{ clinic_name }}",
                    text_ar="من {{ clinic_name }}", queue=_NoQueue())
        with tenant_session(engine, tenant_id) as session:
            bodies[patient] = session.scalar(select(Message.body).where(Message.id == sent.message_id))
    assert "Al Noor Clinic" in bodies[english] and "عيادة النور" in bodies[arabic]


class _NoQueue:
    """Jobs are not run here: only the rendered row is looked at."""

    def enqueue_batches(self, batches) -> None:  # type: ignore[no-untyped-def]
        list(batches)


def test_what_a_promotional_class_means_names_the_clinics_window(engine, clinic) -> None:
    tenant_id, admin = clinic
    call(engine, admin, clinic_settings.set_profile, dataclasses.replace(
        _profile(engine, admin), promotional_window_start=dt.time(10, 0), promotional_window_end=dt.time(18, 30)))
    with tenant_session(engine, tenant_id) as session:
        window = tenants.get_clinic(session).promotional_window
    assert window == (dt.time(10, 0), dt.time(18, 30))
    rules = " ".join(templates.class_rules(MessageClass.PROMOTIONAL, Channel.SMS, window=window))
    assert "Sent only between 10:00 and 18:30 clinic time" in rules
    assert "between 10:00 and 18:30 clinic time" in wizard.class_effect(MessageClass.PROMOTIONAL, Channel.SMS, window)
