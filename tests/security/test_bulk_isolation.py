"""Issue 16, critical: a bulk send reaches only its own clinic's patients, on the path the data takes.

Two clinics (plus the neighbouring clinic every database test has) hold patients with the same
phone numbers, e-mail addresses, tags and appointments; some names are the same in both, some
exist only in clinic B. Clinic A sends to every kind of audience (all, tags, appointments, a pasted
list, an uploaded file) with a template and with custom text, naming the recipient and not. The
worker's expansion writes the rows and the delivery job hands them to the loopback Twilio; every
row and every provider request must belong to clinic A.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import Engine, select

from app.delivery.ratelimit import LocalRateLimiter
from app.delivery.runtime import Runtime
from app.providers.registry import build_providers
from app.services import templates
from app.services.bulk import expansion, wizard
from app.services.bulk import recipients as ri
from app.services.bulk.wizard import Draft
from db.enums import Channel, Role
from db.models import Appointment, Message, NotificationPreference, Patient, PatientTag
from db.session import tenant_session
from tests.delivery.conftest import RecordingQueue, delivery_settings
from tests.factories import make_tenant, make_user
from tests.peers.fake_twilio import FakeTwilio

# (phone, e-mail, name in clinic A, name in clinic B): B's second and fourth names exist only there
PEOPLE = (
    ("+966501234567", "sara@example.com", "Sara Ali", "Sara Ali"),
    ("+966507654321", "omar@example.com", "Omar Said", "Bader Secretname"),
    ("+966501112233", "layla@example.com", "Layla Hassan", "Layla Hassan"),
)
B_ONLY = ("+966555000111", "bader@example.com", "Bader Onlyinb")
B_NAMES = ("Bader", "Secretname", "Onlyinb")
APPOINTMENT_AT = dt.datetime.combine(dt.date.today() + dt.timedelta(days=2), dt.time(9, 0), tzinfo=dt.UTC)


def _add(engine: Engine, tenant_id: uuid.UUID, people: list[tuple[str, str, str]]) -> set[uuid.UUID]:
    ids = set()
    with tenant_session(engine, tenant_id) as session:
        for phone, email, name in people:
            patient = Patient(name_en=name, name_ar=name, phone_e164=phone, email=email)
            session.add(patient)
            session.flush()
            session.add(NotificationPreference(patient_id=patient.id))
            session.add(PatientTag(patient_id=patient.id, tag="vip"))
            session.add(Appointment(patient_id=patient.id, starts_at=APPOINTMENT_AT))
            ids.add(patient.id)
    return ids


@pytest.fixture
def clinics(engine: Engine):  # type: ignore[no-untyped-def]
    a, b = make_tenant(engine, "clinic-a"), make_tenant(engine, "clinic-b")
    a_patients = _add(engine, a, [(phone, email, name_a) for phone, email, name_a, _ in PEOPLE])
    _add(engine, b, [(phone, email, name_b) for phone, email, _, name_b in PEOPLE] + [B_ONLY])
    admin_a = make_user(engine, a, "admin-a", Role.ADMIN)
    make_user(engine, b, "admin-b", Role.ADMIN)
    return a, a_patients, admin_a


def _list(kind: str) -> dict:
    numbers = [PEOPLE[0][0], PEOPLE[1][0], B_ONLY[0]]  # the last is a number only clinic B knows
    if kind == "pasted":
        table = ri.read_pasted("\n".join(numbers))
    else:
        table = ri.read_table("recipients.csv", ("phone\n" + "\n".join(numbers) + "\n").encode())
    imported = ri.to_recipients(table, ri.guess_mapping(table, Channel.SMS), Channel.SMS, "SA")
    assert len(imported.recipients) == 3
    return {"kind": "list", "recipients": imported.recipients}


AUDIENCES = {
    "all": lambda: {"kind": "all"},
    "tags": lambda: {"kind": "tags", "any_of": ["vip"]},
    "appointments": lambda: {"kind": "appointments", "from": APPOINTMENT_AT.date().isoformat(),
                             "to": APPOINTMENT_AT.date().isoformat()},
    "pasted list": lambda: _list("pasted"),
    "uploaded file": lambda: _list("uploaded"),
}
TEXTS = {
    "naming the recipient": "Hello {{ patient_name }}, see you soon. {{ clinic_name }}",
    "naming no one": "The clinic is closed on Friday. {{ clinic_name }}",
}


@pytest.mark.parametrize("source", ["template", "custom text"])
@pytest.mark.parametrize("text", list(TEXTS))
@pytest.mark.parametrize("audience", list(AUDIENCES))
def test_every_row_and_every_request_belongs_to_the_jobs_clinic(
        engine: Engine, clinics, fake_twilio: FakeTwilio, audience: str, text: str, source: str) -> None:  # type: ignore[no-untyped-def]
    clinic_a, a_patients, admin = clinics
    body = TEXTS[text]
    draft = Draft(idempotency_key=f"isolation-{audience}-{text}-{source}", audience=AUDIENCES[audience](),
                  channel=Channel.SMS)
    if source == "template":
        with tenant_session(engine, clinic_a) as session:
            template = templates.create_template(session, admin, code="isolation", name="Isolation",
                                                 channel="sms", body_en=body)
        draft = Draft(**{**vars(draft), "template_id": template.id})
    else:
        draft = Draft(**{**vars(draft), "body_en": body})

    with tenant_session(engine, clinic_a) as session:
        review = wizard.dry_run(session, admin, draft)
    queue = RecordingQueue()
    with tenant_session(engine, clinic_a) as session:
        session.info["queue"] = queue  # confirm asks for the expansion there; the test runs it below
        created = wizard.confirm(session, admin, draft, typed_count=review.audience_size)

    settings = delivery_settings(engine, fake_twilio)
    runtime = Runtime(engine, settings, build_providers(settings), LocalRateLimiter(), queue)
    expansion.expand(runtime, created.bulk_job_id)  # the worker's job
    queue.drain(runtime)  # the delivery jobs it enqueued, as a worker runs them

    with tenant_session(engine, clinic_a) as session:
        written = session.execute(select(Message.tenant_id, Message.patient_id, Message.body, Message.status)
                                  .where(Message.bulk_job_id == created.bulk_job_id)).all()
    assert len(written) == review.sendable, "the worker wrote what the review promised, no more"
    assert review.sendable > 0
    for tenant_id, patient_id, body_sent, _status in written:
        assert tenant_id == clinic_a
        assert patient_id is None or patient_id in a_patients, "a row for another clinic's patient"
        assert not any(name in body_sent for name in B_NAMES), f"clinic B's name in A's message: {body_sent!r}"
    sent = fake_twilio.messages
    assert len(sent) == review.sendable, "every written row reached the provider once"
    a_phones = {phone for phone, *_ in PEOPLE} | {B_ONLY[0]}  # B's only number is on A's own list
    for message in sent:
        assert message["to"] in a_phones
        assert not any(name in message["body"] for name in B_NAMES), f"clinic B's name sent: {message['body']!r}"
