"""Issue 20, end to end: a clinic's system books through the FHIR API, the reminders are planned around
the Saudi weekend, sent to the loopback Twilio when due, and the patients' answers come back through
the signed webhook: an Arabic "نعم" and a quick-reply button confirm, a question lands in the front
desk's inbox, and a cancellation from the clinic's system cancels the reminder still pending.

Clinics A and B book the same patients (same names, numbers and MRNs) under the same appointment ids
at the same times, each sending WhatsApp from its own number. Everything runs through the real
pieces: the API and the webhook on one HTTP server (worker/webhooks.py), the planner, the dispatch
pass, the delivery job's code (``sender.deliver_batch``) and the fake Twilio on loopback.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from app.delivery.ratelimit import LocalRateLimiter
from app.delivery.runtime import Runtime
from app.providers.registry import build_providers
from app.providers.routing import ANY, RouteStep
from app.services import api_keys, clinic_settings, inbox, templates
from app.services.reminders import dispatch
from app.services.reminders.calendar import holiday_table, is_ramadan
from db.enums import AppointmentStatus, Channel, ReminderShift, ReminderStatus, ReplyIntent
from db.models import Appointment, AppointmentReminder, Message, ReminderRule
from db.session import tenant_session
from tests.delivery.conftest import RecordingQueue, delivery_settings
from tests.factories import call
from tests.peers._threaded import ThreadedASGIServer
from tests.services.reminder_support import RIYADH, Clinic, make_clinic
from worker.webhooks import create_app

FHIR = "application/fhir+json"
LAYLA, KHALID = "+966551112233", "+966552223344"  # patients of both clinics, booked by the API
NUMBERS = {"clinic-a": "+14155550001", "clinic-b": "+14155550002"}  # each clinic's own WhatsApp sender


def _a_quiet_sunday(now: dt.datetime) -> dt.date:
    """The first Sunday at least five days ahead whose Thursday to Sunday hold no holiday and no Ramadan
    day, so the expected times below are the plain weekend rule's."""
    day = now.astimezone(RIYADH).date() + dt.timedelta(days=5)
    while True:
        day += dt.timedelta(days=(6 - day.weekday()) % 7)
        span = [day - dt.timedelta(days=n) for n in range(4)]
        if not any(d in holiday_table("SA", d.year) or is_ramadan(d) for d in span):
            return day
        day += dt.timedelta(days=1)


def _riyadh(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=RIYADH).astimezone(dt.UTC)


def fhir_appointment(source_id: str, mrn: str, name: str, phone: str, start: dt.datetime, *,
                     status: str = "booked") -> dict[str, Any]:
    """A FHIR R4 Appointment from the clinic's system, its patient contained."""
    return {
        "resourceType": "Appointment",
        "identifier": [{"system": "urn:clinic-his", "value": source_id}],
        "status": status,
        "serviceType": [{"text": "Follow-up"}],
        "specialty": [{"text": "Dermatology"}],
        "start": start.astimezone(RIYADH).isoformat(),
        "end": (start + dt.timedelta(minutes=20)).astimezone(RIYADH).isoformat(),
        "contained": [{
            "resourceType": "Patient", "id": "p",
            "identifier": [{"system": "urn:clinic-mrn", "value": mrn}],
            "name": [{"text": name}],
            "telecom": [{"system": "phone", "value": phone, "use": "mobile"}],
        }],
        "participant": [
            {"actor": {"reference": "#p"}, "status": "needs-action"},
            {"actor": {"reference": "Practitioner/dr-1", "display": "Dr. Hala"}, "status": "accepted"},
        ],
    }


@dataclass
class Side:
    """One clinic as its system, its staff and its WhatsApp number see it."""

    clinic: Clinic
    key: str
    number: str

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.clinic.tenant_id


@dataclass
class World:
    engine: Engine
    runtime: Runtime
    queue: RecordingQueue
    http: httpx.Client
    twilio: Any
    a: Side
    b: Side

    def book(self, side: Side, source_id: str, resource: dict[str, Any]) -> httpx.Response:
        return self.http.put(f"/fhir/Appointment/{source_id}", json=resource,
                             headers={"Authorization": f"Bearer {side.key}", "Content-Type": FHIR})

    def read(self, side: Side, source_id: str) -> dict[str, Any]:
        response = self.http.get(f"/fhir/Appointment/{source_id}", headers={"Authorization": f"Bearer {side.key}"})
        assert response.status_code == 200, response.text
        return response.json()

    def reply(self, sender: str, side: Side, body: str, **extra: str) -> httpx.Response:
        return self.twilio.send_inbound_message(f"{self.http.base_url}twilio/inbound", f"whatsapp:{sender}",
                                                f"whatsapp:{side.number}", body, extra=extra or None)

    def sent_to(self, number: str, channel: Channel) -> list[dict[str, Any]]:
        address = f"whatsapp:{number}" if channel == Channel.WHATSAPP else number
        return [m for m in self.twilio.messages if m["to"] == address]


