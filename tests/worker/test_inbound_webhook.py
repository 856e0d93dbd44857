"""``POST /twilio/inbound`` over real HTTP: signed replies (a WhatsApp quick-reply button too) reach
the clinic whose number they were sent to; a bad signature, or another clinic's token, is refused
and stores nothing. Clinics A and B (their own WhatsApp numbers) both have Sara Ali, as does the
neighbouring clinic; each reminded her of an appointment (tests/services/test_receive_reply.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, func, select

from app.delivery.ratelimit import LocalRateLimiter
from app.delivery.runtime import Runtime
from app.providers.registry import build_providers
from app.services import clinic_settings
from app.services.permissions import Actor
from db.enums import AppointmentStatus, ReplyIntent
from db.models import Conversation, InboundMessage
from db.session import system_session, tenant_session
from tests.delivery.conftest import RecordingQueue, delivery_settings
from tests.peers._threaded import ThreadedASGIServer
from tests.peers.fake_twilio import inbound_message_params, sign_webhook
from tests.services.test_receive_reply import A_NUMBER, B_NUMBER, SARA, Clinic, appointment_status, reminded_clinic
from worker.webhooks import create_app

ACCOUNT_B, TOKEN_B = "AC" + "b7" * 16, "9c" * 16


@dataclass
class Service:
    engine: Engine
    runtime: Runtime
    queue: RecordingQueue
    url: str
    a: Clinic
    b: Clinic


@pytest.fixture
def service(engine: Engine, fake_twilio: Any) -> Iterator[Service]:
    holder: dict[str, Runtime] = {}
    server = ThreadedASGIServer(create_app(lambda: holder["runtime"]))
    queue = RecordingQueue()
    settings = delivery_settings(engine, fake_twilio, public_base_url=server.base_url,
                                 credentials_key=Fernet.generate_key().decode())
    holder["runtime"] = runtime = Runtime(engine, settings, build_providers(settings), LocalRateLimiter(), queue)
    a, b = reminded_clinic(engine, "clinic-a", A_NUMBER), reminded_clinic(engine, "clinic-b", B_NUMBER)
    fake_twilio.add_account(ACCOUNT_B, TOKEN_B)
    with tenant_session(engine, b.tenant_id) as session:  # B also has its own Twilio account
        clinic_settings.set_credentials(session, Actor.system(b.tenant_id, name="test script"), "twilio",
                                        {"account_sid": ACCOUNT_B, "auth_token": TOKEN_B}, settings=settings)
    server.start()
    try:
        yield Service(engine, runtime, queue, f"{server.base_url}/twilio/inbound", a, b)
    finally:
        server.stop()


def _stored(engine: Engine) -> int:
    with system_session(engine) as session:
        return session.scalar(select(func.count()).select_from(InboundMessage)) or 0


def _reply(engine: Engine) -> InboundMessage:
    with system_session(engine) as session:
        row = session.scalar(select(InboundMessage))
        session.expunge(row)
        return row


def test_a_whatsapp_button_reply_confirms_and_is_answered_with_empty_twiml(service: Service, fake_twilio) -> None:
    response = fake_twilio.send_inbound_message(service.url, f"whatsapp:{SARA}", f"whatsapp:{B_NUMBER}", "Confirm",
                                                extra={"ButtonPayload": "CONFIRM", "ButtonText": "Confirm"})
    assert response.status_code == 200 and response.headers["X-Outcome"] == "stored"
    assert response.text.strip().endswith("<Response></Response>")
    assert appointment_status(service.engine, service.b) == AppointmentStatus.CONFIRMED
    assert appointment_status(service.engine, service.a) == AppointmentStatus.BOOKED
    reply = _reply(service.engine)
    assert (reply.tenant_id, reply.intent, reply.button_payload) == (service.b.tenant_id, ReplyIntent.CONFIRM,
                                                                     "CONFIRM")
    service.queue.drain(service.runtime)  # the acknowledgement goes the normal way, from B's number
    assert [s.params["From"] for s in fake_twilio.sends] == [f"whatsapp:{B_NUMBER}"]


def test_an_arabic_reply_and_a_repeat_of_the_same_webhook(service: Service, fake_twilio) -> None:
    hook = fake_twilio.build_inbound_message(service.url, f"whatsapp:{SARA}", f"whatsapp:{A_NUMBER}", "نعم")
    first, second = hook.post(5.0), hook.post(5.0)
    assert (first.headers["X-Outcome"], second.headers["X-Outcome"]) == ("stored", "duplicate")
    assert _stored(service.engine) == 1
    assert appointment_status(service.engine, service.a) == AppointmentStatus.CONFIRMED


@pytest.mark.parametrize("mode", ["wrong", "none", "other-url"])
def test_a_bad_signature_is_refused_and_nothing_is_stored(service: Service, fake_twilio, mode: str) -> None:
    kwargs = {"sign_url": service.url + "?x=1"} if mode == "other-url" else {"signature": mode}
    response = fake_twilio.send_inbound_message(service.url, f"whatsapp:{SARA}", f"whatsapp:{B_NUMBER}", "نعم",
                                                **kwargs)
    assert response.status_code == 403
    assert _stored(service.engine) == 0
    assert appointment_status(service.engine, service.b) == AppointmentStatus.BOOKED
    with system_session(service.engine) as session:
        assert session.scalar(select(func.count()).select_from(Conversation)) == 0


def test_a_clinics_own_token_signs_only_replies_to_its_own_number(service: Service, fake_twilio) -> None:
    def signed_by_b(to: str) -> Any:
        params = inbound_message_params(ACCOUNT_B, f"whatsapp:{SARA}", f"whatsapp:{to}", "yes")
        return sign_webhook(TOKEN_B, service.url, params).post()

    assert signed_by_b(A_NUMBER).status_code == 403  # B's token over a reply to A's number
    assert _stored(service.engine) == 0
    response = signed_by_b(B_NUMBER)
    assert (response.status_code, response.headers["X-Outcome"]) == (200, "stored")
    assert appointment_status(service.engine, service.b) == AppointmentStatus.CONFIRMED
    assert appointment_status(service.engine, service.a) == AppointmentStatus.BOOKED


@pytest.mark.parametrize("missing", ["MessageSid", "From"])
def test_a_signed_post_that_is_not_a_reply_is_refused(service: Service, fake_twilio, missing: str) -> None:
    params = inbound_message_params(fake_twilio.account_sid, f"whatsapp:{SARA}", f"whatsapp:{A_NUMBER}", "yes")
    drop = {"MessageSid", "SmsSid", "SmsMessageSid"} if missing == "MessageSid" else {"From"}
    params = {k: v for k, v in params.items() if k not in drop}
    response = sign_webhook(fake_twilio.auth_token, service.url, params).post()
    assert response.status_code == 400
    assert _stored(service.engine) == 0
