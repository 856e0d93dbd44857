"""The callback service over real HTTP: signed Twilio callbacks and inbound STOP/START."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select

from app.delivery.runtime import Runtime
from app.services.messaging import MessagingService
from db.enums import MessageStatus, OptOutSource
from db.models import Message, MessageLog, NotificationPreference, PreferenceChange
from db.session import system_session
from tests.factories import make_patient, make_tenant
from tests.peers._threaded import ThreadedASGIServer
from worker.webhooks import create_app


@pytest.fixture
def webhook_service(engine: Engine, make_runtime, fake_twilio) -> Iterator[tuple[ThreadedASGIServer, Runtime, object]]:
    holder: dict[str, Runtime] = {}
    server = ThreadedASGIServer(create_app(lambda: holder["runtime"]))
    runtime, queue = make_runtime(fake_twilio, public_base_url=server.base_url)
    holder["runtime"] = runtime
    server.start()
    try:
        yield server, runtime, queue
    finally:
        server.stop()


def _send_one(engine, runtime, queue, tenant, number="+966501234567") -> Message:
    result = MessagingService(engine, queue).send_message(tenant, "sms", recipient=number, text="Hello")
    queue.drain(runtime)
    with system_session(engine) as session:
        message = session.get(Message, result.message_id)
        session.expunge(message)
        return message


def _state(engine, message_id) -> tuple[MessageStatus, int]:
    with system_session(engine) as session:
        status = session.scalar(select(Message.status).where(Message.id == message_id))
        logs = session.scalar(select(func.count()).select_from(MessageLog).where(MessageLog.message_id == message_id))
        return MessageStatus(status), logs


def test_signed_callbacks_apply_forward_only_and_once(engine, webhook_service, fake_twilio) -> None:
    _server, runtime, queue = webhook_service
    tenant = make_tenant(engine)
    message = _send_one(engine, runtime, queue, tenant)
    sid = message.provider_message_id
    response = fake_twilio.send_status_callback(sid, "delivered", price="-0.0395")
    assert response.status_code == 204
    status, logs = _state(engine, message.id)
    assert status == MessageStatus.DELIVERED
    for late in ("sent", "delivered", "queued"):
        assert fake_twilio.send_status_callback(sid, late).status_code == 204
    assert _state(engine, message.id) == (MessageStatus.DELIVERED, logs)
    with system_session(engine) as session:
        assert str(session.get(Message, message.id).price) == "0.03950"


def test_read_without_delivered_and_out_of_order(engine, webhook_service, fake_twilio) -> None:
    _server, runtime, queue = webhook_service
    tenant = make_tenant(engine)
    message = _send_one(engine, runtime, queue, tenant)
    fake_twilio.send_status_callback(message.provider_message_id, "read")
    fake_twilio.send_status_callback(message.provider_message_id, "delivered")
    fake_twilio.send_status_callback(message.provider_message_id, "sent")
    assert _state(engine, message.id)[0] == MessageStatus.READ


def test_undelivered_carries_the_error_and_an_explanation(engine, webhook_service, fake_twilio) -> None:
    _server, runtime, queue = webhook_service
    tenant = make_tenant(engine)
    message = _send_one(engine, runtime, queue, tenant)
    fake_twilio.send_status_callback(message.provider_message_id, "undelivered", error_code=30007)
    with system_session(engine) as session:
        row = session.get(Message, message.id)
        assert (row.status, row.error_code) == (MessageStatus.UNDELIVERED, "30007")
        assert "spam" in row.status_reason


@pytest.mark.parametrize("mode", ["wrong", "none", "other-url"])
def test_bad_signatures_are_refused_and_change_nothing(engine, webhook_service, fake_twilio, mode) -> None:
    server, runtime, queue = webhook_service
    tenant = make_tenant(engine)
    message = _send_one(engine, runtime, queue, tenant)
    before = _state(engine, message.id)
    if mode == "other-url":
        response = fake_twilio.send_status_callback(message.provider_message_id, "delivered",
                                                    sign_url=server.base_url + "/elsewhere")
    else:
        response = fake_twilio.send_status_callback(message.provider_message_id, "delivered", signature=mode)
    assert response.status_code == 403
    assert _state(engine, message.id) == before


def test_callback_before_the_send_is_recorded_finds_the_message_by_our_id(engine, webhook_service,
                                                                         fake_twilio) -> None:
    _server, runtime, queue = webhook_service
    tenant = make_tenant(engine)
    message = _send_one(engine, runtime, queue, tenant)
    with system_session(engine) as session:  # as if the worker had not yet stored the provider id
        row = session.get(Message, message.id)
        row.provider_message_id, row.status = None, MessageStatus.SENDING
    fake_twilio.send_status_callback(message.provider_message_id, "delivered")
    with system_session(engine) as session:
        row = session.get(Message, message.id)
        assert (row.status, row.provider_message_id) == (MessageStatus.DELIVERED, message.provider_message_id)


def test_unknown_message_is_acknowledged(engine, webhook_service, fake_twilio) -> None:
    server, _runtime, _queue = webhook_service
    sid = fake_twilio.client().messages.create(to="+966501234567", from_="+15005550006", body="x").sid
    url = f"{server.base_url}/twilio/status?mid={uuid.uuid4()}"
    response = fake_twilio.send_status_callback(sid, "delivered", url=url)
    assert response.status_code == 204 and response.headers["X-Outcome"] == "unknown_message"


@pytest.mark.parametrize("word", ["STOP", "stop", "توقف", "إيقاف"])
def test_inbound_stop_opts_the_patient_out(engine, webhook_service, fake_twilio, word) -> None:
    server, _runtime, _queue = webhook_service
    tenant = make_tenant(engine)
    patient = make_patient(engine, tenant, phone="+966501234567")
    response = fake_twilio.send_inbound_message(f"{server.base_url}/twilio/inbound", "+966501234567",
                                                "+15005550006", word)
    assert response.status_code == 200 and "<Response>" in response.text
    with system_session(engine) as session:
        pref = session.scalar(select(NotificationPreference).where(NotificationPreference.patient_id == patient))
        assert pref.sms_opt_in is False and pref.whatsapp_opt_in is True
        assert pref.opt_out_source == OptOutSource.PATIENT_REPLY
        assert session.scalar(select(PreferenceChange.source)) == OptOutSource.PATIENT_REPLY


def test_inbound_start_opts_back_in_and_other_text_changes_nothing(engine, webhook_service, fake_twilio) -> None:
    server, _runtime, _queue = webhook_service
    tenant = make_tenant(engine)
    patient = make_patient(engine, tenant, phone="+966501234567")
    url = f"{server.base_url}/twilio/inbound"
    fake_twilio.send_inbound_message(url, "whatsapp:+966501234567", "whatsapp:+14155238886", "STOP")
    fake_twilio.send_inbound_message(url, "+966501234567", "+15005550006", "please stop calling me at work")
    with system_session(engine) as session:
        pref = session.scalar(select(NotificationPreference).where(NotificationPreference.patient_id == patient))
        assert (pref.sms_opt_in, pref.whatsapp_opt_in) == (True, False)
    fake_twilio.send_inbound_message(url, "whatsapp:+966501234567", "whatsapp:+14155238886", "START")
    with system_session(engine) as session:
        pref = session.scalar(select(NotificationPreference).where(NotificationPreference.patient_id == patient))
        assert pref.whatsapp_opt_in is True


def test_inbound_with_a_bad_signature_is_refused(engine, webhook_service, fake_twilio) -> None:
    server, _runtime, _queue = webhook_service
    tenant = make_tenant(engine)
    patient = make_patient(engine, tenant, phone="+966501234567")
    response = fake_twilio.send_inbound_message(f"{server.base_url}/twilio/inbound", "+966501234567",
                                                "+15005550006", "STOP", signature="wrong")
    assert response.status_code == 403
    with system_session(engine) as session:
        assert session.scalar(select(NotificationPreference).where(
            NotificationPreference.patient_id == patient)) is None
