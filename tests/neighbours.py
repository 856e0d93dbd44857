"""A neighbouring clinic present in every database test (issue 16).

Its patients share the phone numbers, e-mail addresses and names that the tests use most, and it
has preferences, tags, appointments, a template and messages of its own, so a query or a job that
forgets its clinic condition picks up the neighbour's rows and the test fails.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Engine, select

from db.enums import Channel, Language, MessageStatus
from db.models import Appointment, Message, NotificationPreference, Patient, PatientTag, Tenant
from db.session import system_session, tenant_session

NEIGHBOUR_SLUG = "neighbour-clinic"
SHARED_CONTACTS = (  # (phone, e-mail, English name, Arabic name): the tests' most used values
    ("+966501234567", "sara@example.com", "Sara Ali", "سارة علي"),
    ("+966507654321", "omar@example.com", "Omar Said", "عمر سعيد"),
    ("+966501112233", "layla@example.com", "Layla Hassan", "ليلى حسن"),
    ("+966501111111", "patient1@example.com", "Patient One", "مريض واحد"),
    ("+966502222222", "patient2@example.com", "Patient Two", "مريض اثنان"),
    ("+966501234568", "sara2@example.com", "Sara Ali", "سارة علي"),
)
SHARED_TAGS = ("vip", "new", "diabetes", "reminder")


def seed_neighbour(engine: Engine) -> uuid.UUID:
    """Create the neighbouring clinic with overlapping patients; returns its id."""
    with system_session(engine) as session:
        tenant = Tenant(name="Neighbour Clinic", slug=NEIGHBOUR_SLUG)
        session.add(tenant)
        session.flush()
        tenant_id = tenant.id
    now = dt.datetime.now(dt.UTC)
    with tenant_session(engine, tenant_id) as session:
        for index, (phone, email, name_en, name_ar) in enumerate(SHARED_CONTACTS):
            patient = Patient(name_en=name_en, name_ar=name_ar, phone_e164=phone, email=email,
                              language=Language.AR if index % 2 else Language.EN, mrn=f"MRN-{index}")
            session.add(patient)
            session.flush()
            session.add(NotificationPreference(patient_id=patient.id, promotional_consent=True,
                                               promotional_consent_at=now))
            session.add_all(PatientTag(patient_id=patient.id, tag=tag) for tag in SHARED_TAGS)
            session.add(Appointment(patient_id=patient.id, starts_at=now + dt.timedelta(days=1, hours=index)))
            session.add(Message(patient_id=patient.id, recipient=phone, channel=Channel.SMS,
                                status=MessageStatus.DELIVERED, body=f"Neighbour clinic: hello {name_en}",
                                created_at=now - dt.timedelta(hours=1), updated_at=now))
    return tenant_id


def neighbour_id(engine: Engine) -> uuid.UUID:
    with system_session(engine) as session:
        found = session.scalar(select(Tenant.id).where(Tenant.slug == NEIGHBOUR_SLUG))
        assert found is not None, "the neighbouring clinic is missing"
        return found
