"""The callback service over real HTTP: signed Twilio callbacks and inbound STOP/START."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import Engine, func, select

from app.delivery.callbacks import ClinicMismatch, message_clinic
from app.delivery.runtime import Runtime
from app.providers.routing import SAUDI, RouteStep
from app.services import clinic_settings, messaging
from db.enums import Channel, MessageStatus, OptOutSource
from db.models import Message, MessageLog, NotificationPreference, PreferenceChange
from db.session import system_session, tenant_session
from tests.factories import call, make_patient, make_tenant, make_user
from tests.peers._threaded import ThreadedASGIServer
from tests.peers.fake_twilio import sign_webhook, status_callback_params
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
    result = call(engine, tenant, messaging.send, "sms", recipient=number, text="Hello", queue=queue)
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


# -- clinics with their own Twilio accounts ------------------------------------------------------

ACCOUNT_A, TOKEN_A = "AC" + "a1" * 16, "7a" * 16
ACCOUNT_B, TOKEN_B = "AC" + "b2" * 16, "8b" * 16
KEY = Fernet.generate_key().decode()


@pytest.fixture
def clinic_service(engine: Engine, make_runtime, fake_twilio):  # type: ignore[no-untyped-def]
    """The callback service, and clinics A and B that send SMS through their own Twilio accounts."""
    holder: dict[str, Runtime] = {}
    server = ThreadedASGIServer(create_app(lambda: holder["runtime"]))
    runtime, queue = make_runtime(fake_twilio, public_base_url=server.base_url, credentials_key=KEY)
    holder["runtime"] = runtime
    clinics = {}
    for slug, account, token in (("clinic-a", ACCOUNT_A, TOKEN_A), ("clinic-b", ACCOUNT_B, TOKEN_B)):
        fake_twilio.add_account(account, token)
        tenant = make_tenant(engine, slug)
        admin = make_user(engine, tenant, f"admin-{slug}")
        with tenant_session(engine, tenant) as session:
            clinic_settings.set_credentials(session, admin, "twilio", {"account_sid": account, "auth_token": token},
                                            settings=runtime.settings)
            clinic_settings.set_route(session, admin, Channel.SMS, SAUDI, [RouteStep("twilio", "+15005550006")],
                                      settings=runtime.settings)
        clinics[slug] = tenant
    server.start()
    try:
        yield server, runtime, queue, clinics
    finally:
        server.stop()


def test_each_clinic_callbacks_are_verified_with_its_own_token(engine, clinic_service, fake_twilio) -> None:
    _server, runtime, queue, clinics = clinic_service
    plain = make_tenant(engine, "plain")  # no credentials: the process-wide account
    messages = {slug: _send_one(engine, runtime, queue, tenant) for slug, tenant in
                [*clinics.items(), ("plain", plain)]}
    accounts = {slug: fake_twilio.message(m.provider_message_id)["account_sid"] for slug, m in messages.items()}
    assert accounts == {"clinic-a": ACCOUNT_A, "clinic-b": ACCOUNT_B, "plain": fake_twilio.account_sid}
    for message in messages.values():  # each signed by the account that sent it
        response = fake_twilio.send_status_callback(message.provider_message_id, "delivered")
        assert (response.status_code, response.headers["X-Outcome"]) == (204, "applied")
        assert _state(engine, message.id)[0] == MessageStatus.DELIVERED


def _signed_by(token: str, fake_twilio, sid: str, status: str, url: str):  # type: ignore[no-untyped-def]
    return sign_webhook(token, url, status_callback_params(fake_twilio.message(sid), status)).post()


def test_another_clinics_token_is_refused(engine, clinic_service, fake_twilio) -> None:
    _server, runtime, queue, clinics = clinic_service
    a = _send_one(engine, runtime, queue, clinics["clinic-a"])
    b = _send_one(engine, runtime, queue, clinics["clinic-b"])
    before = _state(engine, a.id)
    a_url = fake_twilio.status_callback_url(a.provider_message_id)
    b_url = fake_twilio.status_callback_url(b.provider_message_id)
    # B's token over A's message, addressed to A's mid
    assert _signed_by(TOKEN_B, fake_twilio, a.provider_message_id, "failed", a_url).status_code == 403
    # B's token, B's mid, but A's MessageSid: the two ids name two clinics
    assert _signed_by(TOKEN_B, fake_twilio, a.provider_message_id, "failed", b_url).status_code == 403
    # no mid at all: the MessageSid alone finds clinic A
    bare = a_url.split("?")[0]
    assert _signed_by(TOKEN_B, fake_twilio, a.provider_message_id, "failed", bare).status_code == 403
    assert _state(engine, a.id) == before
    assert _state(engine, b.id)[0] == MessageStatus.SENT
    # A's own token over the same callback is accepted; so is the operator's (process-wide) account,
    # which may carry any clinic's messages (e.g. sent before the clinic stored its credentials)
    assert _signed_by(TOKEN_A, fake_twilio, a.provider_message_id, "delivered", bare).status_code == 204
    assert _state(engine, a.id)[0] == MessageStatus.DELIVERED
    assert _signed_by(fake_twilio.auth_token, fake_twilio, a.provider_message_id, "read", a_url).status_code == 204
    assert _state(engine, a.id)[0] == MessageStatus.READ


def test_unreadable_clinic_credentials_refuse_its_callbacks(engine, clinic_service, fake_twilio) -> None:
    server, runtime, queue, clinics = clinic_service
    a = _send_one(engine, runtime, queue, clinics["clinic-a"])
    rotated, _ = make_runtime_like(runtime, credentials_key=Fernet.generate_key().decode())
    server.app.state.runtime = lambda: rotated  # CREDENTIALS_KEY changed under the service
    response = fake_twilio.send_status_callback(a.provider_message_id, "delivered")
    assert response.status_code == 403
    assert _state(engine, a.id)[0] == MessageStatus.SENT


def make_runtime_like(runtime: Runtime, **overrides):  # type: ignore[no-untyped-def]
    settings = runtime.settings.model_copy(update={k: SecretStr(v) for k, v in overrides.items()})
    return Runtime(runtime.engine, settings, runtime.providers, runtime.limiter, runtime.queue), None


def test_message_clinic_reads_one_clinic_id(engine, clinic_service) -> None:
    _server, runtime, queue, clinics = clinic_service
    a = _send_one(engine, runtime, queue, clinics["clinic-a"])
    b = _send_one(engine, runtime, queue, clinics["clinic-b"])
    assert message_clinic(engine, a.id) == clinics["clinic-a"]
    assert message_clinic(engine, None, b.provider_message_id) == clinics["clinic-b"]
    assert message_clinic(engine, a.id, a.provider_message_id) == clinics["clinic-a"]
    assert message_clinic(engine, uuid.uuid4(), "SM" + "0" * 32) is None
    assert message_clinic(engine) is None
    with pytest.raises(ClinicMismatch):
        message_clinic(engine, b.id, a.provider_message_id)
