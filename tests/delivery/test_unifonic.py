"""The Unifonic SMS provider against a loopback Unifonic: send, error classes, lookup, delivery reports."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from app.delivery import sweeper
from app.providers.base import (
    AmbiguousOutcome,
    NotProcessed,
    OutgoingMessage,
    PermanentFailure,
    ProviderSet,
)
from app.providers.error_codes import ERRORS, FailureKind, explain
from app.providers.unifonic_provider import (
    UnifonicProvider,
    parse_delivery_report,
    recipient_digits,
)
from app.services.messaging import MessagingService
from db.enums import Channel, MessageStatus
from db.models import Message, MessageLog
from db.session import system_session
from db.types import utcnow
from tests.factories import make_tenant
from tests.peers._threaded import bind_loopback
from tests.peers.fake_unifonic import FakeUnifonic, Outcome

SENDER = "AgdarClinic"


@pytest.fixture(scope="module")
def _fake_unifonic_server() -> Iterator[FakeUnifonic]:
    with FakeUnifonic() as fake:
        yield fake


@pytest.fixture
def fake_unifonic(_fake_unifonic_server: FakeUnifonic) -> FakeUnifonic:
    _fake_unifonic_server.reset()
    return _fake_unifonic_server


def _provider(fake: FakeUnifonic, **kwargs) -> UnifonicProvider:  # type: ignore[no-untyped-def]
    values = {"app_sid": fake.app_sid, "sender_id": SENDER, "base_url": fake.base_url, "timeout_seconds": 2.0}
    return UnifonicProvider(**(values | kwargs))


def _outgoing(recipient: str = "+966501234567", body: str = "Your appointment is tomorrow at 10:00") -> OutgoingMessage:
    return OutgoingMessage(message_id=uuid.uuid4(), tenant_id=uuid.uuid4(), channel=Channel.SMS,
                           recipient=recipient, body=body)


# -- send ------------------------------------------------------------------------------------


def test_success_sends_the_documented_form_and_reads_the_reply(fake_unifonic) -> None:
    provider = _provider(fake_unifonic)
    message = _outgoing()
    accepted = provider.send(message)
    [request] = fake_unifonic.sends
    assert request.params == {
        "AppSid": fake_unifonic.app_sid, "SenderID": SENDER, "Recipient": "966501234567",
        "Body": message.body, "CorrelationID": str(message.message_id), "MessageType": "3",
    }
    [stored] = fake_unifonic.messages
    assert accepted.provider_message_id == stored.message_id
    assert accepted.status == MessageStatus.SENT
    assert accepted.segments == 1 and stored.units == 1
    assert accepted.price == Decimal("0.045") and accepted.price_unit == "SAR"
    assert accepted.sender == SENDER


def test_long_arabic_body_counts_units_and_the_callback_and_type_are_sent(fake_unifonic) -> None:
    provider = _provider(fake_unifonic, message_type=5, status_callback_url="https://clinic.example/unifonic/tok")
    accepted = provider.send(_outgoing(body="موعدك غدا " * 10))
    [request] = fake_unifonic.sends
    assert request.params["MessageType"] == "5"
    assert request.params["statusCallback"] == "https://clinic.example/unifonic/tok"
    assert accepted.segments == 2 and accepted.price == Decimal("0.09")


@pytest.mark.parametrize("boolean", [False, True], ids=["string-true", "boolean-true"])
def test_success_as_string_or_boolean(fake_unifonic, boolean) -> None:
    fake_unifonic.set_boolean_success(boolean)
    accepted = _provider(fake_unifonic).send(_outgoing())
    assert accepted.provider_message_id == fake_unifonic.messages[0].message_id


@pytest.mark.parametrize("boolean", [False, True], ids=["string-false", "boolean-false"])
def test_failure_as_string_or_boolean(fake_unifonic, boolean) -> None:
    fake_unifonic.script(Outcome.er("ER-02"))
    fake_unifonic.set_boolean_success(boolean)
    with pytest.raises(PermanentFailure) as info:
        _provider(fake_unifonic).send(_outgoing())
    assert info.value.code == "ER-02"


@pytest.mark.parametrize("number,digits", [("+966501234567", "966501234567"), ("00966501234567", "966501234567"),
                                           ("+966 50 123 4567", "966501234567")])
def test_recipient_is_digits_without_plus_or_00(number, digits) -> None:
    assert recipient_digits(number) == digits


@pytest.mark.parametrize("code", ["ER-02", "ER-03", "ER-04", "ER-05", "ER-07", "ER-09"])
def test_recipient_and_content_er_codes_are_permanent(fake_unifonic, code) -> None:
    fake_unifonic.script(Outcome.er(code))
    with pytest.raises(PermanentFailure) as info:
        _provider(fake_unifonic).send(_outgoing())
    assert info.value.code == code and info.value.provider == "unifonic"
    assert info.value.configuration is False and info.value.opt_out is False
    assert explain(code).kind == FailureKind.PERMANENT
    assert fake_unifonic.messages == []


@pytest.mark.parametrize("code", ["ER-01", "ER-08"])
def test_account_er_codes_are_not_processed_configuration_so_failover_may_apply(fake_unifonic, code) -> None:
    fake_unifonic.script(Outcome.er(code))
    with pytest.raises(NotProcessed) as info:
        _provider(fake_unifonic).send(_outgoing())
    assert info.value.code == code and info.value.provider == "unifonic"
    assert info.value.configuration is True and info.value.allows_failover
    assert explain(code).kind == FailureKind.CONFIGURATION
    assert fake_unifonic.messages == []


def test_duplicate_message_says_it_is_not_resent(fake_unifonic) -> None:
    fake_unifonic.script(Outcome.er("ER-09"))
    with pytest.raises(PermanentFailure) as info:
        _provider(fake_unifonic).send(_outgoing())
    assert "identical content was already sent to this number; not resent" in str(info.value).lower()
    assert "not resent" in ERRORS["ER-09"].title


@pytest.mark.parametrize("status,code", [(401, "unifonic-401"), (402, "unifonic-402"), (403, "unifonic-403"),
                                         (480, "unifonic-480")])
def test_auth_and_sender_http_errors_are_configuration(fake_unifonic, status, code) -> None:
    fake_unifonic.script(Outcome.http(status))
    with pytest.raises(NotProcessed) as info:
        _provider(fake_unifonic).send(_outgoing())
    assert info.value.code == code and info.value.configuration is True
    assert explain(code).kind == FailureKind.CONFIGURATION


def test_wrong_app_sid_is_a_configuration_failure(fake_unifonic) -> None:
    with pytest.raises(NotProcessed) as info:
        _provider(fake_unifonic, app_sid="wrong").send(_outgoing())
    assert info.value.code == "unifonic-401" and info.value.configuration is True


def test_bad_recipient_format_410_is_permanent(fake_unifonic) -> None:
    fake_unifonic.script(Outcome.http(410))
    with pytest.raises(PermanentFailure) as info:
        _provider(fake_unifonic).send(_outgoing())
    assert info.value.code == "unifonic-410" and info.value.configuration is False


def test_429_is_not_processed_with_retry_after(fake_unifonic) -> None:
    fake_unifonic.script(Outcome.http(429, retry_after="7"), Outcome.http(429))
    provider = _provider(fake_unifonic)
    with pytest.raises(NotProcessed) as info:
        provider.send(_outgoing())
    assert info.value.code == "unifonic-429" and info.value.retry_after == 7.0
    with pytest.raises(NotProcessed) as info:
        provider.send(_outgoing())
    assert info.value.retry_after == 1.0
    assert explain("unifonic-429").kind == FailureKind.NOT_PROCESSED


@pytest.mark.parametrize("outcome,code", [
    (Outcome.http(409), "unifonic-409"), (Outcome.http(500), "unifonic-5xx"),
    (Outcome.accept_then_error(500), "unifonic-5xx"), (Outcome.accept_then_drop(), "timeout"),
], ids=["409-duplicate", "500", "500-after-accept", "drop-after-accept"])
def test_ambiguous_answers(fake_unifonic, outcome, code) -> None:
    fake_unifonic.script(outcome)
    with pytest.raises(AmbiguousOutcome) as info:
        _provider(fake_unifonic).send(_outgoing())
    assert info.value.code == code


def test_connection_refused_is_not_processed() -> None:
    sock = bind_loopback()
    port = sock.getsockname()[1]
    sock.close()
    provider = UnifonicProvider(app_sid="x", sender_id=SENDER, base_url=f"http://127.0.0.1:{port}",
                                timeout_seconds=1.0)
    with pytest.raises(NotProcessed) as info:
        provider.send(_outgoing())
    assert info.value.code == "connection"


def test_slow_answer_within_the_timeout_is_accepted(fake_unifonic) -> None:
    fake_unifonic.script(Outcome.slow(300))
    assert _provider(fake_unifonic, timeout_seconds=2.0).send(_outgoing()).provider_message_id


# -- lookup ----------------------------------------------------------------------------------


def test_timeout_after_accept_is_ambiguous_and_lookup_by_correlation_id_finds_it(fake_unifonic) -> None:
    fake_unifonic.script(Outcome.accept_then_hang(5))
    provider = _provider(fake_unifonic, timeout_seconds=0.5)
    message = _outgoing()
    with pytest.raises(AmbiguousOutcome) as info:
        provider.send(message)
    assert info.value.code == "timeout"
    result = provider.lookup(message, provider_message_id=None, sent_after=utcnow())
    [stored] = fake_unifonic.messages
    assert result is not None and result.found is True
    assert result.provider_message_id == stored.message_id and result.status == MessageStatus.SENT
    assert result.segments == 1 and result.price == Decimal("0.045")
    assert [r.params.get("CorrelationID") for r in fake_unifonic.lookups] == [str(message.message_id)]
    assert len(fake_unifonic.sends) == 1


def test_409_duplicate_is_settled_by_lookup(fake_unifonic) -> None:
    provider = _provider(fake_unifonic)
    message = _outgoing()
    provider.send(message)
    fake_unifonic.script(Outcome.http(409))
    with pytest.raises(AmbiguousOutcome):
        provider.send(message)
    result = provider.lookup(message, provider_message_id=None, sent_after=utcnow())
    assert result is not None and result.found and result.provider_message_id == fake_unifonic.messages[0].message_id


@pytest.mark.parametrize("dlr,status", [("Delivered", MessageStatus.DELIVERED),
                                        ("Undeliverable", MessageStatus.UNDELIVERED)])
def test_lookup_by_message_id_reports_the_current_status(fake_unifonic, dlr, status) -> None:
    provider = _provider(fake_unifonic)
    message = _outgoing()
    accepted = provider.send(message)
    fake_unifonic.advance(accepted.provider_message_id, dlr)
    result = provider.lookup(message, provider_message_id=accepted.provider_message_id, sent_after=utcnow())
    assert result is not None and result.found and result.status == status
    assert fake_unifonic.lookups[0].params.get("MessageID") == accepted.provider_message_id


def test_lookup_of_an_unknown_message_is_not_found(fake_unifonic) -> None:
    provider = _provider(fake_unifonic)
    result = provider.lookup(_outgoing(), provider_message_id=None, sent_after=utcnow())
    assert result is not None and result.found is False
    result = provider.lookup(_outgoing(), provider_message_id="999", sent_after=utcnow())
    assert result is not None and result.found is False


def test_lookup_errors_are_ambiguous(fake_unifonic) -> None:
    with pytest.raises(AmbiguousOutcome):
        _provider(fake_unifonic, app_sid="wrong").lookup(_outgoing(), provider_message_id=None, sent_after=utcnow())


# -- delivery reports ------------------------------------------------------------------------


@pytest.mark.parametrize("dlr,status", [("Delivered", MessageStatus.DELIVERED),
                                        ("Undeliverable", MessageStatus.UNDELIVERED)])
def test_parse_delivery_report(fake_unifonic, dlr, status) -> None:
    accepted = _provider(fake_unifonic).send(_outgoing())
    form = fake_unifonic.delivery_report_params(accepted.provider_message_id, dlr)
    message_id, parsed, timestamp = parse_delivery_report(form)
    assert message_id == accepted.provider_message_id and parsed == status
    assert timestamp is not None and timestamp.tzinfo is not None
    assert abs((timestamp - dt.datetime.now(dt.UTC)).total_seconds()) < 60


def test_parse_delivery_report_rejects_incomplete_forms() -> None:
    with pytest.raises(ValueError):
        parse_delivery_report({"DLR": "Delivered"})
    with pytest.raises(ValueError):
        parse_delivery_report({"MessageID": "1", "DLR": "Maybe"})
    assert parse_delivery_report({"MessageID": "1", "DLR": "Delivered", "TimeCreated": "2024-05-01 10:00:00"})[2] \
        == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)


# -- through the delivery pipeline -----------------------------------------------------------


def _unifonic_runtime(make_runtime, fake: FakeUnifonic, **provider_kwargs):  # type: ignore[no-untyped-def]
    runtime, queue = make_runtime()
    runtime.providers = ProviderSet({Channel.SMS: _provider(fake, **provider_kwargs)})
    return runtime, queue


def _only_message(engine: Engine, bulk_job_id) -> Message:  # type: ignore[no-untyped-def]
    with system_session(engine) as session:
        [message] = session.scalars(select(Message).where(Message.bulk_job_id == bulk_job_id)).all()
        session.expunge(message)
        return message


def _events(engine: Engine, message_id) -> list[str]:  # type: ignore[no-untyped-def]
    with system_session(engine) as session:
        return list(session.scalars(select(MessageLog.event).where(MessageLog.message_id == message_id)
                                    .order_by(MessageLog.created_at)))


def test_pipeline_sends_through_unifonic(engine, make_runtime, fake_unifonic) -> None:
    tenant = make_tenant(engine)
    runtime, queue = _unifonic_runtime(make_runtime, fake_unifonic)
    result = MessagingService(runtime).send_bulk_messages(
        recipients=["+966501234567"], message="Your appointment is tomorrow", channel="SMS", tenant_id=tenant)
    queue.drain(runtime)
    message = _only_message(engine, result.bulk_job_id)
    [stored] = fake_unifonic.messages
    assert message.status == MessageStatus.SENT and message.provider == "unifonic"
    assert message.provider_message_id == stored.message_id
    assert stored.correlation_id == str(message.id) and stored.recipient == "966501234567"
    assert len(fake_unifonic.sends) == 1


def test_pipeline_timeout_after_accept_is_settled_by_the_sweep_without_resending(engine, make_runtime,
                                                                                 fake_unifonic) -> None:
    tenant = make_tenant(engine)
    runtime, queue = _unifonic_runtime(make_runtime, fake_unifonic, timeout_seconds=0.5)
    fake_unifonic.script(Outcome.accept_then_hang(5))
    result = MessagingService(runtime).send_bulk_messages(
        recipients=["+966501234567"], message="Your appointment is tomorrow", channel="SMS", tenant_id=tenant)
    queue.drain(runtime)
    message = _only_message(engine, result.bulk_job_id)
    assert message.status == MessageStatus.UNKNOWN
    later = utcnow() + dt.timedelta(seconds=30)
    runtime.clock = lambda: later
    sweeper.run_sweep(runtime)
    queue.drain(runtime)
    settled = _only_message(engine, result.bulk_job_id)
    assert settled.status == MessageStatus.SENT
    assert settled.provider_message_id == fake_unifonic.messages[0].message_id
    assert "lookup" in _events(engine, message.id)
    assert len(fake_unifonic.sends) == 1


def test_promotional_sms_uses_the_ad_sender_and_type_5(fake_unifonic) -> None:
    import dataclasses

    from db.enums import MessageClass

    provider = _provider(fake_unifonic, promotional_sender_id="AgdarClinic-AD")
    promotional = dataclasses.replace(_outgoing(), message_class=MessageClass.PROMOTIONAL)
    accepted = provider.send(promotional)
    request = fake_unifonic.requests[-1]
    assert (request.params["SenderID"], request.params["MessageType"]) == ("AgdarClinic-AD", "5")
    assert accepted.sender == "AgdarClinic-AD"
    provider.send(_outgoing())  # a service message keeps the ordinary sender
    assert fake_unifonic.requests[-1].params["MessageType"] == "3"
    assert fake_unifonic.requests[-1].params["SenderID"] != "AgdarClinic-AD"


def test_promotional_sms_without_an_ad_sender_is_refused_before_sending(fake_unifonic) -> None:
    import dataclasses

    from db.enums import MessageClass

    before = len(fake_unifonic.requests)
    with pytest.raises(PermanentFailure, match="-AD") as refused:
        _provider(fake_unifonic).send(dataclasses.replace(_outgoing(), message_class=MessageClass.PROMOTIONAL))
    assert refused.value.configuration and len(fake_unifonic.requests) == before
    with pytest.raises(ValueError, match="-AD"):
        _provider(fake_unifonic, promotional_sender_id="AgdarClinic")
