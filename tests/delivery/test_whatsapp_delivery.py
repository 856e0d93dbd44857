"""WhatsApp delivery: approved template outside the 24-hour window, body inside it, and the SMS
fallback of a template when WhatsApp fails for good (exactly once, opt-outs respected)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from sqlalchemy import Engine, select

from app.delivery.fallback import fall_back_to_sms, fallback_key
from app.delivery.optouts import set_channel_opt_in
from app.delivery.runtime import Runtime
from app.services import messaging, templates, whatsapp_templates
from db.enums import Channel, MessageStatus, OptOutSource
from db.models import Message, MessageLog, Patient
from db.session import system_session, tenant_session
from db.types import utcnow
from tests.factories import call, make_patient, make_tenant, make_user
from tests.peers._threaded import ThreadedASGIServer
from tests.peers.fake_twilio import Outcome
from worker.webhooks import create_app

SID = "HX" + "b" * 32
PHONE = "+966501234567"


@pytest.fixture
def clinic(engine: Engine):  # type: ignore[no-untyped-def]
    tenant = make_tenant(engine)
    admin = make_user(engine, tenant, "admin")
    patient = make_patient(engine, tenant, phone=PHONE)
    with tenant_session(engine, tenant) as session:
        detail = templates.create_template(session, admin, code="reminder_wa", name="Reminder",
                                           channel=Channel.WHATSAPP,
                                           body_en="Hi {{ patient_name }}, your appointment is tomorrow.")
        whatsapp_templates.set_whatsapp_link(session, admin, detail.id, content_sid=SID,
                                             variable_map={"1": "patient_name"}, fallback_channel=Channel.SMS)
    return tenant, admin, patient, detail.id


def _send(engine: Engine, queue, tenant: uuid.UUID, patient: uuid.UUID) -> uuid.UUID:  # type: ignore[no-untyped-def]
    return call(engine, tenant, messaging.send, "whatsapp", patient_id=patient,
                                                        template_code="reminder_wa", queue=queue).message_id


def _messages(engine: Engine, tenant: uuid.UUID) -> list[Message]:
    with system_session(engine) as session:
        rows = list(session.scalars(select(Message).where(Message.tenant_id == tenant).order_by(Message.created_at)))
        session.expunge_all()
        return rows


def _events(engine: Engine, message_id: uuid.UUID) -> list[str]:
    with system_session(engine) as session:
        return list(session.scalars(select(MessageLog.event).where(MessageLog.message_id == message_id)
                                    .order_by(MessageLog.created_at)))


def _wrote_on_whatsapp(engine: Engine, patient: uuid.UUID, hours_ago: float) -> None:
    with system_session(engine) as session:
        session.get(Patient, patient).whatsapp_last_inbound_at = utcnow() - dt.timedelta(hours=hours_ago)


# -- the 24-hour window ------------------------------------------------------------------------


def test_outside_the_window_the_approved_template_is_sent(engine, clinic, make_runtime, fake_twilio) -> None:
    tenant, _admin, patient, _template = clinic
    runtime, queue = make_runtime(fake_twilio)
    _wrote_on_whatsapp(engine, patient, hours_ago=25)
    _send(engine, queue, tenant, patient)
    queue.drain(runtime)
    [request] = fake_twilio.sends
    assert request.params["ContentSid"] == SID
    assert json.loads(request.params["ContentVariables"]) == {"1": "Sara Ali"}
    assert "Body" not in request.params


def test_inside_the_window_the_body_is_sent(engine, clinic, make_runtime, fake_twilio) -> None:
    tenant, _admin, patient, _template = clinic
    runtime, queue = make_runtime(fake_twilio)
    _wrote_on_whatsapp(engine, patient, hours_ago=2)
    _send(engine, queue, tenant, patient)
    queue.drain(runtime)
    [request] = fake_twilio.sends
    assert request.params["Body"] == "Hi Sara Ali, your appointment is tomorrow."
    assert "ContentSid" not in request.params


def test_an_inbound_whatsapp_message_opens_the_window(engine, clinic, make_runtime, fake_twilio) -> None:
    _tenant, _admin, patient, _template = clinic
    holder: dict[str, Runtime] = {}
    server = ThreadedASGIServer(create_app(lambda: holder["runtime"]))
    runtime, _queue = make_runtime(fake_twilio, public_base_url=server.base_url)
    holder["runtime"] = runtime
    server.start()
    try:
        response = fake_twilio.send_inbound_message(f"{server.base_url}/twilio/inbound", f"whatsapp:{PHONE}",
                                                    "whatsapp:+14155238886", "Thanks!")
    finally:
        server.stop()
    assert response.status_code == 200
    with system_session(engine) as session:
        seen = session.get(Patient, patient).whatsapp_last_inbound_at
    assert seen is not None and utcnow() - seen < dt.timedelta(minutes=1)


# -- SMS fallback ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [63003, 63016])
def test_permanent_whatsapp_failure_falls_back_to_sms_once(engine, clinic, make_runtime, fake_twilio, code) -> None:
    tenant, _admin, patient, _template = clinic
    runtime, queue = make_runtime(fake_twilio)
    fake_twilio.script(Outcome.error(code, http_status=400))
    original_id = _send(engine, queue, tenant, patient)
    queue.drain(runtime)  # WhatsApp fails; the SMS is created and queued ...
    queue.drain(runtime)  # ... and sent
    original, sms = _messages(engine, tenant)
    assert (original.id, original.status, original.error_code) == (original_id, MessageStatus.FAILED, str(code))
    assert (sms.channel, sms.recipient, sms.retry_of_id) == (Channel.SMS, PHONE, original.id)
    assert sms.idempotency_key == fallback_key(original.id) and sms.status == MessageStatus.SENT
    assert sms.body == original.body
    assert "fallback" in _events(engine, original.id) and "created" in _events(engine, sms.id)
    assert fall_back_to_sms(runtime, original.id, str(code)) is None, "a second report creates nothing"
    assert len(_messages(engine, tenant)) == 2
    assert [r.params.get("From") for r in fake_twilio.sends] == ["whatsapp:+14155238886", "+15005550006"]


def test_undelivered_callback_falls_back_through_the_webhook(engine, clinic, make_runtime, fake_twilio) -> None:
    tenant, _admin, patient, _template = clinic
    holder: dict[str, Runtime] = {}
    server = ThreadedASGIServer(create_app(lambda: holder["runtime"]))
    runtime, queue = make_runtime(fake_twilio, public_base_url=server.base_url)
    holder["runtime"] = runtime
    server.start()
    try:
        original_id = _send(engine, queue, tenant, patient)
        queue.drain(runtime)
        [original] = _messages(engine, tenant)
        for _ in range(2):  # Twilio repeats callbacks
            fake_twilio.send_status_callback(original.provider_message_id, "undelivered", error_code=63003)
    finally:
        server.stop()
    messages = _messages(engine, tenant)
    assert len(messages) == 2 and messages[1].retry_of_id == original_id
    assert messages[1].status == MessageStatus.QUEUED and queue.enqueued_ids == [str(messages[1].id)]


def test_no_fallback_when_the_patient_opted_out_of_sms(engine, clinic, make_runtime, fake_twilio) -> None:
    tenant, _admin, patient, _template = clinic
    runtime, queue = make_runtime(fake_twilio)
    with system_session(engine) as session:
        set_channel_opt_in(session, tenant_id=tenant, patient_id=patient, channel=Channel.SMS, opted_in=False,
                           source=OptOutSource.STAFF, reason="asked at the desk")
    fake_twilio.script(Outcome.error(63003, http_status=400))
    original_id = _send(engine, queue, tenant, patient)
    queue.drain(runtime)
    assert len(_messages(engine, tenant)) == 1
    assert "fallback_skipped" in _events(engine, original_id)


def test_no_fallback_without_the_template_option_or_when_blocked(engine, clinic, make_runtime, fake_twilio) -> None:
    tenant, admin, patient, template_id = clinic
    runtime, queue = make_runtime(fake_twilio)
    fake_twilio.script(Outcome.error(63014, http_status=400))  # the patient blocked us: an opt-out
    _send(engine, queue, tenant, patient)
    queue.drain(runtime)
    with tenant_session(engine, tenant) as session:
        whatsapp_templates.set_whatsapp_link(session, admin, template_id, content_sid=SID,
                                             variable_map={"1": "patient_name"}, fallback_channel=None)
    fake_twilio.script(Outcome.error(63003, http_status=400))
    _send(engine, queue, tenant, patient)
    queue.drain(runtime)
    assert [m.channel for m in _messages(engine, tenant)] == [Channel.WHATSAPP, Channel.WHATSAPP]