def _side(engine: Engine, slug: str, settings: Any) -> Side:
    clinic = make_clinic(engine, slug)
    number = NUMBERS[slug]
    with tenant_session(engine, clinic.tenant_id) as session:
        clinic_settings.set_route(session, clinic.admin, Channel.WHATSAPP, ANY, [RouteStep("twilio", number)])
        acks = {code: templates.create_template(session, clinic.admin, code=code, name=code, channel=Channel.WHATSAPP,
                                                body_en=body).id
                for code, body in (("ack_yes", "Thank you, see you on {{ appointment_date }} at "
                                               "{{ appointment_time }}."),
                                   ("ack_no", "Your appointment on {{ appointment_date }} is cancelled."))}
    clinic.rule("WhatsApp 48 h before", channel=Channel.WHATSAPP, offset_minutes=48 * 60,
                confirm_ack_template_id=acks["ack_yes"], cancel_ack_template_id=acks["ack_no"])
    clinic.rule("SMS 3 h before", channel=Channel.SMS, offset_minutes=180, shift=ReminderShift.LATER)
    _view, key = call(engine, clinic.admin, api_keys.create, "Clinic HIS")
    return Side(clinic, key, number)


@pytest.fixture
def world(engine: Engine, fake_twilio: Any) -> Iterator[World]:
    holder: dict[str, Runtime] = {}
    server = ThreadedASGIServer(create_app(lambda: holder["runtime"]))
    settings = delivery_settings(engine, fake_twilio, public_base_url=server.base_url)
    queue = RecordingQueue()
    holder["runtime"] = runtime = Runtime(engine, settings, build_providers(settings), LocalRateLimiter(), queue)
    a, b = _side(engine, "clinic-a", settings), _side(engine, "clinic-b", settings)
    server.start()
    try:
        with httpx.Client(base_url=server.base_url + "/", timeout=10) as http:
            yield World(engine, runtime, queue, http, fake_twilio, a, b)
    finally:
        server.stop()


def _appointment(engine: Engine, side: Side, source_id: str) -> Appointment:
    with tenant_session(engine, side.tenant_id) as session:
        row = session.scalar(select(Appointment).where(Appointment.source_id == source_id))
        assert row is not None
        session.expunge(row)
        return row


def _reminders(engine: Engine, side: Side, source_id: str) -> dict[str, AppointmentReminder]:
    with tenant_session(engine, side.tenant_id) as session:
        rows = session.execute(
            select(AppointmentReminder, ReminderRule.name)
            .join(ReminderRule, ReminderRule.id == AppointmentReminder.rule_id)
            .join(Appointment, Appointment.id == AppointmentReminder.appointment_id)
            .where(Appointment.source_id == source_id)).all()
        session.expunge_all()
        return {name: reminder for reminder, name in rows}


def _patient_answer(resource: dict[str, Any]) -> str:
    [patient] = [p for p in resource["participant"] if p["actor"].get("reference", "").startswith("Patient/")]
    return patient["status"]


