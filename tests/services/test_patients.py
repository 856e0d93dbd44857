"""The patient view: search, detail, preference changes with a reason, and "why didn't they get it?"."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select

from app.errors import NotFoundError, PermissionDenied, ValidationError
from app.services import passwords, patients
from app.services.patients import PreferenceUpdate
from app.services.permissions import Actor
from db.enums import Language, OptOutSource, Role
from db.models import AuditEvent, NotificationPreference
from db.session import tenant_session
from tests.factories import make_message, make_patient, make_tenant, make_user

KEEP = PreferenceUpdate(sms_opt_in=True, whatsapp_opt_in=True, email_opt_in=True, language=None,
                        quiet_hours_start=None, quiet_hours_end=None)


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@dataclass
class World:
    engine: Engine
    tenant: uuid.UUID
    front: Actor
    analyst: Actor
    sara: uuid.UUID


@pytest.fixture
def world(engine: Engine) -> World:
    tenant = make_tenant(engine)
    return World(engine, tenant, make_user(engine, tenant, "fatima", Role.FRONT_DESK),
                 make_user(engine, tenant, "omar", Role.ANALYST), make_patient(engine, tenant))


def search(w: World, text: str) -> list[uuid.UUID]:
    with tenant_session(w.engine, w.tenant) as session:
        return [p.id for p in patients.search_patients(session, w.front, text)]


def detail(w: World) -> patients.PatientDetail:
    with tenant_session(w.engine, w.tenant) as session:
        return patients.patient_detail(session, w.front, w.sara)


def change(w: World, update: PreferenceUpdate, reason: str = "patient asked by phone") -> patients.PatientDetail:
    with tenant_session(w.engine, w.tenant) as session:
        return patients.change_preferences(session, w.front, w.sara, update, reason=reason)


@pytest.mark.parametrize("typed", ["0501234567", "+966 50 123 4567", "966501234567", "SARA@example.com",
                                   "sara", "Ali", "سارة", "علي"])
def test_find_a_patient_by_phone_email_or_name(world: World, typed: str) -> None:
    make_patient(world.engine, world.tenant, name_en="Omar Nasser", name_ar="عمر ناصر", phone="+966507654321",
                 email="omar@example.com")

    assert search(world, typed) == [world.sara]


def test_a_one_letter_search_finds_nobody(world: World) -> None:
    assert search(world, "s") == []


def test_detail_shows_contacts_and_default_preferences(world: World) -> None:
    d = detail(world)

    assert d.patient.name_ar == "سارة علي" and d.patient.phone == "+966501234567"
    assert d.preferences.sms_opt_in and d.history == []
    assert d.why_not[0] == "No message has been sent to this patient yet."


def test_change_preferences_records_history_and_audit(world: World) -> None:
    d = change(world, replace(KEEP, sms_opt_in=False, language=Language.AR,
                              quiet_hours_start=dt.time(22), quiet_hours_end=dt.time(7)))

    assert not d.preferences.sms_opt_in and d.preferences.language == Language.AR
    assert d.preferences.opt_out_source == OptOutSource.STAFF
    assert {h.field for h in d.history} == {"sms_opt_in", "language", "quiet_hours_start", "quiet_hours_end"}
    assert all(h.reason == "patient asked by phone" and h.changed_by == "fatima" for h in d.history)
    assert any("does not receive SMS" in line for line in d.why_not)
    assert any("Quiet hours 22:00-07:00" in line for line in d.why_not)
    with tenant_session(world.engine, world.tenant) as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "patient.preferences"))
        assert event is not None and event.details["reason"] == "patient asked by phone"


@pytest.mark.parametrize("update, reason, message", [
    (replace(KEEP, sms_opt_in=False), "", "Say why"),
    (replace(KEEP, quiet_hours_start=dt.time(22)), "asked", "both the start and the end"),
    (KEEP, "asked", "Nothing was changed"),
])
def test_bad_preference_changes_are_refused_and_change_nothing(world: World, update: PreferenceUpdate,
                                                               reason: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        change(world, update, reason)
    with tenant_session(world.engine, world.tenant) as session:
        assert session.scalar(select(NotificationPreference)) is None
        assert session.scalar(select(AuditEvent).where(AuditEvent.action == "patient.preferences")) is None


def test_analysts_cannot_open_or_change_patients(world: World) -> None:
    with tenant_session(world.engine, world.tenant) as session, pytest.raises(PermissionDenied):
        patients.patient_detail(session, world.analyst, world.sara)
    with tenant_session(world.engine, world.tenant) as session, pytest.raises(PermissionDenied):
        patients.change_preferences(session, world.analyst, world.sara, KEEP, reason="because")


def test_another_clinics_patient_is_not_found(world: World) -> None:
    other = make_tenant(world.engine, "clinic-b")
    bilal = make_user(world.engine, other, "bilal", Role.FRONT_DESK)
    with tenant_session(world.engine, other) as session:
        assert patients.search_patients(session, bilal, "0501234567") == []
        with pytest.raises(NotFoundError):
            patients.patient_detail(session, bilal, world.sara)


@pytest.mark.parametrize("status, error, expected", [
    ("failed", "21211", "The number is not a valid mobile number. Correct the phone number"),
    ("delivered", None, "was delivered"),
    ("queued", None, "has not gone out yet"),
    ("unknown", None, "being checked with the provider"),
    ("suppressed", None, "was not sent"),
])
def test_why_didnt_they_get_it(world: World, status: str, error: str | None, expected: str) -> None:
    make_message(world.engine, world.tenant, patient_id=world.sara, status=status, error_code=error)

    assert expected in detail(world).why_not[0]


@pytest.mark.parametrize("channel, expected", [
    ("email", "accepted by the patient's mail server"),  # e-mail has no receipt: accepted is delivered
    ("sms", "the carrier has not confirmed delivery yet"),
])
def test_a_sent_message_is_explained_by_its_channels_rule(world: World, channel: str, expected: str) -> None:
    make_message(world.engine, world.tenant, patient_id=world.sara, status="sent", channel=channel,
                 recipient="sara@example.com" if channel == "email" else "+966501234567")

    assert expected in detail(world).why_not[0]


def test_a_suppressed_message_says_its_reason_as_one_sentence(world: World) -> None:
    """The reason stored with a sentence's full stop is not given a second one ('SMS..')."""
    make_message(world.engine, world.tenant, patient_id=world.sara, status="suppressed",
                 status_reason="The patient opted out of SMS.")

    said = detail(world).why_not[0]
    assert said.endswith("was not sent: The patient opted out of SMS.") and ".." not in said


