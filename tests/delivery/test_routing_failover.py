"""Per-clinic routing and failover, against a loopback Twilio and a loopback Unifonic.

The matrix: which answer of which provider leads where. A clinic sends SMS to Saudi numbers
through Unifonic (failover: Twilio) and SMS abroad through Twilio (failover: Unifonic). The next
provider is tried only when the previous one definitely did not take the message; every
message is accepted by at most one provider, and every attempt is its own timeline event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, select

from app.providers.routing import ELSEWHERE, SAUDI, RouteStep
from app.services import clinic_settings
from app.services.messaging import MessagingService
from db.enums import Channel, MessageStatus
from db.models import Message, MessageLog
from db.session import system_session, tenant_session
from tests.factories import make_tenant, make_user, script_runtime
from tests.peers.fake_twilio import FakeTwilio
from tests.peers.fake_twilio import Outcome as TwilioOutcome
from tests.peers.fake_unifonic import FakeUnifonic
from tests.peers.fake_unifonic import Outcome as UnifonicOutcome

SAUDI_NUMBER = "+966501234567"
UK_NUMBER = "+447911123456"
KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="module")
def _fake_unifonic_server() -> Iterator[FakeUnifonic]:
    with FakeUnifonic() as fake:
        yield fake


@pytest.fixture
def fake_unifonic(_fake_unifonic_server: FakeUnifonic) -> FakeUnifonic:
    _fake_unifonic_server.reset()
    return _fake_unifonic_server


@pytest.fixture
def clinic(engine: Engine):  # type: ignore[no-untyped-def]
    """A clinic routing Saudi SMS Unifonic -> Twilio and SMS abroad Twilio -> Unifonic."""
    tenant = make_tenant(engine)
    admin = make_user(engine, tenant, "admin")
    with tenant_session(engine, tenant) as session:
        clinic_settings.set_route(session, admin, Channel.SMS, SAUDI, [
            RouteStep("unifonic", "AgdarClinic", "AgdarClinic-AD"), RouteStep("twilio", "+15005550006")])
        clinic_settings.set_route(session, admin, Channel.SMS, ELSEWHERE, [
            RouteStep("twilio"), RouteStep("unifonic", "AgdarClinic")])
    return tenant, admin


@pytest.fixture
def routed(make_runtime, fake_twilio: FakeTwilio, fake_unifonic: FakeUnifonic):  # type: ignore[no-untyped-def]
    def build(**overrides):  # type: ignore[no-untyped-def]
        values = {"unifonic_app_sid": fake_unifonic.app_sid, "unifonic_sender_id": "GlobalSender",
                  "unifonic_api_base_url": fake_unifonic.base_url, "credentials_key": KEY}
        return make_runtime(fake_twilio, **(values | overrides))
    return build


def _send(engine: Engine, queue, tenant: uuid.UUID, number: str) -> Message:  # type: ignore[no-untyped-def]
    result = MessagingService(script_runtime(engine, queue)).send_bulk_messages(
        recipients=[number], message="Your appointment is tomorrow at 10:00", channel="SMS", tenant_id=tenant)
    with system_session(engine) as session:
        return session.scalars(select(Message).where(Message.bulk_job_id == result.bulk_job_id)).one()


def _reload(engine: Engine, message_id: uuid.UUID) -> Message:
    with system_session(engine) as session:
        message = session.get(Message, message_id)
        assert message is not None
        session.expunge(message)
        return message


def _timeline(engine: Engine, message_id: uuid.UUID) -> list[tuple[str, str | None]]:
    with system_session(engine) as session:
        rows = session.execute(select(MessageLog.event, MessageLog.provider)
                               .where(MessageLog.message_id == message_id)
                               .order_by(MessageLog.created_at, MessageLog.event)).all()
    return [(event, provider) for event, provider in rows if event not in ("created", "queued")]


def _accepted_sends(fake_twilio: FakeTwilio, fake_unifonic: FakeUnifonic) -> dict[str, int]:
    return {"twilio": len(fake_twilio.messages), "unifonic": len(fake_unifonic.messages)}


# -- Saudi number: Unifonic first, Twilio second -------------------------------------------

SAUDI_MATRIX = [
    # Unifonic's answer, final status, accepted by, timeline after "sending"
    (UnifonicOutcome.success(), MessageStatus.SENT, "unifonic", [("accepted", "unifonic")]),
    (UnifonicOutcome.er("ER-01"), MessageStatus.SENT, "twilio", [("failover", "unifonic"), ("accepted", "twilio")]),
    (UnifonicOutcome.er("ER-08"), MessageStatus.SENT, "twilio", [("failover", "unifonic"), ("accepted", "twilio")]),
    (UnifonicOutcome.http(401), MessageStatus.SENT, "twilio", [("failover", "unifonic"), ("accepted", "twilio")]),
    (UnifonicOutcome.http(480), MessageStatus.SENT, "twilio", [("failover", "unifonic"), ("accepted", "twilio")]),
    (UnifonicOutcome.http(429), MessageStatus.QUEUED, None, [("retry_scheduled", "unifonic")]),
    (UnifonicOutcome.er("ER-02"), MessageStatus.FAILED, None, [("rejected", "unifonic")]),
    (UnifonicOutcome.er("ER-09"), MessageStatus.FAILED, None, [("rejected", "unifonic")]),
    (UnifonicOutcome.http(500), MessageStatus.UNKNOWN, None, [("ambiguous", "unifonic")]),
    (UnifonicOutcome.accept_then_error(500), MessageStatus.UNKNOWN, "unifonic", [("ambiguous", "unifonic")]),
]


@pytest.mark.parametrize("answer,status,accepted_by,timeline", SAUDI_MATRIX,
                         ids=[f"{a.kind}-{a.code or a.http_status or ''}" for a, *_ in SAUDI_MATRIX])
def test_saudi_number_matrix(engine, clinic, routed, fake_twilio, fake_unifonic, answer, status, accepted_by,
                             timeline) -> None:
    tenant, _admin = clinic
    runtime, queue = routed()
    fake_unifonic.script(answer)
    message = _send(engine, queue, tenant, SAUDI_NUMBER)
    queue.drain(runtime)
    final = _reload(engine, message.id)
    assert final.status == status
    assert _timeline(engine, message.id) == [("sending", "unifonic"), *timeline]
    sends = _accepted_sends(fake_twilio, fake_unifonic)
    assert sum(sends.values()) == (1 if accepted_by else 0), "at most one provider has the message"
    if accepted_by:
        assert sends[accepted_by] == 1
    if status == MessageStatus.SENT:
        assert final.provider == accepted_by
        assert final.sender == ("AgdarClinic" if accepted_by == "unifonic" else "+15005550006")
    if accepted_by != "twilio":
        assert fake_twilio.sends == [], "Twilio is never asked unless Unifonic definitely did not take it"


def test_unifonic_unreachable_fails_over_to_twilio(engine, clinic, routed, fake_twilio, fake_unifonic) -> None:
    tenant, _admin = clinic
    runtime, queue = routed(unifonic_api_base_url="http://127.0.0.1:9")  # nothing listens: connection refused
    message = _send(engine, queue, tenant, SAUDI_NUMBER)
    queue.drain(runtime)
    final = _reload(engine, message.id)
    assert (final.status, final.provider) == (MessageStatus.SENT, "twilio")
    assert _timeline(engine, message.id) == [("sending", "unifonic"), ("failover", "unifonic"), ("accepted", "twilio")]
    assert len(fake_twilio.messages) == 1


def test_timeout_after_unifonic_accepted_never_fails_over(engine, clinic, routed, fake_twilio, fake_unifonic) -> None:
    tenant, _admin = clinic
    runtime, queue = routed(provider_timeout_seconds=0.5)
    fake_unifonic.script(UnifonicOutcome.accept_then_hang(3))
    message = _send(engine, queue, tenant, SAUDI_NUMBER)
    queue.drain(runtime)
    assert _reload(engine, message.id).status == MessageStatus.UNKNOWN
    assert len(fake_unifonic.messages) == 1 and fake_twilio.sends == []


def test_both_providers_refuse_the_account_fails_with_each_attempt_visible(engine, clinic, routed, fake_twilio,
                                                                           fake_unifonic) -> None:
    tenant, _admin = clinic
    runtime, queue = routed()
    fake_unifonic.script(UnifonicOutcome.er("ER-01"))
    fake_twilio.script(TwilioOutcome.error(20003))
    message = _send(engine, queue, tenant, SAUDI_NUMBER)
    queue.drain(runtime)
    final = _reload(engine, message.id)
    assert (final.status, final.error_code) == (MessageStatus.FAILED, "20003")
    assert _timeline(engine, message.id) == [("sending", "unifonic"), ("failover", "unifonic"), ("rejected", "twilio")]
    assert _accepted_sends(fake_twilio, fake_unifonic) == {"twilio": 0, "unifonic": 0}


# -- number abroad: Twilio first, Unifonic second ------------------------------------------

ABROAD_MATRIX = [
    (TwilioOutcome.success(), MessageStatus.SENT, "twilio", [("accepted", "twilio")]),
    (TwilioOutcome.error(20003), MessageStatus.SENT, "unifonic", [("failover", "twilio"), ("accepted", "unifonic")]),
    (TwilioOutcome.error(20429), MessageStatus.QUEUED, None, [("retry_scheduled", "twilio")]),
    (TwilioOutcome.error(21211), MessageStatus.FAILED, None, [("rejected", "twilio")]),
    (TwilioOutcome.error(20500), MessageStatus.UNKNOWN, None, [("ambiguous", "twilio")]),
    (TwilioOutcome.accept_then_error(), MessageStatus.UNKNOWN, "twilio", [("ambiguous", "twilio")]),
]


@pytest.mark.parametrize("answer,status,accepted_by,timeline", ABROAD_MATRIX,
                         ids=[f"{a.kind}-{a.code or ''}" for a, *_ in ABROAD_MATRIX])
def test_number_abroad_matrix(engine, clinic, routed, fake_twilio, fake_unifonic, answer, status, accepted_by,
                              timeline) -> None:
    tenant, _admin = clinic
    runtime, queue = routed()
    fake_twilio.script(answer)
    message = _send(engine, queue, tenant, UK_NUMBER)
    queue.drain(runtime)
    final = _reload(engine, message.id)
    assert final.status == status
    assert _timeline(engine, message.id) == [("sending", "twilio"), *timeline]
    sends = _accepted_sends(fake_twilio, fake_unifonic)
    assert sum(sends.values()) == (1 if accepted_by else 0)
    if accepted_by != "unifonic":
        assert fake_unifonic.sends == []


def test_clinic_credentials_are_used_and_wrong_ones_fail_over(engine, clinic, routed, fake_twilio,
                                                              fake_unifonic) -> None:
    tenant, admin = clinic
    runtime, queue = routed()
    with tenant_session(engine, tenant) as session:
        clinic_settings.set_credentials(session, admin, "twilio", {"account_sid": fake_twilio.account_sid,
                                                                   "auth_token": "wrong"},
                                        settings=runtime.settings)
    message = _send(engine, queue, tenant, UK_NUMBER)
    queue.drain(runtime)
    final = _reload(engine, message.id)
    assert (final.status, final.provider) == (MessageStatus.SENT, "unifonic")
    assert fake_twilio.messages == [] and len(fake_unifonic.messages) == 1
    with tenant_session(engine, tenant) as session:
        clinic_settings.set_credentials(session, admin, "twilio", {"account_sid": fake_twilio.account_sid,
                                                                   "auth_token": fake_twilio.auth_token},
                                        settings=runtime.settings)
    again = _send(engine, queue, tenant, "+447911123457")
    queue.drain(runtime)
    assert _reload(engine, again.id).provider == "twilio"


def test_stored_credentials_unreadable_without_the_key_are_not_replaced_by_the_environment(
        engine, clinic, routed, fake_twilio, fake_unifonic) -> None:
    tenant, admin = clinic
    runtime, _queue = routed()
    with tenant_session(engine, tenant) as session:
        clinic_settings.set_credentials(session, admin, "twilio", {"account_sid": "ACx", "auth_token": "y"},
                                        settings=runtime.settings)
    runtime, queue = routed(credentials_key=Fernet.generate_key().decode())  # the key was changed
    message = _send(engine, queue, tenant, UK_NUMBER)
    queue.drain(runtime)
    final = _reload(engine, message.id)
    assert (final.status, final.provider) == (MessageStatus.SENT, "unifonic")
    assert fake_twilio.sends == [], "never sent with the environment's account instead of the clinic's"
    with system_session(engine) as session:
        detail = session.scalar(select(MessageLog.detail).where(MessageLog.message_id == message.id,
                                                                MessageLog.event == "failover"))
    assert "CREDENTIALS_KEY" in (detail or "")


def test_a_clinic_without_routes_uses_the_settings(engine, routed, fake_twilio, fake_unifonic) -> None:
    tenant = make_tenant(engine, "plain")
    runtime, queue = routed()
    message = _send(engine, queue, tenant, SAUDI_NUMBER)
    queue.drain(runtime)
    assert _reload(engine, message.id).provider == "twilio"  # SMS_PROVIDER
    assert fake_unifonic.sends == []


def test_other_clinics_routes_do_not_leak(engine, clinic, routed, fake_twilio, fake_unifonic) -> None:
    other = make_tenant(engine, "other")
    runtime, queue = routed()
    first = _send(engine, queue, clinic[0], SAUDI_NUMBER)
    second = _send(engine, queue, other, SAUDI_NUMBER)
    queue.drain(runtime)
    assert _reload(engine, first.id).provider == "unifonic"
    assert _reload(engine, second.id).provider == "twilio"


def test_a_timeout_at_the_failover_provider_is_settled_by_asking_the_route_without_resending(
        engine, clinic, routed, fake_twilio, fake_unifonic) -> None:
    import datetime as dt

    from app.delivery import sweeper
    from db.types import utcnow

    tenant, _admin = clinic
    runtime, queue = routed(provider_timeout_seconds=0.5)
    fake_unifonic.script(UnifonicOutcome.er("ER-01"))
    fake_twilio.script(TwilioOutcome.accept_then_hang(3))
    message = _send(engine, queue, tenant, SAUDI_NUMBER)
    queue.drain(runtime)
    assert _reload(engine, message.id).status == MessageStatus.UNKNOWN
    later = utcnow() + dt.timedelta(seconds=30)
    runtime.clock = lambda: later
    sweeper.run_sweep(runtime)
    queue.drain(runtime)
    settled = _reload(engine, message.id)
    assert settled.status == MessageStatus.SENT
    assert settled.provider_message_id == fake_twilio.messages[0]["sid"]
    assert len(fake_twilio.sends) == 1 and fake_unifonic.messages == []