def test_reminders_run_themselves_and_answers_come_back(world: World) -> None:
    engine = world.engine
    sunday = _a_quiet_sunday(dt.datetime.now(dt.UTC))
    layla_at, khalid_at = _riyadh(sunday, 10), _riyadh(sunday, 11)

    # 1. The clinics' systems book through the API: same ids, patients and times in both clinics.
    for side in (world.a, world.b):
        created = world.book(side, "EHR-1", fhir_appointment("EHR-1", "MRN-1", "Layla Hassan", LAYLA, layla_at))
        assert created.status_code == 201, created.text
        created = world.book(side, "EHR-2", fhir_appointment("EHR-2", "MRN-2", "Khalid Omar", KHALID, khalid_at))
        assert created.status_code == 201, created.text

    # 2. Two reminders each, moved around the weekend: 48 h before is Friday (weekend) -> Thursday's last
    #    sending minute; 3 h before is 07:00 Sunday (before sending hours) -> 09:00, the rule's "later" side.
    thursday = sunday - dt.timedelta(days=3)
    for side in (world.a, world.b):
        for source_id in ("EHR-1", "EHR-2"):
            planned = _reminders(engine, side, source_id)
            assert set(planned) == {"WhatsApp 48 h before", "SMS 3 h before"}
            whatsapp, sms = planned["WhatsApp 48 h before"], planned["SMS 3 h before"]
            assert whatsapp.status == sms.status == ReminderStatus.PENDING
            assert whatsapp.due_at == _riyadh(thursday, 20, 59)
            assert sms.due_at == _riyadh(sunday, 9)
            assert "Friday" in whatsapp.moved_reason and sms.moved_reason

    # 3. Thursday evening the pass sends the WhatsApp reminders; the delivery job hands them to Twilio.
    assert dispatch.send_due(world.runtime, _riyadh(thursday, 20, 58)) == 0, "not due yet"
    assert dispatch.send_due(world.runtime, _riyadh(thursday, 20, 59)) == 4
    assert dispatch.send_due(world.runtime, _riyadh(thursday, 21, 30)) == 0, "never twice"
    world.queue.drain(world.runtime)
    for side in (world.a, world.b):
        reminded = [m for m in world.sent_to(LAYLA, Channel.WHATSAPP) if m["from"] == f"whatsapp:{side.number}"]
        assert len(reminded) == 1, "one reminder to Layla from each clinic's own number"
    assert len(world.twilio.messages) == 4

    # 4. Layla answers clinic A in Arabic: A's appointment is confirmed and acknowledged; B's is not touched.
    response = world.reply(LAYLA, world.a, "نعم")
    assert response.status_code == 200 and response.headers["X-Outcome"] == "stored"
    assert _appointment(engine, world.a, "EHR-1").status == AppointmentStatus.CONFIRMED
    assert _appointment(engine, world.b, "EHR-1").status == AppointmentStatus.BOOKED
    world.queue.drain(world.runtime)
    [ack] = [m for m in world.sent_to(LAYLA, Channel.WHATSAPP) if m["body"].startswith("Thank you")]
    assert ack["from"] == f"whatsapp:{world.a.number}"
    assert sunday.isoformat() in ack["body"] and "10:00" in ack["body"]
    assert _patient_answer(world.read(world.a, "EHR-1")) == "accepted", "the clinic's system reads it back"
    assert _patient_answer(world.read(world.b, "EHR-1")) == "needs-action"

    # 5. Khalid presses clinic B's quick-reply button: confirmed by its payload.
    response = world.reply(KHALID, world.b, "Confirm", ButtonPayload="CONFIRM", ButtonText="Confirm")
    assert response.status_code == 200
    assert _appointment(engine, world.b, "EHR-2").status == AppointmentStatus.CONFIRMED
    assert _appointment(engine, world.a, "EHR-2").status == AppointmentStatus.BOOKED

    # 6. Khalid asks clinic A something no rule can answer: it waits in A's inbox, unread; nothing changed.
    response = world.reply(KHALID, world.a, "Can I bring my son to this appointment as well?")
    assert response.status_code == 200
    assert _appointment(engine, world.a, "EHR-2").status == AppointmentStatus.BOOKED
    page = call(engine, world.a.clinic.front_desk, inbox.threads, state="open")
    [thread] = [row for row in page.rows if row.unread]
    assert (thread.name, thread.intent, thread.unread) == ("Khalid Omar", ReplyIntent.UNCLEAR, 1)
    assert not [row for row in call(engine, world.b.clinic.front_desk, inbox.threads, state="open").rows
                if row.unread], "B's inbox has nothing waiting"

    # 7. Clinic A's system cancels Khalid's appointment: his pending SMS reminder is cancelled, never sent.
    cancelled = world.book(world.a, "EHR-2", fhir_appointment("EHR-2", "MRN-2", "Khalid Omar", KHALID, khalid_at,
                                                              status="cancelled"))
    assert cancelled.status_code == 200, cancelled.text
    assert _reminders(engine, world.a, "EHR-2")["SMS 3 h before"].status == ReminderStatus.CANCELLED
    assert _reminders(engine, world.b, "EHR-2")["SMS 3 h before"].status == ReminderStatus.PENDING

    # 8. Sunday 09:00: the SMS reminders of the three appointments still open go, and no other.
    assert dispatch.send_due(world.runtime, _riyadh(sunday, 9)) == 3
    world.queue.drain(world.runtime)
    assert len(world.sent_to(KHALID, Channel.SMS)) == 1, "only clinic B's: A cancelled"
    assert len(world.sent_to(LAYLA, Channel.SMS)) == 2
    with tenant_session(engine, world.a.tenant_id) as session:
        keys = list(session.scalars(select(Message.idempotency_key).where(Message.recipient == KHALID)))
    assert len([k for k in keys if k and k.startswith("reminder:")]) == 1, "A reminded Khalid once, on WhatsApp"
