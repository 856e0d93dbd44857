"""Unifonic delivery reports on the callback service: secret path, forward-only, idempotent."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, func, select

from db.enums import Channel, MessageStatus
from db.models import Message, MessageLog
from db.session import system_session
from tests.factories import make_tenant
from tests.peers._threaded import ThreadedASGIServer
from worker.webhooks import create_app

TOKEN = "s3cret-clinic-token"


@pytest.fixture
def service(engine: Engine, make_runtime) -> Iterator[str]:
    runtime, _queue = make_runtime(unifonic_callback_token=TOKEN)
    server = ThreadedASGIServer(create_app(lambda: runtime))
    server.start()
    try:
        yield server.base_url
    finally:
        server.stop()


def _message(engine: Engine) -> Message:
    tenant = make_tenant(engine)
    with system_session(engine) as session:
        message = Message(tenant_id=tenant, channel=Channel.SMS, recipient="+966501234567", body="x",
                          status=MessageStatus.SENT, provider="unifonic", provider_message_id="4242424242")
        session.add(message)
        session.flush()
        session.expunge(message)
        return message


def _report(dlr: str) -> dict[str, str]:
    return {"MessageID": "4242424242", "DLR": dlr, "Recipient": "966501234567",
            "TimeCreated": "2026-11-27 10:00:00", "DLRTimestamp": "2026-11-27 10:00:05"}


def _state(engine: Engine, message: Message) -> tuple[MessageStatus, int]:
    with system_session(engine) as session:
        status = session.scalar(select(Message.status).where(Message.id == message.id))
        logs = session.scalar(select(func.count()).select_from(MessageLog).where(MessageLog.message_id == message.id))
        return MessageStatus(status), logs


def test_delivered_report_applies_once(engine: Engine, service: str) -> None:
    message = _message(engine)
    first = httpx.post(f"{service}/unifonic/dlr/{TOKEN}", data=_report("Delivered"))
    assert first.status_code == 200 and first.headers["X-Outcome"] == "applied"
    assert _state(engine, message) == (MessageStatus.DELIVERED, 1)
    for _ in range(3):  # Unifonic retries up to 6 times
        again = httpx.post(f"{service}/unifonic/dlr/{TOKEN}", data=_report("Delivered"))
        assert again.status_code == 200 and again.headers["X-Outcome"] == "duplicate"
    late = httpx.post(f"{service}/unifonic/dlr/{TOKEN}", data=_report("Undeliverable"))
    assert late.status_code == 200
    assert _state(engine, message) == (MessageStatus.DELIVERED, 1)


def test_undeliverable_report(engine: Engine, service: str) -> None:
    message = _message(engine)
    httpx.post(f"{service}/unifonic/dlr/{TOKEN}", data=_report("Undeliverable"))
    assert _state(engine, message)[0] == MessageStatus.UNDELIVERED


@pytest.mark.parametrize("token", ["wrong", "", TOKEN + "x"])
def test_a_wrong_path_token_is_refused(engine: Engine, service: str, token: str) -> None:
    message = _message(engine)
    response = httpx.post(f"{service}/unifonic/dlr/{token}", data=_report("Delivered"))
    assert response.status_code in (403, 404, 405)
    assert _state(engine, message) == (MessageStatus.SENT, 0)


def test_a_malformed_report_is_a_clear_400(engine: Engine, service: str) -> None:
    _message(engine)
    response = httpx.post(f"{service}/unifonic/dlr/{TOKEN}", data={"DLR": "Delivered"})
    assert response.status_code == 400 and "MessageID" in response.text


def test_sms_can_be_routed_to_unifonic_by_settings() -> None:
    from app.config import Settings
    from app.errors import ConfigurationError
    from app.providers.registry import build_providers

    with pytest.raises(ConfigurationError, match="UNIFONIC_APP_SID"):
        build_providers(Settings(sms_provider="unifonic"))
    providers = build_providers(Settings(
        sms_provider="unifonic", unifonic_app_sid="app-sid", unifonic_sender_id="AgdarClinic",
        public_base_url="https://notify.clinic.example", unifonic_callback_token=TOKEN))
    provider = providers.for_channel(Channel.SMS)
    assert provider.name == "unifonic"
    assert provider.status_callback_url == f"https://notify.clinic.example/unifonic/dlr/{TOKEN}"


# -- per-clinic tokens -----------------------------------------------------------------------


def _clinic_token(engine: Engine, tenant) -> str:  # type: ignore[no-untyped-def]
    import uuid

    from app.services import clinic_settings
    from db.session import tenant_session
    from tests.factories import make_user

    admin = make_user(engine, tenant, f"admin-{uuid.uuid4().hex[:8]}")
    with tenant_session(engine, tenant) as session:
        return clinic_settings.rotate_dlr_token(session, admin).token


def test_a_clinic_token_applies_that_clinics_reports_and_the_global_token_still_works(engine: Engine,
                                                                                      service: str) -> None:
    message = _message(engine)
    token = _clinic_token(engine, message.tenant_id)
    response = httpx.post(f"{service}/unifonic/dlr/{token}", data=_report("Delivered"))
    assert response.status_code == 200 and response.headers["X-Outcome"] == "applied"
    assert _state(engine, message)[0] == MessageStatus.DELIVERED
    assert httpx.post(f"{service}/unifonic/dlr/{TOKEN}", data=_report("Delivered")).headers["X-Outcome"] == "duplicate"


def test_a_rotated_clinic_token_stops_working(engine: Engine, service: str) -> None:
    message = _message(engine)
    old = _clinic_token(engine, message.tenant_id)
    new = _clinic_token(engine, message.tenant_id)
    assert old != new
    assert httpx.post(f"{service}/unifonic/dlr/{old}", data=_report("Delivered")).status_code == 403
    assert _state(engine, message) == (MessageStatus.SENT, 0)
    assert httpx.post(f"{service}/unifonic/dlr/{new}", data=_report("Delivered")).status_code == 200


def test_a_clinic_token_cannot_touch_another_clinics_message(engine: Engine, service: str) -> None:
    message = _message(engine)
    other = make_tenant(engine, "other-clinic")
    token = _clinic_token(engine, other)
    response = httpx.post(f"{service}/unifonic/dlr/{token}", data=_report("Delivered"))
    assert response.status_code == 200 and response.headers["X-Outcome"] == "unknown_message"
    assert _state(engine, message) == (MessageStatus.SENT, 0)