def test_a_message_to_an_old_number_is_pointed_out(world: World) -> None:
    make_message(world.engine, world.tenant, patient_id=world.sara, recipient="+966509999999")

    assert "different number" in detail(world).why_not[1]


def test_the_history_reads_in_words_not_as_stored_values(world: World) -> None:
    """'WhatsApp messages: yes -> opted out', 'Language: as the patient record -> Arabic', not
    'whatsapp opt in: true -> false' or an empty cell (issue 19, point 7). Only this clinic's Sara:
    the neighbouring clinic's Sara Ali (same name, same number) has no history here."""
    change(world, replace(KEEP, whatsapp_opt_in=False, language=Language.AR,
                          quiet_hours_start=dt.time(22), quiet_hours_end=dt.time(7)))
    d = change(world, replace(KEEP, language=Language.EN), reason="patient asked again")

    shown = {(h.what, h.before, h.after) for h in d.history}
    assert shown == {
        ("WhatsApp messages", "yes", "opted out"), ("WhatsApp messages", "opted out", "yes"),
        ("Language", "as the patient record", "Arabic"), ("Language", "Arabic", "English"),
        ("Quiet hours from", "none", "22:00"), ("Quiet hours until", "none", "07:00"),
        ("Quiet hours from", "22:00", "none"), ("Quiet hours until", "07:00", "none"),
    }
    assert len(d.history) == 8
